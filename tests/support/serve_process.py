"""`haunt-fm serve` as a user starts it: a child process on a free port, environment given."""

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

import httpx

EXE = str(Path(sys.executable).parent / "haunt-fm")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_process(log_path: Path, *, start_within: float = 180.0, **settings: str) -> Iterator[str]:
    """Run `haunt-fm serve` with HAUNTFM_* `settings` only (nothing from the shell), logging to
    `log_path`; yields its URL once /health answers (its embedded database may take a while on a
    busy machine), stops it with SIGTERM afterwards."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAUNTFM_")}
    env.update({f"HAUNTFM_{name.upper()}": value for name, value in settings.items()})
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([EXE, "serve", "--port", str(port)], env=env, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + start_within
            while True:
                try:
                    if httpx.get(url + "/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, f"serve was not healthy within {start_within:g} s"
                time.sleep(0.1)
            yield url
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
