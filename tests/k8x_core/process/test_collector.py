"""gc_freeze_after_setup: what is alive after set-up is frozen (full
collections skip it) and young collections run less often. In a subprocess:
freezing the test process itself would outlive the test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

_PROBE = """
import gc, json
before = gc.get_freeze_count()
from k8x_core.process.collector import GEN0_THRESHOLD, gc_freeze_after_setup
gc_freeze_after_setup()
frozen = gc.get_freeze_count()
garbage = [[] for _ in range(1000)]
print(json.dumps({"before": before, "frozen": frozen, "after": gc.get_freeze_count(),
                  "threshold": gc.get_threshold(), "expected": GEN0_THRESHOLD}))
"""


def test_set_up_objects_are_frozen_and_gen0_raised() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    out = json.loads(proc.stdout)
    assert out["before"] == 0
    assert out["frozen"] > 1000
    # Objects made after the freeze are the collector's as usual.
    assert out["after"] == out["frozen"]
    assert out["threshold"][0] == out["expected"] > 700
