"""The management API's part of the OpenAPI document (``/api/v1/``, console/api/v1.py)."""

from __future__ import annotations

from typing import Any

JSON = "application/json"
_SECURITY: list[dict[str, list[str]]] = [{"apiKey": []}, {"bearer": []}, {"session": []}]
_P = "/api/v1/projects/{slug}"
_S = _P + "/services/{name}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": _ref("Error")}}}


def _ok(status: str, description: str, schema: dict[str, Any] | None) -> dict[str, Any]:
    if schema is None:
        return {status: {"description": description}}
    return {status: {"description": description, "content": {JSON: {"schema": schema}}}}


def _items(name: str, *, paged: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": _ref(name)}},
    }
    if paged:
        schema["required"] = ["items", "next"]
        schema["properties"]["next"] = {
            "type": ["string", "null"],
            "description": "Opaque cursor of the next (older) page: pass it as `cursor`; null on the last page.",
        }
    return schema


def _param(name: str, where: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": where, "required": where == "path", "schema": schema}
    if description:
        param["description"] = description
    return param


_SLUG = _param("slug", "path", {"type": "string"}, "Project slug.")
_NAME = _param("name", "path", {"type": "string"}, "Service name.")
_KEY = _param("key", "path", {"type": "string"}, "Environment variable name.")
_TRIGGER_ID = _param("trigger_id", "path", {"type": "integer"})
_RUN_ID = _param("run_id", "path", {"type": "string", "format": "uuid"})
_PAGE = [
    _param("cursor", "query", {"type": "string"}, "The `next` of the previous page."),
    _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 200}, "Page size (default 50)."),
    _param("since", "query", {"type": "string", "format": "date-time"}, "Created/received at or after."),
    _param("until", "query", {"type": "string", "format": "date-time"}, "Created/received at or before."),
]
_RUN_FILTERS = [
    _param(
        "status",
        "query",
        {"type": "string", "enum": ["queued", "starting", "running", "succeeded", "failed", "timed_out", "cancelled"]},
    ),
    _param("trigger", "query", {"type": "string", "enum": ["event", "manual", "schedule", "retry"]}),
    *_PAGE,
]

_READ = {
    "400": _error("A query parameter is wrong; `field` names it."),
    "401": _error("No credentials, or unknown or revoked ones."),
    "403": _error("A run token, or a session request without its CSRF token."),
    "404": _error("No such resource visible to the caller (another project's answers 404 too)."),
    "429": _error("Over `K8X_API_RATE_LIMIT_PER_MINUTE` requests this minute for this key or user; see `Retry-After`."),
}
_WRITE = {
    **_READ,
    "400": _error("Invalid input: `error` says what is wrong, `field` names the field."),
    "403": _error("The caller's role in the project is too low (or a run token, or a missing CSRF token)."),
    "413": _error("Body over 1 MiB."),
    "415": _error("Content-Type is not application/json."),
}


def _op(
    op_id: str,
    summary: str,
    params: list[dict[str, Any]],
    responses: dict[str, Any],
    *,
    errors: dict[str, Any],
    body: dict[str, Any] | None = None,
    description: str = "",
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": op_id,
        "summary": summary,
        "tags": ["management"],
        "security": _SECURITY,
        "parameters": params,
        "responses": {**responses, **errors},
    }
    if description:
        operation["description"] = description
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {JSON: {"schema": body}}}
    return operation


_VALUE_BODY = {
    "type": "object",
    "required": ["value"],
    "additionalProperties": False,
    "properties": {"value": {"type": "string"}},
}
_SECRET_BODY = {
    "oneOf": [
        {
            "type": "object",
            "required": ["value"],
            "additionalProperties": False,
            "properties": {"value": {"type": "string"}, "kind": {"const": "value"}},
        },
        {
            "type": "object",
            "description": "A registry login (project scope only): the project's image pull secret, never a "
            "variable. Username and password are write-only.",
            "required": ["kind", "server", "username", "password"],
            "additionalProperties": False,
            "properties": {
                "kind": {"const": "registry"},
                "server": {"type": "string"},
                "username": {"type": "string"},
                "password": {"type": "string"},
            },
        },
    ]
}
_RESOURCES = {
    "type": "object",
    "additionalProperties": False,
    "description": 'Kubernetes resources, e.g. {"requests": {"cpu": "100m"}, "limits": {"memory": "256Mi"}}.',
    "properties": {
        "requests": {"type": "object", "additionalProperties": {"type": ["string", "number"]}},
        "limits": {"type": "object", "additionalProperties": {"type": ["string", "number"]}},
    },
}


