"""deploy/: the compose file, the Dockerfile and the container entrypoint.

No Docker engine runs in CI, so the image is not built here (`make image-check` builds it
with buildah and runs it under chroot); what the image runs is run here instead: the
entrypoint script with the Dockerfile's own CMD, against a fresh database, and
`alembic upgrade head` as `docker exec haunt-fm alembic upgrade head` does.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from haunt_fm.db.session import to_async_url
from tests.support.env import clean_environ

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
VENV_BIN = Path(sys.executable).parent


def _compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text(encoding="utf-8"))


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    out = []
    for line in lines:
        instruction, _, args = line.partition(" ")
        out.append((instruction.upper(), args.strip()))
    return out


def _instructions(name: str) -> list[str]:
    return [args for instruction, args in _dockerfile() if instruction == name]


def _exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def _env() -> dict[str, str]:
    env: dict[str, str] = {}
    for args in _instructions("ENV"):
        for item in shlex.split(args):
            key, _, value = item.partition("=")
            env[key] = value
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _container_port() -> int:
    (mapping,) = _compose()["services"]["haunt-fm"]["ports"]
    _host, container = str(mapping).split(":")
    return int(container)


# -- docker-compose.yml ----------------------------------------------------------------------


def test_compose_names_both_services() -> None:
    services = _compose()["services"]
    assert set(services) == {"haunt-fm", "haunt-fm-db"}
    assert services["haunt-fm"]["container_name"] == "haunt-fm"
    assert services["haunt-fm-db"]["container_name"] == "haunt-fm-db"
    assert services["haunt-fm-db"]["image"] == "pgvector/pgvector:pg17"


def test_compose_app_is_published_on_8321_and_builds_the_dockerfile() -> None:
    app = _compose()["services"]["haunt-fm"]
    assert app["ports"] == ["8321:8000"]
    assert (DEPLOY / app["build"]["context"]).resolve() == REPO
    assert (DEPLOY / app["build"]["context"] / app["build"]["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    assert [(DEPLOY / f).resolve() for f in app["env_file"]] == [REPO / ".env"]
    assert app["depends_on"] == {"haunt-fm-db": {"condition": "service_healthy"}}
    # The two caches outlive the container, at the paths the image configures.
    targets = {v.split(":")[1] for v in app["volumes"]}
    assert targets == {_env()["HAUNTFM_MODEL_CACHE_DIR"], _env()["HAUNTFM_AUDIO_CACHE_DIR"]}


def test_compose_database_url_points_at_the_db_service_with_its_credentials() -> None:
    compose = _compose()
    url = compose["services"]["haunt-fm"]["environment"]["HAUNTFM_DATABASE_URL"]
    db_env = compose["services"]["haunt-fm-db"]["environment"]
    match = re.fullmatch(r"postgresql://([^:]+):(.+)@haunt-fm-db:5432/(\w+)", url)
    assert match, url
    assert match.group(1) == db_env["POSTGRES_USER"]
    assert match.group(2) == db_env["POSTGRES_PASSWORD"]
    assert match.group(3) == db_env["POSTGRES_DB"]


def test_compose_database_is_internal_and_healthchecked() -> None:
    compose = _compose()
    db = compose["services"]["haunt-fm-db"]
    assert "ports" not in db
    assert "network_mode" not in db
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    volume = db["volumes"][0].split(":")[0]
    assert volume in compose["volumes"], "the database lives in a named volume"


# -- Dockerfile ------------------------------------------------------------------------------


def _args() -> dict[str, str]:
    """ARG name -> default, in the order declared (the first ones before FROM)."""
    return dict(arg.partition("=")[::2] for arg in _instructions("ARG"))


def test_dockerfile_base_torch_user_and_volumes() -> None:
    # The base is a build argument (the image check builds FROM a local Debian) whose default
    # is the published one; ARGs declared before FROM are visible only to FROM.
    instructions = [instruction for instruction, _ in _dockerfile()]
    assert instructions[:2] == ["ARG", "FROM"]
    (base,) = _instructions("FROM")
    assert base == "${BASE_IMAGE}"
    assert _args()["BASE_IMAGE"] == "python:3.11-slim"
    runs = _instructions("RUN")
    torch_step = next(r for r in runs if "torch==" in r)
    assert _args()["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    assert '--index-url "${TORCH_INDEX_URL}"' in torch_step
    assert '"torch==2.13.0"' in torch_step
    package_step = next(r for r in runs if "pip install ." in r)
    assert runs.index(torch_step) < runs.index(package_step), "torch (CPU) goes in before the package"
    assert "torch.version.cuda is None" in package_step, "the build fails if a CUDA torch slipped in"
    (user,) = _instructions("USER")
    assert user not in {"root", "0"}
    assert any("useradd" in r and user in r for r in runs)
    (volumes,) = _instructions("VOLUME")
    env = _env()
    assert set(_exec_form(volumes)) == {"/data/models", "/data/audio"}
    assert env["HAUNTFM_MODEL_CACHE_DIR"] == "/data/models"
    assert env["HAUNTFM_AUDIO_CACHE_DIR"] == "/data/audio"


def test_dockerfile_healthcheck_and_command_use_the_container_port() -> None:
    port = _container_port()
    (healthcheck,) = _instructions("HEALTHCHECK")
    assert f"http://localhost:{port}/health" in healthcheck
    (expose,) = _instructions("EXPOSE")
    assert int(expose) == port
    (cmd,) = _instructions("CMD")
    assert _exec_form(cmd) == ["haunt-fm", "serve", "--host", "0.0.0.0", "--port", str(port)]


def test_dockerfile_workdir_holds_alembic_ini_and_copies_exist() -> None:
    (workdir,) = _instructions("WORKDIR")
    copies = [shlex.split(c) for c in _instructions("COPY")]
    copied_into_workdir = {
        Path(src).name for *sources, dest in copies for src in sources if dest in {"./", ".", workdir + "/"}
    }
    assert "alembic.ini" in copied_into_workdir
    assert any(sources == ["src"] for *sources, _ in copies), "alembic.ini's script_location is src/..."
    # deploy/Dockerfile.dockerignore excludes everything else from the build context.
    allowed = {
        line[1:].strip()
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
        if line.startswith("!")
    }
    for *sources, _dest in copies:
        for src in sources:
            assert (REPO / src).exists(), src
            assert src in allowed, f"{src} is copied but excluded by Dockerfile.dockerignore"
    assert not (set(allowed) & {".env", ".venv", ".git"})
    (entrypoint,) = _instructions("ENTRYPOINT")
    (name,) = _exec_form(entrypoint)
    assert any(c == ["deploy/entrypoint.sh", f"/usr/local/bin/{name}"] for c in copies)
    assert os.access(DEPLOY / "entrypoint.sh", os.X_OK)


def test_image_check_passes_only_arguments_the_dockerfile_declares() -> None:
    """scripts/image-check.sh builds the real image (`make image-check`, not in `make test`)."""
    script = (REPO / "scripts" / "image-check.sh").read_text(encoding="utf-8")
    passed = set(re.findall(r'--build-arg "([A-Z_]+)=', script))
    assert passed == {"BASE_IMAGE", "TORCH_INDEX_URL"}
    assert passed <= set(_args())
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^image-check:.*\n\t.*scripts/image-check\.sh", makefile, re.M)
    test_target = re.search(r"^test:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert test_target and "image-check" not in test_target.group(1)


# -- what the container runs, run here -------------------------------------------------------


def _service_env(database_url: str | None, tmp_path: Path) -> dict[str, str]:
    env = clean_environ()
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["HAUNTFM_DATA_DIR"] = str(tmp_path / "data")
    env["HAUNTFM_EMBEDDING_WORKER_ENABLED"] = "false"
    env["HAUNTFM_PREVIEW_WORKER_ENABLED"] = "false"
    if database_url is not None:
        env["HAUNTFM_DATABASE_URL"] = database_url
    return env


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(to_async_url(url))
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
            return {r[0] for r in rows}
    finally:
        await engine.dispose()


async def _run(args: list[str], *, cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


async def test_entrypoint_migrates_then_serves_the_dockerfile_command(
    empty_database_url: str, tmp_path: Path
) -> None:
    port = _free_port()
    (cmd,) = _instructions("CMD")
    command = _exec_form(cmd)
    # The image's command, on a free loopback port instead of 0.0.0.0:8000.
    command[command.index("--port") + 1] = str(port)
    command[command.index("--host") + 1] = "127.0.0.1"
    proc = await asyncio.create_subprocess_exec(
        "sh",
        str(DEPLOY / "entrypoint.sh"),
        *command,
        cwd=tmp_path,
        env=_service_env(empty_database_url, tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        health = None
        deadline = time.monotonic() + 90
        async with httpx.AsyncClient(timeout=5) as http:
            while time.monotonic() < deadline and proc.returncode is None:
                try:
                    health = await http.get(f"http://127.0.0.1:{port}/health")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.2)
        assert health is not None, f"serve never answered (exit {proc.returncode})"
        assert health.status_code == 200
        assert health.json() == {"status": "ok", "database": "ok"}
        # `exec`: the server replaced the shell, so the container's stop signal reaches it.
        cmdline = (await asyncio.to_thread(Path(f"/proc/{proc.pid}/cmdline").read_bytes)).split(b"\0")
        assert any(part.endswith(b"haunt-fm") for part in cmdline), cmdline
        assert b"serve" in cmdline
        assert {"tracks", "listen_events", "profiles", "alembic_version"} <= await _tables(empty_database_url)
        proc.send_signal(signal.SIGTERM)
        stdout, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
        output = stdout.decode(errors="replace")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.communicate()
    # uvicorn shuts down cleanly, then re-raises the signal it caught (docker reports 143).
    assert proc.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
    assert "database schema is up to date" in output


async def test_entrypoint_refuses_to_start_without_a_database_url(tmp_path: Path) -> None:
    code, _out, err = await _run(
        ["sh", str(DEPLOY / "entrypoint.sh")], cwd=tmp_path, env=_service_env(None, tmp_path)
    )
    assert code == 64
    assert "HAUNTFM_DATABASE_URL" in err


async def test_alembic_upgrade_head_from_the_repository_root(empty_database_url: str, tmp_path: Path) -> None:
    """`docker exec haunt-fm alembic upgrade head`: alembic.ini in the working directory, URL from the env."""
    env = _service_env(empty_database_url, tmp_path)
    alembic = str(VENV_BIN / "alembic")
    code, _out, err = await _run([alembic, "upgrade", "head"], cwd=REPO, env=env)
    assert code == 0, err
    code, out, err = await _run([alembic, "current"], cwd=REPO, env=env)
    assert code == 0, err
    assert "(head)" in out
    assert {"tracks", "track_embeddings", "profiles"} <= await _tables(empty_database_url)
