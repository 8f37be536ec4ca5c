"""What a launch reads, in two plain SQL queries instead of the ORM.

The ORM's ``select_related`` read of the run, its service, project and event and
the two scoped queries of configs and secrets cost about half of a launch's CPU
(query compilation and model instantiation, for a handful of rows). Here the SQL
is built once per process from the models' metadata (table and column names,
each field's own database converters) and the rows come back as small typed
records:

1. the run joined with its service and project, and its event if any;
2. the configs and secrets in the service's scope and the project's registry
   logins (``UNION ALL``); the filters are ``configs.scoped_filter``,
   ``configs.secret_variables_filter`` and ``configs.registry_logins_filter``
   compiled by the ORM, and the merge is ``configs.scoped_merge`` — the scope
   rule is written once, there.

``tests/k8x_core/runs/test_launchread.py`` compares both with the ORM's answer
on the same rows.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from django.db import connection
from django.db.models import Field, Model, Q

from k8x_core.models import Config, Event, Project, Run, Secret, Service
from k8x_core.runs.configs import registry_logins_filter, scoped_filter, scoped_merge, secret_variables_filter


@dataclass(frozen=True, slots=True)
class LaunchProject:
    id: int
    slug: str
    namespace: str
    pod_security_level: str
    quota: Any
    limits: Any
    default_resources: Any
    default_timeout: int | None
    node_selector: Any
    tolerations: Any

    @property
    def pk(self) -> int:
        return self.id


@dataclass(frozen=True, slots=True)
class LaunchService:
    id: int
    project_id: int
    name: str
    active: bool
    paused: bool
    image: str
    command: Any
    args: Any
    resources: Any
    job_template: str
    timeout_seconds: int | None
    retries: int
    max_concurrency: int | None
    updated_at: datetime
    project: LaunchProject

    @property
    def pk(self) -> int:
        return self.id


@dataclass(frozen=True, slots=True)
class LaunchEvent:
    id: int
    ce_id: str
    type: str
    source: str
    subject: str
    time: datetime | None
    payload: Any


@dataclass(frozen=True, slots=True)
class LaunchRun:
    id: uuid.UUID
    service_id: int
    event_id: int | None
    status: str
    trigger_kind: str
    correlation_id: str
    params: Any
    created_at: datetime
    service: LaunchService
    event: LaunchEvent | None

    @property
    def pk(self) -> uuid.UUID:
        return self.id


@dataclass(frozen=True, slots=True)
class ScopedValue:
    """One config (``value``) or secret (``ciphertext``) entry of a service's scope."""

    scope: str
    key: str
    value: str
    ciphertext: str


@dataclass(frozen=True, slots=True)
class LaunchRegistryLogin:
    """One registry login entry of the project (still encrypted: ``configs.registry_logins_reveal``)."""

    scope: str
    key: str
    server: str
    ciphertext: str


class LaunchScope(NamedTuple):
    configs: dict[str, str]  # effective configs, key -> value
    secrets: dict[str, ScopedValue]  # effective secret entries, key -> entry (encrypted)
    registry: list[LaunchRegistryLogin]  # the project's registry login entries (encrypted)


# Field names read per model, in the records' order (``project``/``service``/``event``
# of the records are the joined rows, not columns).
_RUN = ("id", "service", "event", "status", "trigger_kind", "correlation_id", "params", "created_at")
_SERVICE = (
    "id",
    "project",
    "name",
    "active",
    "paused",
    "image",
    "command",
    "args",
    "resources",
    "job_template",
    "timeout_seconds",
    "retries",
    "max_concurrency",
    "updated_at",
)
_PROJECT = (
    "id",
    "slug",
    "namespace",
    "pod_security_level",
    "quota",
    "limits",
    "default_resources",
    "default_timeout",
    "node_selector",
    "tolerations",
)
_EVENT = ("id", "ce_id", "type", "source", "subject", "time", "payload")

Converter = Callable[[Any], Any]


@dataclass(frozen=True)
class _Columns:
    sql: list[str]
    converters: list[Converter | None]


def _columns(model: type[Model], names: Sequence[str], alias: str) -> _Columns:
    """Qualified columns of ``names`` and, per column, the field's database converters
    (what the ORM applies to the raw value: e.g. JSON text to Python)."""
    qn = connection.ops.quote_name
    sql: list[str] = []
    converters: list[Converter | None] = []
    for name in names:
        field = model._meta.get_field(name)
        assert isinstance(field, Field)
        sql.append(f"{qn(alias)}.{_column(model, name)}")
        col = field.get_col(alias)
        funcs = [*connection.ops.get_db_converters(col), *field.get_db_converters(connection)]
        converters.append(_chain(funcs, col) if funcs else None)
    return _Columns(sql, converters)


def _chain(funcs: list[Any], col: Any) -> Converter:
    def convert(value: Any) -> Any:
        for func in funcs:
            value = func(value, col, connection)
        return value

    return convert


def _convert(values: Sequence[Any], converters: list[Converter | None]) -> list[Any]:
    return [v if c is None or v is None else c(v) for v, c in zip(values, converters, strict=True)]


@dataclass(frozen=True)
class _RunQuery:
    sql: str
    run: _Columns
    service: _Columns
    project: _Columns
    event: _Columns


def _column(model: type[Model], name: str) -> str:
    field = model._meta.get_field(name)
    assert isinstance(field, Field) and field.column
    return connection.ops.quote_name(field.column)


