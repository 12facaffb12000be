"""`haunt-fm status` reads whatever a service reports: a worker state or a section this CLI doesn't
know (a newer haunt-fm: `loading` with download progress, a radio section) prints as it comes,
and `--json` is the document as it is."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from tests.cli.support import cli_env, run

DOCUMENT: dict[str, Any] = {
    "status": "ok",
    "database": "ok",
    "version": "9.9.9",
    "pipeline": {
        "listens": 12,
        "listened_tracks": 5,
        "tracks": 40,
        "candidates": 35,
        "preview": {"pending": 3, "found": 30, "not_found": 6, "failed": 1},
        "embedding": {
            "pending": 8,
            "done": 22,
            "failed": 0,
            "waiting": 10,
            "model": "laion/larger_clap_general",
            "outdated": 17,
        },
        "tags": {"pending": 4, "done": 36, "failed": 2},
    },
    "worker": {
        "enabled": True,
        "state": "loading",
        "model": "laion/larger_clap_general",
        "last_batch_at": None,
        "last_error": None,
        "text_tower_ok": None,
        "text_tower_note": None,
        "download": {"done": 300 * 1024 * 1024, "total": 800 * 1024 * 1024},
        "workers": [
            {
                "id": "nas:81:ab",
                "state": "loading",
                "model": "laion/larger_clap_general",
                "last_batch_at": None,
                "last_error": None,
                "tracks_done": 0,
                "heartbeat_at": "2026-11-30T10:00:00+00:00",
                "download": {"done": 300 * 1024 * 1024, "total": 800 * 1024 * 1024},
                "a_field_from_the_future": 1,
            }
        ],
    },
    "discovery": {
        "lastfm_configured": True,
        "last_run_at": None,
        "last_run": None,
        "last_error": None,
        "running": None,
        "interval_hours": 24.0,
        "next_run_at": "2026-12-01T10:00:00+00:00",
    },
    "previews": {
        "enabled": True,
        "rate_per_minute": 20.0,
        "last_lookup_at": None,
        "last_error": None,
        "last_error_at": None,
    },
    "tags": {"enabled": True, "last_fetch_at": None, "last_error": "Last.fm said 29", "last_error_at": None},
    "homeassistant": {"configured": False, "reconciliation": {"enabled": False, "last_run_at": None}},
    "profiles": [{"name": "default", "display_name": None, "listens": 12, "taste_built_at": None}],
    "feedback": 2,
    "imports": {
        "running": [
            {
                "import_id": 3,
                "source": "listenbrainz",
                "profile": "default",
                "status": "running",
                "imported": 1000,
                "duplicates": 5,
                "skipped": 0,
                "error": None,
                "progress": {"done": 250, "total": 1000, "unit": "bytes"},
                "filename": "listens.jsonl",
            }
        ],
        "last_finished": None,
    },
    "radio": {"radios": [{"speaker_entity": "media_player.kitchen_2", "profile": "default", "active": True}]},
    "a_section_from_the_future": {"anything": True},
}


async def test_a_newer_status_document_reads_as_a_status(tmp_path: Path) -> None:
    from fastapi import FastAPI

    from tests.support.live_server import LiveServer

    newer = FastAPI()

    @newer.get("/api/status")
    async def status() -> dict[str, Any]:
        return DOCUMENT

    with LiveServer(newer) as server:
        env = cli_env(HAUNTFM_URL=server.url)
        table = await run("status", env=env, cwd=tmp_path)
        raw = await run("status", "--json", env=env, cwd=tmp_path)
    assert table.code == 0 and table.err == "", table.err
    out = table.out
    assert "haunt-fm 9.9.9: database ok" in out
    assert "Embedding worker: loading (model laion/larger_clap_general)" in out
    assert "model download: 300.0 MB of 800.0 MB (37 %)" in out
    assert "nas:81:ab: loading, 0 track(s) embedded" in out and "model download 300.0 MB" in out
    assert "Re-embedding: 17 vector(s) of an earlier model" in out and "(8 pending)" in out
    assert "│ tags " in out and "Tags: on" in out and "Last.fm said 29" in out
    assert "Importing:" in out and "import 3: ListenBrainz listens.jsonl → default: running 25 %" in out
    assert "Radio: media_player.kitchen_2 (default)" in out
    assert "Failed preview lookups and embeddings go back in the queue" in out
    assert raw.json() == DOCUMENT


async def test_a_status_with_sections_missing_still_prints(tmp_path: Path) -> None:
    from fastapi import FastAPI

    from tests.support.live_server import LiveServer

    older = copy.deepcopy(DOCUMENT)
    for key in ("imports", "tags", "radio", "a_section_from_the_future"):
        del older[key]
    del older["pipeline"]["tags"]
    older["worker"] = {"state": "starting", "workers": [{"id": "w"}]}
    app = FastAPI()

    @app.get("/api/status")
    async def status() -> dict[str, Any]:
        return older

    with LiveServer(app) as server:
        table = await run("status", env=cli_env(HAUNTFM_URL=server.url), cwd=tmp_path)
    assert table.code == 0 and table.err == "", table.err
    assert "Embedding worker: starting (model ?), last batch never" in table.out
    assert "w: unknown, 0 track(s) embedded, heartbeat never" in table.out
    assert "Importing:" not in table.out and "Radio:" not in table.out
