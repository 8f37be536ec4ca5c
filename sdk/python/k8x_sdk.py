"""K8X helper for Python services: thin reads of the container contract, no magic.

Copy this file next to your code (standard library only, Python 3.9+)::

    from k8x_sdk import context

    context.params            # the event's data (dict for JSON objects), or the manual-run form values
    context.config["COLOR"]   # config entries (plain environment variables)
    context.secrets["DB_PASSWORD"]  # secret entries (environment variables from the Kubernetes Secret)
    context.event             # the whole CloudEvent (dict); read from K8X_EVENT_FILE when large
    context.run_id, context.service, context.project, context.trigger, context.correlation_id  # identity
    context.events.send("com.acme.order.shipped", {"id": 7})  # a follow-up event, same correlation id
    context.log("shipped", order=7)  # one JSON log line with the run id

``config`` and ``secrets`` both read the environment minus ``K8X_*``: K8X does not
tell a container which variables are configs and which are secrets.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["Context", "EventSendError", "Events", "context"]


class EventSendError(RuntimeError):
    """K8X refused the event (the message is K8X's answer) or could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _Env(Mapping[str, str]):
    """The environment without the contract's own K8X_* variables."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def __getitem__(self, key: str) -> str:
        if key.startswith("K8X_"):
            raise KeyError(key)
        return self._environ[key]

    def __iter__(self) -> Iterator[str]:
        return (k for k in self._environ if not k.startswith("K8X_"))

    def __len__(self) -> int:
        return sum(1 for _ in self)


class Events:
    """Emit follow-up events to K8X's event bridge (``K8X_EVENTS_URL``) with the run's token."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def send(
        self,
        type: str,
        data: Any = None,
        *,
        source: str | None = None,
        subject: str | None = None,
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        """POST one structured CloudEvent; returns K8X's answer (``{"id", "correlation_id"}``).
        The event carries this run's correlation id, so the flow can be followed end to end."""
        url, token = self._environ.get("K8X_EVENTS_URL"), self._environ.get("K8X_RUN_TOKEN")
        if not url or not token:
            raise EventSendError("K8X_EVENTS_URL and K8X_RUN_TOKEN must be set")
        event: dict[str, Any] = {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "type": type,
            "source": source or f"k8x://{self._environ.get('K8X_PROJECT', '')}/{self._environ.get('K8X_SERVICE', '')}",
            "datacontenttype": "application/json",
            "data": data,
        }
        correlation = self._environ.get("K8X_CORRELATION_ID")
        if correlation:
            event["correlationid"] = correlation
        if subject:
            event["subject"] = subject
        request = urllib.request.Request(  # noqa: S310  (the URL is K8X's own endpoint)
            url,
            data=json.dumps(event).encode(),
            method="POST",
            headers={
                "Content-Type": "application/cloudevents+json",
                "Authorization": f"Bearer {token}",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise EventSendError(exc.read().decode("utf-8", "replace"), status=exc.code) from None
        except OSError as exc:
            raise EventSendError(f"K8X event bridge unreachable at {url}: {exc}") from None


class Context:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ
        self.config: Mapping[str, str] = _Env(self._environ)
        self.secrets: Mapping[str, str] = _Env(self._environ)
        self.events = Events(self._environ)

    def _get(self, name: str) -> str:
        return self._environ.get(name, "")

    run_id = property(lambda self: self._get("K8X_RUN_ID"))
    service = property(lambda self: self._get("K8X_SERVICE"))
    project = property(lambda self: self._get("K8X_PROJECT"))
    trigger = property(lambda self: self._get("K8X_TRIGGER"))
    correlation_id = property(lambda self: self._get("K8X_CORRELATION_ID"))

    @property
    def event(self) -> dict[str, Any] | None:
        path = self._get("K8X_EVENT_FILE")
        if path:
            with open(path, encoding="utf-8") as fh:
                return json.load(fh)
        raw = self._get("K8X_EVENT")
        return json.loads(raw) if raw else None

    @property
    def params(self) -> Any:
        raw = self._environ.get("K8X_PARAMS")
        if raw is not None:
            return json.loads(raw)
        event = self.event or {}
        return event.get("data")

    def log(self, message: str, *, level: str = "info", **fields: Any) -> None:
        """Print one structured (JSON) log line; K8X stores it with a timestamp."""
        line = {"level": level, "msg": message, "run_id": self.run_id, **fields}
        print(json.dumps(line, default=str), flush=True)  # noqa: T201  (stdout is the run's log)


context = Context()
