"""A project's registry logins as its image pull secret.

K8X keeps all of a project's logins (``registry`` secrets, k8x_core.runs.configs)
in one ``kubernetes.io/dockerconfigjson`` Secret, ``k8x-registry``, in the
project's namespace; every Job of a project with logins names it in
``imagePullSecrets`` (k8x_core.runs.defaults). The Secret is written at launch
when the logins changed (their digest is remembered for a short while and
written as an annotation, as the per-service secret sync does), right after an
owner changes a login, and deleted when the last login goes. Usernames and
passwords exist only in the database (encrypted) and in that Secret.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
from typing import Any, Protocol

from django.db import transaction

from k8x_core import kube
from k8x_core.models import Project, Secret, SecretKind
from k8x_core.runs.configs import (
    AuditActor,
    RegistryLogin,
    entry_delete,
    registry_login_set,
    registry_logins_resolve,
)
from k8x_core.runs.defaults import PULL_SECRET_NAME
from k8x_core.runs.jobspec import LABEL_PROJECT
from k8x_core.runs.namespaces import ProjectFields, project_namespace_ensure

log = logging.getLogger(__name__)

DOCKERCONFIG_TYPE = "kubernetes.io/dockerconfigjson"
DOCKERCONFIG_KEY = ".dockerconfigjson"
ANNOTATION_DIGEST = "k8x.io/logins-digest"
_SYNC_TTL_SECONDS = 30.0
# How long a console page or API call waits for the cluster after a login changed.
CHANGE_SYNC_DEADLINE_SECONDS = 5.0

_lock = threading.Lock()
# namespace -> (digest of the logins written, or "" for "no Secret", when)
_synced: dict[str, tuple[str, float]] = {}


def dockerconfigjson(*, logins: list[RegistryLogin]) -> str:
    """The ``.dockerconfigjson`` text of these logins (one entry per server)."""
    auths = {
        login.server: {
            "username": login.username,
            "password": login.password,
            "auth": base64.b64encode(f"{login.username}:{login.password}".encode()).decode(),
        }
        for login in logins
    }
    return json.dumps({"auths": auths}, sort_keys=True)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class RegistryProject(ProjectFields, Protocol):
    """What the pull secret's sync reads of a project: a ``Project`` or a launch read's record."""

    @property
    def pk(self) -> Any: ...


def registry_secret_sync(
    *,
    project: RegistryProject,
    logins: list[RegistryLogin] | None = None,
    force: bool = False,
    deadline_seconds: float | None = None,
) -> bool:
    """Make ``k8x-registry`` hold exactly the project's logins, or not exist when it has none.

    True when the project has logins (its Jobs name the Secret). Cheap when nothing
    changed: what was written is remembered per process for a short while (for good
    when it was "no Secret": a new login is seen in the database, and the console
    deletes the Secret when the last login goes). ``deadline_seconds``: a page or an
    API call waits no longer for the cluster (and does not create the namespace; the
    next launch writes the Secret then)."""
    if logins is None:
        logins = registry_logins_resolve(project_id=project.pk)
    text = dockerconfigjson(logins=logins) if logins else ""
    digest = _digest(text) if text else ""
    namespace = project.namespace
    now = time.monotonic()
    with _lock:
        known = _synced.get(namespace)
    fresh = known is not None and known[0] == digest and (not digest or now - known[1] < _SYNC_TTL_SECONDS)
    if force or not fresh:
        if logins:
            if deadline_seconds is None:
                project_namespace_ensure(project=project)
            kube.secret_apply(
                namespace=namespace,
                name=PULL_SECRET_NAME,
                string_data={DOCKERCONFIG_KEY: text},
                labels={LABEL_PROJECT: project.slug},
                secret_type=DOCKERCONFIG_TYPE,
                annotations={ANNOTATION_DIGEST: digest},
                deadline_seconds=deadline_seconds,
            )
        else:
            kube.secret_delete(namespace=namespace, name=PULL_SECRET_NAME, deadline_seconds=deadline_seconds)
        with _lock:
            _synced[namespace] = (digest, now)
    return bool(logins)


def registry_forget(*, project: Project) -> None:
    """Forget what was written (tests; a deleted namespace)."""
    with _lock:
        _synced.pop(project.namespace, None)


def _sync_after_change(project: Project) -> str:
    """Write the Secret now; "" or why not (the next launch writes it either way)."""
    try:
        registry_secret_sync(project=project, force=True, deadline_seconds=CHANGE_SYNC_DEADLINE_SECONDS)
    except Exception as exc:  # any failure (no cluster, no kubeconfig): the login is saved either way
        # The launch writes it (a changed digest), or deletes it (no logins, none known).
        registry_forget(project=project)
        log.warning("project %s: registry Secret not written yet: %s", project.slug, exc, exc_info=True)
        return str(exc) or type(exc).__name__
    return ""


def registry_login_save(
    *, project: Project, key: str, server: str, username: str, password: str, actor: AuditActor = None
) -> tuple[Secret, str]:
    """Save a login (``configs.registry_login_set``) and write the project's pull secret.

    Returns the secret and "" or why the cluster was not updated yet."""
    secret = registry_login_set(
        key=key, server=server, username=username, password=password, project=project, actor=actor
    )
    return secret, _sync_after_change(project)


def secret_entry_delete(*, entry: Secret, actor: AuditActor = None) -> str:
    """Delete a secret (audited); after a registry login, rewrite (or delete) the pull secret.

    Returns "" or why the cluster was not updated yet."""
    was_login = entry.kind == SecretKind.REGISTRY and entry.project is not None
    project = entry.project
    with transaction.atomic():
        entry_delete(entry=entry, actor=actor)
    if was_login and project is not None:
        return _sync_after_change(project)
    return ""
