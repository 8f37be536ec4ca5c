"""The OpenAPI 3.1 description of the HTTP API, served at /api/openapi.json.

Hand-written so it says what the endpoints promise; tests validate real
responses against these schemas and run schemathesis against a live server.
"""

from __future__ import annotations

from typing import Any

from console.api.openapi_v1 import v1_paths, v1_schemas

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str, *, retry_after: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {JSON: {"schema": _ref("Error")}}}
    if retry_after:
        response["headers"] = {
            "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "string"}}
        }
    return response


_COMMON_POST_ERRORS = {
    "400": _error("Malformed input; `error` names what is wrong and `field` the attribute or field."),
    "401": _error("No credentials, an unknown or revoked API key, an invalid run token."),
    "403": _error("Valid credentials that may not do this (e.g. not a member, missing CSRF token)."),
    "413": _error("Body or event over the size limit."),
    "415": _error("Content type not accepted."),
    "429": _error("Rate limit of the credential exceeded.", retry_after=True),
    "503": _error("Kafka did not acknowledge in time; nothing was accepted.", retry_after=True),
}

_READ_ERRORS = {
    "401": _error("No credentials, or unknown or revoked ones."),
}

# Which project a session user sends for (a key or a run token has its own).
_PROJECT_QUERY: dict[str, Any] = {
    "name": "project",
    "in": "query",
    "required": False,
    "description": "For session users: the project to send for.",
    "schema": {"type": "string"},
}

_SECURITY: list[dict[str, list[str]]] = [{"apiKey": []}, {"bearer": []}, {"session": []}]

CLOUDEVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A CloudEvent 1.0 in JSON format. Extension names: 1 to 20 lowercase letters or digits. "
    "Extensions starting with `k8x` are reserved and replaced by K8X.",
    "required": ["specversion", "id", "source", "type"],
    "properties": {
        "specversion": {"type": "string", "const": "1.0"},
        "id": {"type": "string", "minLength": 1},
        "source": {"type": "string", "minLength": 1},
        "type": {"type": "string", "minLength": 1},
        "subject": {"type": "string", "minLength": 1},
        "time": {"type": "string", "format": "date-time"},
        "datacontenttype": {"type": "string", "minLength": 1},
        "dataschema": {"type": "string", "minLength": 1},
        "correlationid": {"type": "string", "description": "Flow id; a new one is set when missing."},
        "partitionkey": {"type": "string", "description": "Kafka message key (else subject, else source)."},
        "data": {"description": "Event data (any JSON)."},
        "data_base64": {"type": "string", "contentEncoding": "base64"},
    },
    "propertyNames": {"pattern": "^([a-z0-9]{1,20}|data_base64)$"},
    "additionalProperties": {"type": ["string", "integer", "boolean"]},
}