@functools.cache
def _run_query() -> _RunQuery:
    qn = connection.ops.quote_name
    run = _columns(Run, _RUN, "r")
    service = _columns(Service, _SERVICE, "s")
    project = _columns(Project, _PROJECT, "p")
    event = _columns(Event, _EVENT, "e")
    # Identifiers from the models' metadata, quoted; the run id is a parameter.
    sql = (
        f"SELECT {', '.join(run.sql + service.sql + project.sql + event.sql)} "  # noqa: S608
        f"FROM {qn(Run._meta.db_table)} r "
        f"JOIN {qn(Service._meta.db_table)} s ON s.{_column(Service, 'id')} = r.{_column(Run, 'service')} "
        f"JOIN {qn(Project._meta.db_table)} p ON p.{_column(Project, 'id')} = s.{_column(Service, 'project')} "
        f"LEFT JOIN {qn(Event._meta.db_table)} e ON e.{_column(Event, 'id')} = r.{_column(Run, 'event')} "
        f"WHERE r.{_column(Run, 'id')} = %s"
    )
    return _RunQuery(sql, run, service, project, event)


def launch_run_read(*, run_id: uuid.UUID | str) -> LaunchRun | None:
    """The run with its service, project and event (None when there is no such run)."""
    query = _run_query()
    with connection.cursor() as cursor:
        # Prepared by the id's field: a UUID for PostgreSQL, its hex text for the embedded SQLite.
        pk = Run._meta.pk
        assert pk is not None
        cursor.execute(query.sql, [pk.get_db_prep_value(run_id, connection)])
        row = cursor.fetchone()
    if row is None:
        return None
    n_run, n_service, n_project = len(_RUN), len(_SERVICE), len(_PROJECT)
    r = _convert(row[:n_run], query.run.converters)
    s = _convert(row[n_run : n_run + n_service], query.service.converters)
    p = _convert(row[n_run + n_service : n_run + n_service + n_project], query.project.converters)
    e = _convert(row[n_run + n_service + n_project :], query.event.converters)
    project = LaunchProject(*p)
    service = LaunchService(*s, project=project)  # type: ignore[misc]
    event = LaunchEvent(*e) if e[0] is not None else None
    return LaunchRun(*r, service=service, event=event)  # type: ignore[misc]


# Stand-ins compiled into the scope query and replaced by the real ids at run time.
_PROJECT_MARK = -7_310_000_001
_SERVICE_MARK = -7_310_000_002


@dataclass(frozen=True)
class _ScopeQuery:
    sql: str
    params: list[Any]
    project_at: list[int]
    service_at: list[int]


def _where(q: Q, model: type[Model]) -> tuple[str, list[Any]]:
    """The filter ``q`` as the ORM compiles it for ``model``, with the marks as ids."""
    query = model._default_manager.filter(q).query
    compiler = query.get_compiler(connection=connection)
    sql, params = query.where.as_sql(compiler, connection)
    return sql, list(params)


@functools.cache
def _scope_query() -> _ScopeQuery:
    qn = connection.ops.quote_name
    parts = []
    params: list[Any] = []
    scoped = scoped_filter(project_id=_PROJECT_MARK, service_id=_SERVICE_MARK)
    variables = secret_variables_filter(project_id=_PROJECT_MARK, service_id=_SERVICE_MARK)
    logins = registry_logins_filter(project_id=_PROJECT_MARK)
    for model, q, kind, value, ciphertext in (
        (Config, scoped, "'c'", qn("value"), "''"),
        (Secret, variables, "'s'", "''", qn("ciphertext")),
        (Secret, logins, "'r'", _column(Secret, "server"), qn("ciphertext")),
    ):
        table = qn(model._meta.db_table)
        where, where_params = _where(q, model)
        # Identifiers from the models' metadata, quoted; the ids are parameters.
        columns = f"{kind}, {table}.{_column(model, 'scope')}, {table}.{_column(model, 'key')}, {value}, {ciphertext}"
        parts.append(f"SELECT {columns} FROM {table} WHERE {where}")  # noqa: S608
        params += where_params
    project_at = [i for i, v in enumerate(params) if v == _PROJECT_MARK]
    service_at = [i for i, v in enumerate(params) if v == _SERVICE_MARK]
    if len(project_at) != 3 or len(service_at) != 2:
        raise RuntimeError(f"unexpected compiled scope filter: {params!r}")
    return _ScopeQuery(" UNION ALL ".join(parts), params, project_at, service_at)


def launch_scope_read(*, project_id: int, service_id: int) -> LaunchScope:
    """The service's effective configs (key -> value), its effective secret entries
    (key -> entry, still encrypted: ``configs.secrets_reveal`` decrypts) and the
    project's registry login entries (``configs.registry_logins_reveal``), in one query."""
    query = _scope_query()
    params = list(query.params)
    for i in query.project_at:
        params[i] = project_id
    for i in query.service_at:
        params[i] = service_id
    with connection.cursor() as cursor:
        cursor.execute(query.sql, params)
        rows = cursor.fetchall()
    configs = [ScopedValue(scope, key, value, "") for kind, scope, key, value, _ in rows if kind == "c"]
    secrets = [ScopedValue(scope, key, "", ciphertext) for kind, scope, key, _, ciphertext in rows if kind == "s"]
    registry = [LaunchRegistryLogin(scope, key, server, text) for kind, scope, key, server, text in rows if kind == "r"]
    merged_configs = scoped_merge(configs)
    return LaunchScope(
        {key: merged_configs[key].value for key in sorted(merged_configs)}, scoped_merge(secrets), registry
    )
