"""Recommendations: the tracks nearest a query vector made of the profile's taste and a vibe.

query = normalise(alpha * taste + (1 - alpha) * vibe); alpha 1 is the taste alone and 0
the vibe alone (both exactly, without blending). Without a vibe the taste is used;
without a taste profile the vibe is used; with neither, 409.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from haunt_fm.config import Settings
from haunt_fm.errors import AppError, Conflict, Invalid
from haunt_fm.pipeline.profiles.models import Profile
from haunt_fm.pipeline.recommendations import repository as repo
from haunt_fm.pipeline.recommendations.schemas import BecauseOut, RecommendationOut, RecommendationsOut
from haunt_fm.pipeline.recommendations.vibe import VibeEncoder
from haunt_fm.pipeline.tags.schemas import VibeBasis
from haunt_fm.pipeline.taste.service import ensure_fresh_taste, no_taste_message, resolve_profile
from haunt_fm.pipeline.vibes import GENERAL_VIBE, clean_vibe, normalize_vibe

MAX_LIMIT = 500
# HNSW candidate list (hnsw.ef_search). Near the taste vector the eligible rows sit
# behind the profile's own listened tracks and dislikes, so a taste query must look past
# them: 2 x limit + the profile's known tracks, weighted by the taste's share of the query
# (a pure vibe query lands elsewhere). Measured in bench/recommend.py on 100,000 tracks
# with 1,200 exclusions near the taste: 1,000 (pgvector's ceiling) keeps recall@50 >= 0.95
# where 400 does not. Iterative scans (relaxed order) keep going when filters eat rows.
EF_SEARCH_MIN = 200
EF_SEARCH_MAX = 1000
MAX_SCAN_TUPLES = 50_000
BECAUSE_MAX = 3
# The vibe probe of a blend fetches this many times `limit` (measured: 1x 0.93, 3x 0.97 recall).
VIBE_PROBE_OVERFETCH = 3

Basis = Literal["taste", "vibe", "taste+vibe"]


def _unit(v: np.ndarray) -> np.ndarray | None:
    norm = float(np.linalg.norm(v))
    return None if norm == 0 or not np.isfinite(norm) else (v / norm).astype(np.float32)


def _ef_search(*, limit: int, known_tracks: int, taste_share: float, diffuse: bool = False) -> int:
    # A diffuse vibe (a tag whose tracks are spread over many sounds) lies far from every track,
    # where a narrow greedy search settles in the wrong place: it gets the widest candidate list.
    if diffuse and taste_share < 1.0:
        return EF_SEARCH_MAX
    return max(EF_SEARCH_MIN, min(EF_SEARCH_MAX, 2 * limit + round(known_tracks * taste_share)))


def _because(seeds: list[dict[str, Any]]) -> list[BecauseOut]:
    mine = [s for s in seeds if s.get("mine")]
    chosen = (mine or seeds)[:BECAUSE_MAX]
    return [BecauseOut.model_validate(s) for s in chosen]


def _validate(*, limit: int, alpha: float, vibe: str | None) -> str | None:
    if not 1 <= limit <= MAX_LIMIT:
        raise Invalid(f"limit must be between 1 and {MAX_LIMIT}.")
    if not 0.0 <= alpha <= 1.0:
        raise Invalid("alpha must be between 0 and 1 (1 = taste only, 0 = vibe only).")
    if vibe is None or not vibe.strip():
        return None
    try:
        return clean_vibe(vibe)
    except ValueError as exc:
        raise Invalid(f"Invalid vibe: {exc}.") from exc


class Query(NamedTuple):
    """The query vector, what it was made of, and the probes that search the index for it."""

    vector: np.ndarray
    basis: Basis
    # (vector, share of the taste in it): a blend also probes the index with the vibe alone.
    probes: list[tuple[np.ndarray, float]]
    # The vibe in it lies far from every track (see `_ef_search`).
    diffuse: bool = False


class VibeVector(NamedTuple):
    """A vibe's vector, or why it could not be had (raised only if the query turns out to need it),
    and how the vibe was understood."""

    vector: np.ndarray | None
    error: AppError | None = None
    basis: VibeBasis | None = None
    diffuse: bool = False

    def require(self) -> np.ndarray:
        if self.vector is None:
            assert self.error is not None
            raise self.error
        return self.vector


async def vibe_vector(*, vibe: str | None, alpha: float, vibe_encoder: VibeEncoder) -> VibeVector | None:
    """Ground the vibe BEFORE the request's session does any work: the encoder may wait for a
    worker, and a request must not hold a pooled connection while it waits. With alpha 1 the
    vibe is needed only when the profile has no taste yet, so a failure is kept for later."""
    if vibe is None:
        return None
    try:
        # Alpha 1: the vibe may not be needed, so a text vector is not waited for.
        grounded = await vibe_encoder.ground(text=vibe, wait=alpha < 1.0)
    except AppError as exc:
        if alpha < 1.0:
            raise
        return VibeVector(None, exc, getattr(exc, "basis", None))
    return VibeVector(grounded.vector, basis=grounded.basis, diffuse=grounded.diffuse)


async def query_vector(
    session: AsyncSession,
    *,
    profile: Profile,
    vibe: VibeVector | None,
    alpha: float,
    settings: Settings,
) -> Query:
    """The unit query vector for this profile, vibe and alpha; 409 when there is nothing to ask with."""
    taste = None
    if vibe is None or alpha > 0.0:
        taste = await ensure_fresh_taste(session, profile=profile, settings=settings)
    if vibe is None:
        if taste is None:
            raise Conflict(
                no_taste_message(profile.name)
                + " Or ask by mood instead: pass a vibe, e.g. ?vibe=chill+ambient."
            )
        return Query(taste, "taste", [(taste, 1.0)])
    if taste is not None and alpha == 1.0:
        return Query(taste, "taste", [(taste, 1.0)])
    vibe_vec = vibe.require()
    if taste is None or alpha == 0.0:
        return Query(vibe_vec, "vibe", [(vibe_vec, 0.0)], diffuse=vibe.diffuse)
    blended = _unit(alpha * taste + (1.0 - alpha) * vibe_vec)
    if blended is None:
        # Exactly opposite vectors cancel out; the vibe is the explicit ask, so it wins.
        return Query(vibe_vec, "vibe", [(vibe_vec, 0.0)], diffuse=vibe.diffuse)
    # A blend of two far-apart directions lies between clusters, where a greedy graph search
    # can settle on the wrong side; probing from the vibe too and ranking the union by the
    # exact distance to the blend keeps recall up (bench/recommend.py).
    return Query(blended, "taste+vibe", [(blended, alpha), (vibe_vec, 0.0)], diffuse=vibe.diffuse)


def steer_away(query: Query, away: np.ndarray) -> Query:
    """The query moved away from `away`: normalise(q - away), each probe likewise.

    A radio passes beta x the mean of the tracks skipped or thumbed down during it. A probe
    (or the query) that `away` would cancel out is kept as it was.
    """

    def moved(v: np.ndarray) -> np.ndarray:
        shifted = _unit(np.asarray(v, dtype=np.float64) - np.asarray(away, dtype=np.float64))
        return v if shifted is None else shifted

    return Query(moved(query.vector), query.basis, [(moved(v), share) for v, share in query.probes])


async def _search(
    session: AsyncSession,
    *,
    profile: Profile,
    query: Query,
    model: str,
    vibe: str | None,
    limit: int,
    exclude_track_ids: Iterable[int],
) -> list[RecommendationOut]:
    contexts = [GENERAL_VIBE] if vibe is None else sorted({GENERAL_VIBE, normalize_vibe(vibe)})
    exclude = sorted({int(t) for t in exclude_track_ids})
    known = (profile.taste_tracks_used or 0) + len(exclude)
    common: dict[str, Any] = {
        "model": model,
        "profile_id": profile.id,
        "contexts": contexts,
        "exclude": exclude,
        "limit": limit,
        "max_scan_tuples": MAX_SCAN_TUPLES,
    }
    rows: Sequence[Any]
    if len(query.probes) == 1:
        ef = _ef_search(
            limit=limit, known_tracks=known, taste_share=query.probes[0][1], diffuse=query.diffuse
        )
        rows = await repo.nearest(session, query=query.vector, ef_search=ef, **common)
    else:
        candidates: set[int] = set()
        for i, (vector, share) in enumerate(query.probes):
            want = limit if i == 0 else limit * VIBE_PROBE_OVERFETCH
            ef = _ef_search(limit=want, known_tracks=known, taste_share=share, diffuse=query.diffuse)
            probe_args = {**common, "limit": want}
            candidates.update(await repo.probe(session, query=vector, ef_search=ef, **probe_args))
        rows = await repo.rank(
            session,
            query=query.vector,
            model=model,
            profile_id=profile.id,
            candidates=sorted(candidates),
            limit=limit,
        )
    if len(rows) < limit:
        # The index scan ran out of budget before filling the page; an exact scan settles
        # whether more eligible tracks exist.
        rows = await repo.nearest(session, query=query.vector, ef_search=0, exact=True, **common)
    return [
        RecommendationOut(
            track_id=r["track_id"],
            title=r["title"],
            artist=r["artist"],
            album=r["album"],
            score=float(r["score"]),
            preview_url=r["preview_url"],
            artwork_url=r["artwork_url"],
            genre=r["genre"],
            because=_because(r["because"] or []),
        )
        for r in rows
    ]


async def get_recommendations(
    session: AsyncSession,
    *,
    profile: Profile | str | None,
    limit: int,
    vibe: str | None,
    alpha: float,
    settings: Settings,
    vibe_encoder: VibeEncoder,
    exclude_track_ids: Iterable[int] = (),
    encoded: VibeVector | None = None,
    away: np.ndarray | None = None,
) -> RecommendationsOut:
    """Recommendations with the query that produced them (the /api/recommendations document)."""
    vibe = _validate(limit=limit, alpha=alpha, vibe=vibe)
    if encoded is None:
        encoded = await vibe_vector(vibe=vibe, alpha=alpha, vibe_encoder=vibe_encoder)
    prof = await resolve_profile(session, profile)
    query = await query_vector(session, profile=prof, vibe=encoded, alpha=alpha, settings=settings)
    if away is not None:
        query = steer_away(query, away)
    items = await _search(
        session,
        profile=prof,
        query=query,
        model=settings.clap_model,
        vibe=vibe,
        limit=limit,
        exclude_track_ids=exclude_track_ids,
    )
    return RecommendationsOut(
        profile=prof.name,
        vibe=vibe,
        alpha=alpha,
        basis=query.basis,
        vibe_basis=encoded.basis if encoded is not None else None,
        taste_built_at=prof.taste_built_at if prof.taste_embedding is not None else None,
        recommendations=items,
    )


async def recommend(
    session: AsyncSession,
    *,
    profile: Profile | str | None,
    limit: int,
    vibe: str | None,
    alpha: float,
    settings: Settings,
    vibe_encoder: VibeEncoder,
    exclude_track_ids: Iterable[int] = (),
    encoded: VibeVector | None = None,
    away: np.ndarray | None = None,
) -> list[RecommendationOut]:
    """The profile's recommendations, best first, never a listened, disliked or excluded track.

    `away`: a vector the query moves away from before the search (see `steer_away`).
    """
    result = await get_recommendations(
        session,
        profile=profile,
        limit=limit,
        vibe=vibe,
        alpha=alpha,
        settings=settings,
        vibe_encoder=vibe_encoder,
        exclude_track_ids=exclude_track_ids,
        encoded=encoded,
        away=away,
    )
    return result.recommendations