def _entry_paths(base: str, params: list[dict[str, Any]], scope: str, op_scope: str) -> dict[str, Any]:
    """Configs and secrets at one scope (project or service)."""
    return {
        f"{base}/configs": {
            "get": _op(
                f"list{op_scope}Configs",
                f"Configs of the {scope} (role user).",
                params,
                _ok("200", "Configs.", _items("ConfigEntry")),
                errors=_READ,
            )
        },
        f"{base}/configs/{{key}}": {
            "put": _op(
                f"set{op_scope}Config",
                f"Set a config of the {scope} (role admin).",
                [*params, _KEY],
                _ok("200", "Saved.", _ref("ConfigEntry")),
                errors=_WRITE,
                body=_VALUE_BODY,
            ),
            "delete": _op(
                f"delete{op_scope}Config",
                f"Delete a config of the {scope} (role admin).",
                [*params, _KEY],
                _ok("204", "Deleted.", None),
                errors=_WRITE,
            ),
        },
        f"{base}/secrets": {
            "get": _op(
                f"list{op_scope}Secrets",
                f"Names of the {scope}'s secrets (role user); values are never returned.",
                params,
                _ok("200", "Secret names.", _items("SecretEntry")),
                errors=_READ,
            )
        },
        f"{base}/secrets/{{key}}": {
            "put": _op(
                f"set{op_scope}Secret",
                f"Set a secret of the {scope} (role owner); write-only.",
                [*params, _KEY],
                _ok("200", "Saved (the name only).", _ref("SecretEntry")),
                errors=_WRITE,
                body=_SECRET_BODY,
            ),
            "delete": _op(
                f"delete{op_scope}Secret",
                f"Delete a secret of the {scope} (role owner).",
                [*params, _KEY],
                _ok("204", "Deleted.", None),
                errors=_WRITE,
            ),
        },
    }


