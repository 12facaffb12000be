"""Thumbs up / down per profile and vibe context.

A `down` in `general` removes the track from the profile's recommendations and playlists;
a `down` under another vibe removes it when that vibe is asked for; an `up` (any vibe)
makes it a liked track: it feeds the taste profile and can be picked as a known favourite.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from haunt_fm.errors import NotFound
from haunt_fm.pipeline.feedback import repository as repo
from haunt_fm.pipeline.feedback.schemas import FeedbackDeleted, FeedbackIn, FeedbackOut, FeedbackSaved
from haunt_fm.pipeline.profiles import service as profiles
from haunt_fm.pipeline.vibes import normalize_vibe


async def give_feedback(session: AsyncSession, *, feedback: FeedbackIn) -> FeedbackSaved:
    """Save a rating, replacing the profile's earlier one for the same track and vibe."""
    profile = await profiles.require(session, name=feedback.profile or None)
    row = await repo.upsert(
        session,
        profile_id=profile.id,
        track_id=feedback.track_id,
        rating=feedback.rating,
        vibe=feedback.vibe,
        vibe_norm=normalize_vibe(feedback.vibe),
    )
    if row is None:
        raise NotFound(f"Track {feedback.track_id} does not exist.")
    return FeedbackSaved.model_validate(row)


async def list_feedback(session: AsyncSession, *, profile: str | None, limit: int) -> list[FeedbackOut]:
    """Newest feedback first; every profile's unless one is named."""
    # An empty `?profile=` means every profile, as if it were left out.
    profile_id = None if not profile else (await profiles.require(session, name=profile)).id
    rows = await repo.recent(session, profile_id=profile_id, limit=limit)
    return [FeedbackOut.model_validate(dict(r)) for r in rows]


async def delete_feedback(session: AsyncSession, *, feedback_id: int) -> FeedbackDeleted:
    """Withdraw a rating (the profile's taste rebuilds on next use)."""
    row = await repo.delete(session, feedback_id=feedback_id)
    if row is None:
        raise NotFound(f"Feedback {feedback_id} does not exist.")
    return FeedbackDeleted.model_validate(row)
