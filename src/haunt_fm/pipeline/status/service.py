"""The pipeline at a glance: cheap counts for /api/status (it is polled)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from haunt_fm import __version__
from haunt_fm.config import Settings
from haunt_fm.pipeline.embeddings import service as embeddings
from haunt_fm.pipeline.embeddings.models import WORKER_STALE_SECONDS
from haunt_fm.pipeline.imports import service as imports
from haunt_fm.pipeline.previews import service as previews
from haunt_fm.pipeline.status import repository
from haunt_fm.pipeline.status.schemas import RetryFailedOut, RetryStage, StatusOut

# A worker whose heartbeat is older than twice its interval is gone (killed, crashed).
WORKER_STALE_AFTER = timedelta(seconds=WORKER_STALE_SECONDS)


# The aggregate state: the busiest live worker's (see WorkerSummary.state).
STATE_ORDER = ("working", "loading", "idle", "error")


def _worker_out(w: dict[str, Any]) -> dict[str, Any]:
    """One live worker; the loading/retry/runtime facts come from its heartbeat's `details`."""
    details = w["details"] or {}
    runtime = details.get("embedding_runtime")
    return {
        "id": w["id"],
        "state": w["state"],
        "model": w["model"],
        "last_batch_at": w["last_batch_at"],
        "last_error": w["last_error"],
        "tracks_done": w["tracks_done"],
        "heartbeat_at": w["heartbeat_at"],
        "download": details.get("download") if w["state"] == "loading" else None,
        "next_retry_at": details.get("next_retry_at") if w["state"] == "error" else None,
        "embedding_runtime": runtime if w["model_loaded"] and isinstance(runtime, dict) else None,
    }


def _worker_summary(settings: Settings, alive: list[dict[str, Any]], *, local: Any) -> dict[str, Any]:
    workers = [_worker_out(w) for w in alive]
    summary: dict[str, Any] = {
        "enabled": settings.embedding_worker_enabled,
        "state": "disabled",
        "model": settings.clap_model,
        "last_batch_at": None,
        "last_error": None,
        "text_tower_ok": None,
        "text_tower_note": None,
        "download": next((w["download"] for w in workers if w["download"]), None),
        "next_retry_at": min((w["next_retry_at"] for w in workers if w["next_retry_at"]), default=None),
        "embedding_runtime": next((w["embedding_runtime"] for w in workers if w["embedding_runtime"]), None),
        "workers": workers,
    }
    if alive:
        states = {w["state"] for w in alive}
        summary["state"] = next((s for s in STATE_ORDER if s in states), "error")
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


# A run reports progress every second; one silent for this long died with its process.
RUN_STALE_AFTER = timedelta(minutes=2)


def _live_run(running: Any) -> dict[str, Any] | None:
    """The discovery run in progress (seeds done of total), or None."""
    if not isinstance(running, dict) or not running.get("updated_at"):
        return None
    try:
        updated = datetime.fromisoformat(running["updated_at"])
    except (TypeError, ValueError):
        return None
    return running if datetime.now(UTC) - updated < RUN_STALE_AFTER else None


def _reconciliation(settings: Settings, state: dict[str, Any]) -> dict[str, Any]:
    """The last reading of Home Assistant's history for missed listens."""
    last = state.get("last_run") or {}
    return {
        "enabled": settings.ha_configured and settings.ha_reconcile_minutes > 0,
        "interval_minutes": settings.ha_reconcile_minutes,
        "last_run_at": state.get("last_run_at"),
        "kind": last.get("kind"),
        "window": {"start": last["start"], "end": last["end"]} if last else None,
        "players": last.get("players", []),
        "listens_found": last.get("listens_found"),
        "listens_recovered": last.get("recovered"),
        "error": last.get("error"),
        "last_error": state.get("last_error"),
        "last_error_at": state.get("last_error_at"),
    }


