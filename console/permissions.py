"""Who may see and do what in the console.

Everything a user can reach is scoped to the projects they are a member of.
A resource of another project answers 404, never 403, so guessing URLs tells
nothing about what exists.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import Http404

from k8x_core.models import ROLE_RANK, Event, Membership, Project, Role, Run, Service, UnmatchedCount
from k8x_core.projects import project_allows, project_role, projects_visible

AnyUser = AbstractBaseUser | AnonymousUser

__all__ = [
    "Role",
    "events_of_projects",
    "events_visible",
    "get_event_or_404",
    "get_project_or_404",
    "get_run_or_404",
    "get_service_or_404",
    "project_allows",
    "project_role",
    "projects_with_role",
    "role_require",
    "runs_visible",
    "services_visible",
]


def projects_with_role(*, user: AnyUser, role: Role) -> QuerySet[Project]:
    """Projects where the user holds ``role`` or a higher one."""
    if not user.is_authenticated:
        return Project.objects.none()
    if getattr(user, "is_superuser", False):
        return Project.objects.all()
    roles = [r for r, rank in ROLE_RANK.items() if rank >= ROLE_RANK[role]]
    return Project.objects.filter(
        Exists(Membership.objects.filter(project=OuterRef("pk"), user_id=user.pk, role__in=roles))
    )


def _visible_project_ids(user: AnyUser) -> QuerySet[Project, Any] | None:
    """None means every project (superusers)."""
    if getattr(user, "is_superuser", False) and user.is_authenticated:
        return None
    return projects_visible(user=user).values("pk")


def services_visible(*, user: AnyUser) -> QuerySet[Service]:
    ids = _visible_project_ids(user)
    qs = Service.objects.select_related("project")
    return qs if ids is None else qs.filter(project_id__in=ids)


def runs_visible(*, user: AnyUser) -> QuerySet[Run]:
    ids = _visible_project_ids(user)
    qs = Run.objects.all()
    return qs if ids is None else qs.filter(service__project_id__in=ids)


def events_visible(*, user: AnyUser) -> QuerySet[Event]:
    """Events of the user's projects (see ``events_of_projects``)."""
    ids = _visible_project_ids(user)
    return Event.objects.all() if ids is None else events_of_projects(project_ids=ids)


def unmatched_counts_visible(*, user: AnyUser) -> QuerySet[UnmatchedCount]:
    """Unmatched-event counts of the user's projects (the hub stores only a sample of those events)."""
    ids = _visible_project_ids(user)
    qs = UnmatchedCount.objects.select_related("project")
    return qs if ids is None else qs.filter(project_id__in=ids)


def events_of_projects(*, project_ids: Any) -> QuerySet[Event]:
    """Events sent through one of the projects, or that ran one of their services."""
    ran_here = Run.objects.filter(event_id=OuterRef("pk"), service__project_id__in=project_ids)
    return Event.objects.filter(Q(project_id__in=project_ids) | Exists(ran_here))


def role_require(*, actual: Role | None, project: Project, role: Role) -> Role:
    """``actual`` if it is ``role`` or higher. Http404 for a non-member (``actual``
    None): the project's existence stays hidden; PermissionDenied for a member."""
    if actual is None:
        raise Http404("No such project.")
    if ROLE_RANK[actual] < ROLE_RANK[role]:
        # A member learns the project exists anyway; a non-member does not.
        raise PermissionDenied(f"This needs the {role} role in project {project.slug}.")
    return actual


def _require(user: AnyUser, project: Project, role: Role) -> Role:
    return role_require(actual=project_role(user=user, project=project), project=project, role=role)


def get_project_or_404(user: AnyUser, slug: str, role: Role = Role.USER) -> Project:
    """The project if the user is a member with at least ``role``.

    Non-members get 404; members with a lower role get 403 (they can see the
    project exists, so saying why is more useful than pretending)."""
    try:
        project = Project.objects.get(slug=slug)
    except Project.DoesNotExist:
        raise Http404("No such project.") from None
    _require(user, project, role)
    return project


def get_service_or_404(user: AnyUser, slug: str, name: str, role: Role = Role.USER) -> Service:
    project = get_project_or_404(user, slug, Role.USER)
    try:
        service = Service.objects.select_related("project").get(project=project, name=name)
    except Service.DoesNotExist:
        raise Http404("No such service.") from None
    _require(user, project, role)
    return service


def get_run_or_404(user: AnyUser, run_id: uuid.UUID | str, role: Role = Role.USER) -> Run:
    try:
        run = Run.objects.select_related("service__project", "event", "requested_by").get(pk=run_id)
    except (Run.DoesNotExist, ValueError):
        raise Http404("No such run.") from None
    _require(user, run.service.project, role)
    return run


def get_event_or_404(user: AnyUser, event_id: int) -> Event:
    try:
        return events_visible(user=user).select_related("project").get(pk=event_id)
    except Event.DoesNotExist:
        raise Http404("No such event.") from None
