"""/api/tags: the library's (or a profile's) Last.fm tags, what vibes are grounded in."""

from __future__ import annotations

from fastapi import APIRouter, Query

from haunt_fm.deps import SessionDep, SettingsDep
from haunt_fm.pipeline.common import LimitQuery
from haunt_fm.pipeline.tags import service
from haunt_fm.pipeline.tags.schemas import TagsOut

router = APIRouter(prefix="/api", tags=["tags"])


@router.get(
    "/tags",
    response_model=TagsOut,
    summary="The library's Last.fm tags by weight (or a profile's listened tracks' tags)",
    description=(
        "Tags as the tags stage stored them (normalised, noise such as `seen live` dropped), by their "
        "summed Last.fm weight (0..100 per track), with how many tracks carry each and how many of "
        "those are embedded by the current model (a vibe is grounded in those). With `profile`, only "
        "the tracks that profile listened to count. The dashboard's vibe field suggests from it."
    ),
    responses={404: {"description": "Unknown profile"}},
)
async def list_tags(
    session: SessionDep,
    settings: SettingsDep,
    limit: LimitQuery = 50,
    profile: str | None = Query(
        default=None, max_length=64, description="Only this profile's listened tracks."
    ),
) -> TagsOut:
    return await service.list_tags(session, profile=profile, limit=limit, model=settings.clap_model)
