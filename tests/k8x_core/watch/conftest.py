"""The cluster fixtures of the runs tests (a project in a fresh namespace, its services)."""

from tests.k8x_core.runs.conftest import make_service, project  # noqa: F401  (fixtures)
