"""`haunt-fm serve` as a real process, as a user starts it: a child process on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import httpx

EXE = str(Path(sys.executable).parent / "haunt-fm")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServeProcess:
    """One `haunt-fm serve` (background workers off unless `workers`); its output goes to a file."""

    def __init__(
        self,
        workdir: Path,
        *,
        data_dir: Path | None = None,
        log_path: Path | None = None,
        workers: bool = False,
        **env: str,
    ) -> None:
        self.workdir = workdir
        self.data_dir = data_dir or workdir / "data"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        off = (
            {}
            if workers
            else {"HAUNTFM_EMBEDDING_WORKER_ENABLED": "false", "HAUNTFM_PREVIEW_WORKER_ENABLED": "false"}
        )
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HAUNTFM_")} | {
            "HAUNTFM_DATA_DIR": str(self.data_dir),
            **off,
            **env,
        }
        self.proc: subprocess.Popen[str] | None = None
        self.log_path = log_path or workdir / f"serve-{self.port}.log"
        self._log: IO[str] | None = None

    def start(self, *, wait: bool = True, timeout: float = 90) -> ServeProcess:
        self._log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [EXE, "serve", "--port", str(self.port)],
            env=self.env,
            cwd=self.workdir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if wait:
            self.wait_healthy(timeout=timeout)
        return self

    def wait_healthy(self, *, timeout: float = 90) -> float:
        """Seconds until /health answered 200."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited ({self.proc.returncode}):\n{self.log()[-3000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"serve did not become healthy:\n{self.log()[-3000:]}")

    def postmaster_pid(self) -> int:
        return int((self.data_dir / "pg" / "postmaster.pid").read_text().splitlines()[0])

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(timeout=60)

    def stop(self) -> int | None:
        """SIGTERM and wait; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.proc.returncode

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
        stop_leftover_postgres(self.data_dir)


def stop_leftover_postgres(data_dir: Path) -> None:
    """Stop a postmaster a killed serve left behind (tests must not leak servers)."""
    pidfile = data_dir / "pg" / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().splitlines()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return
    if b"postgres" in cmdline and str(data_dir).encode() in cmdline:
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not Path(f"/proc/{pid}").exists():
                return
            time.sleep(0.1)


@contextmanager
def serve_process(log_path: Path, *, start_within: float = 180.0, **settings: str) -> Iterator[str]:
    """Run `haunt-fm serve` with HAUNTFM_* `settings` only (nothing from the shell, the
    background workers as configured), logging to `log_path`; yields its URL once /health
    answers (its embedded database may take a while on a busy machine), stops it afterwards."""
    env = {f"HAUNTFM_{name.upper()}": value for name, value in settings.items()}
    data_dir = Path(settings["data_dir"]) if "data_dir" in settings else None
    serve = ServeProcess(log_path.parent, data_dir=data_dir, log_path=log_path, workers=True, **env)
    try:
        serve.start(timeout=start_within)
        yield serve.url
    finally:
        serve.stop()
        stop_leftover_postgres(serve.data_dir)
