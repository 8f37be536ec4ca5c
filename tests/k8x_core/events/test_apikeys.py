from __future__ import annotations

import pytest

from k8x_core.events.apikeys import apikey_authenticate, apikey_create, apikey_revoke
from k8x_core.events.ingest import sender_from_api_key, sender_from_api_key_cached
from k8x_core.models import ApiKey, Project

pytestmark = pytest.mark.django_db


def test_key_is_shown_once_and_stored_hashed() -> None:
    project = Project.objects.create(slug="acme")
    key, raw = apikey_create(project=project, name="ci")
    stored = ApiKey.objects.get(pk=key.pk)
    assert raw not in str(ApiKey.objects.values().get())
    assert stored.key_hash != raw and len(stored.key_hash) == 64
    found = apikey_authenticate(raw=raw)
    assert found is not None and found.project == project
    assert found.last_used_at is not None


def test_unknown_malformed_and_revoked_keys_fail() -> None:
    project = Project.objects.create(slug="acme")
    key, raw = apikey_create(project=project, name="ci")
    assert apikey_authenticate(raw=raw + "x") is None
    assert apikey_authenticate(raw="garbage") is None
    assert apikey_authenticate(raw="") is None
    assert apikey_revoke(key=key)
    assert not apikey_revoke(key=key)
    assert apikey_authenticate(raw=raw) is None


def test_revoking_clears_this_process_cache(settings) -> None:
    settings.K8X_APIKEY_CACHE_SECONDS = 60
    project = Project.objects.create(slug="cached")
    key, raw = apikey_create(project=project, name="ci")
    sender_from_api_key(raw=raw)
    assert sender_from_api_key_cached(raw=raw) is not None
    apikey_revoke(key=key)
    assert sender_from_api_key_cached(raw=raw) is None
