"""The cluster fixtures of the runs tests (a project in a fresh namespace, its services)."""

from tests.k8x_core.runs.conftest import cluster_settings, make_service, project  # noqa: F401  (fixtures)
