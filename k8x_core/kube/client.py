"""The one place that talks to the Kubernetes API.

Requests go through the official client's configuration, authentication and
connection pool, but bodies are plain JSON dicts in and out: the launcher
builds Jobs as dicts, and skipping the generated models' (de)serialisation
keeps a Job create at the cost of one HTTP round trip.

Every call is retried here, and only here, on ``429``, ``5xx`` and connection
errors, with exponential backoff and jitter, until a deadline; then it raises
``KubeUnavailable``. A ``4xx`` answer is final and raised at once, carrying the
API server's own message.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import urllib3
from django.conf import settings
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

log = logging.getLogger(__name__)

T = TypeVar("T")

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "k8x"
FIELD_MANAGER = "k8x"

# (connect, read) seconds for ordinary calls.
DEFAULT_TIMEOUT = (5.0, 30.0)


class KubeError(Exception):
    """An answer from the API server that is not a success."""

    def __init__(self, message: str, *, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason


class KubeConflict(KubeError):
    """409: the object exists already (or changed under us)."""


class KubeNotFound(KubeError):
    """404."""


class KubeGone(KubeError):
    """410: a watch's resourceVersion is too old; list again."""


class KubeInvalid(KubeError):
    """A final 4xx refusal (invalid object, forbidden, ...), with the API's message."""


class KubeUnavailable(KubeError):
    """The API could not be reached or kept failing (429/5xx/connection) until the deadline."""


class _Retryable(Exception):
    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# --- configuration -----------------------------------------------------------

_api_lock = threading.Lock()
_api: k8s_client.ApiClient | None = None


def kubeconfig_path() -> str | None:
    """settings.KUBECONFIG, else K8X's own identity on the local cluster
    (``.state/cluster/k8x.kubeconfig``, written by deploy/local/k8x-identity.sh)
    if it exists, else None (in-cluster). Never the local cluster's admin kubeconfig."""
    configured = settings.KUBECONFIG or ""
    if configured:
        return str(configured)
    state_dir = Path(settings.K8X_STATE_DIR)
    local = state_dir / "cluster" / "k8x.kubeconfig"
    if local.is_file():
        return str(local)
    return None


def api_client() -> k8s_client.ApiClient:
    """The process's ApiClient (thread-safe connection pool), created on first use."""
    global _api
    with _api_lock:
        if _api is None or getattr(_api, "_k8x_pid", None) != os.getpid():
            cfg = k8s_client.Configuration()
            path = kubeconfig_path()
            if path:
                k8s_config.load_kube_config(config_file=path, client_configuration=cfg)
            else:
                k8s_config.load_incluster_config(client_configuration=cfg)
            # Our retry loop is the only one: urllib3 must not retry on its own.
            cfg.retries = False
            cfg.connection_pool_maxsize = int(settings.K8X_KUBE_POOL_SIZE)
            api = k8s_client.ApiClient(cfg)
            # A forked process (RQ's work horse) must not share the parent's sockets.
            api._k8x_pid = os.getpid()  # type: ignore[attr-defined]
            _api = api
        return _api


def api_client_reset() -> None:
    """Forget the cached client and identity (tests switching clusters, or after a fork)."""
    global _api, _subject
    with _api_lock:
        _api = None
        _subject = None
    _namespaces_known.clear()
    _namespaces_managed.clear()


# --- one request ---------------------------------------------------------------


def _error_message(status: int, data: bytes) -> tuple[str, str]:
    try:
        doc = json.loads(data)
    except ValueError:
        text = data.decode("utf-8", "replace").strip()
        return (text or f"HTTP {status}"), ""
    if isinstance(doc, dict):
        return str(doc.get("message") or f"HTTP {status}"), str(doc.get("reason") or "")
    return f"HTTP {status}", ""


