"""/api/admin/build-taste-profile."""

from __future__ import annotations

from fastapi import APIRouter, Query

from haunt_fm.deps import SessionDep, SettingsDep
from haunt_fm.pipeline.taste import service
from haunt_fm.pipeline.taste.schemas import TasteBuilt

router = APIRouter(prefix="/api/admin", tags=["taste"])


@router.post(
    "/build-taste-profile",
    response_model=TasteBuilt,
    summary="Rebuild a profile's taste vector now",
    description=(
        "Weighted mean of the CLAP vectors of the profile's listened tracks (play count x recency, "
        "half-life `HAUNTFM_TASTE_HALF_LIFE_DAYS`) and liked tracks; tracks thumbed down in `general` "
        "never count. Recommendations and playlists rebuild a stale profile by themselves. "
        "409 when no listened or liked track of the profile is embedded yet."
    ),
    responses={
        404: {"description": "Unknown profile"},
        409: {"description": "Nothing embedded to build from"},
    },
)
async def build_taste_profile(
    session: SessionDep,
    settings: SettingsDep,
    profile: str | None = Query(default=None, max_length=64, description="Profile name; default `default`."),
) -> TasteBuilt:
    return await service.build_taste_profile(session, name=profile, settings=settings)
