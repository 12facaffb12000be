"""GET / and its static files over HTTP (the browser test drives the page itself)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

PANELS = (
    "panel-pipeline",
    "panel-tastes",
    "panel-radio",
    "panel-listens",
    "panel-recommendations",
    "panel-feedback",
)
SECRETS = {
    "lastfm_api_key": "lfm-key-4d1f0c9b",
    "ha_token": "ha-token-77aa31ee",
    "api_token": "api-token-c0ffee42",
}


async def test_dashboard_is_html_with_every_panel(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    for panel in PANELS:
        assert f'id="{panel}"' in page, panel
    for control in ('id="vibe"', 'id="profile-filter"', 'id="feedback-form"', 'id="token-panel"'):
        assert control in page, control
    # Everything comes from this server: no CDN, no inline script (the CSP forbids both).
    assert not re.search(r'(?:src|href)="(?:https?:)?//', page)
    assert re.search(r'<script src="/static/dashboard\.js\?v=[0-9a-f]{12}" defer></script>', page)
    assert "<script>" not in page
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp


async def test_static_assets_are_served_and_nothing_else(client: httpx.AsyncClient) -> None:
    page = (await client.get("/")).text
    for name, media in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        match = re.search(rf"/static/{re.escape(name)}\?v=[0-9a-f]+", page)
        assert match, name
        response = await client.get(match.group(0))
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(media)
        assert len(response.content) > 1000
    js = (await client.get("/static/dashboard.js")).text
    # Data is rendered with textContent; innerHTML is never used.
    assert "innerHTML" not in js and "insertAdjacentHTML" not in js and "document.write" not in js
    for missing in ("/static/nope.js", "/static/..%2Frouter.py", "/static/%2E%2E%2Frouter.py"):
        response = await client.get(missing)
        assert response.status_code == 404, missing
        assert "detail" in response.json()


async def test_dashboard_is_not_in_the_api_schema(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/" not in paths and "/static/{name}" not in paths


async def test_no_secret_reaches_the_page_or_the_status(serve: Callable[..., str]) -> None:
    url = serve(ha_url="http://127.0.0.1:9", **SECRETS)
    auth = {"Authorization": f"Bearer {SECRETS['api_token']}"}
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        page = await http.get("/")
        js = await http.get("/static/dashboard.js")
        css = await http.get("/static/dashboard.css")
        status = await http.get("/api/status", headers=auth)
    assert status.status_code == 200
    assert status.json()["discovery"]["lastfm_configured"] is True
    assert status.json()["homeassistant"]["configured"] is True
    for response in (page, js, css, status):
        assert response.status_code == 200
        for secret in SECRETS.values():
            assert secret not in response.text


async def test_page_is_open_while_the_api_needs_the_token(serve: Callable[..., str]) -> None:
    url = serve(api_token=SECRETS["api_token"])
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        assert (await http.get("/")).status_code == 200
        assert (await http.get("/static/dashboard.js")).status_code == 200
        for path in ("/api/status", "/api/history/recent", "/api/profiles"):
            assert (await http.get(path)).status_code == 401, path
        ok = await http.get("/api/status", headers={"Authorization": f"Bearer {SECRETS['api_token']}"})
        assert ok.status_code == 200


async def test_status_counts_every_stage(
    client: httpx.AsyncClient, db: async_sessionmaker[AsyncSession]
) -> None:
    await client.post("/api/profiles", json={"name": "antialias"})
    for title in ("One", "Two"):
        response = await client.post(
            "/api/history/webhook", json={"title": title, "artist": "Band", "profile": "antialias"}
        )
        assert response.status_code == 201
    now = datetime.now(UTC)
    async with db() as session, session.begin():
        rows = [
            ("found", "done"),
            ("found", "done"),
            ("found", "pending"),
            ("found", "failed"),
            ("not_found", "waiting"),
            ("failed", "waiting"),
        ]
        for i, (preview, embedding) in enumerate(rows):
            await session.execute(
                text(
                    "INSERT INTO tracks (title, artist, norm_artist, norm_title, norm_key, source,"
                    " preview_status, embedding_status) VALUES (:t, 'x', 'x', :t, :k, 'lastfm', :p, :e)"
                ),
                {"t": f"c{i}", "k": f"x\x1fc{i}", "p": preview, "e": embedding},
            )
        await session.execute(
            text(
                "INSERT INTO worker_states (id, hostname, pid, state, model, text_tower_ok, details,"
                " last_batch_at, last_error, heartbeat_at) VALUES"
                " ('h:1:a', 'h', 1, 'working', 'tiny-clap', false, CAST(:d AS jsonb), :now, 'bad preview',"
                " :now),"
                " ('h:2:b', 'h', 2, 'idle', 'old-clap', true, NULL, NULL, NULL, :old)"
            ),
            {"d": '{"text_tower_note": "prompts look alike"}', "now": now, "old": now - timedelta(hours=2)},
        )
        await session.execute(
            text("INSERT INTO app_state (key, value) VALUES ('discovery', CAST(:v AS jsonb))"),
            {"v": '{"last_run_at": "2026-01-02T03:04:05+00:00"}'},
        )
    status = (await client.get("/api/status")).json()
    pipeline = status["pipeline"]
    assert (pipeline["listens"], pipeline["listened_tracks"], pipeline["tracks"], pipeline["candidates"]) == (
        2,
        2,
        8,
        6,
    )
    assert pipeline["preview"] == {"pending": 2, "found": 4, "not_found": 1, "failed": 1}
    assert pipeline["embedding"]["pending"] == 1
    assert pipeline["embedding"]["done"] == 2
    assert pipeline["embedding"]["failed"] == 1
    worker = status["worker"]
    # The stale worker (no heartbeat for 2 h) is gone; the live one is working.
    assert [w["id"] for w in worker["workers"]] == ["h:1:a"]
    assert (worker["state"], worker["model"], worker["last_error"]) == ("working", "tiny-clap", "bad preview")
    assert worker["text_tower_ok"] is False and worker["text_tower_note"] == "prompts look alike"
    assert status["discovery"] == {
        "lastfm_configured": False,
        "last_run_at": "2026-01-02T03:04:05+00:00",
        "last_run": None,
        "last_error": None,
        "running": None,
        "interval_hours": 24.0,
        "next_run_at": None,
    }
    assert {p["name"]: p["listens"] for p in status["profiles"]} == {"default": 0, "antialias": 2}
    assert status["feedback"] == 0
    assert status["homeassistant"]["configured"] is False
    reconciliation = status["homeassistant"]["reconciliation"]
    assert reconciliation["enabled"] is False and reconciliation["last_run_at"] is None
