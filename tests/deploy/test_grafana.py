"""deploy/grafana/k8x.json loads, and every panel's PromQL names only metrics that
K8X registers (k8x_core.metrics.REGISTRY): a renamed metric breaks this test, not
a dashboard nobody looks at until an incident."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from k8x_core.metrics import REGISTRY

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "k8x.json"

PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or"}
PROMQL_KEYWORDS |= {"unless", "inf", "nan"}


def promql_metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (functions, keywords, label names and
    matchers, ranges and Grafana's $variables left out)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\$\{?\w+\}?", " ", e)
    names = set()
    for m in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", e):
        if e[m.end() :].lstrip().startswith("(") or m.group().lower() in PROMQL_KEYWORDS:
            continue
        names.add(m.group())
    return names


def exported_sample_names() -> set[str]:
    """What K8X's processes expose: each registered family's sample names."""
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""], "summary": ["_sum"]}
    names: set[str] = set()
    for family in REGISTRY.collect():
        names |= {family.name + suffix for suffix in suffixes.get(family.type, [""])}
    return names


def test_promql_parsing() -> None:
    expr = 'histogram_quantile(0.99, sum by (le) (rate(k8x_x_bucket{job="a"}[$__rate_interval]))) / on(le) k8x_y'
    assert promql_metric_names(expr) == {"k8x_x_bucket", "k8x_y"}
    assert promql_metric_names("max by (role, instance) (k8x_leader) > bool 0") == {"k8x_leader"}


def test_dashboard_panels_chart_only_metrics_k8x_exports() -> None:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    panels = doc["panels"]
    exported = exported_sample_names()
    charted: set[str] = set()
    for panel in panels:
        exprs = [t["expr"] for t in panel["targets"]]
        assert exprs, f"panel {panel['title']!r} has no query"
        for expr in exprs:
            names = promql_metric_names(expr)
            assert names, f"panel {panel['title']!r}: {expr!r} selects no metric"
            unknown = names - exported
            assert not unknown, f"panel {panel['title']!r}: {sorted(unknown)} not exported by K8X"
            charted |= names
    # What the dashboard is for (issue 17).
    assert {
        "k8x_hub_events_total",
        "k8x_runs",
        "k8x_launch_latency_seconds_bucket",
        "k8x_queue_depth",
        "k8x_hub_consumer_lag",
        "k8x_watch_log_bytes_total",
        "k8x_leader",
    } <= charted
    assert len({p["id"] for p in panels}) == len(panels)
