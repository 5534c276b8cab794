"""The request body-size limit (``limits.max_body_bytes``) as ASGI middleware: a body over the
limit gets 413 before the app reads it, whether it declares its length or streams in chunks."""

import json
from typing import Any

from fastapi import HTTPException

__all__ = ["BodySizeLimit"]


class _TooLarge(HTTPException):
    """Raised while the body streams in; an HTTPException, so FastAPI answers it as such (413)."""


class BodySizeLimit:
    """ASGI middleware: a body over ``max_bytes`` gets 413 (by Content-Length or while streaming)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _reject(self, send: Any) -> None:
        body = json.dumps(
            {"detail": f"request body larger than {self.max_bytes} bytes (limits.max_body_bytes)"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    return await self._reject(send)
        seen = 0
        started = False

        async def limited_receive() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge(413, f"request body larger than {self.max_bytes} bytes (limits.max_body_bytes)")
            return message

        async def tracking_send(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(send)
