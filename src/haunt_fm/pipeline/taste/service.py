"""Taste profiles: one vector per profile, the weighted mean of what it listens to and likes.

Weight of a track = sum over its listens of 2^(-age / half_life) (play count x recency;
half-life `HAUNTFM_TASTE_HALF_LIFE_DAYS`, default 30), scaled so the heaviest listened
track weighs 1.0. A liked track (thumbs up in any vibe context) weighs at least 1.0, as
much as the heaviest listened track. A track thumbed down in `general` never counts.
The weighted sum of the tracks' unit CLAP vectors is L2-normalised. Only vectors of the
current model (HAUNTFM_CLAP_MODEL) count; a taste built with another model is stale.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from haunt_fm.config import Settings
from haunt_fm.errors import Conflict
from haunt_fm.pipeline.profiles import service as profiles
from haunt_fm.pipeline.profiles.models import Profile
from haunt_fm.pipeline.taste import repository as repo
from haunt_fm.pipeline.taste.schemas import TasteBuilt


class Taste(NamedTuple):
    vector: np.ndarray | None
    built_at: datetime
    tracks_used: int


def _vector(value: object) -> np.ndarray | None:
    return None if value is None else np.asarray(value, dtype=np.float32)


async def resolve_profile(session: AsyncSession, profile: Profile | str | None) -> Profile:
    """A Profile as given, or looked up by name (None or "" -> default; unknown -> 404)."""
    if isinstance(profile, Profile):
        return profile
    # An empty `?profile=` means the default profile, as if it were left out.
    return await profiles.require(session, name=profile or None)


async def build_taste(session: AsyncSession, *, profile: Profile | str | None, settings: Settings) -> Taste:
    """Recompute and store the profile's taste vector (None when nothing embedded feeds it)."""
    prof = await resolve_profile(session, profile)
    row = await repo.build(
        session, profile_id=prof.id, half_life_days=settings.taste_half_life_days, model=settings.clap_model
    )
    taste = Taste(_vector(row["taste_embedding"]), row["taste_built_at"], int(row["taste_tracks_used"]))
    # Keep the ORM object in step with the row the UPDATE wrote.
    set_committed_value(prof, "taste_embedding", taste.vector)
    set_committed_value(prof, "taste_built_at", taste.built_at)
    set_committed_value(prof, "taste_tracks_used", taste.tracks_used)
    return taste


async def ensure_fresh_taste(
    session: AsyncSession, *, profile: Profile | str | None, settings: Settings
) -> np.ndarray | None:
    """The profile's taste vector, rebuilt first if anything that feeds it changed; None if it has none."""
    prof = await resolve_profile(session, profile)
    state = await repo.freshness(session, profile_id=prof.id, model=settings.clap_model)
    if not state["stale"]:
        return _vector(state["taste_embedding"])
    return (await build_taste(session, profile=prof, settings=settings)).vector


def no_taste_message(name: str) -> str:
    return (
        f"Profile '{name}' has no embedded listened or liked track yet. Log listens "
        "(POST /api/history/webhook) or like tracks (POST /api/feedback), then wait for the "
        "embedding worker to embed their previews (progress in /api/status)."
    )


async def build_taste_profile(session: AsyncSession, *, name: str | None, settings: Settings) -> TasteBuilt:
    """Rebuild a profile's taste now; 409 when no embedded listened or liked track feeds it."""
    prof = await resolve_profile(session, name)
    taste = await build_taste(session, profile=prof, settings=settings)
    if taste.vector is None:
        raise Conflict(no_taste_message(prof.name))
    return TasteBuilt(profile=prof.name, tracks_used=taste.tracks_used, built_at=taste.built_at)
