"""`haunt-fm status` (GET /api/status) and `haunt-fm retry-failed` (POST /api/admin/retry-failed)."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from haunt_fm.cli.backend import Call, execute, in_transaction, request
from haunt_fm.cli.common import JsonOption, console, print_json, say
from haunt_fm.cli.render import cell, size, table, when

if TYPE_CHECKING:
    from haunt_fm.pipeline.status.schemas import RetryFailedOut


def register(app: typer.Typer) -> None:
    app.command("status")(status)
    app.command("retry-failed")(retry_failed)


def status(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """The pipeline at a glance: tracks per stage, workers, imports, discovery and profiles."""
    from haunt_fm.pipeline.status import service
    from haunt_fm.pipeline.status.schemas import StatusOut

    local = in_transaction(lambda s, rt: service.pipeline_status(s, settings=rt.settings))
    answer = execute(ctx, Call("GET", "/api/status", StatusOut, local))
    # Shown from the document, not the model: a service of another version (a worker state or
    # a section this CLI doesn't know yet) still reads as a status, not as an error.
    if as_json:
        print_json(answer.document)
    else:
        render_status(answer.document)


class Stage(StrEnum):
    previews = "previews"
    embeddings = "embeddings"


def retry_failed(
    ctx: typer.Context,
    stage: Annotated[
        Stage | None,
        typer.Option("--stage", help="Only this stage's failures (default: both)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Put failed preview lookups and embeddings back in the queue now, with a fresh attempt budget."""
    from haunt_fm.pipeline.status.schemas import RetryFailedIn, RetryFailedOut

    body = request(RetryFailedIn, options={"stage": "--stage"}, stage=stage.value if stage else None)

    from haunt_fm.pipeline.status import service

    local = in_transaction(lambda s, _: service.retry_failed(s, stage=body.stage))
    call = Call("POST", "/api/admin/retry-failed", RetryFailedOut, local, body=body)
    execute(ctx, call).show(as_json=as_json, render=render_retried)


def render_retried(result: RetryFailedOut) -> None:
    names = {"previews": "preview lookup(s)", "embeddings": "embedding(s)"}
    parts = [f"{n} {names[stage]}" for stage, n in result.stages.items()]
    say(f"Requeued {result.requeued} failed track(s): {', '.join(parts)}.")


