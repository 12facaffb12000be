"""The command line as a user runs it: `haunt-fm --help`, `db upgrade`, `serve` on the embedded database."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.env import clean_environ
from tests.support.waiting import eventually

EXE = str(Path(sys.executable).parent / "haunt-fm")


def _env(**extra: str) -> dict[str, str]:
    env = clean_environ()
    env.update({"HAUNTFM_EMBEDDING_WORKER_ENABLED": "false", "HAUNTFM_PREVIEW_WORKER_ENABLED": "false"})
    env.update(extra)
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited early: {proc.stderr.read() if proc.stderr else ''}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("serve did not become healthy")


@pytest.mark.parametrize("args", [[], ["serve"], ["worker"], ["db"], ["db", "upgrade"]])
def test_help_everywhere(args: list[str]) -> None:
    out = subprocess.run([EXE, *args, "--help"], capture_output=True, text=True, env=_env(), timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Usage" in out.stdout


def test_db_upgrade_against_an_external_database(pg_url: str) -> None:
    out = subprocess.run(
        [EXE, "db", "upgrade"],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(HAUNTFM_DATABASE_URL=pg_url),
    )
    assert out.returncode == 0, out.stderr
    assert "up to date" in out.stdout


def test_bad_database_url_is_a_clear_error_without_the_password() -> None:
    out = subprocess.run(
        [EXE, "db", "upgrade"],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(HAUNTFM_DATABASE_URL="mysql://root:hunter2@localhost/x"),
    )
    assert out.returncode != 0
    assert "hunter2" not in out.stdout + out.stderr
    assert out.stderr.startswith("error: HAUNTFM_DATABASE_URL must be a postgresql:// URL")


def test_unreachable_database_is_a_clear_error_without_the_password() -> None:
    out = subprocess.run(
        [EXE, "db", "upgrade"],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(HAUNTFM_DATABASE_URL="postgresql://root:hunter2@127.0.0.1:1/x"),
    )
    assert out.returncode == 1
    assert "hunter2" not in out.stdout + out.stderr
    assert "cannot reach PostgreSQL at postgresql://root:***@127.0.0.1:1/x" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_serve_on_the_embedded_database_second_serve_refused_sigterm_stops_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = _free_port()
    env = _env(HAUNTFM_DATA_DIR=str(data))
    proc = subprocess.Popen(
        [EXE, "serve", "--port", str(port)],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, proc)
        r = httpx.post(url + "/api/history/webhook", json={"title": "Song", "artist": "Artist"}, timeout=10)
        assert r.status_code == 201

        # A second serve on the same data directory says why and harms nothing.
        second = subprocess.run(
            [EXE, "serve", "--port", str(_free_port())], env=env, capture_output=True, text=True, timeout=60
        )
        assert second.returncode != 0
        assert "already using the data directory" in second.stderr
        assert httpx.get(url + "/health", timeout=5).json() == {"status": "ok", "database": "ok"}

        # A worker on the same machine attaches to the running server.
        worker = subprocess.Popen(
            [EXE, "worker"],
            env={**env, "HAUNTFM_CLAP_MODEL": str(tmp_path / "none")},
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        try:

            def reported() -> list[Any]:
                assert worker.poll() is None, worker.communicate()[1]
                return httpx.get(url + "/api/status", timeout=5).json()["worker"]["workers"]

            eventually(reported, what="the attached worker to report")
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)

        # `db upgrade` on the same machine attaches to the running server.
        up = subprocess.run([EXE, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=120)
        assert up.returncode == 0, up.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.returncode == 0
    assert not (data / "pg" / "postmaster.pid").exists(), "PostgreSQL was left running"

    # Data survives a restart.
    proc = subprocess.Popen(
        [EXE, "serve", "--port", str(port)],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", proc)
        events = httpx.get(f"http://127.0.0.1:{port}/api/history/recent", timeout=10).json()["events"]
        assert [e["title"] for e in events] == ["Song"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    assert not (data / "pg" / "postmaster.pid").exists()


def test_worker_without_a_running_database_says_what_to_do(tmp_path: Path) -> None:
    out = subprocess.run(
        [EXE, "worker"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(HAUNTFM_DATA_DIR=str(tmp_path / "data")),
    )
    assert out.returncode == 1
    assert "Start `haunt-fm serve` on this machine first" in out.stderr
    assert "HAUNTFM_DATABASE_URL" in out.stderr
    assert not (tmp_path / "data" / "pg" / "PG_VERSION").exists()


def test_settings_never_show_secrets() -> None:
    from haunt_fm.config import Settings

    s = Settings(
        _env_file=None,
        api_token="tok-123",
        lastfm_api_key="key-456",
        ha_token="ha-789",  # type: ignore[call-arg]
        database_url="postgresql://u:pw-000@h/db",
    )
    text = repr(s) + str(s) + s.model_dump_json()
    for secret in ("tok-123", "key-456", "ha-789", "pw-000"):
        assert secret not in text


@pytest.mark.parametrize(
    "args",
    [
        ["serve"],
        ["worker"],
        ["db", "upgrade"],
        ["discover"],
        ["playlist", "--tracks", "3", "--vibe", "chill"],
    ],
)
def test_the_retired_text_model_setting_stops_every_command(args: list[str], tmp_path: Path) -> None:
    out = subprocess.run(
        [EXE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(
            HAUNTFM_CLAP_TEXT_MODEL="laion/larger_clap_general",
            HAUNTFM_DATA_DIR=str(tmp_path / "data"),
            HAUNTFM_LASTFM_API_KEY="k",
        ),
    )
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: HAUNTFM_CLAP_TEXT_MODEL is retired")
    assert "HAUNTFM_CLAP_MODEL" in lines[0] and "laion/larger_clap_general" in lines[0]
    # It stopped before anything started: no database was created.
    assert not (tmp_path / "data").exists()


def test_a_blank_text_model_setting_is_no_setting(tmp_path: Path) -> None:
    out = subprocess.run(
        [EXE, "worker"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(HAUNTFM_CLAP_TEXT_MODEL="  ", HAUNTFM_DATA_DIR=str(tmp_path / "data")),
    )
    assert out.returncode == 1 and "retired" not in out.stderr
    assert "Start `haunt-fm serve` on this machine first" in out.stderr