def _raise_for_status(status: int, data: bytes, headers: Any) -> None:
    if status < 400:
        return
    message, reason = _error_message(status, data)
    if status == 429 or status >= 500:
        retry_after: float | None = None
        try:
            retry_after = float(headers.get("Retry-After")) if headers and headers.get("Retry-After") else None
        except (TypeError, ValueError):
            retry_after = None
        raise _Retryable(f"HTTP {status}: {message}", retry_after=retry_after)
    cls: type[KubeError] = {404: KubeNotFound, 409: KubeConflict, 410: KubeGone}.get(status, KubeInvalid)
    raise cls(message, status=status, reason=reason)


# The bearer token header, asked of the client configuration at most every
# AUTH_REFRESH_SECONDS: its refresh hook (a service account token file read, a
# kubeconfig token's expiry check) ran on every request, a measurable part of a
# launch's CPU. A rotated service account token is valid for an hour or more
# after the kubelet writes its successor, so a few seconds' lag is harmless.
AUTH_REFRESH_SECONDS = 5.0
_auth_lock = threading.Lock()
_auth: tuple[k8s_client.ApiClient, float, dict[str, str]] | None = None


def _auth_headers(api: k8s_client.ApiClient) -> dict[str, str]:
    global _auth
    now = time.monotonic()
    cached = _auth
    if cached is not None and cached[0] is api and now - cached[1] < AUTH_REFRESH_SECONDS:
        return cached[2]
    headers: dict[str, str] = {}
    if api.configuration.api_key or getattr(api.configuration, "refresh_api_key_hook", None):
        # Bearer tokens (in-cluster service account, kubeconfig tokens).
        api.update_params_for_auth(headers, [], ["BearerToken"], "", "GET", None)
    with _auth_lock:
        _auth = (api, now, headers)
    return headers


def _prepare(method: str, path: str, query: dict[str, Any] | None, content_type: str) -> tuple[str, dict[str, str]]:
    api = api_client()
    headers: dict[str, str] = {"Accept": "application/json", "Content-Type": content_type, **_auth_headers(api)}
    url = api.configuration.host + path
    if query:
        url += "?" + urlencode({k: v for k, v in query.items() if v is not None}, doseq=True)
    return url, headers


def _bool(value: bool) -> str:
    return "true" if value else "false"


def request_once(
    method: str,
    path: str,
    *,
    query: dict[str, Any] | None = None,
    body: Any = None,
    content_type: str = "application/json",
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
) -> Any:
    """One request; the decoded JSON answer. Raises KubeError subclasses or _Retryable."""
    url, headers = _prepare(method, path, query, content_type)
    pool = api_client().rest_client.pool_manager
    try:
        resp = pool.request(
            method,
            url,
            body=None if body is None else json.dumps(body, separators=(",", ":")),
            headers=headers,
            timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]),
            preload_content=True,
            retries=False,
        )
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise _Retryable(f"{method} {path}: {exc.__class__.__name__}: {exc}") from exc
    _raise_for_status(resp.status, resp.data, resp.headers)
    if not resp.data:
        return {}
    if path.endswith("/log"):
        return resp.data.decode("utf-8", "replace")
    return json.loads(resp.data)


def request_stream(
    method: str,
    path: str,
    *,
    query: dict[str, Any] | None = None,
    timeout: tuple[float, float | None] = (5.0, None),
) -> urllib3.BaseHTTPResponse:
    """A streaming response (watch, follow log). The caller closes it."""
    url, headers = _prepare(method, path, query, "application/json")
    pool = api_client().rest_client.pool_manager
    try:
        resp = pool.request(
            method,
            url,
            headers=headers,
            timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]),
            preload_content=False,
            retries=False,
        )
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise _Retryable(f"{method} {path}: {exc.__class__.__name__}: {exc}") from exc
    if resp.status >= 400:
        data = resp.read()
        resp.release_conn()
        _raise_for_status(resp.status, data, resp.headers)
    return resp


# --- retry ---------------------------------------------------------------------------