# --- the status document, for a person ----------------------------------------------------------
#
# Read with .get() throughout: sections and fields this CLI doesn't know are skipped, states it
# doesn't know are printed as they come, and a missing field reads as nothing rather than an error.


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _n(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else ("" if value is None else str(value))


def download_progress(item: dict[str, Any]) -> str | None:
    """`120.0 MB of 800.0 MB (15 %)` when `item` reports a `download` with bytes done/total."""
    download = _dict(item.get("download"))
    done, total = download.get("done"), download.get("total")
    if not isinstance(done, int):
        return None
    if isinstance(total, int) and total > 0:
        return f"{size(done)} of {size(total)} ({min(100, 100 * done // total)} %)"
    return f"{size(done)} so far"


def render_status(doc: dict[str, Any]) -> None:
    """The status document as a few short tables and lines."""
    out = console()
    p = _dict(doc.get("pipeline"))
    say(f"haunt-fm {doc.get('version', '?')}: database {doc.get('database', '?')}")
    counts = ("listens", "listened tracks", "tracks", "candidates", "feedback")
    totals = table("Pipeline", *counts, right=counts)
    totals.add_row(
        _n(p.get("listens")),
        _n(p.get("listened_tracks")),
        _n(p.get("tracks")),
        _n(p.get("candidates")),
        _n(doc.get("feedback")),
    )
    out.print(totals)
    numbers = ("waiting", "pending", "done", "not found", "failed")
    stages = table("Stages", "stage", *numbers, right=numbers)
    rows = (
        ("preview lookup", "preview", ("", "pending", "found", "not_found", "failed")),
        ("embedding", "embedding", ("waiting", "pending", "done", "", "failed")),
        ("tags", "tags", ("", "pending", "done", "", "failed")),
    )
    failed = 0
    for label, key, columns in rows:
        stage = p.get(key)
        if isinstance(stage, dict):
            stages.add_row(label, *(_n(stage.get(c)) if c else "" for c in columns))
            failed += stage.get("failed", 0) if key != "tags" and isinstance(stage.get("failed"), int) else 0
    out.print(stages)
    if failed:
        say("Failed preview lookups and embeddings go back in the queue with `haunt-fm retry-failed`.")
    embedding = _dict(p.get("embedding"))
    outdated = embedding.get("outdated")
    if isinstance(outdated, int) and outdated > 0:
        say(
            f"Re-embedding: {outdated:,} vector(s) of an earlier model are left out until re-embedded "
            f"with {embedding.get('model') or 'the current model'} ({_n(embedding.get('pending'))} pending)."
        )
    _worker(_dict(doc.get("worker")))
    _stages(doc)
    _imports(_dict(doc.get("imports")))
    if "radio" in doc:
        _radio(doc["radio"])
    profiles = table("Profiles", "name", "display name", "listens", "taste built", right=("listens",))
    for prof in _list(doc.get("profiles")):
        prof = _dict(prof)
        profiles.add_row(
            cell(prof.get("name")),
            cell(prof.get("display_name")),
            _n(prof.get("listens")),
            when(prof.get("taste_built_at")),
        )
    out.print(profiles)


def _worker(w: dict[str, Any]) -> None:
    """The embedding worker(s): state (any state a service reports), model, progress, errors."""
    say(
        f"Embedding worker: {w.get('state') or 'unknown'} (model {w.get('model') or '?'}), "
        f"last batch {when(w.get('last_batch_at'))}"
    )
    progress = download_progress(w)
    if progress:
        say(f"  model download: {progress}")
    if w.get("last_error"):
        say(f"  last error: {w['last_error']}")
    if w.get("next_retry_at"):
        say(f"  next try {when(w['next_retry_at'])}")
    for worker in _list(w.get("workers")):
        worker = _dict(worker)
        line = (
            f"  {worker.get('id', '?')}: {worker.get('state') or 'unknown'}, "
            f"{_n(worker.get('tracks_done', 0))} track(s) embedded, "
            f"heartbeat {when(worker.get('heartbeat_at'))}"
        )
        progress = download_progress(worker)
        say(line + (f", model download {progress}" if progress else ""))
    if w.get("text_tower_note"):
        say(f"  text tower: {w['text_tower_note']}")


def _stages(doc: dict[str, Any]) -> None:
    """Preview lookup, tags, discovery and Home Assistant: one line each, errors below."""
    pr = _dict(doc.get("previews"))
    if pr:
        rate = pr.get("rate_per_minute")
        say(
            f"Preview lookup: {'on' if pr.get('enabled') else 'off'}"
            + (f" ({rate:g}/min)" if isinstance(rate, int | float) else "")
            + f", last lookup {when(pr.get('last_lookup_at'))}"
        )
        if pr.get("last_error"):
            say(f"  last error ({when(pr.get('last_error_at'))}): {pr['last_error']}")
    tags = _dict(doc.get("tags"))
    if tags:
        state = "on" if tags.get("enabled") else "off (no Last.fm key: vibes can't use tags)"
        say(f"Tags: {state}, last fetch {when(tags.get('last_fetch_at'))}")
        if tags.get("last_error"):
            say(f"  last error ({when(tags.get('last_error_at'))}): {tags['last_error']}")
    d = _dict(doc.get("discovery"))
    key = "Last.fm key set" if d.get("lastfm_configured") else "no Last.fm key (HAUNTFM_LASTFM_API_KEY)"
    line = f"Discovery: {key}, last run {when(d.get('last_run_at'))}"
    interval = d.get("interval_hours")
    if isinstance(interval, int | float):
        line += (
            f", every {interval:g} h, next {when(d.get('next_run_at'))}"
            if interval > 0
            else ", not scheduled"
        )
    say(line)
    run = _dict(d.get("running"))
    if run:
        say(
            f"  running: {run.get('seeds_done', 0)} of {run.get('seeds_total', '?')} seeds, "
            f"{run.get('candidates_new', 0)} new candidates so far"
        )
    if d.get("last_error"):
        say(f"  last error: {d['last_error']}")
    ha = _dict(doc.get("homeassistant"))
    say(f"Home Assistant: {'configured' if ha.get('configured') else 'not configured'}")
    rec = _dict(ha.get("reconciliation"))
    if rec.get("enabled") or rec.get("last_run_at"):
        every = rec.get("interval_minutes")
        line = f"  history reconciliation: every {every:g} min, " if isinstance(every, int | float) else "  "
        line += f"last run {when(rec.get('last_run_at'))}"
        if rec.get("last_run_at"):
            line += f", {_n(rec.get('listens_recovered') or 0)} listen(s) recovered"
        say(line)
        if rec.get("last_error"):
            say(f"  last error ({when(rec.get('last_error_at'))}): {rec['last_error']}")


def _imports(imports: dict[str, Any]) -> None:
    """Running history imports, or the last one to end."""
    running = [_dict(i) for i in _list(imports.get("running"))]
    last = _dict(imports.get("last_finished"))
    shown = running or ([last] if last else [])
    if not shown:
        return
    say("Importing:" if running else "Last import:")
    for item in shown:
        source = "Last.fm" if item.get("source") == "lastfm" else "ListenBrainz"
        what = item.get("user") if item.get("source") == "lastfm" else item.get("filename")
        progress = _dict(item.get("progress"))
        done, total = progress.get("done"), progress.get("total")
        state = str(item.get("status", "?"))
        if state == "running" and isinstance(done, int) and isinstance(total, int) and total > 0:
            state += f" {min(100, 100 * done // total)} %"
        say(
            f"  import {item.get('import_id', '?')}: {source} {what or ''} → "
            f"{item.get('profile', '?')}: {state}, "
            f"{_n(item.get('imported', 0))} imported, {_n(item.get('duplicates', 0))} duplicates, "
            f"{_n(item.get('skipped', 0))} skipped"
        )
        if item.get("error"):
            say(f"    {item['error']}")


def _radio(radio: Any) -> None:
    """Radios, should the status carry them: one line each with its speaker and profile."""
    radios = _list(_dict(radio).get("radios")) if isinstance(radio, dict) else _list(radio)
    active = [_dict(r) for r in radios if _dict(r).get("active", True)]
    if not active:
        return
    say("Radio: " + ", ".join(f"{r.get('speaker_entity', '?')} ({r.get('profile', '?')})" for r in active))
