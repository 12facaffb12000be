"""A real Home Assistant core for tests: built once per machine, configured per test.

venv = ensure_built()                     # minutes the first time, then cached
with RealHomeAssistant(venv, tmp_path / "ha") as ha:
    ha.install_package(webhook_url=..., authorization="Bearer ...")   # as the README says
    ha.start()
    await ha.set_state("media_player.study_speaker_2", "playing", {...})
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PACKAGE = REPO / "deploy" / "homeassistant" / "haunt_fm.yaml"
VERSION = "2024.3.3"
BUILD_TIMEOUT_S = 30 * 60


class PeerError(RuntimeError):
    """The core could not be built or started; the message carries the end of its log."""


def cache_dir() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "haunt-fm" / f"ha-peer-{VERSION}"


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def ensure_built(venv: Path | None = None) -> Path:
    """The core's virtual environment, built with setup.sh unless a complete one is there."""
    venv = venv or cache_dir() / "venv"
    venv.parent.mkdir(parents=True, exist_ok=True)
    log = venv.parent / "build.log"
    # One build at a time on this machine; a second test process waits for it.
    with open(venv.parent / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / ".complete").exists() and (venv / "bin" / "hass").exists():
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        # The core runs on the same Python minor version as haunt-fm (3.11).
        python = getattr(sys, "_base_executable", sys.executable)
        env = {**os.environ, "PYTHON": python, "PIP_CACHE_DIR": str(venv.parent / "pip-cache")}
        started = time.monotonic()
        with open(log, "w", encoding="utf-8") as out:
            try:
                result = subprocess.run(
                    ["bash", str(HERE / "setup.sh"), str(venv)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    timeout=BUILD_TIMEOUT_S,
                )
            except subprocess.TimeoutExpired:
                raise PeerError(
                    f"building Home Assistant took over {BUILD_TIMEOUT_S} s:\n{_tail(log)}"
                ) from None
        if result.returncode != 0:
            raise PeerError(f"building Home Assistant failed (exit {result.returncode}):\n{_tail(log)}")
        with open(log, "a", encoding="utf-8") as out:
            out.write(f"built in {time.monotonic() - started:.0f} s\n")
    return venv


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RealHomeAssistant:
    """One core with its own configuration directory and port."""

    def __init__(self, venv: Path, root: Path) -> None:
        self.venv = venv
        self.config = root / "config"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._prepare()

    def _prepare(self) -> None:
        self.config.mkdir(parents=True, exist_ok=True)
        template = (HERE / "configuration.yaml").read_text(encoding="utf-8")
        (self.config / "configuration.yaml").write_text(template.replace("{port}", str(self.port)), "utf-8")
        for name in ("automations.yaml", "scripts.yaml", "secrets.yaml"):
            (self.config / name).touch()
        subprocess.run(
            [str(self.venv / "bin" / "python"), str(HERE / "make_token.py"), str(self.config)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        self.token = (self.config / "TOKEN").read_text(encoding="utf-8").strip()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def install_package(self, *, webhook_url: str, authorization: str) -> None:
        """What the README tells a user: copy the package, add `packages:` under the existing
        `homeassistant:` key (never a second block), and add the two secrets."""
        shutil.copy(PACKAGE, self.config / "haunt_fm.yaml")
        path = self.config / "configuration.yaml"
        lines = path.read_text(encoding="utf-8").splitlines()
        at = lines.index("homeassistant:") + 1
        lines[at:at] = ["  packages:", "    haunt_fm: !include haunt_fm.yaml"]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        with open(self.config / "secrets.yaml", "a", encoding="utf-8") as secrets:
            secrets.write(
                f'haunt_fm_webhook_url: "{webhook_url}"\nhaunt_fm_authorization: "{authorization}"\n'
            )

    def start(self, *, timeout: float = 180) -> None:
        log = open(self.config / "hass.out", "wb")  # kept open for the process's life
        self._proc = subprocess.Popen(
            [str(self.venv / "bin" / "hass"), "-c", str(self.config), "--skip-pip"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise PeerError(f"Home Assistant exited at start:\n{_tail(self.config / 'hass.out')}")
            with contextlib.suppress(httpx.HTTPError):
                answer = httpx.get(f"{self.url}/api/", headers=self.headers, timeout=2)
                if answer.status_code == 200 and self._automation_loaded():
                    return
            time.sleep(0.5)
        raise PeerError(f"Home Assistant did not answer within {timeout:.0f} s:\n{_tail(self.log_path)}")

    def _automation_loaded(self) -> bool:
        states = httpx.get(f"{self.url}/api/states", headers=self.headers, timeout=5).json()
        return any(s["entity_id"].startswith("automation.") for s in states)

    @property
    def log_path(self) -> Path:
        return self.config / "home-assistant.log"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        self._proc = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def set_state(self, entity_id: str, state: str, attributes: dict[str, Any]) -> datetime:
        """POST /api/states/<entity_id> as a player integration would; returns its last_updated."""
        async with httpx.AsyncClient(base_url=self.url, headers=self.headers, timeout=10) as http:
            answer = await http.post(
                f"/api/states/{entity_id}", json={"state": state, "attributes": attributes}
            )
        answer.raise_for_status()
        return datetime.fromisoformat(answer.json()["last_updated"]).astimezone(UTC)

    async def get(self, path: str, **params: Any) -> Any:
        async with httpx.AsyncClient(base_url=self.url, headers=self.headers, timeout=10) as http:
            answer = await http.get(path, params=params)
        answer.raise_for_status()
        return answer.json()