async def pipeline_status(
    session: AsyncSession, *, settings: Settings, local_worker: Any = None
) -> StatusOut:
    """The whole /api/status document."""
    preview = {"pending": 0, "found": 0, "not_found": 0, "failed": 0}
    embedding: dict[str, Any] = {"pending": 0, "done": 0, "failed": 0, "waiting": 0}
    tags = {"pending": 0, "done": 0, "failed": 0}
    tracks = listened_tracks = 0
    for row in await repository.track_counts(session):
        n = int(row["n"])
        tracks += n
        listened_tracks += n if row["listened"] else 0
        preview[row["preview_status"]] = preview.get(row["preview_status"], 0) + n
        embedding[row["embedding_status"]] = embedding.get(row["embedding_status"], 0) + n
        tags[row["tags_status"]] = tags.get(row["tags_status"], 0) + n
    by_model = await repository.vectors_by_model(session)
    embedding["model"] = settings.clap_model
    embedding["outdated"] = sum(n for model, n in by_model.items() if model != settings.clap_model)
    profiles = await repository.profiles_with_listens(session)
    workers = await repository.live_workers(session, since=datetime.now(UTC) - WORKER_STALE_AFTER)
    states = await repository.app_states(session)
    discovery = states.get("discovery", {})
    previews_state = states.get("previews", {})
    reconcile = states.get("ha_reconcile", {})
    tags_state = states.get("tags", {})
    feedback = await repository.feedback_count(session)
    scheduled = await repository.scheduled_jobs(session)
    running_imports = await imports.running(session)
    last_import = await imports.last_finished(session)
    return StatusOut.model_validate(
        {
            "status": "ok",
            "database": "ok",
            "version": __version__,
            "pipeline": {
                "listens": sum(int(p["listens"]) for p in profiles),
                "listened_tracks": listened_tracks,
                "tracks": tracks,
                "candidates": tracks - listened_tracks,
                "preview": preview,
                "embedding": embedding,
                "tags": tags,
            },
            "worker": _worker_summary(settings, workers, local=local_worker),
            "discovery": {
                "lastfm_configured": settings.lastfm_configured,
                "last_run_at": discovery.get("last_run_at"),
                "last_run": discovery.get("last_run"),
                "last_error": discovery.get("last_error"),
                "running": _live_run(discovery.get("running")),
                "interval_hours": settings.discovery_interval_hours,
                "next_run_at": scheduled.get("discovery"),
            },
            "previews": {
                "enabled": settings.preview_worker_enabled,
                "rate_per_minute": settings.itunes_rate_per_minute,
                "last_lookup_at": previews_state.get("last_lookup_at"),
                "last_error": previews_state.get("last_error"),
                "last_error_at": previews_state.get("last_error_at"),
            },
            "tags": {
                "enabled": settings.lastfm_configured,
                "last_fetch_at": tags_state.get("last_fetch_at"),
                "last_error": tags_state.get("last_error"),
                "last_error_at": tags_state.get("last_error_at"),
            },
            "homeassistant": {
                "configured": settings.ha_configured,
                "reconciliation": _reconciliation(settings, reconcile),
            },
            "profiles": [
                {
                    "name": p["name"],
                    "display_name": p["display_name"],
                    "listens": p["listens"],
                    "taste_built_at": p["taste_built_at"],
                }
                for p in profiles
            ],
            "feedback": feedback,
            "imports": {"running": running_imports, "last_finished": last_import},
        }
    )


async def retry_failed(session: AsyncSession, *, stage: RetryStage | None) -> RetryFailedOut:
    """Put the failed tracks of one stage (or of both) back in the queue now."""
    retry = {"previews": previews.retry_failed, "embeddings": embeddings.retry_failed}
    stages: dict[RetryStage, int] = {}
    for name in ("previews", "embeddings"):
        if stage is None or stage == name:
            stages[name] = await retry[name](session)
    return RetryFailedOut(requeued=sum(stages.values()), stages=stages)
