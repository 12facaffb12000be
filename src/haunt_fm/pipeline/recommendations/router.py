"""/api/recommendations."""

from __future__ import annotations

from fastapi import APIRouter, Query

from haunt_fm.deps import SessionDep, SettingsDep
from haunt_fm.pipeline.common import LimitQuery
from haunt_fm.pipeline.recommendations import service
from haunt_fm.pipeline.recommendations.schemas import RecommendationsOut
from haunt_fm.pipeline.recommendations.vibe import VibeEncoderDep
from haunt_fm.pipeline.vibes import VIBE_MAX_CHARS

router = APIRouter(prefix="/api", tags=["recommendations"])


@router.get(
    "/recommendations",
    response_model=RecommendationsOut,
    summary="Tracks the profile has not heard, nearest its taste and/or a vibe",
    description=(
        "`score` is the cosine similarity to the query vector, descending. The query is "
        "normalise(alpha x taste + (1 - alpha) x vibe): alpha 1 = taste only, 0 = vibe only; alpha "
        "is ignored without a vibe, and the vibe alone is used while the profile has no taste "
        "profile. Never returns a track the profile listened to, nor one it thumbed down in "
        "`general` or in the requested vibe. The vibe text is matched case- and "
        "whitespace-insensitively; an empty vibe counts as none. 409 with neither taste nor vibe; "
        "503 when no embedding worker can embed a new vibe text in time."
    ),
    responses={
        404: {"description": "Unknown profile"},
        409: {"description": "No taste profile yet and no vibe"},
        503: {"description": "The vibe text could not be embedded"},
    },
)
async def recommendations(
    session: SessionDep,
    settings: SettingsDep,
    vibe_encoder: VibeEncoderDep,
    limit: LimitQuery = 50,
    profile: str | None = Query(default=None, max_length=64, description="Profile name; default `default`."),
    vibe: str | None = Query(
        default=None,
        max_length=VIBE_MAX_CHARS,
        description="Mood text, e.g. `chill ambient` (at most 200 characters); empty = none.",
    ),
    alpha: float = Query(default=0.5, ge=0.0, le=1.0, description="Taste weight in the blend, 0..1."),
) -> RecommendationsOut:
    return await service.get_recommendations(
        session,
        profile=profile,
        limit=limit,
        vibe=vibe,
        alpha=alpha,
        settings=settings,
        vibe_encoder=vibe_encoder,
    )
