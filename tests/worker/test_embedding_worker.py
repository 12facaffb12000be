"""The embedding worker against the real database, a tiny CLAP model and previews over HTTP."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from haunt_fm.worker.embedding import EmbeddingWorker
from tests.conftest import make_settings
from tests.support.audio import make_aac_m4a, make_garbage, make_silent_m4a, make_truncated
from tests.support.env import clean_environ
from tests.support.live_server import LiveServer

Factory = async_sessionmaker[AsyncSession]


class PreviewServer:
    """Serves registered bytes as `audio/x-m4p` (like the iTunes CDN) and counts downloads."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.status: dict[str, int] = {}
        self.hits: Counter[str] = Counter()
        self.delay = 0.0  # seconds before each answer (a slow CDN: batches that outlast a lease)
        self.server = LiveServer(Starlette(routes=[Route("/p/{name}", self._serve)]))

    async def _serve(self, request: Request) -> Response:
        name = request.path_params["name"]
        self.hits[name] += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if name in self.status:
            return Response(b"", status_code=self.status[name])
        if name not in self.files:
            return Response(b"Not Found", status_code=404, media_type="text/plain")
        return Response(self.files[name], media_type="audio/x-m4p")

    def url(self, name: str) -> str:
        return f"{self.server.url}/p/{name}"


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("audio")
    good = [make_aac_m4a(d / f"tone{i}.m4a", seconds=12, freq=220 * (i + 1)) for i in range(3)]
    files = {f"tone{i}.m4a": p.read_bytes() for i, p in enumerate(good)}
    files["silent.m4a"] = make_silent_m4a(d / "silent.m4a", seconds=5).read_bytes()
    files["truncated.m4a"] = make_truncated(good[0], d / "trunc.m4a", keep_fraction=0.05).read_bytes()
    files["garbage.m4a"] = make_garbage(d / "garbage.m4a").read_bytes()
    return files


@pytest.fixture
def previews(audio_files: dict[str, bytes]) -> Iterator[PreviewServer]:
    server = PreviewServer()
    server.files.update(audio_files)
    server.server.start()
    yield server
    server.server.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def add_track(
    db: Factory, title: str, url: str | None, *, listened: bool = False, score: float = 0
) -> int:
    async with db() as session, session.begin():
        return int(
            (
                await session.execute(
                    text(
                        "INSERT INTO tracks (title, artist, norm_artist, norm_title, norm_key, listened, "
                        "discovery_score, preview_status, preview_url, embedding_status) "
                        "VALUES (:t, 'Artist', 'artist', lower(:t), 'artist' || chr(31) || lower(:t), "
                        ":l, :s, "
                        "CASE WHEN CAST(:u AS text) IS NULL THEN 'pending' ELSE 'found' END, :u, "
                        "CASE WHEN CAST(:u AS text) IS NULL THEN 'waiting' ELSE 'pending' END) RETURNING id"
                    ),
                    {"t": title, "u": url, "l": listened, "s": score},
                )
            ).scalar_one()
        )


async def track_row(db: Factory, track_id: int) -> dict[str, Any]:
    async with db() as session:
        row = (
            await session.execute(text("SELECT * FROM tracks WHERE id = :id"), {"id": track_id})
        ).mappings()
        return dict(row.one())


async def vectors(db: Factory) -> dict[int, np.ndarray]:
    async with db() as session:
        rows = await session.execute(
            text("SELECT track_id, embedding::text, model, windows FROM track_embeddings")
        )
        return {r[0]: np.array([float(x) for x in r[1].strip("[]").split(",")]) for r in rows}


def make_worker(
    db: Factory, http: httpx.AsyncClient, tmp_path: Path, pg_url: str, model: Path | str, **kw: Any
):
    settings = make_settings(
        tmp_path, pg_url, clap_model=str(model), torch_threads=1, embedding_interval_seconds=0.05, **kw
    )
    return EmbeddingWorker(settings=settings, session_factory=db, http=http)


