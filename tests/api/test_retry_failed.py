"""POST /api/admin/retry-failed: failed preview lookups and embeddings go back in the queue now."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import text

from tests.recommendations.support import Factory, add_track


async def failed_tracks(db: Factory) -> dict[str, int]:
    """Four tracks: a failed lookup, a failed embedding with and without a preview, and a done one."""
    rows = {
        "lookup": ("failed", None, "waiting"),
        "embed": ("found", "http://127.0.0.1:1/a.m4a", "failed"),
        "embed_lost_preview": ("pending", None, "failed"),
        "done": ("found", "http://127.0.0.1:1/b.m4a", "done"),
    }
    ids = {}
    for name, (preview, url, embedding) in rows.items():
        ids[name] = await add_track(db, name)
        async with db() as s, s.begin():
            await s.execute(
                text(
                    "UPDATE tracks SET preview_status = :p, preview_url = :u, preview_attempts = 5,"
                    " preview_error = 'boom', preview_next_at = now() + interval '30 days',"
                    " embedding_status = :e, embedding_attempts = 3, embedding_error = 'bang',"
                    " embedding_next_at = now() + interval '1 day' WHERE id = :id"
                ),
                {"id": ids[name], "p": preview, "u": url, "e": embedding},
            )
    return ids


async def states(db: Factory) -> dict[str, dict[str, Any]]:
    async with db() as s:
        rows = await s.execute(
            text(
                "SELECT title, preview_status, preview_attempts, preview_error, preview_next_at,"
                " embedding_status, embedding_attempts, embedding_error, embedding_next_at FROM tracks"
            )
        )
        return {r.title: dict(r._mapping) for r in rows}


async def test_retry_one_stage_then_the_other(client: httpx.AsyncClient, db: Factory) -> None:
    await failed_tracks(db)
    before = await states(db)

    r = await client.post("/api/admin/retry-failed", json={"stage": "previews"})
    assert r.status_code == 200, r.text
    assert r.json() == {"requeued": 1, "stages": {"previews": 1}}
    after = await states(db)
    lookup = after["lookup"]
    assert (lookup["preview_status"], lookup["preview_attempts"]) == ("pending", 0)
    assert lookup["preview_error"] is None and lookup["preview_next_at"] is None
    # The embedding stage was not asked for: untouched.
    assert after["embed"] == before["embed"] and after["done"] == before["done"]

    r = await client.post("/api/admin/retry-failed", json={"stage": "embeddings"})
    assert r.json() == {"requeued": 2, "stages": {"embeddings": 2}}
    after = await states(db)
    assert (after["embed"]["embedding_status"], after["embed"]["embedding_attempts"]) == ("pending", 0)
    assert after["embed"]["embedding_error"] is None and after["embed"]["embedding_next_at"] is None
    # No preview to embed: it waits for preview lookup instead of sitting in the queue as pending.
    assert after["embed_lost_preview"]["embedding_status"] == "waiting"
    assert after["done"] == before["done"]

    # Nothing failed any more: nothing requeued.
    r = await client.post("/api/admin/retry-failed")
    assert r.json() == {"requeued": 0, "stages": {"previews": 0, "embeddings": 0}}


async def test_retry_both_stages_without_a_body(client: httpx.AsyncClient, db: Factory) -> None:
    await failed_tracks(db)
    r = await client.post("/api/admin/retry-failed")
    assert r.status_code == 200
    assert r.json() == {"requeued": 3, "stages": {"previews": 1, "embeddings": 2}}
    status = (await client.get("/api/status")).json()["pipeline"]
    assert status["preview"]["failed"] == 0 and status["embedding"]["failed"] == 0


async def test_unknown_stage_is_422_and_changes_nothing(client: httpx.AsyncClient, db: Factory) -> None:
    await failed_tracks(db)
    before = await states(db)
    for body in ({"stage": "audio"}, {"stage": "previews", "extra": 1}, [1]):
        r = await client.post("/api/admin/retry-failed", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"] == "validation_error"
    assert await states(db) == before


async def test_openapi_lists_every_status(client: httpx.AsyncClient) -> None:
    op = (await client.get("/openapi.json")).json()["paths"]["/api/admin/retry-failed"]["post"]
    assert set(op["responses"]) == {"200", "401", "413", "422", "500", "503"}
    assert op["security"] == [{"bearer": []}, {}]
