"""/api/recommendations."""

from __future__ import annotations

from fastapi import APIRouter, Query

from haunt_fm.deps import SessionDep, SettingsDep
from haunt_fm.pipeline.common import LimitQuery
from haunt_fm.pipeline.recommendations import service
from haunt_fm.pipeline.recommendations.schemas import RecommendationsOut, VibeNotUnderstoodOut
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
        "profile. Only vectors of the current CLAP model (`HAUNTFM_CLAP_MODEL`) take part. Never "
        "returns a track the profile listened to, nor one it thumbed down in `general` or in the "
        "requested vibe; an empty vibe counts as none.\n\n"
        "**Vibes** are grounded in Last.fm tags: the vibe is matched to the library's tags (the whole "
        "phrase first, e.g. `heavy metal`, then its words; stop words dropped), and its vector is the "
        "centroid of the audio of the embedded tracks carrying them (weighted by Last.fm's tag weight). "
        "The CLAP text vector of the vibe joins (0.7 tags + 0.3 text) only when the model's text tower "
        "passed its self-test. `vibe_basis` says how the vibe was understood. When fewer than 20 "
        "embedded tracks carry its tags, Last.fm `tag.getTopTracks` is asked (once a day per tag) and "
        "the tracks join the library as candidates (`discovering`).\n\n"
        "409 with neither taste nor vibe, or when the vibe can't steer (`vibe_not_understood`, with "
        "`suggestions`); 503 when only the text tower could steer and no worker embedded the text in time."
    ),
    responses={
        404: {"description": "Unknown profile"},
        409: {
            "description": "No taste profile yet and no vibe; or a vibe that can't steer (this body)",
            "model": VibeNotUnderstoodOut,
        },
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
