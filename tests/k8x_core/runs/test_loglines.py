"""Cutting raw log bytes into stored lines (a pure function: no cluster needed)."""

from __future__ import annotations

import pytest

from k8x_core.runs.loglines import CONTINUED, CONTINUES, LogLineSplitter, log_lines_split

TS = "2026-11-27T15:42:21.123456789Z"


def rejoin(lines: list[str]) -> str:
    """The original text of one cut line, from its pieces."""
    head = f"{TS} "
    text = ""
    for i, line in enumerate(lines):
        if i:
            assert line.startswith(head + CONTINUES), line[:80]
            line = line[len(head + CONTINUES) :]
        if i < len(lines) - 1:
            assert line.endswith(CONTINUED)
            line = line[: -len(CONTINUED)]
        text += line
    return text


def test_short_lines_pass_through_whatever_the_chunking() -> None:
    data = f"{TS} one\n{TS} two\n\n{TS} three".encode()
    whole = log_lines_split(data, line_max=1024)
    assert whole == [f"{TS} one", f"{TS} two", "", f"{TS} three"]
    splitter = LogLineSplitter(line_max=1024)
    by_byte = [line for i in range(len(data)) for line in splitter.feed(data[i : i + 1])] + splitter.finish()
    assert by_byte == whole


@pytest.mark.parametrize("chunk", [1, 7, 4096, 65536, 10**9])
def test_a_long_line_becomes_marked_lines_under_the_cap(chunk: int) -> None:
    body = "é" * 3000 + "a" * 5001 + "€" * 1000  # multibyte characters must never be cut in two
    data = f"{TS} {body}\n{TS} after\n".encode()
    splitter = LogLineSplitter(line_max=1024)
    lines: list[str] = []
    for i in range(0, len(data), chunk):
        lines += splitter.feed(data[i : i + chunk])
        assert len(splitter._buf) <= 1024  # never more than one line cap held
    lines += splitter.finish()
    assert lines[-1] == f"{TS} after"
    assert all(len(line.encode()) <= 1024 for line in lines)
    assert len(lines) > 10
    assert rejoin(lines[:-1]) == f"{TS} {body}"


def test_container_prefix_and_cut_read() -> None:
    data = f"{TS} " + "x" * 3000
    lines = log_lines_split(data.encode(), line_max=1024, container="side", cut=True)
    assert lines[0].startswith(f"{TS} [side] xxx")
    assert all(len(line.encode()) <= 1024 for line in lines)
    # The read stopped inside the line: its last piece says it goes on.
    assert lines[-1].endswith(CONTINUED)
    assert all(line.endswith(CONTINUED) for line in lines)
    head = f"{TS} [side] "
    content = lines[0][len(head) : -len(CONTINUED)]
    content += "".join(line[len(head + CONTINUES) : -len(CONTINUED)] for line in lines[1:])
    assert content == "x" * 3000
    assert log_lines_split(f"{TS} hi\n".encode(), line_max=1024, container="side") == [f"{TS} [side] hi"]


def test_invalid_utf8_never_grows_a_line_over_the_cap() -> None:
    data = TS.encode() + b" " + b"\xff" * 5000 + b"\n"
    lines = log_lines_split(data, line_max=1024)
    assert all(len(line.encode()) <= 1024 for line in lines)
    assert sum(line.count("?") + line.count("\ufffd") for line in lines) == 5000
    assert log_lines_split(b"ok \xff\n", line_max=1024) == ["ok \ufffd"]


def test_a_line_without_timestamp_or_newline() -> None:
    lines = log_lines_split(b"z" * 2500, line_max=1024)
    assert all(len(line.encode()) <= 1024 for line in lines)
    assert lines[1].startswith(CONTINUES)
    assert "".join(line.removeprefix(CONTINUES).removesuffix(CONTINUED) for line in lines) == "z" * 2500
