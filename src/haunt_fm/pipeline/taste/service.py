"""Taste profiles: the weighted mean of what a profile listens to and likes, and its tastes.

Weight of a track = sum over its listens that were not skipped of 2^(-age / half_life)
(play count x recency; half-life `HAUNTFM_TASTE_HALF_LIFE_DAYS`, default 30), scaled so the
heaviest listened track weighs 1.0. A liked track (thumbs up in any vibe context) weighs at
least 1.0, as much as the heaviest listened track. A track thumbed down in `general` never
counts, and neither does a skipped listen (pipeline/listens/rules.py).
The weighted sum of the tracks' unit CLAP vectors (in float64), L2-normalised, is the
profile's taste vector (`profiles.taste_embedding`). The same weighted vectors are split into 1..6 tastes
(`clusters.split_tastes`); with one taste its centroid is exactly that vector. Each taste is
labelled by its top tags (once its tracks have tags) or else its top artists.
Only vectors of the current model (HAUNTFM_CLAP_MODEL) count; a taste built with another model
is stale.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from haunt_fm.config import Settings
from haunt_fm.errors import Conflict
from haunt_fm.pipeline.profiles import service as profiles
from haunt_fm.pipeline.profiles.models import Profile
from haunt_fm.pipeline.profiles.schemas import ProfileTasteOut
from haunt_fm.pipeline.taste import repository as repo
from haunt_fm.pipeline.taste.clusters import split_tastes
from haunt_fm.pipeline.taste.schemas import TasteBuilt

TOP_ARTISTS = 3
LABEL_PARTS = 2


@dataclass(frozen=True, slots=True)
class TasteVector:
    """One of a profile's tastes with its centroid."""

    index: int
    label: str
    weight: float
    tracks: int
    vector: np.ndarray
    top_artists: tuple[str, ...] = ()
    # The weighted mean cosine of its tracks to `vector`: one of them at least lies this near.
    cohesion: float | None = None


class Taste(NamedTuple):
    vector: np.ndarray | None
    built_at: datetime
    tracks_used: int
    tastes: list[TasteVector]


def _vector(value: object) -> np.ndarray | None:
    return None if value is None else np.asarray(value, dtype=np.float32)


async def resolve_profile(session: AsyncSession, profile: Profile | str | None) -> Profile:
    """A Profile as given, or looked up by name (None or "" -> default; unknown -> 404)."""
    if isinstance(profile, Profile):
        return profile
    # An empty `?profile=` means the default profile, as if it were left out.
    return await profiles.require(session, name=profile or None)


def _label(tags: Sequence[str] | None, artists: Sequence[str]) -> str:
    parts = list(tags or [])[:LABEL_PARTS] or list(artists)[:LABEL_PARTS]
    return (" · " if tags else ", ").join(parts) or "untitled"


def _cohesion(vectors: np.ndarray, weights: np.ndarray, centroid: np.ndarray) -> float:
    """The weighted mean cosine of unit `vectors` to `centroid`: the nearest of them is at least this near."""
    cosines = vectors.astype(np.float64) @ centroid.astype(np.float64)
    return float(np.dot(weights, cosines) / weights.sum())


