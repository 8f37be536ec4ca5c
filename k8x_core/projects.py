"""Projects and who may do what in them."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.db.models import QuerySet

from k8x_core import kubevalues
from k8x_core.audit import Actor, audit_record
from k8x_core.models import ROLE_RANK, Membership, Project, Role


def project_ensure(*, slug: str, name: str = "") -> tuple[Project, bool]:
    """The project with this slug, created if missing."""
    return Project.objects.get_or_create(slug=slug, defaults={"name": name or slug})


def project_role(*, user: AbstractBaseUser | AnonymousUser, project: Project) -> Role | None:
    """The user's role in the project; superusers are owners everywhere."""
    if not user.is_authenticated:
        return None
    if getattr(user, "is_superuser", False):
        return Role.OWNER
    role = Membership.objects.filter(project=project, user_id=user.pk).values_list("role", flat=True).first()
    return Role(role) if role else None


def project_allows(*, user: AbstractBaseUser | AnonymousUser, project: Project, role: Role) -> bool:
    """True when the user holds ``role`` or a higher one in the project."""
    actual = project_role(user=user, project=project)
    return actual is not None and ROLE_RANK[actual] >= ROLE_RANK[role]


def projects_visible(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Project]:
    if not user.is_authenticated:
        return Project.objects.none()
    if getattr(user, "is_superuser", False):
        return Project.objects.all()
    return Project.objects.filter(memberships__user_id=user.pk).distinct()


class ProjectDefaultsInvalid(ValueError):
    """Run defaults that cannot be saved; ``errors`` are (field, message), e.g.
    ``("default_resources.limits.memory", "'lots' is not a quantity")``."""

    def __init__(self, errors: list[kubevalues.Error]) -> None:
        super().__init__("; ".join(f"{path}: {message}" for path, message in errors))
        self.errors = errors


def project_defaults_set(
    *, project: Project, default_resources: Any, default_timeout: Any, actor: Actor | AbstractBaseUser | None
) -> Project:
    """Save a project's run defaults (owners; k8x_core.runs.defaults applies them), audited.

    Raises ProjectDefaultsInvalid naming every bad field; nothing is saved then."""
    errors = kubevalues.resources_errors(value=default_resources, field="default_resources")
    errors += kubevalues.timeout_errors(value=default_timeout, field="default_timeout")
    if errors:
        raise ProjectDefaultsInvalid(errors)
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)
        before = {"default_resources": locked.default_resources, "default_timeout": locked.default_timeout}
        locked.default_resources = dict(default_resources)
        locked.default_timeout = default_timeout
        locked.save(update_fields=["default_resources", "default_timeout"])
        after = {"default_resources": locked.default_resources, "default_timeout": locked.default_timeout}
        audit_record(
            project=locked,
            actor=actor,
            action="update",
            kind="project",
            name=locked.slug,
            object_id=locked.pk,
            before=before,
            after=after,
        )
    project.default_resources, project.default_timeout = locked.default_resources, locked.default_timeout
    return project
