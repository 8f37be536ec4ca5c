"""Request body limit in the web server itself (Daphne on Twisted).

Twisted reads a whole request body (to memory, then a temporary file) before
Daphne hands it to the ASGI application, so no limit in K8X's code could stop
a client that streams a chunked body of gigabytes. This request class counts
the body as it arrives and, past DATA_UPLOAD_MAX_MEMORY_SIZE (the largest
body any endpoint accepts: K8X_MAX_BATCH_BYTES), answers 413 and closes the
connection; a declared Content-Length over it is refused before a byte of the
body is read. Finer per-endpoint limits (K8X_MAX_EVENT_BYTES) are the views'
and the fast path's (``console.api.views.body_limit``).

Installed by ``k8x.asgi`` (Daphne imports the application before it
listens), so every way Daphne is started gets it."""

from __future__ import annotations

import json
from io import BytesIO
from typing import Any

from daphne import http_protocol
from django.conf import settings


def _limit() -> int:
    return int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


class LimitedWebRequest(http_protocol.WebRequest):
    """Daphne's request with the body capped while it is received."""

    k8x_received = 0
    k8x_refused = False

    def gotLength(self, length: int | None) -> None:
        limit = _limit()
        if length is not None and length > limit:
            self.content = BytesIO()  # Twisted expects one; nothing is written to it
            self._k8x_refuse(f"body is {length} bytes, over the limit of {limit} bytes")
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.k8x_refused:
            return
        self.k8x_received += len(data)
        limit = _limit()
        if self.k8x_received > limit:
            self._k8x_refuse(f"body is over the limit of {limit} bytes")
            return
        super().handleContentChunk(data)

    def process(self) -> Any:
        if self.k8x_refused:
            return None  # answered already; the application never sees it
        return super().process()

    def _k8x_refuse(self, message: str) -> None:
        self.k8x_refused = True
        body = json.dumps({"error": message, "field": "body"}).encode()
        head = (
            "HTTP/1.1 413 Content Too Large\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        transport = self.channel.transport
        transport.write(head + body)
        # Whatever else the client sends is dropped with the connection.
        transport.loseConnection()


def daphne_body_limit_install() -> None:
    """Make Daphne build LimitedWebRequest (HTTPFactory looks the class up
    in its module on every connection)."""
    http_protocol.WebRequest = LimitedWebRequest
