"""The HTTP server `serve` runs: uvicorn (httptools) with the limits a home server needs.

uvicorn caps concurrency (`limit_concurrency`) but neither the size of a request's headers
nor how long a client may take to send them or its body: 100 connections each trickling an
unfinished 8 MiB header grew the process by ~850 MB. `GuardedHttpToolsProtocol` adds, per
connection:

- a header size cap: more than `max_header_bytes` before the headers end → 431 and close;
- a header read timeout: headers not complete `header_timeout` seconds after the connection
  opened (or the request began) → 408 and close;
- a body read timeout: no body bytes for `body_timeout` seconds while the app waits for
  them → 408 (or a close, once a response started).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from haunt_fm.config import Settings


def _reject(transport: asyncio.Transport, status: int, reason: str, message: str) -> None:
    body = json.dumps({"detail": message, "error": reason}).encode()
    transport.write(
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
        % (status, reason.replace("_", " ").title().encode(), len(body))
        + body
    )
    transport.close()


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header size cap and header/body read timeouts."""

    max_header_bytes = 16 * 1024
    header_timeout = 10.0
    body_timeout = 30.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_bytes = 0
        self._reading_headers = True
        self._reading_body = False
        self._guard: asyncio.TimerHandle | None = None
        self._arm(self.header_timeout, self._header_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._reading_headers:
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes:
                self._disarm()
                _reject(
                    self.transport,
                    431,
                    "request_header_fields_too_large",
                    f"The request headers are larger than {self.max_header_bytes // 1024} KiB.",
                )
                return
        elif self._reading_body:
            self._arm(self.body_timeout, self._body_timed_out)
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._reading_headers:  # a new request on a kept-alive connection
            self._reading_headers = True
            self._header_bytes = 0
            self._arm(self.header_timeout, self._header_timed_out)

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._disarm()
        super().on_headers_complete()
        if self.cycle is not None and self.cycle.more_body:
            self._reading_body = True
            self._arm(self.body_timeout, self._body_timed_out)

    def on_message_complete(self) -> None:
        self._reading_body = False
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Headers of a next request are counted afresh when it begins.
        self._header_bytes = 0

    # -- timers -----------------------------------------------------------------------
    def _arm(self, seconds: float, callback: Any) -> None:
        self._disarm()
        self._guard = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        guard = getattr(self, "_guard", None)
        if guard is not None:
            guard.cancel()
            self._guard = None

    def _header_timed_out(self) -> None:
        if self.transport.is_closing() or not self._reading_headers:
            return
        if self._header_bytes == 0:
            # Opened and never spoke: just close (there is no request to answer).
            self.transport.close()
            return
        _reject(
            self.transport,
            408,
            "request_timeout",
            f"The request headers did not arrive within {self.header_timeout:g} s.",
        )

    def _body_timed_out(self) -> None:
        if self.transport.is_closing() or not self._reading_body:
            return
        if self.flow is not None and self.flow.read_paused:
            # The app, not the client, is slow to take the body: wait again.
            self._arm(self.body_timeout, self._body_timed_out)
            return
        if self.cycle is not None and not self.cycle.response_started:
            _reject(
                self.transport,
                408,
                "request_timeout",
                f"The request body stalled for more than {self.body_timeout:g} s.",
            )
        else:
            self.transport.close()


def guarded_protocol(*, max_header_bytes: int, header_timeout: float, body_timeout: float) -> type:
    """A protocol class with these limits (uvicorn instantiates it per connection)."""
    return type(
        "HauntFmHttpProtocol",
        (GuardedHttpToolsProtocol,),
        {
            "max_header_bytes": max_header_bytes,
            "header_timeout": header_timeout,
            "body_timeout": body_timeout,
        },
    )


def server_config(app: Any, *, host: str, port: int, settings: Settings, log_level: str) -> uvicorn.Config:
    """The uvicorn configuration `serve` runs with (limits from HAUNTFM_HTTP_*)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        http=guarded_protocol(
            max_header_bytes=settings.http_max_header_bytes,
            header_timeout=settings.http_header_timeout_seconds,
            body_timeout=settings.http_body_timeout_seconds,
        ),
        limit_concurrency=settings.http_max_connections,
        timeout_keep_alive=5,
    )
