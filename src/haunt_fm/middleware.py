"""Pure-ASGI middleware: bearer-token access and a guard on what requests may carry."""

from __future__ import annotations

import hmac
import json
import re
from typing import Any
from urllib.parse import parse_qs, unquote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 64 * 1024


async def _send_json(
    send: Send, status: int, body: dict[str, Any], headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _guarded(path: str) -> bool:
    """The paths the token guards: the API and the MCP endpoint."""
    return path.startswith("/api/") or path == "/mcp" or path.startswith("/mcp/")


def _query_token(query: bytes) -> bytes:
    """`?token=<token>` on /mcp: for MCP clients that take only a URL (Home Assistant's
    integration authenticates with OAuth or not at all, so it cannot send the header)."""
    # latin-1 both ways: every byte survives, whatever a client percent-encodes.
    values = parse_qs(query.decode("latin-1"), encoding="latin-1").get("token", [])
    return values[0].encode("latin-1") if len(values) == 1 else b""


class TokenAuthMiddleware:
    """When a token is configured, every /api/* and /mcp call needs `Authorization: Bearer <token>`.

    /mcp also takes it as `?token=<token>` (see `_query_token`).
    """

    def __init__(self, app: ASGIApp, *, token: str | None) -> None:
        self.app = app
        self.token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token is None or scope["type"] != "http" or not _guarded(scope["path"]):
            await self.app(scope, receive, send)
            return
        supplied = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, credential = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    supplied = credential.strip()
                break
        if not supplied and scope["path"] == "/mcp":
            supplied = _query_token(scope.get("query_string", b""))
        if not hmac.compare_digest(supplied, self.token):
            await _send_json(
                send,
                401,
                {
                    "detail": "This haunt-fm needs an API token: send 'Authorization: Bearer <token>'.",
                    "error": "unauthorized",
                },
                ((b"www-authenticate", b"Bearer"),),
            )
            return
        await self.app(scope, receive, send)


# Text PostgreSQL cannot store: NUL, and UTF-16 surrogate halves that pair with nothing.
# In JSON they arrive as escapes; in a URL, percent-encoded.
_BAD_JSON_ESCAPE = re.compile(
    rb"\\u0000"
    rb"|\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
    rb"|\x00"
)
_BAD_URL_TEXT = re.compile(r"[\x00\ud800-\udfff]")
_UNSTORABLE = (
    "The request contains a NUL character or an unpaired UTF-16 surrogate (\\u0000, \\ud800 ...), "
    "which cannot be stored; remove it."
)


class RequestGuardMiddleware:
    """Checks every request before the app sees it.

    - Bodies over `max_bytes` (declared or streamed) answer 413.
    - Text that PostgreSQL cannot store (NUL, lone surrogates) in the path, the query or a
      body answers 422 here, once, instead of a database error deep in some handler.
    - Empty query parameters (`?profile=&limit=`) read as omitted, as API.md writes them.
    - `streamed` paths (uploads: path -> their own size cap) are handed on unread: their
      endpoint streams the body and enforces the cap, and checks what it stores itself.
    """

    def __init__(
        self, app: ASGIApp, *, max_bytes: int = MAX_BODY_BYTES, streamed: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.streamed = dict(streamed or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        stream_cap = self.streamed.get(scope.get("path", "")) if scope.get("method") == "POST" else None
        cap = self.max_bytes if stream_cap is None else stream_cap
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > cap:
                    detail = (
                        self._too_large() if stream_cap is None else f"The upload is larger than {cap} bytes."
                    )
                    await _send_json(send, 413, {"detail": detail, "error": "payload_too_large"})
                    return
        query = scope.get("query_string", b"")
        if query:
            parts = query.split(b"&")
            try:
                texts = [unquote(p.decode("ascii"), errors="strict") for p in parts]
            except UnicodeError:
                await _send_json(
                    send, 422, {"detail": "The query string is not valid UTF-8.", "error": "invalid"}
                )
                return
            if any(_BAD_URL_TEXT.search(t) for t in texts):
                await _send_json(send, 422, {"detail": _UNSTORABLE, "error": "invalid"})
                return
            kept = [p for p in parts if p and not p.endswith(b"=")]
            if len(kept) != len(parts):
                scope = {**scope, "query_string": b"&".join(kept)}
        if _BAD_URL_TEXT.search(scope.get("path", "")):
            await _send_json(send, 422, {"detail": _UNSTORABLE, "error": "invalid"})
            return
        if scope.get("method") not in ("POST", "PUT", "PATCH", "DELETE") or stream_cap is not None:
            await self.app(scope, receive, send)
            return

        # Bodies are small (<= 64 KiB): read it whole, check it, then hand it on.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _send_json(send, 413, {"detail": self._too_large(), "error": "payload_too_large"})
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if _BAD_JSON_ESCAPE.search(body):
            await _send_json(send, 422, {"detail": _UNSTORABLE, "error": "invalid"})
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _too_large(self) -> str:
        return f"The request body is larger than {self.max_bytes // 1024} KiB."


class DatabaseAwayMiddleware:
    """While the database is known to be away (restarting), /health and /api/* answer 503 at once.

    `app.state.db_away` holds the sentence while it is away (set by the database supervisor).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            owner = scope.get("app")
            away = getattr(getattr(owner, "state", None), "db_away", None)
            path = scope.get("path", "")
            if away and (path == "/health" or path.startswith("/api/")):
                body = (
                    {"status": "error", "database": away}
                    if path == "/health"
                    else {"detail": away, "error": "database_unavailable"}
                )
                await _send_json(send, 503, body, ((b"retry-after", b"5"),))
                return
        await self.app(scope, receive, send)
