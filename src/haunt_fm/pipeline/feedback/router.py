"""/api/feedback: thumbs up / down."""

from __future__ import annotations

from fastapi import APIRouter, Path, Query, status

from haunt_fm.deps import SessionDep
from haunt_fm.pipeline.common import LimitQuery
from haunt_fm.pipeline.feedback import service
from haunt_fm.pipeline.feedback.schemas import (
    MAX_ID,
    FeedbackDeleted,
    FeedbackIn,
    FeedbackList,
    FeedbackSaved,
)

router = APIRouter(prefix="/api/feedback", tags=["feedback"])


@router.post(
    "",
    response_model=FeedbackSaved,
    status_code=status.HTTP_201_CREATED,
    summary="Rate a track up or down for a profile, in a vibe context",
    description=(
        "A `down` in `general` removes the track from the profile's recommendations and playlists; a "
        "`down` under another vibe removes it when that vibe is asked for; an `up` makes it a liked track "
        "(it feeds the taste profile and can be picked as a known favourite). Rating the same track "
        "again for the same profile and vibe replaces the earlier rating (still 201, `replaced: true`)."
    ),
    responses={404: {"description": "Unknown track or profile"}},
)
async def give_feedback(body: FeedbackIn, session: SessionDep) -> FeedbackSaved:
    return await service.give_feedback(session, feedback=body)


@router.get("", response_model=FeedbackList, summary="Feedback, newest first")
async def list_feedback(
    session: SessionDep,
    limit: LimitQuery = 50,
    profile: str | None = Query(default=None, max_length=64, description="Only this profile's feedback."),
) -> FeedbackList:
    return FeedbackList(feedback=await service.list_feedback(session, profile=profile, limit=limit))


@router.delete(
    "/{feedback_id}",
    response_model=FeedbackDeleted,
    summary="Withdraw a rating",
    responses={404: {"description": "Unknown feedback id"}},
)
async def delete_feedback(session: SessionDep, feedback_id: int = Path(ge=1, le=MAX_ID)) -> FeedbackDeleted:
    return await service.delete_feedback(session, feedback_id=feedback_id)
