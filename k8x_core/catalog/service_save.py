"""Saving a service people changed (console form or management API): the cluster checks it first."""

from __future__ import annotations

from django.db import transaction

from k8x_core.catalog.services import service_validate_on_cluster
from k8x_core.models import Service


def service_save_checked(*, service: Service) -> None:
    """Dry-run the service's Job against the cluster, then save it.

    Raises ServiceInvalid (the field the cluster blamed) or ClusterUnavailable;
    nothing is saved unchecked."""
    service_validate_on_cluster(service=service)
    with transaction.atomic():
        service.save()
