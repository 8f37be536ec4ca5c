"""Log lines as K8X stores and streams them, cut out of the raw bytes the API sends.

A container may write anything: one line of 100 MB, no newline at all, invalid
UTF-8. ``LogLineSplitter`` scans the bytes once (``bytes.find``, no growing
string is ever concatenated again), holds at most one line cap of an unfinished
line, and cuts a line longer than K8X_LOG_LINE_MAX_BYTES into several lines of
at most that many bytes each (UTF-8, without the newline): every line but the
last of a cut ends with ``CONTINUED``, every line but the first starts, after
the timestamp, with ``CONTINUES``. Both the live follower and the final log
read use it.
"""

from __future__ import annotations

import codecs

CONTINUED = " […]"  # ends a line whose text goes on in the next line
CONTINUES = "[…] "  # starts a line that goes on from the previous one
# "2026-11-27T15:42:21.123456789Z" is 30 bytes: a longer first word is no timestamp
# and is not repeated on the continuation lines.
TIMESTAMP_MAX = 40

_CONTINUED_BYTES = len(CONTINUED.encode())
_CONTINUES_BYTES = len(CONTINUES.encode())


def _each_byte(exc: UnicodeError) -> tuple[str, int]:
    # One "?" per invalid byte: a line never grows when it is decoded (U+FFFD is 3 bytes).
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return "?" * (exc.end - exc.start), exc.end


codecs.register_error("k8x-log-bytes", _each_byte)


def _decode(raw: bytes, limit: int) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "replace")
        return text if len(text.encode()) <= limit else raw.decode("utf-8", "k8x-log-bytes")


def _utf8_cut(buf: bytearray) -> int:
    """Where to cut ``buf`` so that no UTF-8 character is split (its length if it ends whole)."""
    n = len(buf)
    for i in range(n - 1, max(n - 4, 0) - 1, -1):
        b = buf[i]
        if b & 0xC0 == 0x80:
            continue  # a continuation byte: its character starts further left
        need = 2 if 0xC0 <= b < 0xE0 else 3 if 0xE0 <= b < 0xF0 else 4 if 0xF0 <= b < 0xF8 else 1
        return i if i + need > n and i > 0 else n
    return n


class LogLineSplitter:
    """Feed raw log bytes, get whole lines (no newline) of at most ``line_max`` UTF-8
    bytes each. ``container``, when given, is written after each line's timestamp
    (``<ts> [container] text``, as for pods with several containers)."""

    def __init__(self, *, line_max: int, container: str | None = None) -> None:
        self.line_max = line_max
        self.prefix = f"[{container}] " if container else ""
        self._prefix_bytes = len(self.prefix.encode())
        self._buf = bytearray()
        self._start_line()

    def _start_line(self) -> None:
        self._pieces = 0
        self._ts = ""
        # The first piece holds its own timestamp; it may get the prefix and CONTINUED.
        self._room = self.line_max - self._prefix_bytes - _CONTINUED_BYTES

    def feed(self, data: bytes) -> list[str]:
        out: list[str] = []
        view = memoryview(data)
        pos, n = 0, len(data)
        while pos < n:
            nl = data.find(b"\n", pos)
            end = n if nl < 0 else nl
            while pos < end:
                room = self._room - len(self._buf)
                if room <= 0:
                    # The buffer holds a whole line cap and the line goes on: cut it here.
                    out.append(self._piece(last=False))
                    continue
                take = min(room, end - pos)
                self._buf += view[pos : pos + take]
                pos += take
            if nl < 0:
                break
            out.append(self._piece(last=True))
            pos = nl + 1
        return out

    def finish(self, *, cut: bool = False) -> list[str]:
        """The unfinished last line, if any (``cut``: the read stopped inside it, so it
        is marked as going on)."""
        if not self._buf and not self._pieces:
            return []
        line = self._piece(last=not cut, final=True)
        self._buf.clear()
        self._start_line()
        return [line]

    def _piece(self, *, last: bool, final: bool = False) -> str:
        cut = len(self._buf) if last or final else _utf8_cut(self._buf)
        raw = bytes(self._buf[:cut])
        del self._buf[:cut]
        text = _decode(raw, self._room)
        if self._pieces == 0:
            ts, sep, rest = text.partition(" ")
            line = text
            if self.prefix:
                line = f"{ts} {self.prefix}{rest}" if sep else f"{self.prefix}{text}"
            if not last:
                self._ts = ts if sep and len(ts.encode()) < TIMESTAMP_MAX else ""
                head = len(self._ts.encode()) + 1 if self._ts else 0
                self._room = self.line_max - head - self._prefix_bytes - _CONTINUES_BYTES - _CONTINUED_BYTES
        else:
            body = f"{self.prefix}{CONTINUES}{text}"
            line = f"{self._ts} {body}" if self._ts else body
        if last:
            self._start_line()
            return line
        self._pieces += 1
        return line + CONTINUED


def log_lines_split(data: bytes, *, line_max: int, container: str | None = None, cut: bool = False) -> list[str]:
    """All the lines of a log read whole (``cut``: the read stopped at a byte limit)."""
    splitter = LogLineSplitter(line_max=line_max, container=container)
    return splitter.feed(data) + splitter.finish(cut=cut)
