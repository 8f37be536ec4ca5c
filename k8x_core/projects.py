"""Projects and who may do what in them."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

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
