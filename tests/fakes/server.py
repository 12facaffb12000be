"""Run an ASGI app under uvicorn on 127.0.0.1 in a background thread, and the common fake plumbing.

    with FakeServer(app) as server:
        httpx.get(server.url + "/health")

Each fake service (Last.fm, iTunes, Home Assistant) subclasses `FakeService`, which owns a
`FakeServer`, records every request and serves scripted faults before normal answers.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Self

import uvicorn
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp


class FakeServer:
    """uvicorn serving `app` on an ephemeral loopback port from a daemon thread."""

    def __init__(self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self._port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("the server is not running")
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. http://127.0.0.1:41234."""
        return f"http://{self.host}:{self.port}"

    def start(self, *, timeout: float = 10.0) -> Self:
        """Bind, start serving, and return once uvicorn accepts connections."""
        if self._server is not None:
            return self
        # Binding here (not in uvicorn) gives the port before the thread starts, without races.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._port))
        sock.listen(512)
        sock.setblocking(False)
        self._socket = sock
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            loop="asyncio",
            timeout_graceful_shutdown=1,
            timeout_keep_alive=30,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"fake-server-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake server did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread to finish."""
        if self._server is None:
            return
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@dataclass(slots=True)
class RecordedRequest:
    """One request as the fake saw it; `at` is `time.monotonic()` on arrival, `status` its answer."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float
    status: int | None = None

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True, slots=True)
class Fault:
    """A scripted answer served instead of the normal one; `delay` seconds before answering."""

    status: int
    body: bytes | str = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0

    def response(self) -> Response:
        body = self.body.encode() if isinstance(self.body, str) else self.body
        response = Response(body, status_code=self.status, headers=self.headers)
        if self.content_type:
            response.headers["content-type"] = self.content_type
        elif "content-type" in response.headers:
            del response.headers["content-type"]
        return response


class FakeService:
    """Plumbing shared by the fakes: a server, a request log and a queue of faults."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: deque[Fault] = deque()
        self.requests: list[RecordedRequest] = []
        self._server: FakeServer | None = None

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def app(self) -> ASGIApp:
        raise NotImplementedError

    def start(self) -> Self:
        """Start serving on 127.0.0.1 (ephemeral port)."""
        if self._server is None:
            self._server = FakeServer(self.app).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The server's base URL, without a trailing slash."""
        if self._server is None:
            raise RuntimeError("start the fake first (use it as a context manager)")
        return self._server.url

    # -- faults and records ---------------------------------------------------------------
    def inject(self, *faults: Fault, times: int = 1) -> None:
        """Queue `faults` (in order, repeated `times` times) for the next requests."""
        with self._lock:
            for _ in range(times):
                self._faults.extend(faults)

    def clear_faults(self) -> None:
        """Drop every fault not yet served."""
        with self._lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def reset(self) -> None:
        """Forget requests and faults; subclasses also restore their options."""
        with self._lock:
            self._faults.clear()
            self.requests.clear()

    def arrival_times(self, path: str | None = None) -> list[float]:
        """Arrival times (monotonic seconds) of recorded requests, optionally for one path."""
        return [r.at for r in self.requests if path is None or r.path == path]

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    async def _record(self, request: Request) -> RecordedRequest:
        at = time.monotonic()
        body = await request.body()
        record = RecordedRequest(
            method=request.method,
            path=request.url.path,
            query=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            at=at,
        )
        with self._lock:
            self.requests.append(record)
        return record

    async def _dispatch(
        self,
        request: Request,
        handler: Callable[[Request], Awaitable[Response]],
        *,
        faults: bool = True,
    ) -> Response:
        """Record the request, then answer with the next fault (if `faults`) or the handler."""
        record = await self._record(request)
        response = await self._serve_fault() if faults else None
        if response is None:
            response = await handler(request)
        record.status = response.status_code
        return response

    async def _serve_fault(self) -> Response | None:
        fault = self._next_fault()
        if fault is None:
            return None
        if fault.delay:
            await asyncio.sleep(fault.delay)
        return fault.response()


def max_in_window(times: Iterable[float], window: float) -> int:
    """The most events that fall in any half-open window [t, t + window)."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best