def _mean(vectors: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
    total = (weights[:, None] * vectors.astype(np.float64)).sum(axis=0)
    norm = float(np.linalg.norm(total))
    return None if norm == 0 or not np.isfinite(norm) else (total / norm).astype(np.float32)


async def _split(
    session: AsyncSession,
    *,
    prof: Profile,
    ids: np.ndarray,
    weights: np.ndarray,
    vectors: np.ndarray,
    mean: np.ndarray,
    built_at: datetime,
) -> list[TasteVector]:
    # Up to ~200 ms of numpy for 10,000 tracks: off the event loop.
    split = await asyncio.to_thread(split_tastes, vectors, weights)
    # One taste is the profile's taste vector itself, not a refit of it.
    centroids = [mean] if split.k == 1 else list(split.centroids)
    membership = {"track_ids": ids.tolist(), "tastes": split.labels.tolist(), "weights": weights.tolist()}
    artists = await repo.top_artists(session, **membership, limit=TOP_ARTISTS)
    tags = await repo.top_tags(session, **membership)
    counts = np.bincount(split.labels, minlength=split.k)
    tastes: list[TasteVector] = []
    rows: list[dict[str, Any]] = []
    for i in range(split.k):
        top_artists = artists.get(i, [])
        label = _label(tags.get(i), top_artists)
        weight = round(float(split.shares[i]), 6)
        members = split.labels == i
        cohesion = _cohesion(vectors[members], weights[members], centroids[i])
        tastes.append(
            TasteVector(i, label, weight, int(counts[i]), centroids[i], tuple(top_artists), cohesion)
        )
        rows.append(
            {
                "idx": i,
                "centroid": centroids[i],
                "weight": weight,
                "tracks": int(counts[i]),
                "label": label,
                "top_artists": top_artists,
                "built_at": built_at,
                "cohesion": cohesion,
            }
        )
    await repo.replace_tastes(session, profile_id=prof.id, tastes=rows)
    return tastes


async def build_taste(session: AsyncSession, *, profile: Profile | str | None, settings: Settings) -> Taste:
    """Recompute and store the profile's taste vector and tastes (None/[] when nothing embedded feeds it)."""
    prof = await resolve_profile(session, profile)
    ids, weights, vectors = await repo.weighted_tracks(
        session, profile_id=prof.id, half_life_days=settings.taste_half_life_days, model=settings.clap_model
    )
    mean = _mean(vectors, weights) if len(ids) else None
    used = 0 if mean is None else len(ids)
    built_at = await repo.store_taste(
        session, profile_id=prof.id, taste=mean, tracks_used=used, model=settings.clap_model
    )
    tastes: list[TasteVector] = []
    if mean is None:
        await repo.replace_tastes(session, profile_id=prof.id, tastes=[])
    else:
        tastes = await _split(
            session,
            prof=prof,
            ids=ids,
            weights=weights,
            vectors=vectors,
            mean=mean,
            built_at=built_at,
        )
    taste = Taste(mean, built_at, used, tastes)
    # Keep the ORM object in step with the row the UPDATE wrote.
    set_committed_value(prof, "taste_embedding", taste.vector)
    set_committed_value(prof, "taste_built_at", taste.built_at)
    set_committed_value(prof, "taste_tracks_used", taste.tracks_used)
    return taste


async def ensure_fresh_tastes(
    session: AsyncSession, *, profile: Profile | str | None, settings: Settings
) -> list[TasteVector]:
    """The profile's tastes, heaviest first, rebuilt first if anything that feeds them changed; [] if none."""
    prof = await resolve_profile(session, profile)
    state = await repo.freshness(session, profile_id=prof.id, model=settings.clap_model)
    if state["stale"]:
        return (await build_taste(session, profile=prof, settings=settings)).tastes
    mean = _vector(state["taste_embedding"])
    stored = state["tastes"] or []
    if mean is None or not stored:
        return []
    vectors = [mean] if len(stored) == 1 else await repo.centroids(session, profile_id=prof.id)
    return [
        TasteVector(
            int(t["index"]), str(t["label"]), float(t["weight"]), int(t["tracks"]), v, cohesion=t["cohesion"]
        )
        for t, v in zip(stored, vectors, strict=True)
    ]


async def ensure_fresh_taste(
    session: AsyncSession, *, profile: Profile | str | None, settings: Settings
) -> np.ndarray | None:
    """The profile's taste vector (the overall mean), rebuilt first if stale; None if it has none."""
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
    return TasteBuilt(
        profile=prof.name,
        tracks_used=taste.tracks_used,
        built_at=taste.built_at,
        tastes=[
            ProfileTasteOut(
                index=t.index,
                label=t.label,
                weight=t.weight,
                tracks=t.tracks,
                top_artists=list(t.top_artists),
            )
            for t in taste.tastes
        ],
    )
