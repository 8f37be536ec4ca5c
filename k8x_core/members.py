"""Project members: add, change role, remove, each recorded in the audit log."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from k8x_core.audit import Actor, audit_record
from k8x_core.models import Membership, Project, Role


class LastOwner(ValueError):
    """The change would leave the project without an owner."""


@transaction.atomic
def member_set(
    *, project: Project, user: AbstractBaseUser, role: str, actor: Actor | AbstractBaseUser | None
) -> Membership:
    """Make ``user`` a member with ``role`` (adding them, or changing their role)."""
    current = Membership.objects.select_for_update().filter(project=project, user_id=user.pk).first()
    before = {"role": current.role} if current is not None else None
    demoted = current is not None and current.role == Role.OWNER and role != Role.OWNER
    if demoted and Membership.objects.filter(project=project, role=Role.OWNER).count() == 1:
        raise LastOwner("a project keeps at least one owner")
    membership, _ = Membership.objects.update_or_create(project=project, user_id=user.pk, defaults={"role": role})
    audit_record(
        project=project,
        actor=actor,
        action="update" if before is not None else "create",
        kind="member",
        name=user.get_username(),
        object_id=user.pk,
        before=before,
        after={"role": role},
    )
    return membership


@transaction.atomic
def member_remove(*, membership: Membership, actor: Actor | AbstractBaseUser | None) -> None:
    """Remove a member; raises LastOwner for the project's only owner."""
    project = membership.project
    if (
        membership.role == Role.OWNER
        and Membership.objects.select_for_update().filter(project=project, role=Role.OWNER).count() == 1
    ):
        raise LastOwner("a project keeps at least one owner")
    audit_record(
        project=project,
        actor=actor,
        action="delete",
        kind="member",
        name=membership.user.get_username(),
        object_id=membership.user_id,
        before={"role": membership.role},
        after=None,
    )
    membership.delete()