async def test_embeds_pending_tracks_and_records_failures(
    db: Factory,
    http: httpx.AsyncClient,
    previews: PreviewServer,
    tiny_clap_dir: Path,
    tmp_path: Path,
    pg_url: str,
) -> None:
    ok = [await add_track(db, f"Good {i}", previews.url(f"tone{i}.m4a")) for i in range(3)]
    bad = {
        "missing": await add_track(db, "Missing", previews.url("nope.m4a")),
        "silent": await add_track(db, "Silent", previews.url("silent.m4a")),
        "truncated": await add_track(db, "Truncated", previews.url("truncated.m4a")),
        "garbage": await add_track(db, "Garbage", previews.url("garbage.m4a")),
    }
    waiting = await add_track(db, "No preview yet", None)
    worker = make_worker(db, http, tmp_path, pg_url, tiny_clap_dir, embedding_batch_size=10)
    assert await worker.load_model()
    handled = await worker.run_once()
    assert handled == 7

    got = await vectors(db)
    assert set(got) == set(ok)
    for vec in got.values():
        assert vec.shape == (512,)
        assert abs(np.linalg.norm(vec) - 1) < 1e-4
    assert not np.allclose(got[ok[0]], got[ok[1]])
    for track_id in ok:
        row = await track_row(db, track_id)
        assert row["embedding_status"] == "done" and row["embedding_lease_owner"] is None
    reasons = {name: (await track_row(db, tid)) for name, tid in bad.items()}
    # A preview URL that is gone (404) sends the track back to preview lookup: iTunes rotates them.
    missing = reasons.pop("missing")
    assert (missing["preview_status"], missing["preview_url"], missing["embedding_status"]) == (
        "pending",
        None,
        "waiting",
    )
    assert "404" in missing["embedding_error"]
    assert all(r["embedding_status"] == "failed" for r in reasons.values())
    assert "silent" in reasons["silent"]["embedding_error"]
    assert "decode" in reasons["truncated"]["embedding_error"]
    assert "decode" in reasons["garbage"]["embedding_error"]
    assert (await track_row(db, waiting))["embedding_status"] == "waiting"
    # Cached audio is kept only until a track is done with (embedded or failed for good).
    assert worker.audio_dir.exists()
    assert list(worker.audio_dir.iterdir()) == []


async def test_transient_errors_retry_then_fail_after_the_attempt_budget(
    db: Factory,
    http: httpx.AsyncClient,
    previews: PreviewServer,
    tiny_clap_dir: Path,
    tmp_path: Path,
    pg_url: str,
) -> None:
    previews.status["flaky.m4a"] = 503
    track = await add_track(db, "Flaky", previews.url("flaky.m4a"))
    worker = make_worker(db, http, tmp_path, pg_url, tiny_clap_dir, embedding_max_attempts=2)
    assert await worker.load_model()
    await worker.run_once()
    row = await track_row(db, track)
    assert row["embedding_status"] == "pending" and row["embedding_attempts"] == 1
    assert row["embedding_next_at"] is not None and "503" in row["embedding_error"]
    # Not claimable again until the backoff passes.
    assert await worker.run_once() == 0
    async with db() as session, session.begin():
        await session.execute(
            text("UPDATE tracks SET embedding_next_at = now() WHERE id = :id"), {"id": track}
        )
    await worker.run_once()
    row = await track_row(db, track)
    assert row["embedding_status"] == "failed" and row["embedding_attempts"] == 2
    # Recovered server + a reset (as an operator would do) embeds it.
    del previews.status["flaky.m4a"]
    previews.files["flaky.m4a"] = previews.files["tone0.m4a"]
    async with db() as session, session.begin():
        await session.execute(text("UPDATE tracks SET embedding_status = 'pending', embedding_attempts = 0"))
    await worker.run_once()
    assert (await track_row(db, track))["embedding_status"] == "done"


async def test_a_preview_gone_again_and_again_fails_for_good(
    db: Factory,
    http: httpx.AsyncClient,
    previews: PreviewServer,
    tiny_clap_dir: Path,
    tmp_path: Path,
    pg_url: str,
) -> None:
    track = await add_track(db, "Gone", previews.url("gone.m4a"))
    worker = make_worker(db, http, tmp_path, pg_url, tiny_clap_dir, embedding_max_attempts=2)
    assert await worker.load_model()
    await worker.run_once()
    assert (await track_row(db, track))["preview_status"] == "pending"
    # The lookup finds the same dead URL again (as a stale store entry would).
    async with db() as session, session.begin():
        await session.execute(
            text(
                "UPDATE tracks SET preview_status = 'found', preview_url = :u, embedding_status = 'pending' "
                "WHERE id = :id"
            ),
            {"u": previews.url("gone.m4a"), "id": track},
        )
    await worker.run_once()
    row = await track_row(db, track)
    assert (row["embedding_status"], row["embedding_attempts"]) == ("failed", 2)
    assert "404" in row["embedding_error"]