def v1_paths() -> dict[str, Any]:
    service_write = {**_WRITE, "503": _error("The cluster could not check the Job; nothing was saved.")}
    return {
        "/api/v1/projects": {
            "get": _op(
                "listProjects",
                "The caller's projects (an API key: its own).",
                [],
                _ok("200", "Projects.", _items("Project")),
                errors=_READ,
            )
        },
        _P: {
            "get": _op(
                "getProject", "One project.", [_SLUG], _ok("200", "The project.", _ref("Project")), errors=_READ
            ),
            "patch": _op(
                "updateProjectDefaults",
                "Change the project's run defaults (role owner); fields left out keep their value.",
                [_SLUG],
                _ok("200", "Saved.", _ref("Project")),
                errors=_WRITE,
                body=_ref("ProjectDefaultsInput"),
                description="Default resources apply to containers that set neither requests nor limits; the "
                "default timeout to services with none. A bad value is refused with `field` naming it, e.g. "
                "`default_resources.limits.memory`. Placement (node_selector, tolerations) is set by a "
                "platform superuser only.",
            ),
        },
        f"{_P}/services": {
            "get": _op(
                "listServices",
                "The project's services.",
                [_SLUG],
                _ok("200", "Services.", _items("Service")),
                errors=_READ,
            ),
            "post": _op(
                "createService",
                "Create a service (role admin).",
                [_SLUG],
                _ok("201", "Created.", _ref("Service")),
                errors=service_write,
                body=_ref("ServiceInput"),
                description="Validated like the console's form (field checks), then by a server-side dry run "
                "of its Job against the cluster. `name` and `image` or `job_template` are required.",
            ),
        },
        _S: {
            "get": _op(
                "getService", "One service.", [_SLUG, _NAME], _ok("200", "The service.", _ref("Service")), errors=_READ
            ),
            "patch": _op(
                "updateService",
                "Change a service (role admin); fields left out keep their value.",
                [_SLUG, _NAME],
                _ok("200", "Saved.", _ref("Service")),
                errors=service_write,
                body=_ref("ServiceInput"),
            ),
            "delete": _op(
                "deleteService",
                "Delete a service with its triggers, configs and runs (role admin).",
                [_SLUG, _NAME],
                _ok("204", "Deleted.", None),
                errors=_WRITE,
            ),
        },
        f"{_S}/triggers": {
            "get": _op(
                "listTriggers",
                "The service's triggers.",
                [_SLUG, _NAME],
                _ok("200", "Triggers.", _items("Trigger")),
                errors=_READ,
            ),
            "post": _op(
                "createTrigger",
                "Add a trigger (role admin).",
                [_SLUG, _NAME],
                _ok("201", "Created.", _ref("Trigger")),
                errors=_WRITE,
                body=_ref("TriggerInput"),
            ),
        },
        f"{_S}/triggers/test": {
            "post": _op(
                "testTriggers",
                "Which triggers (or a draft trigger) match a sample event (role admin).",
                [_SLUG, _NAME],
                _ok("200", "One result per trigger.", _ref("TriggerTest")),
                errors=_WRITE,
                body={
                    "type": "object",
                    "required": ["event"],
                    "additionalProperties": False,
                    "properties": {
                        "event": {"type": "object", "description": "A CloudEvent in JSON form."},
                        "trigger": _ref("TriggerInput"),
                    },
                },
            )
        },
        f"{_S}/triggers/{{trigger_id}}": {
            "get": _op(
                "getTrigger",
                "One trigger.",
                [_SLUG, _NAME, _TRIGGER_ID],
                _ok("200", "The trigger.", _ref("Trigger")),
                errors=_READ,
            ),
            "patch": _op(
                "updateTrigger",
                "Change a trigger (role admin); fields left out keep their value.",
                [_SLUG, _NAME, _TRIGGER_ID],
                _ok("200", "Saved.", _ref("Trigger")),
                errors=_WRITE,
                body=_ref("TriggerInput"),
            ),
            "delete": _op(
                "deleteTrigger",
                "Remove a trigger (role admin).",
                [_SLUG, _NAME, _TRIGGER_ID],
                _ok("204", "Deleted.", None),
                errors=_WRITE,
            ),
        },
        f"{_S}/runs": {
            "get": _op(
                "listServiceRuns",
                "The service's runs, newest first (logs are not included).",
                [_SLUG, _NAME, *_RUN_FILTERS],
                _ok("200", "A page of runs.", _items("Run", paged=True)),
                errors=_READ,
            ),
            "post": _op(
                "startRun",
                "Start a manual run (role user); `params` must fit the service's parameters schema.",
                [_SLUG, _NAME],
                _ok("201", "Queued.", _ref("Run")),
                errors=_WRITE,
                body={
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"params": {"type": "object"}},
                },
            ),
        },
        **_entry_paths(_S, [_SLUG, _NAME], "service", "Service"),
        **_entry_paths(_P, [_SLUG], "project", "Project"),
        f"{_P}/runs": {
            "get": _op(
                "listRuns",
                "The project's runs, newest first (logs are not included).",
                [_SLUG, _param("service", "query", {"type": "string"}, "Service name."), *_RUN_FILTERS],
                _ok("200", "A page of runs.", _items("Run", paged=True)),
                errors=_READ,
            )
        },
        f"{_P}/runs/{{run_id}}": {
            "get": _op("getProjectRun", "One run.", [_SLUG, _RUN_ID], _ok("200", "The run.", _ref("Run")), errors=_READ)
        },
        f"{_P}/runs/{{run_id}}/cancel": {
            "post": _op(
                "cancelRun",
                "Cancel a run that has not ended (role user).",
                [_SLUG, _RUN_ID],
                _ok(
                    "200",
                    "`cancelled` is false when the run had already ended.",
                    {
                        "type": "object",
                        "required": ["cancelled", "run"],
                        "properties": {"cancelled": {"type": "boolean"}, "run": _ref("Run")},
                    },
                ),
                errors=_WRITE,
            )
        },
        f"{_P}/runs/{{run_id}}/rerun": {
            "post": _op(
                "rerunRun",
                "A new run of the same service for the same event and parameters (role user).",
                [_SLUG, _RUN_ID],
                _ok("201", "The new run, queued.", _ref("Run")),
                errors=_WRITE,
            )
        },
        f"{_P}/events": {
            "get": _op(
                "listEvents",
                "Events sent through the project or that ran one of its services, newest first.",
                [
                    _SLUG,
                    _param(
                        "outcome",
                        "query",
                        {"type": "string", "enum": ["matched", "unmatched", "duplicate", "rejected"]},
                    ),
                    _param("type", "query", {"type": "string"}, "Type starts with."),
                    *_PAGE,
                ],
                _ok("200", "A page of events.", _items("EventRecord", paged=True)),
                errors=_READ,
            )
        },
    }


_STAMP = {"type": "string", "format": "date-time"}
_WORDS = {
    "oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}],
    "description": "A list of strings, or shell words in one string.",
}


