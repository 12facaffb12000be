"""`haunt-fm status` (GET /api/status) and `haunt-fm retry-failed` (POST /api/admin/retry-failed)."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from haunt_fm.cli.backend import Call, execute, in_transaction, request
from haunt_fm.cli.common import JsonOption, console, say
from haunt_fm.cli.render import cell, table, when

if TYPE_CHECKING:
    from haunt_fm.pipeline.status.schemas import RetryFailedOut, StatusOut


def register(app: typer.Typer) -> None:
    app.command("status")(status)
    app.command("retry-failed")(retry_failed)


def status(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """The pipeline at a glance: tracks per stage, workers, discovery and profiles."""
    from haunt_fm.pipeline.status import service
    from haunt_fm.pipeline.status.schemas import StatusOut

    local = in_transaction(lambda s, rt: service.pipeline_status(s, settings=rt.settings))
    execute(ctx, Call("GET", "/api/status", StatusOut, local)).show(as_json=as_json, render=render_status)


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


def render_status(doc: StatusOut) -> None:
    """The status document as a few short tables and lines."""
    out = console()
    p = doc.pipeline
    say(f"haunt-fm {doc.version}: database {doc.database}")
    counts = table(
        "Pipeline",
        "listens",
        "listened tracks",
        "candidates",
        "feedback",
        right=("listens", "listened tracks", "candidates", "feedback"),
    )
    counts.add_row(str(p.listens), str(p.listened_tracks), str(p.candidates), str(doc.feedback))
    out.print(counts)
    numbers = ("waiting", "pending", "done", "not found", "failed")
    stages = table("Stages", "stage", *numbers, right=numbers)
    pv, em = p.preview, p.embedding
    stages.add_row("preview lookup", "", str(pv.pending), str(pv.found), str(pv.not_found), str(pv.failed))
    stages.add_row("embedding", str(em.waiting), str(em.pending), str(em.done), "", str(em.failed))
    out.print(stages)
    if pv.failed or em.failed:
        say("Failed tracks go back in the queue with `haunt-fm retry-failed`.")

    w = doc.worker
    say(f"Embedding worker: {w.state} (model {w.model}), last batch {when(w.last_batch_at)}")
    if w.last_error:
        say(f"  last error: {w.last_error}")
    for worker in w.workers:
        say(
            f"  {worker.id}: {worker.state}, {worker.tracks_done} track(s) embedded, "
            f"heartbeat {when(worker.heartbeat_at)}"
        )
    if w.text_tower_note:
        say(f"  text tower: {w.text_tower_note}")
    pr = doc.previews
    say(
        f"Preview lookup: {'on' if pr.enabled else 'off'} ({pr.rate_per_minute:g}/min), "
        f"last lookup {when(pr.last_lookup_at)}"
    )
    if pr.last_error:
        say(f"  last error ({when(pr.last_error_at)}): {pr.last_error}")
    d = doc.discovery
    key = "Last.fm key set" if d.lastfm_configured else "no Last.fm key (HAUNTFM_LASTFM_API_KEY)"
    say(f"Discovery: {key}, last run {when(d.last_run_at)}")
    if d.running:
        run = d.running
        say(
            f"  running: {run.get('seeds_done', 0)} of {run.get('seeds_total', '?')} seeds, "
            f"{run.get('candidates_new', 0)} new candidates so far"
        )
    if d.last_error:
        say(f"  last error: {d.last_error}")
    say(f"Home Assistant: {'configured' if doc.homeassistant.configured else 'not configured'}")

    profiles = table("Profiles", "name", "display name", "listens", "taste built", right=("listens",))
    for prof in doc.profiles:
        profiles.add_row(
            cell(prof.name), cell(prof.display_name), str(prof.listens), when(prof.taste_built_at)
        )
    out.print(profiles)