def kube_retry(fn: Callable[[], T], *, what: str, deadline_seconds: float | None = None) -> T:
    """Call ``fn`` until it succeeds, retrying 429/5xx/connection errors with
    exponential backoff and jitter (honouring Retry-After) until the deadline;
    then raise KubeUnavailable. Other errors pass through at once."""
    if deadline_seconds is None:
        deadline_seconds = float(settings.K8X_KUBE_RETRY_SECONDS)
    deadline = time.monotonic() + deadline_seconds
    delay = 0.05
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except _Retryable as exc:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise KubeUnavailable(f"{what}: Kubernetes API unavailable after {attempt} attempts: {exc}") from None
            sleep = exc.retry_after if exc.retry_after is not None else delay * (0.5 + random.random())  # noqa: S311
            sleep = min(sleep, remaining, 10.0)
            log.warning("%s: %s; retrying in %.2fs (attempt %d)", what, exc, sleep, attempt)
            time.sleep(sleep)
            delay = min(delay * 2, 5.0)


def call(
    method: str,
    path: str,
    *,
    query: dict[str, Any] | None = None,
    body: Any = None,
    content_type: str = "application/json",
    deadline_seconds: float | None = None,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
) -> Any:
    return kube_retry(
        lambda: request_once(method, path, query=query, body=body, content_type=content_type, timeout=timeout),
        what=f"{method} {path}",
        deadline_seconds=deadline_seconds,
    )


def _q(value: str) -> str:
    return quote(value, safe="")


# --- namespaces ------------------------------------------------------------------

# K8X holds rights inside a namespace only through this RoleBinding of this
# ClusterRole (deploy/helm/k8x/files/clusterroles.yaml), created by managed_namespace_ensure.
TENANT_ROLE = "k8x-tenant"
TENANT_BINDING = "k8x-tenant"
# Seconds to wait for a new RoleBinding to reach the API server's authorizer.
_BINDING_WAIT_SECONDS = 10.0

_namespaces_known: set[str] = set()
# name -> the labels this process last made sure of (skips the GET on the launch path).
_namespaces_managed: dict[str, dict[str, str]] = {}
_subject: dict[str, str] | None = None


def identity_subject() -> dict[str, str]:
    """The RBAC subject K8X's calls are made as (asked once per process with a
    SelfSubjectReview, which every authenticated identity may create)."""
    global _subject
    if _subject is None:
        review = call(
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
        username = str(((review.get("status") or {}).get("userInfo") or {}).get("username") or "")
        if not username:
            raise KubeInvalid("the API server did not say who K8X is (SelfSubjectReview without a username)")
        parts = username.split(":")
        if len(parts) == 4 and parts[:2] == ["system", "serviceaccount"]:
            _subject = {"kind": "ServiceAccount", "name": parts[3], "namespace": parts[2]}
        else:
            _subject = {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": username}
    return _subject


def _same_subject(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a.get(k) == b.get(k) for k in ("kind", "name", "namespace"))


def _older_than(obj: dict[str, Any], *, seconds: float) -> bool:
    stamp = str((obj.get("metadata") or {}).get("creationTimestamp") or "")
    try:
        created = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return False
    return (datetime.datetime.now(datetime.UTC) - created).total_seconds() > seconds


def _tenant_binding_ensure(*, namespace: str) -> None:
    """Bind ClusterRole k8x-tenant to K8X in ``namespace``; after a change, wait
    until the authorizer lets K8X create Jobs there."""
    subject = identity_subject()
    path = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{_q(namespace)}/rolebindings"
    body = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": TENANT_BINDING, "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": TENANT_ROLE},
        "subjects": [subject],
    }
    for _ in range(5):
        try:
            binding = call("GET", f"{path}/{TENANT_BINDING}")
        except KubeNotFound:
            try:
                call("POST", path, body=body, query={"fieldManager": FIELD_MANAGER})
                break
            except KubeConflict:
                continue
        ref = binding.get("roleRef") or {}
        if ref.get("kind") != "ClusterRole" or ref.get("name") != TENANT_ROLE:
            raise KubeInvalid(
                f"RoleBinding {namespace}/{TENANT_BINDING} refers to {ref.get('kind')} {ref.get('name')}, "
                f"not ClusterRole {TENANT_ROLE}: delete it so that K8X can bind itself"
            )
        subjects = list(binding.get("subjects") or [])
        if any(_same_subject(s, subject) for s in subjects):
            if _older_than(binding, seconds=60):
                return  # in effect long since
            break  # maybe just created by another K8X process: wait as if it were ours
        # Another K8X identity (e.g. a second installation) is bound already: add ours.
        # The resourceVersion makes a concurrent change a 409 instead of a lost subject.
        patch = {
            "metadata": {"resourceVersion": (binding.get("metadata") or {}).get("resourceVersion")},
            "subjects": [*subjects, subject],
        }
        try:
            call(
                "PATCH",
                f"{path}/{TENANT_BINDING}",
                body=patch,
                content_type="application/merge-patch+json",
                query={"fieldManager": FIELD_MANAGER},
            )
            break
        except KubeConflict:
            continue
    else:
        raise KubeConflict(f"RoleBinding {namespace}/{TENANT_BINDING} kept changing while being ensured", status=409)
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {
            "resourceAttributes": {"namespace": namespace, "verb": "create", "group": "batch", "resource": "jobs"}
        },
    }
    deadline = time.monotonic() + _BINDING_WAIT_SECONDS
    while True:
        answer = call("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", body=review)
        if (answer.get("status") or {}).get("allowed"):
            return
        if time.monotonic() > deadline:
            raise KubeInvalid(
                f"K8X may not create Jobs in namespace {namespace} although RoleBinding {TENANT_BINDING} binds "
                f"ClusterRole {TENANT_ROLE} to it: is that ClusterRole installed?"
            )
        time.sleep(0.1)


