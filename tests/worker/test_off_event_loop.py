"""Inference never runs on the event loop: the API answers while the model is busy.

No timing: the stand-in model blocks inside `embed_audio` / `embed_text` until the test
opens a gate, and the test opens it only after the same server answered an HTTP request.
Had inference run on the server's event loop, that request could never be answered (the
loop would be stuck in the model call) and the test would fail on the client's timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from haunt_fm.app import create_app
from haunt_fm.pipeline.embeddings.model import AudioEmbeddings
from haunt_fm.worker.embedding import EmbeddingWorker
from tests.conftest import make_settings
from tests.support.audio import make_aac_m4a
from tests.support.live_server import LiveServer
from tests.worker.test_embedding_worker import Factory, PreviewServer, add_track

MODEL = "gated-stand-in"
DIM = 512
# Far beyond any answer; only reached when the test is failing.
CLIENT_TIMEOUT = 20.0
GATE_TIMEOUT = 120.0


class GatedModel:
    """Stands in for the CLAP model: every embed call waits until the test opens the gate."""

    model_id = MODEL
    text_model_id = MODEL

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.calls: list[str] = []

    def _wait_for_gate(self, what: str) -> None:
        self.calls.append(what)
        self.entered.set()
        if not self.gate.wait(GATE_TIMEOUT):
            raise TimeoutError("the test never opened the gate")

    @staticmethod
    def _vectors(n: int) -> np.ndarray:
        vectors = np.zeros((n, DIM), dtype=np.float32)
        vectors[:, 0] = 1.0
        return vectors

    def embed_audio(self, samples: Sequence[np.ndarray]) -> AudioEmbeddings:
        self._wait_for_gate("audio")
        return AudioEmbeddings(self._vectors(len(samples)), [1] * len(samples))

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        self._wait_for_gate("text")
        return self._vectors(len(texts))

    def text_tower_check(self) -> tuple[bool, str]:
        return True, "gated stand-in"


@dataclass
class Service:
    url: str
    app: FastAPI
    model: GatedModel
    run_on_server: Callable[[Awaitable[Any]], Awaitable[Any]]


@pytest.fixture
def preview(tmp_path: Path) -> Iterator[PreviewServer]:
    server = PreviewServer()
    server.files["tone.m4a"] = make_aac_m4a(tmp_path / "tone.m4a", seconds=11, freq=330).read_bytes()
    server.server.start()
    yield server
    server.server.stop()


@pytest.fixture
async def service(db: Factory, pg_url: str, tmp_path: Path) -> AsyncIterator[Service]:
    """The app served on its own event loop (as `serve` runs it), with a gated model."""
    settings = make_settings(
        tmp_path, pg_url, clap_model=MODEL, embedding_interval_seconds=0.1, vibe_embed_timeout_seconds=60
    )
    app = create_app(settings, database_url=pg_url, start_background=False)
    server = LiveServer(app).start()
    assert server.loop is not None
    loop = server.loop

    async def run_on_server(coroutine: Awaitable[Any]) -> Any:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, loop))  # type: ignore[arg-type]

    model = GatedModel()
    try:
        yield Service(server.url, app, model, run_on_server)
    finally:
        model.gate.set()  # a failing test must not leave a thread stuck in the model
        server.stop()


@contextlib.asynccontextmanager
async def worker_on_server(service: Service, *, share_model: bool) -> AsyncIterator[EmbeddingWorker]:
    """An embedding worker on the server's event loop, wired as `serve` wires its own."""
    app = service.app
    worker = EmbeddingWorker(
        settings=app.state.settings,
        session_factory=app.state.session_factory,
        http=app.state.http,
        load_embedder=lambda: service.model,
        # share_model: vibe texts of API requests are embedded in-process (serve with its worker);
        # otherwise they go through the queue to the worker (an API process without a model).
        on_model_loaded=(lambda embedder: setattr(app.state, "embedder", embedder)) if share_model else None,
    )

    async def start() -> asyncio.Task[None]:
        return asyncio.create_task(worker.run_forever())

    async def stop(task: asyncio.Task[None]) -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    task = await service.run_on_server(start())
    try:
        yield worker
    finally:
        service.model.gate.set()
        await service.run_on_server(stop(task))


async def answered_while_the_model_is_busy(service: Service) -> dict[str, Any]:
    """Wait until the model is inside a call, then ask the server for its status."""
    assert await asyncio.to_thread(service.model.entered.wait, GATE_TIMEOUT), "the model was never called"
    assert not service.model.gate.is_set()
    async with httpx.AsyncClient(base_url=service.url, timeout=CLIENT_TIMEOUT) as client:
        response = await client.get("/api/status")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_the_api_answers_while_a_batch_of_previews_is_embedding(
    service: Service, db: Factory, preview: PreviewServer
) -> None:
    track = await add_track(db, "Tone", preview.url("tone.m4a"))
    async with worker_on_server(service, share_model=True):
        status = await answered_while_the_model_is_busy(service)
        assert service.model.calls == ["audio"]
        assert status["worker"]["state"] == "working"
        assert status["pipeline"]["embedding"]["done"] == 0
        service.model.gate.set()
        async with httpx.AsyncClient(base_url=service.url, timeout=CLIENT_TIMEOUT) as client:
            for _ in range(600):
                status = (await client.get("/api/status")).json()
                if status["pipeline"]["embedding"]["done"] == 1:
                    break
                await asyncio.sleep(0.05)
    assert status["pipeline"]["embedding"]["done"] == 1, status["pipeline"]
    async with db() as session:
        query = text("SELECT model FROM track_embeddings WHERE track_id = :t")
        model = (await session.execute(query, {"t": track})).scalar_one()
    assert model == MODEL


@pytest.mark.parametrize(
    "share_model", [True, False], ids=["in-process (serve with its worker)", "through the worker queue"]
)
async def test_the_api_answers_while_a_vibe_text_is_embedding(service: Service, share_model: bool) -> None:
    async with (
        worker_on_server(service, share_model=share_model),
        httpx.AsyncClient(base_url=service.url, timeout=CLIENT_TIMEOUT) as client,
    ):
        if share_model:
            for _ in range(600):  # the worker hands the app its model once loaded
                if service.app.state.embedder is not None:
                    break
                await asyncio.sleep(0.05)
            assert service.app.state.embedder is service.model
        asked = asyncio.create_task(client.get("/api/recommendations", params={"vibe": "gated haze"}))
        await answered_while_the_model_is_busy(service)
        assert service.model.calls == ["text"]
        assert not asked.done()
        service.model.gate.set()
        response = await asked
    assert response.status_code == 200, response.text
    assert response.json()["vibe"] == "gated haze"