def v1_schemas() -> dict[str, Any]:
    return {
        "Project": {
            "type": "object",
            "required": ["slug", "name", "namespace", "role"],
            "properties": {
                "slug": {"type": "string"},
                "name": {"type": "string"},
                "description": {"type": "string"},
                "namespace": {"type": "string"},
                "role": {"type": "string", "enum": ["owner", "admin", "user"]},
                "created_at": _STAMP,
                "default_resources": _RESOURCES,
                "default_timeout": {"type": ["integer", "null"], "minimum": 1},
                "node_selector": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "description": "Node labels every pod runs on (read-only; set by a platform superuser).",
                },
                "tolerations": {
                    "type": "array",
                    "items": {"type": "object"},
                    "description": "Added to every pod (read-only; set by a platform superuser).",
                },
            },
        },
        "ProjectDefaultsInput": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "default_resources": _RESOURCES,
                "default_timeout": {"type": ["integer", "null"], "minimum": 1, "description": "Seconds."},
            },
        },
        "ServiceInput": {
            "type": "object",
            "additionalProperties": False,
            "description": "The console's service form as JSON.",
            "properties": {
                "name": {"type": "string", "description": "A DNS label: a-z, 0-9 and -."},
                "description": {"type": "string"},
                "tags": {
                    "oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}],
                    "description": "A list, or comma-separated in one string.",
                },
                "active": {"type": "boolean"},
                "allow_manual_triggering": {"type": "boolean"},
                "image": {"type": "string"},
                "command": _WORDS,
                "args": _WORDS,
                "resources": {"type": "object"},
                "job_template": {"type": "string", "description": "A batch/v1 Job or Pod template in YAML."},
                "timeout_seconds": {"type": ["integer", "null"]},
                "retries": {"type": "integer"},
                "max_concurrency": {"type": ["integer", "null"]},
                "schedule": {"type": "string", "description": "Cron expression (UTC)."},
                "parameters_schema": {"type": "object", "description": "JSON Schema of a manual run's params."},
            },
        },
        "Service": {
            "type": "object",
            "required": ["name", "project", "image", "job_template", "active", "links"],
            "properties": {
                "name": {"type": "string"},
                "project": {"type": "string"},
                "description": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "active": {"type": "boolean"},
                "allow_manual_triggering": {"type": "boolean"},
                "image": {"type": "string"},
                "command": {"type": "array", "items": {"type": "string"}},
                "args": {"type": "array", "items": {"type": "string"}},
                "resources": {"type": "object"},
                "job_template": {"type": "string"},
                "timeout_seconds": {"type": ["integer", "null"]},
                "retries": {"type": "integer"},
                "max_concurrency": {"type": ["integer", "null"]},
                "schedule": {"type": "string"},
                "parameters_schema": {"type": "object"},
                "origin": {"type": "string", "enum": ["manual", "git"]},
                "created_at": _STAMP,
                "updated_at": _STAMP,
                "links": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "TriggerInput": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "event_type": {"type": "string", "description": "Exact type or glob, e.g. com.acme.order.*"},
                "source_glob": {"type": "string"},
                "cel_expression": {"type": "string", "description": "CEL over `event`."},
                "active": {"type": "boolean"},
            },
        },
        "Trigger": {
            "type": "object",
            "required": ["id", "event_type", "source_glob", "cel_expression", "active"],
            "properties": {
                "id": {"type": "integer"},
                "event_type": {"type": "string"},
                "source_glob": {"type": "string"},
                "cel_expression": {"type": "string"},
                "active": {"type": "boolean"},
                "origin": {"type": "string", "enum": ["manual", "git"]},
                "created_at": _STAMP,
                "updated_at": _STAMP,
            },
        },
        "TriggerTest": {
            "type": "object",
            "required": ["results"],
            "properties": {
                "results": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["trigger", "event_type", "matched", "error"],
                        "properties": {
                            "trigger": {"type": ["integer", "null"], "description": "null for the draft trigger."},
                            "event_type": {"type": "string"},
                            "matched": {"type": "boolean"},
                            "error": {"type": "string"},
                        },
                    },
                }
            },
        },
        "ConfigEntry": {
            "type": "object",
            "required": ["key", "value", "scope", "service"],
            "properties": {
                "key": {"type": "string"},
                "value": {"type": "string"},
                "scope": {"type": "string", "enum": ["project", "service"]},
                "service": {"type": ["string", "null"]},
                "updated_at": _STAMP,
            },
        },
        "SecretEntry": {
            "type": "object",
            "required": ["key", "kind", "scope", "service"],
            "additionalProperties": False,
            "properties": {
                "key": {"type": "string"},
                "kind": {"type": "string", "enum": ["value", "registry"]},
                "server": {"type": "string", "description": "A registry login's server (its only shown part)."},
                "scope": {"type": "string", "enum": ["project", "service"]},
                "service": {"type": ["string", "null"]},
                "updated_at": _STAMP,
            },
        },
    }