def _namespace_get_or_create(*, name: str, labels: dict[str, str] | None) -> tuple[dict[str, Any], bool]:
    body = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {MANAGED_BY_LABEL: MANAGED_BY, **(labels or {})}},
    }
    try:
        return call("GET", f"/api/v1/namespaces/{_q(name)}"), False
    except KubeNotFound:
        pass
    try:
        return call("POST", "/api/v1/namespaces", body=body, query={"fieldManager": FIELD_MANAGER}), True
    except KubeConflict:
        return call("GET", f"/api/v1/namespaces/{_q(name)}"), False


def namespace_ensure(*, name: str, labels: dict[str, str] | None = None) -> bool:
    """Create the namespace (labelled managed-by=k8x) if it is missing; True when
    this call created it. Grants K8X nothing there: see managed_namespace_ensure."""
    if name in _namespaces_known:
        return False
    _obj, created = _namespace_get_or_create(name=name, labels=labels)
    _namespaces_known.add(name)
    return created


def managed_namespace_ensure(*, name: str, labels: dict[str, str] | None = None) -> bool:
    """Make ``name`` a project namespace K8X manages: create it (labelled
    managed-by=k8x and ``labels``) if missing, patch ``labels`` onto it when they
    changed (e.g. its Pod Security level), and bind K8X's tenant role (Jobs, logs,
    Secrets, quotas) in it. True when this call created it. Call it before working there.

    An existing namespace without the managed-by label is refused: K8X never
    grants itself rights in a namespace it does not manage (kube-system, ...), and
    an admission policy lets it patch only namespaces that carry the label."""
    wanted = {MANAGED_BY_LABEL: MANAGED_BY, **(labels or {})}
    if _namespaces_managed.get(name) == wanted:
        return False
    existing, created = _namespace_get_or_create(name=name, labels=labels)
    have = (existing.get("metadata") or {}).get("labels") or {}
    if have.get(MANAGED_BY_LABEL) != MANAGED_BY:
        raise KubeInvalid(
            f"namespace {name} exists but is not managed by K8X (label {MANAGED_BY_LABEL}={MANAGED_BY} missing); "
            "K8X works only in namespaces it manages: choose another namespace or label this one"
        )
    if any(have.get(k) != v for k, v in wanted.items()):
        call(
            "PATCH",
            f"/api/v1/namespaces/{_q(name)}",
            body={"metadata": {"labels": wanted}},
            content_type="application/merge-patch+json",
            query={"fieldManager": FIELD_MANAGER},
        )
    if name not in _namespaces_managed:
        _tenant_binding_ensure(namespace=name)
    _namespaces_known.add(name)
    _namespaces_managed[name] = wanted
    return created


