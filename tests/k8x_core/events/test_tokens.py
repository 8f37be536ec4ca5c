from __future__ import annotations

import time
import uuid

from k8x_core.events.tokens import run_token_issue, run_token_verify


def test_round_trip():
    run_id = uuid.uuid4()
    token = run_token_issue(run_id=run_id, project_slug="p1", correlation_id="c1", ttl_seconds=60)
    claims = run_token_verify(token=token)
    assert claims is not None
    assert (claims.run_id, claims.project_slug, claims.correlation_id) == (run_id, "p1", "c1")


def test_tampered_and_foreign_tokens_are_refused():
    token = run_token_issue(run_id=uuid.uuid4(), project_slug="p1", correlation_id="c1", ttl_seconds=60)
    assert run_token_verify(token=token[:-2] + ("AA" if token[-2:] != "AA" else "BB")) is None
    assert run_token_verify(token="k8xrun.garbage") is None
    assert run_token_verify(token="k8x_abc_def") is None


def test_expired_token_is_refused():
    token = run_token_issue(run_id=uuid.uuid4(), project_slug="p1", correlation_id="c1", ttl_seconds=1)
    time.sleep(2.1)
    assert run_token_verify(token=token) is None