async def test_two_workers_racing_embed_every_track_exactly_once(
    db: Factory, previews: PreviewServer, tiny_clap_dir: Path, tmp_path: Path, pg_url: str
) -> None:
    names = [f"tone{i % 3}.m4a" for i in range(12)]
    for i, name in enumerate(names):
        previews.files[f"t{i}-{name}"] = previews.files[name]
        await add_track(db, f"Race {i}", previews.url(f"t{i}-{name}"))
    async with httpx.AsyncClient(timeout=10) as h1, httpx.AsyncClient(timeout=10) as h2:
        a = make_worker(db, h1, tmp_path / "a", pg_url, tiny_clap_dir, embedding_batch_size=3)
        b = make_worker(db, h2, tmp_path / "b", pg_url, tiny_clap_dir, embedding_batch_size=3)
        assert await a.load_model() and await b.load_model()

        async def drain(worker: EmbeddingWorker) -> int:
            total = 0
            while (n := await worker.run_once()) > 0:
                total += n
            return total

        done_a, done_b = await asyncio.gather(drain(a), drain(b))
    assert done_a + done_b == 12
    assert done_a > 0 and done_b > 0
    assert len(await vectors(db)) == 12
    assert all(count == 1 for count in previews.hits.values()), previews.hits


async def test_a_dead_workers_claims_expire_and_are_taken_again(
    db: Factory,
    http: httpx.AsyncClient,
    previews: PreviewServer,
    tiny_clap_dir: Path,
    tmp_path: Path,
    pg_url: str,
) -> None:
    from haunt_fm import queue
    from haunt_fm.db.session import transaction
    from haunt_fm.pipeline.embeddings.models import EMBEDDING_STAGE

    track = await add_track(db, "Orphan", previews.url("tone1.m4a"))
    async with transaction(db) as session:  # a worker claims, then dies without a word
        claimed = await queue.repository.claim(
            session, EMBEDDING_STAGE, owner="dead:1:x", limit=5, lease_seconds=0.5, max_attempts=3
        )
    assert [c.key for c in claimed] == [track]
    worker = make_worker(db, http, tmp_path, pg_url, tiny_clap_dir)
    assert await worker.load_model()
    assert await worker.run_once() == 0  # still leased
    await asyncio.sleep(0.6)
    assert await worker.run_once() == 1
    row = await track_row(db, track)
    # The dead worker's claim counted as an attempt: this was the second.
    assert row["embedding_status"] == "done" and row["embedding_attempts"] == 0


async def test_a_track_that_keeps_crashing_its_worker_fails_with_a_reason(
    db: Factory,
    http: httpx.AsyncClient,
    previews: PreviewServer,
    tiny_clap_dir: Path,
    tmp_path: Path,
    pg_url: str,
) -> None:
    from haunt_fm import queue
    from haunt_fm.db.session import transaction
    from haunt_fm.pipeline.embeddings.models import EMBEDDING_STAGE

    track = await add_track(db, "Crasher", previews.url("tone1.m4a"))
    for n in range(2):  # two workers claim it in turn and die (OOM, a decoder segfault)
        async with transaction(db) as session:
            await session.execute(text("UPDATE tracks SET embedding_lease_until = now() - interval '1 s'"))
            claimed = await queue.repository.claim(
                session, EMBEDDING_STAGE, owner=f"dead:{n}", limit=5, lease_seconds=60, max_attempts=2
            )
        assert [c.key for c in claimed] == [track]
    async with transaction(db) as session:
        await session.execute(text("UPDATE tracks SET embedding_lease_until = now() - interval '1 s'"))
    worker = make_worker(db, http, tmp_path, pg_url, tiny_clap_dir, embedding_max_attempts=2)
    assert await worker.load_model()
    await worker.tracks.maintain(force=True)
    assert await worker.run_once() == 0
    row = await track_row(db, track)
    assert row["embedding_status"] == "failed" and row["embedding_attempts"] == 2
    assert "crashed 2 times" in row["embedding_error"]
    assert previews.hits.get("tone1.m4a", 0) == 0