def _apply(path: str, body: dict[str, Any]) -> dict[str, Any]:
    """Server-side apply (create or update to exactly K8X's fields); idempotent."""
    result: dict[str, Any] = call(
        "PATCH",
        path,
        body=body,
        content_type="application/apply-patch+yaml",
        query={"fieldManager": FIELD_MANAGER, "force": "true"},
    )
    return result


def resourcequota_apply(*, namespace: str, name: str, hard: dict[str, str]) -> dict[str, Any]:
    """Make the namespace's ResourceQuota ``name`` hold exactly these hard limits."""
    body = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": name, "namespace": namespace, "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
        "spec": {"hard": hard},
    }
    return _apply(f"/api/v1/namespaces/{_q(namespace)}/resourcequotas/{_q(name)}", body)


def limitrange_apply(*, namespace: str, name: str, container: dict[str, dict[str, str]]) -> dict[str, Any]:
    """Make the namespace's LimitRange ``name`` hold exactly this Container item
    (``default``, ``defaultRequest``, ``max``, ``min`` ... as Kubernetes spells them)."""
    body = {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": name, "namespace": namespace, "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
        "spec": {"limits": [{"type": "Container", **container}]},
    }
    return _apply(f"/api/v1/namespaces/{_q(namespace)}/limitranges/{_q(name)}", body)


def pod_dry_run(*, namespace: str, pod: dict[str, Any], deadline_seconds: float = 10.0) -> None:
    """Server-side dry run of a Pod: admission (Pod Security included) judges it as if
    it were created. Raises KubeInvalid with the API server's message on refusal."""
    query = {"dryRun": "All", "fieldManager": FIELD_MANAGER}
    call("POST", _pods(namespace), body=pod, query=query, deadline_seconds=deadline_seconds)


def namespace_forget(*, name: str) -> None:
    """Drop a namespace from the created-already caches (after it was deleted)."""
    _namespaces_known.discard(name)
    _namespaces_managed.pop(name, None)


def namespace_delete(*, name: str) -> None:
    namespace_forget(name=name)
    with contextlib.suppress(KubeNotFound):
        call("DELETE", f"/api/v1/namespaces/{_q(name)}")


# --- Jobs --------------------------------------------------------------------------


def _jobs(namespace: str) -> str:
    return f"/apis/batch/v1/namespaces/{_q(namespace)}/jobs"


def job_create(*, namespace: str, job: dict[str, Any], deadline_seconds: float | None = None) -> dict[str, Any]:
    """Create a Job; the created object. KubeConflict if the name exists, KubeInvalid if refused."""
    result: dict[str, Any] = call(
        "POST",
        _jobs(namespace),
        body=job,
        query={"fieldManager": FIELD_MANAGER, "fieldValidation": "Strict"},
        deadline_seconds=deadline_seconds,
    )
    return result


def dry_run_namespace() -> str:
    """Where a Job is dry-run while its project's namespace does not exist yet: a
    namespace K8X manages for that alone (``<K8X_NAMESPACE>--dry-run``, which no
    project slug can produce). K8X may create Jobs only in namespaces it manages."""
    return f"{settings.K8X_NAMESPACE}--dry-run"


