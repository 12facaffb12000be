"""Run an ASGI app under uvicorn on 127.0.0.1 in a background thread (real HTTP)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import uvicorn


class LiveServer:
    """`with LiveServer(app) as server: server.url` — uvicorn on a free port, own event loop."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", lifespan: str = "on") -> None:
        # Keep-alive well past httpx's 5 s pool expiry: with both at 5 s, a busy machine lets the
        # client reuse a connection the server is closing that moment (httpx.ReadError).
        self.config = uvicorn.Config(
            app, host=host, port=0, log_level="warning", lifespan=lifespan, timeout_keep_alive=30
        )
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.url = ""
        self.loop: asyncio.AbstractEventLoop | None = None

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.serve())

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the server thread died during startup")
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start within 30 s")
            time.sleep(0.01)
        sock = self.server.servers[0].sockets[0]
        host, port = sock.getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