async def test_listened_tracks_are_embedded_first(
    db: Factory,
    http: httpx.AsyncClient,
    previews: PreviewServer,
    tiny_clap_dir: Path,
    tmp_path: Path,
    pg_url: str,
) -> None:
    cand = await add_track(db, "Candidate", previews.url("tone0.m4a"), score=5.0)
    heard = await add_track(db, "Heard", previews.url("tone1.m4a"), listened=True)
    worker = make_worker(db, http, tmp_path, pg_url, tiny_clap_dir, embedding_batch_size=1)
    assert await worker.load_model()
    await worker.run_once()
    assert (await track_row(db, heard))["embedding_status"] == "done"
    assert (await track_row(db, cand))["embedding_status"] == "pending"


async def test_missing_model_puts_the_worker_in_error_and_the_api_keeps_serving(
    serve: Any, tmp_path: Path
) -> None:
    url = serve(
        start_background=True,
        embedding_worker_enabled=True,
        clap_model=str(tmp_path / "no-such-model"),
        embedding_interval_seconds=0.1,
    )
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        for _ in range(600):  # a liveness bound for a busy machine, not a speed check
            status = (await client.get("/api/status")).json()
            if status["worker"]["state"] == "error":
                break
            await asyncio.sleep(0.1)
        assert status["worker"]["state"] == "error"
        assert "HAUNTFM_CLAP_MODEL" in status["worker"]["last_error"]
        assert (await client.get("/health")).status_code == 200
        r = await client.post("/api/history/webhook", json={"title": "Still", "artist": "Logging"})
        assert r.status_code == 201


async def test_worker_inside_serve_embeds_every_track(
    serve: Any, db: Factory, previews: PreviewServer, tiny_clap_dir: Path
) -> None:
    for i in range(6):
        await add_track(db, f"Bg {i}", previews.url(f"tone{i % 3}.m4a"))
    url = serve(
        start_background=True,
        embedding_worker_enabled=True,
        clap_model=str(tiny_clap_dir),
        embedding_interval_seconds=0.1,
        embedding_batch_size=2,
        torch_threads=1,
    )
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        for _ in range(300):
            status = (await client.get("/api/status")).json()
            if status["pipeline"]["embedding"]["done"] == 6:
                break
            await asyncio.sleep(0.05)
        assert status["pipeline"]["embedding"]["done"] == 6
        assert status["worker"]["state"] in ("idle", "working")
        assert status["worker"]["last_batch_at"] is not None
        assert status["worker"]["text_tower_ok"] is not None
        # That the API answers while a batch runs: tests/worker/test_off_event_loop.py.