def job_dry_run(*, namespace: str | None, job: dict[str, Any], deadline_seconds: float = 10.0) -> None:
    """Server-side dry run (dryRun=All): returns if the API server would accept the Job,
    raises KubeInvalid with the API server's message if not, KubeUnavailable if it
    could not be asked. A missing (or None) namespace is not the Job's fault: it is
    checked in ``dry_run_namespace()`` then (admission may differ, validation does not).
    The namespace is made a managed one first (managed_namespace_ensure), as a launch would."""
    target = namespace
    if target is not None and target not in _namespaces_managed:
        try:
            call("GET", f"/api/v1/namespaces/{_q(target)}", deadline_seconds=deadline_seconds)
        except KubeNotFound:
            target = None
    if target is None:
        target = dry_run_namespace()
    managed_namespace_ensure(name=target)
    body = dict(job)
    body["metadata"] = {**(job.get("metadata") or {}), "namespace": target}
    if not body["metadata"].get("name") and not body["metadata"].get("generateName"):
        body["metadata"]["generateName"] = "k8x-dry-run-"
    query = {"dryRun": "All", "fieldManager": FIELD_MANAGER, "fieldValidation": "Strict"}
    try:
        call("POST", _jobs(target), body=body, query=query, deadline_seconds=deadline_seconds)
    except KubeNotFound as exc:
        raise KubeInvalid(exc.message, status=exc.status, reason=exc.reason) from None
    except KubeConflict:
        # A Job of that name exists: the spec itself was acceptable.
        return


def job_get(*, namespace: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = call("GET", f"{_jobs(namespace)}/{_q(name)}")
    return result


def job_delete(*, namespace: str, name: str, propagation: str = "Foreground") -> bool:
    """Delete a Job and (by default, in the foreground) its pods. False if it was not there."""
    body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation}
    try:
        call("DELETE", f"{_jobs(namespace)}/{_q(name)}", body=body)
    except KubeNotFound:
        return False
    return True


def job_list(*, namespace: str | None, label_selector: str) -> tuple[list[dict[str, Any]], str]:
    """Jobs (all namespaces when ``namespace`` is None) and the list's resourceVersion."""
    path = _jobs(namespace) if namespace else "/apis/batch/v1/jobs"
    doc = call("GET", path, query={"labelSelector": label_selector})
    return list(doc.get("items") or []), str((doc.get("metadata") or {}).get("resourceVersion") or "")


# --- pods and logs ---------------------------------------------------------------------


def _pods(namespace: str | None) -> str:
    return f"/api/v1/namespaces/{_q(namespace)}/pods" if namespace else "/api/v1/pods"


def pod_list(*, namespace: str | None, label_selector: str) -> tuple[list[dict[str, Any]], str]:
    """Pods (all namespaces when ``namespace`` is None) and the list's resourceVersion."""
    doc = call("GET", _pods(namespace), query={"labelSelector": label_selector})
    return list(doc.get("items") or []), str((doc.get("metadata") or {}).get("resourceVersion") or "")


def pod_log_read(
    *,
    namespace: str,
    name: str,
    container: str | None = None,
    timestamps: bool = True,
    limit_bytes: int | None = None,
) -> str:
    """The (current) log of a pod's container, with RFC 3339 timestamps by default."""
    query: dict[str, Any] = {"timestamps": _bool(timestamps), "container": container, "limitBytes": limit_bytes}
    body = call("GET", f"{_pods(namespace)}/{_q(name)}/log", query=query)
    # An empty log comes back as an empty body, which ``call`` reads as no JSON ({}).
    return body if isinstance(body, str) else ""


def pod_log_chunks(
    *,
    namespace: str,
    name: str,
    container: str | None = None,
    limit_bytes: int | None = None,
    since_time: str | None = None,
    read_timeout: float | None = None,
    follow: bool = True,
) -> Iterator[bytes]:
    """Follow a pod's log as raw bytes, as they arrive (lines start with RFC 3339
    timestamps), until the container ends, ``limit_bytes`` have been sent (the API
    server stops there, possibly inside a line) or the connection drops. The caller
    splits lines (it decides how long one may be) and reconnects with ``since_time``.
    ``follow=False``: the log as it is now, streamed (never held whole)."""
    query: dict[str, Any] = {
        "follow": _bool(follow),
        "timestamps": "true",
        "container": container,
        "sinceTime": since_time,
        "limitBytes": limit_bytes,
    }
    resp = kube_retry(
        lambda: request_stream("GET", f"{_pods(namespace)}/{_q(name)}/log", query=query, timeout=(5.0, read_timeout)),
        what=f"log of {namespace}/{name}",
    )
    try:
        # Each read returns what has arrived (an HTTP chunk), up to 64 KiB.
        yield from resp.stream(65536, decode_content=True)
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        log.info("log stream of %s/%s ended: %s", namespace, name, exc)
    finally:
        resp.release_conn()
        resp.close()


