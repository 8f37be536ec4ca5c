"""How every long-running process stops: SIGTERM (Kubernetes, the supervisor)
and SIGINT (a terminal) call one function, which only sets a flag the loop
reads; the loop finishes its step and leaves."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from types import FrameType

log = logging.getLogger(__name__)


def shutdown_on_signals(*, stop: Callable[[], object], what: str) -> None:
    """Call ``stop`` on SIGTERM or SIGINT; ``what`` says what the process does then (logged)."""

    def _handler(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: %s", signum, what)
        stop()

    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)