@pytest.mark.slow
async def test_two_worker_processes_one_killed_mid_batch_embed_every_track_exactly_once(
    db: Factory, previews: PreviewServer, tiny_clap_dir: Path, tmp_path: Path, pg_url: str
) -> None:
    """`haunt-fm worker` x 2 on one database, a lease shorter than one batch, one SIGKILLed mid-batch."""
    n = 16
    names: dict[int, str] = {}
    for i in range(n):
        previews.files[f"k{i}.m4a"] = previews.files[f"tone{i % 3}.m4a"]
        names[await add_track(db, f"Kill {i}", previews.url(f"k{i}.m4a"))] = f"k{i}.m4a"
    previews.delay = 2.5  # each download outlasts the 1.5 s lease: only renewal keeps a batch
    env = clean_environ() | {
        "HAUNTFM_DATABASE_URL": pg_url,
        "HAUNTFM_CLAP_MODEL": str(tiny_clap_dir),
        "HAUNTFM_TORCH_THREADS": "1",
        "HAUNTFM_EMBEDDING_BATCH_SIZE": "4",
        "HAUNTFM_EMBEDDING_LEASE_SECONDS": "1.5",
        "HAUNTFM_EMBEDDING_INTERVAL_SECONDS": "0.2",
        "HAUNTFM_LOG_LEVEL": "INFO",
    }
    exe = str(Path(sys.executable).parent / "haunt-fm")

    def start(name: str) -> subprocess.Popen[str]:
        data = tmp_path / name
        return subprocess.Popen(
            [exe, "worker"],
            env=env | {"HAUNTFM_DATA_DIR": str(data), "HAUNTFM_AUDIO_CACHE_DIR": str(data / "audio")},
            cwd=tmp_path,
            stderr=subprocess.PIPE,
            text=True,
        )

    async def leased_by(pid: int) -> list[int]:
        async with db() as session:
            rows = await session.execute(
                text(
                    "SELECT id FROM tracks WHERE embedding_lease_owner LIKE :p "
                    "AND embedding_status = 'pending'"
                ),
                {"p": f"%:{pid}:%"},
            )
            return [int(r[0]) for r in rows]

    victim, survivor = start("victim"), start("survivor")
    try:
        held: list[int] = []
        for _ in range(600):  # the victim loads its model, claims a batch and starts downloading
            held = await leased_by(victim.pid)
            if held:
                break
            await asyncio.sleep(0.1)
        assert held, "the victim never claimed a batch"
        await asyncio.sleep(0.5)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        for _ in range(1200):
            async with db() as session:
                done = (
                    await session.execute(text("SELECT count(*) FROM tracks WHERE embedding_status = 'done'"))
                ).scalar_one()
            if done == n:
                break
            await asyncio.sleep(0.1)
    finally:
        for proc in (victim, survivor):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        survivor_log = survivor.communicate(timeout=60)[1]
        victim.communicate(timeout=30)
    assert done == n, survivor_log[-3000:]
    assert len(await vectors(db)) == n
    # Only the victim's unfinished batch was downloaded twice; every other preview exactly once,
    # so no batch of the living was ever taken over although each outlasted its lease.
    twice = {f"k{i}.m4a" for i in range(n) if previews.hits[f"k{i}.m4a"] > 1}
    victim_names = {names[track_id] for track_id in held}
    assert twice <= victim_names, (twice, victim_names)
    assert all(previews.hits[f"k{i}.m4a"] <= 2 for i in range(n))
    assert "taken over by another worker" not in survivor_log
    async with db() as session:
        attempts = dict((await session.execute(text("SELECT id, embedding_attempts FROM tracks"))).all())
    assert all(a == 0 for a in attempts.values())  # settled as done, counters reset


async def test_worker_embeds_through_onnx_int8(
    db: Factory,
    http: httpx.AsyncClient,
    previews: PreviewServer,
    tiny_clap_dir: Path,
    onnx_model_cache: Path,
    tmp_path: Path,
    pg_url: str,
) -> None:
    import json
    import shutil

    from haunt_fm.pipeline.embeddings.audio import decode_audio
    from haunt_fm.pipeline.embeddings.model import ClapEmbedder

    models = Path(shutil.copytree(onnx_model_cache, tmp_path / "models"))
    ids = [await add_track(db, f"Onnx {i}", previews.url(f"tone{i}.m4a")) for i in range(3)]
    worker = make_worker(
        db,
        http,
        tmp_path,
        pg_url,
        tiny_clap_dir,
        embedding_runtime="onnx-int8",
        model_cache_dir=models,
    )
    assert await worker.load_model()
    assert worker.embedder.runtime == "onnx-int8"
    assert await worker.run_once() == 3
    got = await vectors(db)
    assert set(got) == set(ids)
    # The same previews through PyTorch: the int8 vectors are the model's vectors.
    reference = ClapEmbedder.load(str(tiny_clap_dir), torch_threads=2)
    for i, track_id in enumerate(ids):
        path = tmp_path / f"tone{i}.m4a"
        path.write_bytes(previews.files[f"tone{i}.m4a"])
        want = reference.embed_audio([decode_audio(path)]).vectors[0]
        assert float(got[track_id] @ want) >= 0.99
    async with db() as session:
        details = (await session.execute(text("SELECT details FROM worker_states"))).scalar_one()
    details = details if isinstance(details, dict) else json.loads(details)
    status = details["embedding_runtime"]
    assert status["runtime"] == "onnx-int8" and status["requested"] == "onnx-int8"
    assert status["gate"]["onnx-int8"]["passed"] is True
    # /api/status says which runtime runs and why (issue 17).
    from haunt_fm.pipeline.status.service import pipeline_status

    async with db() as session:
        summary = (await pipeline_status(session, settings=worker.settings)).worker
    shown = summary.embedding_runtime
    assert shown is not None and shown == summary.workers[0].embedding_runtime
    assert (shown.requested, shown.runtime, shown.reason) == ("onnx-int8", "onnx-int8", status["reason"])
    assert "HAUNTFM_EMBEDDING_RUNTIME=onnx-int8" in shown.reason and "gate" in shown.reason
    assert shown.gate is not None and shown.gate["onnx-int8"]["passed"] is True
    assert shown.threads == worker.embedder.torch_threads and shown.prepared_now is False