def pod_log_stream(
    *,
    namespace: str,
    name: str,
    container: str | None = None,
    since_time: str | None = None,
    read_timeout: float | None = None,
) -> Iterator[str]:
    """Follow a pod's log: yields lines (with RFC 3339 timestamps, no newline), however
    long, until the container ends or the connection drops. K8X's own follower cuts
    long lines (k8x_core.runs.loglines); this is the bare loop, for tools and benchmarks."""
    pending: list[bytes] = []
    for chunk in pod_log_chunks(
        namespace=namespace, name=name, container=container, since_time=since_time, read_timeout=read_timeout
    ):
        *lines, rest = chunk.split(b"\n")
        if lines:
            pending.append(lines[0])
            lines[0] = b"".join(pending)
            pending = []
            for line in lines:
                yield line.decode("utf-8", "replace")
        if rest:
            pending.append(rest)
    if pending:
        yield b"".join(pending).decode("utf-8", "replace")


# --- watch -----------------------------------------------------------------------------


def watch(
    *,
    path: str,
    label_selector: str,
    resource_version: str,
    timeout_seconds: int = 300,
) -> Iterator[dict[str, Any]]:
    """Watch events (``{"type", "object"}`` dicts) of a list path from ``resource_version``.

    BOOKMARK events carry only a newer resourceVersion. Raises KubeGone when the
    version is too old (list again), _Retryable-derived KubeUnavailable on connection
    errors when opening; a stream that simply ends returns."""
    query = {
        "watch": "true",
        "labelSelector": label_selector,
        "resourceVersion": resource_version,
        "allowWatchBookmarks": "true",
        "timeoutSeconds": timeout_seconds,
    }
    resp = kube_retry(
        lambda: request_stream("GET", path, query=query, timeout=(5.0, timeout_seconds + 30.0)),
        what=f"watch {path}",
        deadline_seconds=30,
    )
    try:
        buf = b""
        for chunk in resp.stream(65536, decode_content=True):
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if not line.strip():
                    continue
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    obj = event.get("object") or {}
                    code = int(obj.get("code") or 0)
                    if code == 410:
                        raise KubeGone(str(obj.get("message") or "resource version too old"), status=410)
                    raise KubeUnavailable(f"watch {path}: {obj.get('message') or obj}", status=code or None)
                yield event
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        log.info("watch %s ended: %s", path, exc)
    finally:
        resp.release_conn()
        resp.close()


def jobs_path(namespace: str | None) -> str:
    return _jobs(namespace) if namespace else "/apis/batch/v1/jobs"


def pods_path(namespace: str | None) -> str:
    return _pods(namespace)


# --- secrets -----------------------------------------------------------------------------


def _secrets(namespace: str) -> str:
    return f"/api/v1/namespaces/{_q(namespace)}/secrets"


def _secret_body(
    name: str,
    string_data: dict[str, str],
    labels: dict[str, str] | None,
    owner: dict[str, Any] | None,
    secret_type: str = "Opaque",  # noqa: S107  (a Secret type, not a password)
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {MANAGED_BY_LABEL: MANAGED_BY, **(labels or {})}}
    if annotations:
        meta["annotations"] = dict(annotations)
    if owner:
        meta["ownerReferences"] = [owner]
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": secret_type, "stringData": string_data}


def secret_create(
    *,
    namespace: str,
    name: str,
    string_data: dict[str, str],
    labels: dict[str, str] | None = None,
    owner: dict[str, Any] | None = None,
) -> None:
    """Create a Secret; KubeConflict if it exists."""
    call(
        "POST",
        _secrets(namespace),
        body=_secret_body(name, string_data, labels, owner),
        query={"fieldManager": FIELD_MANAGER},
    )


