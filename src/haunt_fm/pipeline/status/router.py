"""/health and /api/status."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from haunt_fm.deps import SessionDep, SettingsDep
from haunt_fm.errors import RETRY_AFTER_SECONDS
from haunt_fm.pipeline.status import repository, service
from haunt_fm.pipeline.status.schemas import HealthOut, RetryFailedIn, RetryFailedOut, StatusOut

router = APIRouter(tags=["status"])


@router.get(
    "/health",
    summary="Health check (database connectivity)",
    response_model=HealthOut,
    responses={503: {"description": "The database is unreachable; Retry-After says when to ask again."}},
)
async def health(request: Request) -> JSONResponse:
    try:
        async with request.app.state.engine.connect() as conn:
            await repository.ping(conn)
    except Exception as exc:  # any failure to reach the database is "unhealthy"
        reason = type(exc).__name__
        message = str(exc).splitlines()[0][:200] if str(exc) else reason
        return JSONResponse(
            {"status": "error", "database": f"{reason}: {message}"},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return JSONResponse({"status": "ok", "database": "ok"})


@router.get("/api/status", response_model=StatusOut, summary="Full pipeline status")
async def status(request: Request, session: SessionDep, settings: SettingsDep) -> StatusOut:
    return await service.pipeline_status(
        session, settings=settings, local_worker=getattr(request.app.state, "embedding_worker", None)
    )


@router.post(
    "/api/admin/retry-failed",
    response_model=RetryFailedOut,
    summary="Put failed preview lookups and embeddings back in the queue now",
    description=(
        "Tracks whose preview lookup or embedding failed (`pipeline.preview.failed`, "
        "`pipeline.embedding.failed` in /api/status) are queued again at once with a fresh attempt "
        "budget, instead of waiting for their next scheduled retry. `stage` picks one stage; "
        "without a body (or with `null`) both. A failed embedding whose track has lost its preview "
        "waits for preview lookup first. Idempotent: nothing failed, nothing requeued."
    ),
)
async def retry_failed(session: SessionDep, body: RetryFailedIn | None = None) -> RetryFailedOut:
    return await service.retry_failed(session, stage=body.stage if body else None)
