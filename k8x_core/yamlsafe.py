"""The one way K8X reads YAML written by a project (service directories'
``deployment.yaml``, the console's Job template field): safe types only, and
no anchors or aliases, so a few hundred bytes cannot expand into gigabytes
("billion laughs"). Used by every YAML reader in k8x_core and console."""

from __future__ import annotations

from typing import Any

import yaml


class YamlRefused(yaml.YAMLError):
    """A YAML feature K8X does not accept; the message names the document and line."""


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that stops at the first anchor or alias, before anything is built.

    The pure-Python loader on purpose: the C loader composes nodes in C, out
    of reach of this check."""

    document_name = "YAML"

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        anchor = getattr(event, "anchor", None)
        if isinstance(event, yaml.AliasEvent) or anchor is not None:
            what = f"alias *{anchor}" if isinstance(event, yaml.AliasEvent) else f"anchor &{anchor}"
            line = event.start_mark.line + 1
            raise YamlRefused(f"{self.document_name}, line {line}: YAML anchors and aliases are not allowed ({what})")
        return super().compose_node(parent, index)


def yaml_documents(*, text: str, name: str) -> list[Any]:
    """Every document of ``text`` (``name`` is how errors refer to it, e.g. a file path).

    Raises yaml.YAMLError (YamlRefused for anchors and aliases)."""
    loader = _NoAliasLoader(text)
    loader.document_name = name
    try:
        docs: list[Any] = []
        while loader.check_data():
            docs.append(loader.get_data())
        return docs
    finally:
        loader.dispose()


def yaml_document(*, text: str, name: str) -> Any:
    """The single document of ``text`` (None when empty); more than one is an error."""
    loader = _NoAliasLoader(text)
    loader.document_name = name
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