def openapi_document(*, server_url: str = "") -> dict[str, Any]:
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "K8X API",
            "version": "1.0.0",
            "description": "Send events into K8X (CloudEvents 1.0) and follow the runs they cause. "
            "A 202 means the event is durably in Kafka.",
        },
        "paths": {
            "/api/events": {
                "post": {
                    "operationId": "sendEvents",
                    "summary": "Send CloudEvents (HTTP binding: binary, structured or batch mode).",
                    "description": "Binary mode: `ce-*` headers (`ce-specversion: 1.0`, `ce-id`, `ce-source`, "
                    "`ce-type`, …) and the data as the body with its own Content-Type. Structured: "
                    "`application/cloudevents+json`. Batch: `application/cloudevents-batch+json` (a JSON array; "
                    "all or nothing).",
                    "security": _SECURITY,
                    "parameters": [_PROJECT_QUERY],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/cloudevents+json": {"schema": _ref("CloudEvent")},
                            "application/cloudevents-batch+json": {
                                "schema": {"type": "array", "items": _ref("CloudEvent"), "minItems": 1}
                            },
                        },
                    },
                    "responses": {
                        "202": {
                            "description": "Accepted: durably in Kafka. A list for batch mode.",
                            "content": {
                                JSON: {
                                    "schema": {
                                        "oneOf": [
                                            _ref("Accepted"),
                                            {"type": "array", "items": _ref("Accepted")},
                                        ]
                                    }
                                }
                            },
                        },
                        **_COMMON_POST_ERRORS,
                    },
                }
            },
            "/api/events/simple": {
                "post": {
                    "operationId": "sendSimpleEvent",
                    "summary": "Send an event in the simple form; K8X fills id, time and specversion.",
                    "security": _SECURITY,
                    "parameters": [_PROJECT_QUERY],
                    "requestBody": {
                        "required": True,
                        "content": {JSON: {"schema": _ref("SimpleEvent")}},
                    },
                    "responses": {
                        "202": {"description": "Accepted.", "content": {JSON: {"schema": _ref("Accepted")}}},
                        **_COMMON_POST_ERRORS,
                    },
                }
            },
            "/api/webhooks/{slug}": {
                "post": {
                    "operationId": "receiveWebhook",
                    "summary": "Receive any JSON from a third party, signed with the webhook's secret.",
                    "description": "`X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`. "
                    "`X-GitHub-Event: push` makes the event type `com.github.push`.",
                    "security": [{"hubSignature": []}],
                    "parameters": [
                        {"name": "slug", "in": "path", "required": True, "schema": {"type": "string"}},
                        {
                            "name": "X-GitHub-Event",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string"},
                        },
                    ],
                    "requestBody": {"required": True, "content": {JSON: {"schema": {}}}},
                    "responses": {
                        "202": {"description": "Accepted.", "content": {JSON: {"schema": _ref("Accepted")}}},
                        "404": _error("No active webhook with this slug."),
                        **_COMMON_POST_ERRORS,
                    },
                }
            },
            "/api/runs/{run_id}": {
                "get": {
                    "operationId": "getRun",
                    "summary": "A run's status.",
                    "security": _SECURITY,
                    "parameters": [
                        {
                            "name": "run_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "format": "uuid"},
                        }
                    ],
                    "responses": {
                        "200": {"description": "The run.", "content": {JSON: {"schema": _ref("Run")}}},
                        "404": _error("No such run visible to the caller."),
                        **_READ_ERRORS,
                    },
                }
            },
            "/api/correlations/{correlation_id}": {
                "get": {
                    "operationId": "getCorrelation",
                    "summary": "Every run and event of one flow, and the flow's overall status.",
                    "security": _SECURITY,
                    "parameters": [
                        {
                            "name": "correlation_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "minLength": 1},
                        }
                    ],
                    "responses": {
                        "200": {"description": "The flow.", "content": {JSON: {"schema": _ref("Correlation")}}},
                        **_READ_ERRORS,
                    },
                }
            },
            "/api/runs/{run_id}/log": {
                "get": {
                    "operationId": "getRunLog",
                    "summary": "A run's log as text (live so far, or the stored one once it ended).",
                    "security": _SECURITY,
                    "parameters": [
                        {
                            "name": "run_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "format": "uuid"},
                        }
                    ],
                    "responses": {
                        "200": {"description": "The log.", "content": {"text/plain": {"schema": {"type": "string"}}}},
                        "404": {"description": "No such run visible to the caller."},
                        "401": {"description": "No credentials."},
                    },
                }
            },
            "/api/openapi.json": {
                "get": {
                    "operationId": "getOpenApi",
                    "summary": "This document.",
                    "security": [],
                    "responses": {
                        "200": {"description": "OpenAPI 3.1.", "content": {JSON: {"schema": {"type": "object"}}}}
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A run token (K8X_RUN_TOKEN) or an API key.",
                },
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "sessionid",
                    "description": "Console session; POST, PUT, PATCH and DELETE also need the X-CSRFToken header.",
                },
                "hubSignature": {"type": "apiKey", "in": "header", "name": "X-Hub-Signature-256"},
            },
            "schemas": {
                "CloudEvent": CLOUDEVENT_SCHEMA,
                "SimpleEvent": {
                    "type": "object",
                    "required": ["event_type", "event_source"],
                    "additionalProperties": False,
                    "properties": {
                        "event_type": {"type": "string", "minLength": 1},
                        "event_source": {"type": "string", "minLength": 1},
                        "payload": {"description": "The event's data (any JSON)."},
                        "subject": {"type": "string", "minLength": 1},
                    },
                },
                "Accepted": {
                    "type": "object",
                    "required": ["id", "correlation_id"],
                    "additionalProperties": False,
                    "properties": {
                        "id": {"type": "string", "minLength": 1},
                        "correlation_id": {"type": "string", "minLength": 1},
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {"type": "string", "minLength": 1},
                        "field": {"type": "string"},
                    },
                },
                "Run": {
                    "type": "object",
                    "required": [
                        "id",
                        "service",
                        "project",
                        "status",
                        "trigger",
                        "correlation_id",
                        "exit_code",
                        "reason",
                        "created_at",
                        "started_at",
                        "finished_at",
                        "links",
                    ],
                    "properties": {
                        "id": {"type": "string", "format": "uuid"},
                        "service": {"type": "string"},
                        "project": {"type": "string"},
                        "status": {
                            "type": "string",
                            "enum": ["queued", "starting", "running", "succeeded", "failed", "timed_out", "cancelled"],
                        },
                        "trigger": {"type": "string", "enum": ["event", "manual", "schedule", "retry"]},
                        "correlation_id": {"type": "string"},
                        "event_id": {"type": ["string", "null"]},
                        "attempts": {"type": "integer"},
                        "exit_code": {"type": ["integer", "null"]},
                        "reason": {"type": "string"},
                        "message": {"type": "string"},
                        "job_name": {"type": "string"},
                        "pod_name": {"type": "string"},
                        "created_at": {"type": "string", "format": "date-time"},
                        "started_at": {"type": ["string", "null"], "format": "date-time"},
                        "finished_at": {"type": ["string", "null"], "format": "date-time"},
                        "links": {
                            "type": "object",
                            "required": ["self", "log"],
                            "additionalProperties": {"type": "string"},
                        },
                    },
                },
                "EventRecord": {
                    "type": "object",
                    "required": ["id", "source", "type", "outcome", "received_at"],
                    "properties": {
                        "id": {"type": "string"},
                        "source": {"type": "string"},
                        "type": {"type": "string"},
                        "subject": {"type": "string"},
                        "outcome": {"type": "string", "enum": ["matched", "unmatched", "duplicate", "rejected"]},
                        "reason": {"type": "string"},
                        "project": {"type": ["string", "null"]},
                        "received_at": {"type": "string", "format": "date-time"},
                    },
                },
                "Correlation": {
                    "type": "object",
                    "required": ["correlation_id", "status", "runs", "events"],
                    "properties": {
                        "correlation_id": {"type": "string"},
                        "status": {"type": "string", "enum": ["pending", "running", "succeeded", "failed"]},
                        "runs": {"type": "array", "items": _ref("Run")},
                        "events": {"type": "array", "items": _ref("EventRecord")},
                    },
                },
            },
        },
    }
    doc["paths"].update(v1_paths())
    doc["components"]["schemas"].update(v1_schemas())
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc
