"""/api/admin/import/*: import listening history from Last.fm and ListenBrainz; follow the imports."""

from __future__ import annotations

from fastapi import APIRouter, Path, Query, Request, status

from haunt_fm.deps import SessionDep, SettingsDep
from haunt_fm.pipeline.common import LimitQuery
from haunt_fm.pipeline.imports import service
from haunt_fm.pipeline.imports.schemas import ImportList, ImportOut, LastfmImportIn

router = APIRouter(prefix="/api/admin", tags=["imports"])

LISTENBRAINZ_PATH = "/api/admin/import/listenbrainz"

_ERROR = {"content": {"application/json": {"example": {"detail": "A sentence saying what is wrong."}}}}
_LISTEN_SCHEMA = {
    "type": "object",
    "required": ["listened_at", "track_metadata"],
    "properties": {
        "listened_at": {"type": "integer", "description": "Unix time"},
        "track_metadata": {
            "type": "object",
            "required": ["artist_name", "track_name"],
            "properties": {
                "artist_name": {"type": "string"},
                "track_name": {"type": "string"},
                "release_name": {"type": "string"},
                "additional_info": {"type": "object"},
            },
        },
    },
}
_LINES = {"schema": {"type": "string", "format": "binary", "description": "One listen (JSON) per line."}}


@router.post(
    "/import/lastfm",
    response_model=ImportOut,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Import a Last.fm user's scrobbles as listens (runs in the background)",
    description=(
        "Checks the user with Last.fm, then queues the import and answers at once; follow it with "
        "GET /api/admin/imports/{import_id} or /api/status. It pages through user.getRecentTracks "
        "(200 a page, newest first) at the shared Last.fm rate limit, stores each scrobble as a listen "
        "at its time (source `lastfm`), and resumes where it stopped after a restart. Importing the "
        "same history again adds nothing. While an import of the same user into the same profile runs, "
        "asking again answers that one."
    ),
    responses={
        404: {"description": "Unknown profile, or Last.fm has no such user", **_ERROR},
        409: {"description": "No Last.fm API key is configured, or the user's history is private", **_ERROR},
        502: {"description": "Last.fm rejected the API key or could not be reached", **_ERROR},
    },
)
async def import_lastfm(request: Request, body: LastfmImportIn, settings: SettingsDep) -> ImportOut:
    runtime = request.app.state.runtime
    return await service.start_lastfm(
        sessions=runtime.sessions,
        settings=settings,
        http=runtime.http,
        user=body.user,
        profile=body.profile,
        since=body.since,
    )


@router.post(
    "/import/listenbrainz",
    response_model=ImportOut,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Import a ListenBrainz export as listens (the file is the body; runs in the background)",
    description=(
        "The body is the export: a JSON array of listens (`application/json`), one listen per line "
        "(`application/x-ndjson` or `application/jsonl`), or a `multipart/form-data` upload with the file "
        "(field `file`, or any field with a file name). Other types are read by their first byte. The "
        "upload is streamed to the data directory (never held in memory; at most "
        "HAUNTFM_IMPORT_MAX_BYTES, default 2 GiB), then imported in the background; a malformed or "
        "incomplete entry is counted in `skipped` and listed in `problems` with its line, and the rest "
        "imports."
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                # An entry of another shape is not refused: it is skipped and listed in `problems`.
                "application/json": {
                    "schema": {
                        "type": "array",
                        "items": {"anyOf": [_LISTEN_SCHEMA, {"description": "anything else: skipped"}]},
                    }
                },
                "application/x-ndjson": _LINES,
                "application/jsonl": _LINES,
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                },
            },
        }
    },
    responses={
        404: {"description": "Unknown profile", **_ERROR},
        413: {"description": "The upload is larger than HAUNTFM_IMPORT_MAX_BYTES", **_ERROR},
        422: {"description": "Empty, not an export, or a broken multipart form", **_ERROR},
    },
)
async def import_listenbrainz(
    request: Request,
    settings: SettingsDep,
    profile: str | None = Query(default=None, max_length=64, description="Profile name; default: default."),
) -> ImportOut:
    return await service.start_listenbrainz_upload(
        sessions=request.app.state.runtime.sessions,
        settings=settings,
        body=request.stream(),
        content_type=request.headers.get("content-type"),
        profile=profile,
    )


@router.get("/imports", response_model=ImportList, summary="History imports, newest first")
async def list_imports(session: SessionDep, limit: LimitQuery = 50) -> ImportList:
    return ImportList(imports=await service.list_imports(session, limit=limit))


@router.get(
    "/imports/{import_id}",
    response_model=ImportOut,
    summary="One history import: status, counters, problems",
    responses={404: {"description": "No such import", **_ERROR}},
)
async def get_import(session: SessionDep, import_id: int = Path(ge=1, le=2**63 - 1)) -> ImportOut:
    return await service.get(session, import_id=import_id)
