"""Request body limit as a plain ASGI middleware: bodies above the limit get a JSON 413, never reach a route."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 8 * 1024 * 1024


class BodySizeLimit:
    """Refuse HTTP request bodies larger than ``max_bytes`` (declared by Content-Length or streamed) with 413.

    The body is read (up to the limit) before the application runs, then replayed to it unchanged.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send)
            return
        messages: list[Message] = []
        size = 0
        more = True
        while more:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(send)
                return
            more = bool(message.get("more_body", False))
        await self.app(scope, _replay(messages, receive), send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"detail": f"request body larger than {self.max_bytes:,} bytes"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A receive callable that first hands out ``messages`` as one request message, then defers to ``receive``."""
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
    pending += [m for m in messages if m["type"] != "http.request"]

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
