"""A haunt-fm process whose CLAP model comes from the Hugging Face hub stand-in (`tests/fakes/hf_hub.py`).

huggingface_hub reads `HF_ENDPOINT` and `HF_HOME` once, when it is imported, so a download
from the stand-in runs in a child process started with them: `haunt-fm worker` (or `serve`),
exactly as a user starts it, with nothing from the caller's HAUNTFM_* or HF_* variables.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import httpx

from tests.fakes.hf_hub import FakeHub
from tests.support.env import clean_environ
from tests.support.serve_process import EXE, free_port

REPO = "haunt-fm/tiny-clap"
# huggingface_hub reads a download in 10 MiB pieces and reports each when it is written: the
# stand-in's weights carry this much extra (an unused tensor) so that a download held two thirds
# of the way has reported bytes, as the real model's ~800 MB do every 10 MiB.
PADDING_BYTES = 24 * 1024 * 1024
# Liveness bounds for a busy two-core machine (a process importing torch), not speed checks.
START_WITHIN = 180.0


def hub_model(tiny_clap_dir: Path, dest: Path) -> Path:
    """A copy of the tiny model whose weights file holds an extra `PADDING_BYTES` tensor that no
    parameter uses (loading reports it as unexpected and ignores it)."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(tiny_clap_dir, dest)
    weights = dest / "model.safetensors"
    tensors = load_file(weights)
    tensors["haunt_fm_padding"] = torch.zeros(PADDING_BYTES // 4, dtype=torch.float32)
    save_file(tensors, weights, metadata={"format": "pt"})
    return dest


def hub_env(hub: FakeHub, root: Path, **settings: str) -> dict[str, str]:
    """The environment of a haunt-fm process that loads `REPO` from `hub`, with its Hugging Face
    cache in `root/hf` (HF_HOME) and its data in `root/data`; `settings` are HAUNTFM_* values."""
    env = {k: v for k, v in clean_environ().items() if not k.startswith("HF_")}
    return env | {
        "HF_ENDPOINT": hub.url,
        "HF_HOME": str(root / "hf"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        # A held download is a stalled connection: don't let the client time out and resume meanwhile.
        "HF_HUB_DOWNLOAD_TIMEOUT": "600",
        "HAUNTFM_DATA_DIR": str(root / "data"),
        "HAUNTFM_CLAP_MODEL": REPO,
        "HAUNTFM_EMBEDDING_RUNTIME": "torch",
        "HAUNTFM_TORCH_THREADS": "1",
        "HAUNTFM_LOG_LEVEL": "INFO",
        **{f"HAUNTFM_{k.upper()}": v for k, v in settings.items()},
    }


def hub_cache(root: Path) -> Path:
    """Where the standard Hugging Face cache (HF_HOME=root/hf) keeps `REPO`."""
    return root / "hf" / "hub" / ("models--" + REPO.replace("/", "--"))


class HubProcess:
    """`haunt-fm worker` or `haunt-fm serve` with `hub_env`; its output goes to a log file."""

    def __init__(self, command: str, env: dict[str, str], root: Path) -> None:
        self.command = command
        self.env = env
        self.root = root
        self.port = free_port() if command == "serve" else None
        self.url = f"http://127.0.0.1:{self.port}" if self.port else ""
        self.log_path = root / f"{command}.log"
        self.proc: subprocess.Popen[str] | None = None
        self._log: IO[str] | None = None

    def start(self) -> HubProcess:
        self.root.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "a")
        args = [EXE, self.command, *(["--port", str(self.port)] if self.port else [])]
        self.proc = subprocess.Popen(
            args, env=self.env, cwd=self.root, stdout=self._log, stderr=subprocess.STDOUT, text=True
        )
        return self

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, *, timeout: float = 60) -> int | None:
        """Send `sig` and wait up to `timeout` s; raises subprocess.TimeoutExpired if it is still running."""
        if self.proc is None:
            return None
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(sig)
                self.proc.wait(timeout=timeout)
            return self.proc.returncode
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=30)
            if self._log is not None:
                self._log.close()
                self._log = None


async def wait_for_status(
    url: str, check: Callable[[dict[str, Any]], bool], *, within: float = START_WITHIN, process: HubProcess
) -> dict[str, Any]:
    """Poll `url`/api/status until `check(status)`; fail with the process's log when it never holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    status: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        while loop.time() < deadline:
            if not process.alive():
                raise AssertionError(f"{process.command} exited:\n{process.log()[-3000:]}")
            try:
                response = await client.get("/api/status")
            except httpx.TransportError:
                response = None  # serve still starting
            if response is not None and response.status_code == 200:
                status = response.json()
                if check(status):
                    return status
            await asyncio.sleep(0.2)
    raise AssertionError(f"status never matched; last: {status.get('worker')}\n{process.log()[-3000:]}")


def downloading(status: dict[str, Any]) -> bool:
    """The worker is loading and the hub has reported bytes."""
    worker = status["worker"]
    return worker["state"] == "loading" and bool(worker["download"]) and worker["download"]["done"] > 0
