"""The pipeline at a glance: cheap counts for /api/status (it is polled)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from haunt_fm import __version__
from haunt_fm.config import Settings

# A worker whose heartbeat is older than this is considered gone.
WORKER_STALE_AFTER = timedelta(minutes=5)

_COUNTS_SQL = text(
    """
    SELECT
      (SELECT count(*) FROM listen_events) AS listens,
      (SELECT count(*) FROM tracks WHERE listened) AS listened_tracks,
      (SELECT count(*) FROM tracks) AS tracks,
      (SELECT count(*) FROM tracks WHERE NOT listened) AS candidates,
      (SELECT count(*) FROM feedback) AS feedback
    """
)
_STAGE_SQL = text(
    """
    SELECT 'preview' AS stage, preview_status AS status, count(*) AS n FROM tracks GROUP BY preview_status
    UNION ALL
    SELECT 'embedding', embedding_status, count(*) FROM tracks GROUP BY embedding_status
    """
)
_PROFILES_SQL = text(
    """
    SELECT p.name, p.display_name, p.taste_built_at,
           (SELECT count(*) FROM listen_events e WHERE e.profile_id = p.id) AS listens
    FROM profiles p ORDER BY (p.name <> 'default'), p.name
    """
)
_WORKERS_SQL = text(
    """
    SELECT id, hostname, pid, state, model, model_loaded, text_tower_ok, details,
           last_batch_at, last_error, tracks_done, heartbeat_at
    FROM worker_states ORDER BY heartbeat_at DESC
    """
)


async def _state(session: AsyncSession, key: str) -> dict[str, Any]:
    row = (await session.execute(text("SELECT value FROM app_state WHERE key = :k"), {"k": key})).first()
    return dict(row[0]) if row else {}


def _worker_summary(settings: Settings, workers: list[dict[str, Any]], *, local: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    alive = [w for w in workers if now - w["heartbeat_at"] < WORKER_STALE_AFTER]
    summary: dict[str, Any] = {
        "enabled": settings.embedding_worker_enabled,
        "state": "disabled",
        "model": settings.clap_model,
        "last_batch_at": None,
        "last_error": None,
        "text_tower_ok": None,
        "text_tower_note": None,
        "workers": [
            {
                "id": w["id"],
                "state": w["state"],
                "model": w["model"],
                "last_batch_at": w["last_batch_at"],
                "last_error": w["last_error"],
                "tracks_done": w["tracks_done"],
                "heartbeat_at": w["heartbeat_at"],
            }
            for w in alive
        ],
    }
    if alive:
        states = {w["state"] for w in alive}
        summary["state"] = "working" if "working" in states else "idle" if "idle" in states else "error"
        summary["enabled"] = True
        latest = max((w["last_batch_at"] for w in alive if w["last_batch_at"]), default=None)
        summary["last_batch_at"] = latest
        errors = [w for w in alive if w["last_error"]]
        summary["last_error"] = errors[0]["last_error"] if errors else None
        summary["model"] = alive[0]["model"] or settings.clap_model
        checked = [w for w in alive if w["text_tower_ok"] is not None]
        if checked:
            summary["text_tower_ok"] = checked[0]["text_tower_ok"]
            summary["text_tower_note"] = (checked[0]["details"] or {}).get("text_tower_note")
    elif settings.embedding_worker_enabled:
        summary["state"] = "idle" if local is None else getattr(local, "state", "idle")
    return summary


async def pipeline_status(
    session: AsyncSession, *, settings: Settings, local_worker: Any = None
) -> dict[str, Any]:
    """The whole /api/status document."""
    counts = dict((await session.execute(_COUNTS_SQL)).mappings().one())
    preview = {"pending": 0, "found": 0, "not_found": 0, "failed": 0}
    embedding = {"pending": 0, "done": 0, "failed": 0, "waiting": 0}
    for row in (await session.execute(_STAGE_SQL)).mappings():
        target = preview if row["stage"] == "preview" else embedding
        target[row["status"]] = target.get(row["status"], 0) + int(row["n"])
    workers = [dict(r) for r in (await session.execute(_WORKERS_SQL)).mappings()]
    discovery = await _state(session, "discovery")
    previews_state = await _state(session, "previews")
    profiles = [dict(r) for r in (await session.execute(_PROFILES_SQL)).mappings()]
    return {
        "status": "ok",
        "database": "ok",
        "version": __version__,
        "pipeline": {
            "listens": counts["listens"],
            "listened_tracks": counts["listened_tracks"],
            "tracks": counts["tracks"],
            "candidates": counts["candidates"],
            "preview": preview,
            "embedding": embedding,
        },
        "worker": _worker_summary(settings, workers, local=local_worker),
        "discovery": {
            "lastfm_configured": settings.lastfm_configured,
            "last_run_at": discovery.get("last_run_at"),
            "last_run": discovery.get("last_run"),
            "last_error": discovery.get("last_error"),
        },
        "previews": {
            "enabled": settings.preview_worker_enabled,
            "rate_per_minute": settings.itunes_rate_per_minute,
            "last_lookup_at": previews_state.get("last_lookup_at"),
            "last_error": previews_state.get("last_error"),
        },
        "homeassistant": {"configured": settings.ha_configured},
        "profiles": [
            {
                "name": p["name"],
                "display_name": p["display_name"],
                "listens": p["listens"],
                "taste_built_at": p["taste_built_at"],
            }
            for p in profiles
        ],
        "feedback": counts["feedback"],
    }