def secret_apply(
    *,
    namespace: str,
    name: str,
    string_data: dict[str, str],
    labels: dict[str, str] | None = None,
    secret_type: str = "Opaque",  # noqa: S107  (a Secret type, not a password)
    annotations: dict[str, str] | None = None,
    deadline_seconds: float | None = None,
) -> None:
    """Make the Secret hold exactly these keys and values (create or replace)."""
    body = _secret_body(name, string_data, labels, None, secret_type, annotations)
    try:
        call(
            "POST",
            _secrets(namespace),
            body=body,
            query={"fieldManager": FIELD_MANAGER},
            deadline_seconds=deadline_seconds,
        )
        return
    except KubeConflict:
        pass
    # Replace: stringData merges into data, so clear data first to drop removed keys.
    body["data"] = {}
    for _ in range(5):
        try:
            call(
                "PUT",
                f"{_secrets(namespace)}/{_q(name)}",
                body=body,
                query={"fieldManager": FIELD_MANAGER},
                deadline_seconds=deadline_seconds,
            )
            return
        except KubeNotFound:
            try:
                call(
                    "POST",
                    _secrets(namespace),
                    body=_secret_body(name, string_data, labels, None, secret_type, annotations),
                )
                return
            except KubeConflict:
                continue
    raise KubeConflict(f"secret {namespace}/{name} kept changing while being replaced", status=409)


def secret_get(*, namespace: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = call("GET", f"{_secrets(namespace)}/{_q(name)}")
    return result


def secret_delete(*, namespace: str, name: str, deadline_seconds: float | None = None) -> bool:
    try:
        call("DELETE", f"{_secrets(namespace)}/{_q(name)}", deadline_seconds=deadline_seconds)
    except KubeNotFound:
        return False
    return True


def secret_set_owner(*, namespace: str, name: str, owner: dict[str, Any]) -> None:
    """Make ``owner`` (e.g. the run's Job) own the Secret, so it is collected with it."""
    patch = {"metadata": {"ownerReferences": [owner]}}
    call(
        "PATCH",
        f"{_secrets(namespace)}/{_q(name)}",
        body=patch,
        content_type="application/merge-patch+json",
    )


def owner_reference(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    return {
        "apiVersion": obj.get("apiVersion") or "batch/v1",
        "kind": obj.get("kind") or "Job",
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "blockOwnerDeletion": False,
    }


# --- leases (leader election) ----------------------------------------------------------


def _leases(namespace: str) -> str:
    return f"/apis/coordination.k8s.io/v1/namespaces/{_q(namespace)}/leases"


def lease_get(*, namespace: str, name: str, deadline_seconds: float, timeout: tuple[float, float]) -> dict[str, Any]:
    """The Lease; KubeNotFound if it does not exist. Bounded by ``deadline_seconds``:
    an elector must know within its renew deadline whether it still leads."""
    result: dict[str, Any] = call(
        "GET", f"{_leases(namespace)}/{_q(name)}", deadline_seconds=deadline_seconds, timeout=timeout
    )
    return result


def lease_create(
    *, namespace: str, name: str, spec: dict[str, Any], deadline_seconds: float, timeout: tuple[float, float]
) -> dict[str, Any]:
    """Create the Lease; KubeConflict if another elector created it first."""
    body = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
        "spec": spec,
    }
    result: dict[str, Any] = call(
        "POST",
        _leases(namespace),
        body=body,
        query={"fieldManager": FIELD_MANAGER},
        deadline_seconds=deadline_seconds,
        timeout=timeout,
    )
    return result


def lease_replace(
    *,
    namespace: str,
    name: str,
    spec: dict[str, Any],
    resource_version: str,
    deadline_seconds: float,
    timeout: tuple[float, float],
) -> dict[str, Any]:
    """Replace the Lease's spec if it is still at ``resource_version`` (optimistic
    concurrency); KubeConflict when it changed since it was read: someone else wrote it."""
    body = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "resourceVersion": resource_version, "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
        "spec": spec,
    }
    result: dict[str, Any] = call(
        "PUT",
        f"{_leases(namespace)}/{_q(name)}",
        body=body,
        query={"fieldManager": FIELD_MANAGER},
        deadline_seconds=deadline_seconds,
        timeout=timeout,
    )
    return result
