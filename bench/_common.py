"""Shared helpers for the benchmarks: a hermetic environment, a migrated embedded database,
and a real `haunt-fm serve` on a temp data dir.

Importing this module makes the benchmark hermetic: the caller's HAUNTFM_* variables and
the project's `.env` apply neither here nor in the processes a benchmark starts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # benchmarks use the loopback stand-ins and helpers in tests/

from tests.support.env import clean_environ, make_hermetic  # noqa: E402

make_hermetic()


@contextlib.contextmanager
def temp_dir(prefix: str = "haunt-fm-bench-") -> Iterator[Path]:
    """A temporary directory the embedded PostgreSQL's own user can enter when we run as root
    (haunt-fm never widens permissions of directories it didn't create)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        path = Path(tmp)
        if os.geteuid() == 0:
            path.chmod(0o711)
        yield path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1))))
    return ordered[k]


@contextlib.contextmanager
def migrated_database(prefix: str) -> Iterator[tuple[str, Path]]:
    """An embedded PostgreSQL in a new temporary directory, schema at head: (its URL, the directory)."""
    from haunt_fm.db.embedded import EmbeddedPostgres
    from haunt_fm.db.migrate import upgrade

    with temp_dir(prefix) as tmp:
        server = EmbeddedPostgres(tmp / "pg")
        url = server.start()
        try:
            upgrade(url)
            yield url, Path(tmp)
        finally:
            server.stop()


@contextlib.contextmanager
def running_service(
    extra_env: dict[str, str] | None = None, *, data_dir: Path | None = None
) -> Iterator[str]:
    """`haunt-fm serve` on the embedded database in a temporary data dir; yields its base URL."""
    with serve_process(extra_env, data_dir=data_dir) as (url, _proc):
        yield url


@contextlib.contextmanager
def serve_process(
    extra_env: dict[str, str] | None = None, *, data_dir: Path | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """As `running_service`, also yielding the `serve` process (for benchmarks that watch it)."""
    port = free_port()
    with temp_dir() as tmp:
        # The benchmark's own settings win over these defaults.
        defaults = {
            "HAUNTFM_DATA_DIR": str(data_dir or Path(tmp) / "data"),
            "HAUNTFM_EMBEDDING_WORKER_ENABLED": "false",
            "HAUNTFM_PREVIEW_WORKER_ENABLED": "false",
            "HAUNTFM_LOG_LEVEL": "WARNING",
        }
        env = clean_environ(**(defaults | (extra_env or {})))
        exe = Path(sys.executable).parent / "haunt-fm"
        proc = subprocess.Popen(
            [str(exe), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=open(Path(tmp) / "serve.log", "w"),
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(url + "/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("service did not start:\n" + (Path(tmp) / "serve.log").read_text())
                time.sleep(0.2)
            yield url, proc
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


class RawHttpConnection:
    """A minimal keep-alive HTTP/1.1 client for load generation.

    httpx costs more CPU per request than the service under test; on a 2-core machine the
    load generator must stay cheap or it measures itself.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: Any = None
        self.writer: Any = None

    async def connect(self) -> None:
        import asyncio

        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            await self.connect()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("server closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        payload = await self.reader.readexactly(length) if length else b""
        return status, payload

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