async def test_the_next_batch_is_prepared_while_one_is_in_inference(
    db: Factory,
    http: httpx.AsyncClient,
    previews: PreviewServer,
    tiny_clap_dir: Path,
    tmp_path: Path,
    pg_url: str,
) -> None:
    import threading

    for i in range(4):  # four previews, four URLs: two batches of two
        previews.files[f"pipe{i}.m4a"] = previews.files[f"tone{i % 3}.m4a"]
        await add_track(db, f"Pipe {i}", previews.url(f"pipe{i}.m4a"))
    worker = make_worker(db, http, tmp_path, pg_url, tiny_clap_dir, embedding_batch_size=2)
    assert await worker.load_model()
    in_inference, release = threading.Event(), threading.Event()
    calls = 0
    name = "embed_inputs" if hasattr(worker.embedder, "audio_inputs") else "embed_audio"
    model_call = getattr(worker.embedder, name)

    def held_model_call(batch: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:  # the first batch stays in inference until the test lets it go
            in_inference.set()
            assert release.wait(60)
        return model_call(batch)

    setattr(worker.embedder, name, held_model_call)
    task = asyncio.create_task(worker.run_batches())
    try:
        assert await asyncio.to_thread(in_inference.wait, 60)
        for _ in range(600):  # a liveness bound for a busy machine, not a speed check
            if all(previews.hits[f"pipe{i}.m4a"] for i in range(4)):
                break
            await asyncio.sleep(0.05)
        # Every preview was downloaded while the first batch was still in the model.
        assert all(previews.hits[f"pipe{i}.m4a"] == 1 for i in range(4))
        assert calls == 1
    finally:
        release.set()
    assert await task == 4
    assert len(await vectors(db)) == 4


async def test_a_model_switch_re_embeds_in_the_background_and_old_vectors_are_left_out(
    db: Factory,
    http: httpx.AsyncClient,
    previews: PreviewServer,
    tiny_clap_dir: Path,
    tiny_clap_collapsed_dir: Path,
    tmp_path: Path,
    pg_url: str,
    serve: Any,
) -> None:
    tracks = [await add_track(db, f"Song {i}", previews.url(f"tone{i}.m4a")) for i in range(3)]
    first = make_worker(db, http, tmp_path, pg_url, tiny_clap_dir, embedding_batch_size=10)
    assert await first.load_model() and await first.run_once() == 3
    new_model = str(tiny_clap_collapsed_dir)
    url = serve(clap_model=new_model)
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        # HAUNTFM_CLAP_MODEL changed, no worker has loaded the new model yet: every vector is
        # outdated and none takes part in any query.
        status = (await client.get("/api/status")).json()["pipeline"]["embedding"]
        assert (status["model"], status["outdated"], status["done"]) == (new_model, 3, 3)
        r = await client.get("/api/tags")  # (no tags here; the query runs on the new model)
        assert r.status_code == 200
        second = make_worker(db, http, tmp_path, pg_url, tiny_clap_collapsed_dir, embedding_batch_size=1)
        assert await second.load_model()  # queues the outdated tracks again
        status = (await client.get("/api/status")).json()
        assert (
            status["pipeline"]["embedding"]["pending"] == 3
            and status["pipeline"]["embedding"]["outdated"] == 3
        )
        assert status["worker"]["text_tower_ok"] is False  # this checkpoint's text tower is collapsed
        assert await second.run_once() == 1  # one re-embedded: its old vector is replaced
        status = (await client.get("/api/status")).json()["pipeline"]["embedding"]
        assert (status["outdated"], status["pending"], status["done"]) == (2, 2, 1)
        while await second.run_once():
            pass
        status = (await client.get("/api/status")).json()["pipeline"]["embedding"]
        assert (status["outdated"], status["pending"], status["done"]) == (0, 0, 3)
    async with db() as session:
        models = (await session.execute(text("SELECT DISTINCT model FROM track_embeddings"))).scalars().all()
    assert models == [new_model] and set(await vectors(db)) == set(tracks)
