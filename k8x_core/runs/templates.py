"""A service's ``deployment.yaml`` as the batch/v1 Job it stands for: the one parser.

Accepted shapes: a ``batch/v1`` Job (``apiVersion``/``kind`` may be left out),
a Pod, or a Pod template (``kind: PodTemplate`` or a bare ``template:`` /
``spec:`` mapping). Every shape becomes a Job dict, and every problem is named
by its path in that Job (``spec.template.spec.containers[0].image``), so the
console, ``k8x_apply``, git sync and the launcher report the same path for
the same mistake.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import yaml

from k8x_core.yamlsafe import yaml_documents

POD_SPEC_PATH = "spec.template.spec"


@dataclass(frozen=True)
class Problem:
    """One problem of a template: the field path in the Job, the rule broken, and why."""

    path: str
    rule: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{where}{self.message} [rule {self.rule}]"


def _describe(value: Any) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def template_load(text: str, *, name: str = "job template") -> tuple[dict[str, Any] | None, list[Problem]]:
    """The Job dict of a template text, or None and every structural problem found.
    ``name`` is how a YAML error refers to the text (e.g. the file's path)."""
    try:
        docs = [d for d in yaml_documents(text=text, name=name) if d is not None]
    except yaml.YAMLError as exc:
        return None, [Problem("", "yaml", f"not valid YAML: {exc}")]
    if len(docs) != 1:
        return None, [Problem("", "yaml", f"must hold exactly one YAML document, not {len(docs)}")]
    return template_normalise(docs[0])


def template_normalise(doc: Any) -> tuple[dict[str, Any] | None, list[Problem]]:
    """A Job dict from a parsed Job, Pod or Pod template (a deep copy), with every structural problem."""
    if not isinstance(doc, dict):
        return None, [
            Problem("", "structure", f"must be a YAML mapping (a batch/v1 Job or a Pod template), not {_describe(doc)}")
        ]
    kind = doc.get("kind")
    problems: list[Problem] = []
    job: dict[str, Any]
    if kind == "Job":
        if doc.get("apiVersion") != "batch/v1":
            problems.append(
                Problem("apiVersion", "structure", f"must be batch/v1 for a Job, not {doc.get('apiVersion')!r}")
            )
        job = copy.deepcopy(doc)
    elif kind == "Pod":
        pod = {"metadata": copy.deepcopy(doc.get("metadata") or {}), "spec": copy.deepcopy(doc.get("spec"))}
        job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {}, "spec": {"template": pod}}
    elif kind is None and isinstance(doc.get("spec"), dict) and isinstance(doc["spec"].get("template"), dict):
        job = {"apiVersion": "batch/v1", "kind": "Job", **copy.deepcopy(doc)}
    elif kind in (None, "PodTemplate") and isinstance(doc.get("template"), dict):
        template = copy.deepcopy(doc["template"])
        job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {}, "spec": {"template": template}}
    elif kind is None and isinstance(doc.get("spec"), dict):
        job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {}, "spec": {"template": copy.deepcopy(doc)}}
    else:
        return None, [Problem("kind", "structure", f"must be Job or Pod (or a Pod template), not {kind!r}")]

    spec = job.get("spec")
    if not isinstance(spec, dict):
        return None, [*problems, Problem("spec", "structure", "a Job needs a spec mapping")]
    if not isinstance(spec.get("template"), dict):
        return None, [*problems, Problem("spec.template", "structure", "must be a Pod template mapping")]
    pod_spec = spec["template"].get("spec")
    if not isinstance(pod_spec, dict):
        return None, [*problems, Problem(POD_SPEC_PATH, "structure", "a Pod template needs a spec mapping")]
    containers = pod_spec.get("containers")
    if not isinstance(containers, list) or not containers:
        problems.append(Problem(f"{POD_SPEC_PATH}.containers", "structure", "must be a non-empty list of containers"))
    else:
        for i, container in enumerate(containers):
            where = f"{POD_SPEC_PATH}.containers[{i}]"
            if not isinstance(container, dict):
                problems.append(Problem(where, "structure", "must be a mapping"))
                continue
            if not isinstance(container.get("name"), str) or not container.get("name"):
                problems.append(Problem(f"{where}.name", "structure", "is required"))
            if not isinstance(container.get("image"), str) or not container.get("image"):
                problems.append(Problem(f"{where}.image", "structure", "is required"))
    for key in ("initContainers", "ephemeralContainers", "volumes"):
        value = pod_spec.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, dict) for v in value)):
            problems.append(Problem(f"{POD_SPEC_PATH}.{key}", "structure", "must be a list of mappings"))
    return (None if problems else job), problems
