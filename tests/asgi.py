"""Call an ASGI app in-process, without a network or an HTTP client: one request, the whole answer."""

from __future__ import annotations

from typing import Any


async def call(app: Any, body: bytes, *, path: str = "/validate", method: str = "POST", query: bytes = b"",
               chunk: int = 1 << 20) -> tuple[int, bytes]:
    """Send ``body`` (in chunks of ``chunk`` bytes) and return the status and the response body."""
    parts = [body[i:i + chunk] for i in range(0, len(body), chunk)] or [b""]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "https",
             "path": path, "raw_path": path.encode(), "query_string": query, "root_path": "",
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 12345), "server": ("127.0.0.1", 8443)}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if parts:
            piece = parts.pop(0)
            return {"type": "http.request", "body": piece, "more_body": bool(parts)}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
