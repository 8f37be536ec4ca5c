"""Shared test set-up. Integration tests run against the real services that
`make test` starts (PostgreSQL, Redis, Kafka, the local cluster)."""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).parent

# The local-cluster fixtures (kube_cluster, kube_api, kube_namespace).
pytest_plugins = ["tests.cluster_fixtures"] if (_HERE / "cluster_fixtures.py").exists() else []
