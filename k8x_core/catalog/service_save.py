"""Saving a service people changed (console form or management API): the cluster checks it first."""

from __future__ import annotations

from k8x_core.catalog.services import AuditActor, service_save, service_validate_on_cluster
from k8x_core.models import Service


def service_save_checked(*, service: Service, actor: AuditActor) -> Service:
    """Dry-run the service's Job against the cluster, then save it (audited as ``actor``).

    Raises ServiceInvalid (the field the cluster blamed) or ClusterUnavailable;
    nothing is saved unchecked."""
    service_validate_on_cluster(service=service)
    return service_save(service=service, actor=actor)
