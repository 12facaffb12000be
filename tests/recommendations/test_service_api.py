"""The functions the playlist stage calls directly: recommend() and ensure_fresh_taste()."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest

from haunt_fm.errors import Conflict, Invalid, NotFound
from haunt_fm.pipeline.recommendations.service import recommend
from haunt_fm.pipeline.recommendations.vibe import VibeEncoder
from haunt_fm.pipeline.taste.service import ensure_fresh_taste
from tests.conftest import make_settings
from tests.recommendations.support import Factory, add_track, axis, cache_vibe, listen, toward


async def test_recommend_with_exclusions(db: Factory, pg_url: str, tmp_path: Any) -> None:
    settings = make_settings(tmp_path, pg_url)
    e0, e1 = axis(0), axis(1)
    heard = await add_track(db, "Heard", e0)
    await listen(db, heard)
    near = [await add_track(db, f"c{c}", toward(e0, e1, c / 10)) for c in (9, 8, 7, 6)]
    encoder = VibeEncoder(session_factory=db, model_id=settings.clap_model, timeout_s=0.2)
    async with db() as session:
        got = await recommend(
            session,
            profile="default",
            limit=2,
            vibe=None,
            alpha=0.5,
            settings=settings,
            vibe_encoder=encoder,
            exclude_track_ids=[near[0], near[2]],
        )
        assert [r.track_id for r in got] == [near[1], near[3]]
        assert got[0].score == pytest.approx(0.8, abs=1e-5)
        with pytest.raises(Invalid):
            await recommend(
                session, profile=None, limit=0, vibe=None, alpha=0.5, settings=settings, vibe_encoder=encoder
            )
        with pytest.raises(Invalid):
            await recommend(
                session, profile=None, limit=5, vibe=None, alpha=2, settings=settings, vibe_encoder=encoder
            )
        with pytest.raises(NotFound):
            await recommend(
                session, profile="ghost", limit=5, vibe=None, alpha=1, settings=settings, vibe_encoder=encoder
            )
        await session.commit()


async def test_ensure_fresh_taste(db: Factory, pg_url: str, tmp_path: Any) -> None:
    settings = make_settings(tmp_path, pg_url)
    async with db() as session:
        assert await ensure_fresh_taste(session, profile="default", settings=settings) is None
        await session.commit()
    t = await add_track(db, "T", axis(5))
    await listen(db, t)
    async with db() as session:
        vec = await ensure_fresh_taste(session, profile="default", settings=settings)
        assert vec is not None and vec == pytest.approx(axis(5))
        await session.commit()
    async with db() as session:
        vec = await ensure_fresh_taste(session, profile=None, settings=settings)
        assert vec is not None and float(np.linalg.norm(vec)) == pytest.approx(1.0)
        with pytest.raises(NotFound):
            await ensure_fresh_taste(session, profile="ghost", settings=settings)


async def test_vibe_without_taste_via_service_and_409(db: Factory, pg_url: str, tmp_path: Any) -> None:
    settings = make_settings(tmp_path, pg_url)
    a = await add_track(db, "A", axis(3))
    await cache_vibe(db, "drone", axis(3))
    encoder = VibeEncoder(session_factory=db, model_id=settings.clap_model, timeout_s=0.2)
    async with db() as session:
        got = await recommend(
            session, profile=None, limit=5, vibe="Drone", alpha=0.9, settings=settings, vibe_encoder=encoder
        )
        assert [r.track_id for r in got] == [a]
        with pytest.raises(Conflict):
            await recommend(
                session, profile=None, limit=5, vibe=None, alpha=0.9, settings=settings, vibe_encoder=encoder
            )


async def test_openapi_documents_the_endpoints(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    assert "/api/recommendations" in paths and "get" in paths["/api/recommendations"]
    params = {p["name"] for p in paths["/api/recommendations"]["get"]["parameters"]}
    assert params >= {"limit", "profile", "vibe", "alpha"}
    assert "post" in paths["/api/admin/build-taste-profile"]
    assert {"post", "get"} <= set(paths["/api/feedback"]) and "delete" in paths["/api/feedback/{feedback_id}"]
