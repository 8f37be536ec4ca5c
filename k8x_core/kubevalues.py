"""Kubernetes values people type (quantities, labels, tolerations): pure checks, no imports
from the rest of K8X, so settings checks (k8x_core.checks) and the run defaults
(k8x_core.runs.defaults) share them. Each error is ``(field, message)``."""

from __future__ import annotations

import json
import re
from typing import Any

Error = tuple[str, str]

RESOURCE_SECTIONS = ("requests", "limits")
# A Kubernetes quantity as people write it for resources (no sign): 100m, 0.5, 256Mi, 1e3.
_QUANTITY = re.compile(r"^(\d+(\.\d+)?|\.\d+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE]\d+)?$")
_RESOURCE_NAME = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9._]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
TOLERATION_FIELDS = frozenset({"key", "operator", "value", "effect", "tolerationSeconds"})
TOLERATION_OPERATORS = ("Equal", "Exists")
TOLERATION_EFFECTS = ("", "NoSchedule", "PreferNoSchedule", "NoExecute")


def label_key_valid(key: Any) -> bool:
    """A Kubernetes qualified name: ``[prefix/]name`` (prefix a DNS subdomain, name at most 63)."""
    if not isinstance(key, str) or not key:
        return False
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return False
    return len(name) <= 63 and bool(_LABEL_NAME.match(name))


def label_value_valid(value: Any) -> bool:
    return isinstance(value, str) and (value == "" or (len(value) <= 63 and bool(_LABEL_NAME.match(value))))


def resources_errors(*, value: Any, field: str = "default_resources") -> list[Error]:
    """Errors of a ``{"requests": {...}, "limits": {...}}`` value, each naming its field."""
    if not isinstance(value, dict):
        return [(field, "must be a JSON object with requests and/or limits")]
    problems: list[Error] = []
    for section, amounts in value.items():
        where = f"{field}.{section}"
        if section not in RESOURCE_SECTIONS:
            problems.append((where, f"unknown section; use {' or '.join(RESOURCE_SECTIONS)}"))
            continue
        if not isinstance(amounts, dict):
            problems.append((where, 'must be a JSON object, e.g. {"cpu": "100m", "memory": "128Mi"}'))
            continue
        for name, amount in amounts.items():
            place = f"{where}.{name}"
            if not _RESOURCE_NAME.match(str(name)):
                problems.append((place, "is not a resource name (cpu, memory, ephemeral-storage, …)"))
            elif (
                isinstance(amount, bool)
                or not isinstance(amount, str | int | float)
                or not _QUANTITY.match(str(amount))
            ):
                problems.append((place, f"{amount!r} is not a quantity (e.g. 100m, 0.5, 256Mi)"))
    return problems


def timeout_errors(*, value: Any, field: str = "default_timeout") -> list[Error]:
    if value is None:
        return []
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return [(field, "must be a positive number of seconds, or empty")]
    return []


def node_selector_errors(*, value: Any, field: str = "node_selector") -> list[Error]:
    if not isinstance(value, dict):
        return [(field, 'must be a JSON object of node labels, e.g. {"pool": "batch"}')]
    problems: list[Error] = []
    for key, label in value.items():
        if not label_key_valid(key):
            problems.append((f"{field}.{key}", "is not a valid label key"))
        elif not label_value_valid(label):
            problems.append((f"{field}.{key}", f"{label!r} is not a valid label value"))
    return problems


def tolerations_errors(*, value: Any, field: str = "tolerations") -> list[Error]:
    """Errors of a list of Kubernetes tolerations (as the API server would judge them)."""
    if not isinstance(value, list):
        return [(field, "must be a JSON list of tolerations")]
    problems: list[Error] = []
    for i, item in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(item, dict):
            problems.append((where, "must be a JSON object (key, operator, value, effect)"))
            continue
        for name in sorted(set(item) - TOLERATION_FIELDS):
            problems.append((f"{where}.{name}", f"unknown field; known: {', '.join(sorted(TOLERATION_FIELDS))}"))
        operator = item.get("operator") or "Equal"
        key = item.get("key") or ""
        if operator not in TOLERATION_OPERATORS:
            problems.append((f"{where}.operator", f"must be {' or '.join(TOLERATION_OPERATORS)}"))
        if key and not label_key_valid(key):
            problems.append((f"{where}.key", "is not a valid taint key"))
        if not key and operator != "Exists":
            problems.append((f"{where}.key", "an empty key needs operator Exists"))
        if operator == "Exists" and item.get("value"):
            problems.append((f"{where}.value", "must be empty with operator Exists"))
        elif item.get("value") is not None and not label_value_valid(item.get("value")):
            problems.append((f"{where}.value", "is not a valid taint value"))
        if (item.get("effect") or "") not in TOLERATION_EFFECTS:
            problems.append((f"{where}.effect", f"must be one of {', '.join(e for e in TOLERATION_EFFECTS if e)}"))
        seconds = item.get("tolerationSeconds")
        if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int)):
            problems.append((f"{where}.tolerationSeconds", "must be an integer"))
        elif seconds is not None and item.get("effect") != "NoExecute":
            problems.append((f"{where}.tolerationSeconds", "only goes with effect NoExecute"))
    return problems


def toleration_normal(toleration: Any) -> str:
    """One spelling of a toleration (defaults filled in), to compare two of them."""
    item = toleration if isinstance(toleration, dict) else {}
    return json.dumps(
        {
            "key": item.get("key") or "",
            "operator": item.get("operator") or "Equal",
            "value": item.get("value") or "",
            "effect": item.get("effect") or "",
            "tolerationSeconds": item.get("tolerationSeconds"),
        },
        sort_keys=True,
    )
