"""A first start explains itself: the model download in /api/status and the log, a heartbeat that
goes on meanwhile, a stop that doesn't wait for the download, the standard Hugging Face cache,
the next attempt after a failed load, and vibes that say why they can't use CLAP text yet.

The model comes from the hub stand-in (`tests/fakes/hf_hub.py`) over HTTP, downloaded by a real
`haunt-fm worker` / `serve` process; the stand-in holds the weights' body two thirds of the way
until the test releases it, so the download is seen in progress without any timing.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from haunt_fm.config import Settings
from haunt_fm.pipeline.embeddings.model import hub_cache_dir
from haunt_fm.worker.embedding import MODEL_RETRY
from tests.fakes.hf_hub import FakeHub
from tests.support.env import clean_environ
from tests.support.hub_worker import (
    REPO,
    HubProcess,
    downloading,
    hub_cache,
    hub_env,
    hub_model,
    wait_for_status,
)

# Far above any real answer: a vibe that waited for the worker would run into it and fail.
VIBE_TIMEOUT = 60.0
# "Within seconds", with room for a busy machine.
EXIT_WITHIN = 15.0


@pytest.fixture(scope="module")
def hub_model_dir(tiny_clap_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hub_model(tiny_clap_dir, tmp_path_factory.mktemp("hub") / "tiny-clap")


@pytest.fixture
def hub(hub_model_dir: Path) -> Iterator[FakeHub]:
    """The hub stand-in serving the tiny model as `REPO`, holding its weights two thirds of the way."""
    fake = FakeHub()
    fake.add_repo(REPO, hub_model_dir)
    fake.hold_after = fake.lfs_size(REPO) * 2 // 3
    with fake:
        yield fake


@pytest.fixture
def processes() -> Iterator[list[HubProcess]]:
    started: list[HubProcess] = []
    yield started
    for process in started:
        process.stop(signal.SIGKILL)


async def test_a_first_start_shows_the_download_keeps_its_heartbeat_and_uses_the_hf_cache(
    serve: Any, db: Any, hub: FakeHub, tmp_path: Path, pg_url: str, processes: list[HubProcess]
) -> None:
    url = serve(clap_model=REPO, vibe_embed_timeout_seconds=600)
    root = tmp_path / "worker"
    worker = HubProcess("worker", hub_env(hub, root, database_url=pg_url), root).start()
    processes.append(worker)

    status = await wait_for_status(url, downloading, process=worker)
    summary, (row,) = status["worker"], status["worker"]["workers"]
    total = hub.lfs_size(REPO)
    assert summary["state"] == "loading" and row["state"] == "loading"
    assert summary["download"]["total"] == total == row["download"]["total"]
    assert 0 < summary["download"]["done"] <= hub.hold_after < total
    assert summary["embedding_runtime"] is None and summary["next_retry_at"] is None

    # The heartbeat goes on while the download is held: the worker never drops out of the status.
    first = datetime.fromisoformat(row["heartbeat_at"])
    later = await wait_for_status(
        url,
        lambda s: (
            bool(s["worker"]["workers"])
            and datetime.fromisoformat(s["worker"]["workers"][0]["heartbeat_at"]) > first
        ),
        within=60,
        process=worker,
    )
    assert later["worker"]["state"] == "loading"

    # The log says how far it got, every few seconds.
    progress_line = re.compile(rf"downloading {re.escape(REPO)} \d+/\d+ MB \(\d+ %\)")
    await wait_for_status(url, lambda s: bool(progress_line.search(worker.log())), within=60, process=worker)

    # A vibe asked meanwhile answers at once, saying why CLAP text can't help yet.
    async with httpx.AsyncClient(base_url=url, timeout=VIBE_TIMEOUT) as client:
        r = await client.get("/api/recommendations", params={"vibe": "chill ambient", "alpha": 0})
    assert r.status_code == 409, r.text
    detail = r.json()["detail"]
    mb = total // 1_000_000
    assert re.search(
        rf"the embedding worker is still loading {REPO} \(downloading it: \d+ of {mb} MB", detail
    ), detail
    assert "ask again once it has loaded" in detail

    # The download goes to the standard Hugging Face cache (HF_HOME), not the data directory.
    assert list((hub_cache(root) / "blobs").glob("*.incomplete"))
    assert not (root / "data" / "models" / hub_cache(root).name).exists()

    hub.release()
    status = await wait_for_status(url, lambda s: s["worker"]["state"] == "idle", process=worker)
    summary = status["worker"]
    assert summary["download"] is None and summary["workers"][0]["download"] is None
    runtime = summary["embedding_runtime"]
    assert runtime["runtime"] == "torch" and runtime["requested"] == "torch"
    assert "HAUNTFM_EMBEDDING_RUNTIME=torch" in runtime["reason"]
    assert summary["workers"][0]["embedding_runtime"] == runtime
    snapshot = hub_cache(root) / "snapshots"
    assert [p.name for p in snapshot.iterdir()] and not list((hub_cache(root) / "blobs").glob("*.incomplete"))
    assert f"downloaded {REPO}: {mb} MB" in worker.log()
    assert len(hub.downloads()) == 1


async def test_a_model_already_in_the_hf_cache_is_not_downloaded_again(
    serve: Any, db: Any, hub: FakeHub, tmp_path: Path, pg_url: str, processes: list[HubProcess]
) -> None:
    hub.release()
    url = serve(clap_model=REPO)
    root = tmp_path / "worker"
    env = hub_env(hub, root, database_url=pg_url)
    first = HubProcess("worker", env, root).start()
    processes.append(first)
    await wait_for_status(url, lambda s: s["worker"]["state"] == "idle", process=first)
    first.stop(signal.SIGINT, timeout=60)
    assert len(hub.downloads()) == 1

    # Another program's download (same HF_HOME), another data directory: reused, not fetched again.
    second = HubProcess("worker", env | {"HAUNTFM_DATA_DIR": str(tmp_path / "other-data")}, root).start()
    processes.append(second)
    status = await wait_for_status(
        url, lambda s: any(w["state"] == "idle" for w in s["worker"]["workers"]), process=second
    )
    assert status["worker"]["embedding_runtime"]["runtime"] == "torch"
    assert len(hub.downloads()) == 1


@pytest.mark.parametrize(
    ("command", "sig"),
    [("worker", signal.SIGINT), ("serve", signal.SIGTERM)],
    ids=["ctrl-c-worker", "sigterm-serve"],
)
async def test_a_stop_during_the_download_ends_the_process_within_seconds(
    serve: Any,
    db: Any,
    hub: FakeHub,
    tmp_path: Path,
    pg_url: str,
    processes: list[HubProcess],
    command: str,
    sig: int,
) -> None:
    root = tmp_path / command
    settings = {"database_url": pg_url}
    if command == "serve":  # only the embedding worker in the background
        settings |= {"preview_worker_enabled": "false", "discovery_interval_hours": "0"}
    process = HubProcess(command, hub_env(hub, root, **settings), root).start()
    processes.append(process)
    url = process.url or serve(clap_model=REPO)
    await wait_for_status(url, downloading, process=process)

    # The download is held and would never finish: the process must not wait for it.
    process.stop(sig, timeout=EXIT_WITHIN)
    # It left cleanly: its worker row is gone rather than left to go stale.
    async with db() as session:
        assert (await session.execute(text("SELECT count(*) FROM worker_states"))).scalar_one() == 0


async def test_after_a_failed_load_the_status_and_a_vibe_say_when_the_next_attempt_comes(
    serve: Any, tmp_path: Path
) -> None:
    missing = str(tmp_path / "no-such-model")
    url = serve(
        start_background=True,
        embedding_worker_enabled=True,
        clap_model=missing,
        embedding_interval_seconds=0.1,
        vibe_embed_timeout_seconds=600,
    )
    async with httpx.AsyncClient(base_url=url, timeout=VIBE_TIMEOUT) as client:
        for _ in range(600):  # a liveness bound for a busy machine, not a speed check
            status = (await client.get("/api/status")).json()
            if status["worker"]["state"] == "error" and status["worker"]["next_retry_at"]:
                break
            await asyncio.sleep(0.1)
        summary = status["worker"]
        assert summary["state"] == "error", summary
        (row,) = summary["workers"]
        retry = datetime.fromisoformat(summary["next_retry_at"])
        assert row["next_retry_at"] == summary["next_retry_at"]
        # The policy's first delay (30 s, jittered) after the heartbeat that reported the failure.
        beat = datetime.fromisoformat(row["heartbeat_at"])
        first = MODEL_RETRY.base_delay
        assert beat + timedelta(seconds=first / 2) < retry < beat + timedelta(seconds=first * 2)

        r = await client.get("/api/recommendations", params={"vibe": "chill ambient", "alpha": 0})
        assert r.status_code == 409, r.text
        detail = r.json()["detail"]
        assert f"the embedding worker could not load {missing}" in detail
        assert "looks like a local path, but no model directory is there" in detail  # the load error
        assert re.search(r"tries again at \d\d:\d\d:\d\d UTC \(in \d+ s\)", detail), detail


async def test_a_vibe_with_no_worker_running_says_so_at_once(serve: Any, db: Any) -> None:
    url = serve(vibe_embed_timeout_seconds=600)
    async with httpx.AsyncClient(base_url=url, timeout=VIBE_TIMEOUT) as client:
        r = await client.get("/api/recommendations", params={"vibe": "chill ambient", "alpha": 0})
    assert r.status_code == 409, r.text
    assert "no embedding worker is running" in r.json()["detail"]
    assert "HAUNTFM_EMBEDDING_WORKER_ENABLED" in r.json()["detail"]


def test_hub_downloads_go_to_the_standard_hf_cache_unless_configured(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")  # type: ignore[call-arg]
    earlier = settings.data_dir / "models"
    assert settings.model_cache_dir is None
    assert settings.resolved_model_cache_dir == earlier  # exported ONNX files stay in the data dir
    assert hub_cache_dir(REPO, configured=None, earlier=earlier) is None  # None: HF_HOME and its default
    assert hub_cache_dir(REPO, configured=tmp_path / "models", earlier=earlier) == tmp_path / "models"
    # A model an earlier version downloaded into the data directory is reused there.
    (earlier / hub_cache(tmp_path).name).mkdir(parents=True)
    assert hub_cache_dir(REPO, configured=None, earlier=earlier) == earlier
    assert hub_cache_dir("haunt-fm/other", configured=None, earlier=earlier) is None
    assert hub_cache_dir(str(tmp_path), configured=None, earlier=earlier) is None  # a local directory
    assert hub_cache_dir(str(tmp_path / "gone"), configured=None, earlier=earlier) is None  # load says why


def test_the_status_schema_reads_each_runtimes_details(
    tiny_clap_dir: Path, onnx_model_cache: Path, tmp_path: Path
) -> None:
    import shutil

    from haunt_fm.pipeline.embeddings.model import ClapEmbedder
    from haunt_fm.pipeline.status.schemas import EmbeddingRuntimeOut

    models = Path(shutil.copytree(onnx_model_cache, tmp_path / "models"))
    for runtime in ("torch", "auto"):
        embedder = ClapEmbedder.load(str(tiny_clap_dir), cache_dir=models, torch_threads=2, runtime=runtime)
        shown = EmbeddingRuntimeOut.model_validate(embedder.runtime_details)
        assert (shown.requested, shown.runtime, shown.reason) == (
            runtime,
            embedder.runtime,
            embedder.runtime_reason,
        )
        assert shown.threads == 2
    # auto: the timing it chose by, and where.
    assert shown.seconds_per_window is not None and "torch" in shown.seconds_per_window
    assert shown.measured_on is not None and shown.measured_on["threads"] == 2
    assert shown.reason is not None and shown.reason.startswith("auto:")


def _children(pid: int) -> list[int]:
    """Pids whose parent is `pid` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_an_onnx_export_ends_when_the_process_that_started_it_dies(
    tiny_clap_dir: Path, tmp_path: Path
) -> None:
    """A worker killed (or stopped without waiting for its load) mid-export leaves no export running."""
    models = tmp_path / "models"
    load = (
        "import sys; from pathlib import Path; from haunt_fm.pipeline.embeddings.model import ClapEmbedder; "
        "ClapEmbedder.load(sys.argv[1], cache_dir=Path(sys.argv[2]), torch_threads=1, runtime='onnx')"
    )
    args = [sys.executable, "-c", load, str(tiny_clap_dir), str(models)]
    parent = subprocess.Popen(args, env=clean_environ())
    try:
        child = None
        deadline = time.monotonic() + 120  # liveness bounds for a busy machine, not speed checks
        while child is None and time.monotonic() < deadline and parent.poll() is None:
            child = next(iter(_children(parent.pid)), None)
            time.sleep(0.05)
        assert child is not None, "the export process never started"
    finally:
        parent.kill()
        parent.wait(timeout=30)
    deadline = time.monotonic() + 60
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not Path(f"/proc/{child}").exists(), "the export process outlived its parent"
    # It stopped midway: nothing was exported, so the next start exports (and verifies) again.
    assert not list(models.glob("onnx/*/runtime.json"))
