"""/api/admin/discover: expand the listening history through Last.fm."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from haunt_fm.deps import SettingsDep
from haunt_fm.pipeline.discovery import service
from haunt_fm.pipeline.discovery.schemas import DiscoverIn, DiscoverOut

router = APIRouter(prefix="/api/admin", tags=["discovery"])


async def discover_body(request: Request) -> DiscoverIn:
    """The JSON body, whatever the Content-Type: `curl -d '{"limit": 50}'` sends it form-encoded."""
    raw = await request.body()
    if not raw.strip():
        return DiscoverIn()
    try:
        data: Any = json.loads(raw)
    except ValueError as exc:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body",), "msg": f"The body is not valid JSON: {exc}"}]
        ) from None
    try:
        return DiscoverIn.model_validate(data)
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


_ERROR = {"content": {"application/json": {"example": {"detail": "A sentence saying what is wrong."}}}}


@router.post(
    "/discover",
    response_model=DiscoverOut,
    summary="Expand listened tracks through Last.fm track.getSimilar and queue preview lookups",
    description=(
        "Seeds are the listened tracks (of `profile`, or of everyone), each expanded at most once per "
        "HAUNTFM_DISCOVERY_REEXPAND_DAYS unless `force`. Runs within the request (about 5 seeds a "
        "second) and commits per seed, so /api/status shows progress and a stopped run keeps its work. "
        "Preview lookup continues in the background."
    ),
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": DiscoverIn.model_json_schema()}},
        }
    },
    responses={
        404: {"description": "Unknown profile", **_ERROR},
        409: {"description": "No Last.fm API key is configured (HAUNTFM_LASTFM_API_KEY)", **_ERROR},
        502: {"description": "Last.fm rejected the key or kept failing; the work done is kept", **_ERROR},
    },
)
async def discover(
    request: Request, settings: SettingsDep, body: DiscoverIn = Depends(discover_body)
) -> DiscoverOut:
    return await service.discover(
        session_factory=request.app.state.session_factory,
        settings=settings,
        http=request.app.state.http,
        limit=body.limit,
        profile=body.profile,
        max_seeds=body.max_seeds,
        force=body.force,
    )
