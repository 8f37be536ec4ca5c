"""The one YAML reader: safe types, no anchors or aliases, errors name the document and line."""

from __future__ import annotations

import resource
import time
import tracemalloc

import pytest
import yaml

from k8x_core.yamlsafe import YamlRefused, yaml_document, yaml_documents

# "Billion laughs": ten levels of ten aliases each, 10**9 leaves when expanded.
BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)


def test_bomb_is_small_and_refused_fast_in_bounded_memory() -> None:
    assert len(BOMB) < 500
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    start = time.monotonic()
    try:
        with pytest.raises(YamlRefused) as info:
            yaml_documents(text=BOMB, name="svc/deployment.yaml")
        elapsed = time.monotonic() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(info.value) == "svc/deployment.yaml, line 1: YAML anchors and aliases are not allowed (anchor &a)"
    assert elapsed < 1.0
    assert peak < 2 * 1024 * 1024
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 50 * 1024  # KiB


def test_alias_without_anchor_in_view_names_its_line() -> None:
    # An alias to an unknown anchor is still an alias: refused at its own line.
    with pytest.raises(YamlRefused, match=r"job template, line 3: .*alias \*x"):
        yaml_document(text="a: 1\nb: 2\nc: *x\n", name="job template")


def test_merge_keys_need_anchors_and_are_refused_too() -> None:
    with pytest.raises(YamlRefused):
        yaml_document(text="base: &b {x: 1}\nmore:\n  <<: *b\n", name="t")


def test_plain_documents_still_load() -> None:
    assert yaml_documents(text="a: 1\n---\nb: [x, y]\n", name="t") == [{"a": 1}, {"b": ["x", "y"]}]
    assert yaml_document(text="", name="t") is None
    with pytest.raises(yaml.YAMLError):
        yaml_document(text="!!python/object:os.system {}\n", name="t")  # safe types only
