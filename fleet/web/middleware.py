"""Two small ASGI middlewares (plain ASGI: no per-request task or body copy).

- :class:`BodyLimit`: a request body over ``max_body`` bytes is refused with 413 before
  the app reads it (by its ``Content-Length``, or while it streams in without one);
- :class:`SecurityHeaders`: every response says what the browser may do with it — a
  Content-Security-Policy allowing only our own scripts, styles (and inline styles, which
  the charts' SVG uses) and images, no framing, no referrer, no MIME sniffing; and pages
  and API answers are not cached (``no-store``), static files are.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["BodyLimit", "SecurityHeaders"]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'; connect-src 'self'"
)

Scope = dict[str, Any]


async def _refuse(scope: Scope, send: Any, limit: int) -> None:
    api = scope.get("path", "").startswith("/api/")
    detail = f"the request body is over {limit} bytes"
    if api:
        body = json.dumps(
            {
                "type": "/api/problems/too-large",
                "title": "Content Too Large",
                "status": 413,
                "detail": detail,
                "instance": scope.get("path", ""),
            }
        ).encode()
        ctype = b"application/problem+json"
    else:
        body = f"413 Content Too Large: {detail}".encode()
        ctype = b"text/plain; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close")],
        }
    )  # fmt: skip
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    def __init__(self, app: Any, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_body
                except ValueError:
                    too_big = True
                if too_big:
                    await _refuse(scope, send, self.max_body)
                    return
        seen = 0
        started = refused = False

        async def limited_receive() -> Any:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    refused = True
                    if not started:
                        await _refuse(scope, send, self.max_body)
                    return {"type": "http.disconnect"}  # the app stops reading
            return message

        async def watching_send(message: Any) -> None:
            nonlocal started
            if refused:
                return  # we answered 413 already; whatever the app says is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, limited_receive, watching_send)


class SecurityHeaders:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope.get("path", "").startswith("/static/")

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                ]
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
