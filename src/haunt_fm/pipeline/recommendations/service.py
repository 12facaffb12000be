"""Recommendations: the tracks nearest a profile's tastes, optionally blended with a vibe.

A profile has 1..6 tastes (pipeline/taste). Each taste is searched on its own and gets a share
of the list proportional to its weight, interleaved (`variety.merge`); `score` is the cosine
to the query of the taste that found the track, and `taste` says which one. Per taste the
query is normalise(alpha * taste + (1 - alpha) * vibe); alpha 1 is the taste alone and 0 the
vibe alone (both exactly, without blending). Without a vibe the tastes are used; without a
taste profile the vibe is used; with neither, 409. No artist takes more than 2 of any 10
consecutive places while another artist can (`variety`).
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
from haunt_fm.pipeline.recommendations.schemas import (
    BecauseOut,
    RecommendationOut,
    RecommendationsOut,
    TasteRef,
    TasteShare,
)
from haunt_fm.pipeline.recommendations.variety import merge, shares
from haunt_fm.pipeline.recommendations.vibe import VibeEncoder
from haunt_fm.pipeline.tags.schemas import VibeBasis
from haunt_fm.pipeline.taste.service import (
    TasteVector,
    ensure_fresh_tastes,
    no_taste_message,
    resolve_profile,
)
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
# With several tastes each is searched for twice its share of the list (at least this many
# more), so tracks two tastes share and the artist rule leave every taste enough to give.
TASTE_SLACK_MIN = 10
# pgvector computes cosines in float32, the taste stage its cohesion in float64.
REACH_SLACK = 1e-4

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


class Direction(NamedTuple):
    """One direction the list is searched in: a taste (blended with the vibe), or the vibe alone."""

    vector: np.ndarray
    # Its share of the list.
    weight: float
    # The taste's share of the query vector (alpha, 1 or 0): how many known tracks sit near it.
    taste_share: float
    # Listened tracks of the taste (they are excluded, so the index must look past them).
    known: int
    taste: TasteRef | None
    # A taste's cohesion when the vector is the taste itself: some track of the taste lies at
    # least this near, so a search that finds nothing as near went astray (`_astray`).
    floor: float | None = None


class Query(NamedTuple):
    """The directions to search in, what they were made of, and the vibe a blend also probes from."""

    basis: Basis
    directions: list[Direction]
    # A blend of two far-apart directions lies between clusters, where a greedy graph search can
    # settle on the wrong side; probing from the vibe too and ranking the union by the exact
    # distance to each blend keeps recall up (bench/recommend.py).
    vibe_probe: np.ndarray | None = None
    # The vibe in it lies far from every track (see `_ef_search`).
    diffuse: bool = False

    @property
    def vector(self) -> np.ndarray:
        """The query vector of the heaviest direction."""
        return self.directions[0].vector


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


def _taste_directions(
    tastes: Sequence[TasteVector], vibe: np.ndarray | None, alpha: float
) -> list[Direction]:
    out: list[Direction] = []
    for t in tastes:
        ref = TasteRef(index=t.index, label=t.label)
        if vibe is None:
            out.append(Direction(t.vector, t.weight, 1.0, t.tracks, ref, t.cohesion))
            continue
        blended = _unit(alpha * t.vector + (1.0 - alpha) * vibe)
        # Exactly opposite vectors cancel out; the vibe is the explicit ask, so it wins.
        out.append(
            Direction(vibe, t.weight, 0.0, 0, ref)
            if blended is None
            else Direction(blended, t.weight, alpha, t.tracks, ref)
        )
    return out


async def query_vector(
    session: AsyncSession,
    *,
    profile: Profile,
    vibe: VibeVector | None,
    alpha: float,
    settings: Settings,
) -> Query:
    """The directions to search for this profile, vibe and alpha; 409 when there is nothing to ask with."""
    tastes: list[TasteVector] = []
    if vibe is None or alpha > 0.0:
        tastes = await ensure_fresh_tastes(session, profile=profile, settings=settings)
    if vibe is None:
        if not tastes:
            raise Conflict(
                no_taste_message(profile.name)
                + " Or ask by mood instead: pass a vibe, e.g. ?vibe=chill+ambient."
            )
        return Query("taste", _taste_directions(tastes, None, alpha))
    if tastes and alpha == 1.0:
        return Query("taste", _taste_directions(tastes, None, alpha))
    vibe_vec = vibe.require()
    if not tastes or alpha == 0.0:
        return Query("vibe", [Direction(vibe_vec, 1.0, 0.0, 0, None)], diffuse=vibe.diffuse)
    directions = _taste_directions(tastes, vibe_vec, alpha)
    if all(d.taste_share == 0.0 for d in directions):
        return Query("vibe", [Direction(vibe_vec, 1.0, 0.0, 0, None)], diffuse=vibe.diffuse)
    return Query("taste+vibe", directions, vibe_probe=vibe_vec, diffuse=vibe.diffuse)


def steer_away(query: Query, away: np.ndarray) -> Query:
    """The query moved away from `away`: normalise(d - away) for each direction and the vibe probe.

    A radio passes beta x the mean of the tracks skipped or thumbed down during it. A vector
    that `away` would cancel out is kept as it was.
    """

    def moved(v: np.ndarray) -> np.ndarray:
        shifted = _unit(np.asarray(v, dtype=np.float64) - np.asarray(away, dtype=np.float64))
        return v if shifted is None else shifted

    # A moved vector is no taste's centroid: its cohesion says nothing about it.
    return query._replace(
        directions=[d._replace(vector=moved(d.vector), floor=None) for d in query.directions],
        vibe_probe=None if query.vibe_probe is None else moved(query.vibe_probe),
    )


class Found(NamedTuple):
    """A track one direction found: the cosine to that direction and its artist."""

    track_id: int
    score: float
    artist_key: str


async def _astray(
    session: AsyncSession, *, direction: Direction, nearest: float | None, eligible: repo.Eligible, ef: int
) -> bool:
    """Whether the index search from a taste went astray: it found nothing as near as the taste's
    own tracks (`nearest`: the cosine of the nearest eligible track it returned).

    HNSW descends greedily from one entry point; on clustered vectors that descent can settle in
    another cluster that no link leads out of, and no candidate list (ef_search) finds the way
    back: the page then fills with an unrelated genre. Some track of the taste lies at least its
    cohesion near the centroid, so when the search returns nothing that near, an unfiltered
    search (the same descent) must find one; if it does not, the index never got there.
    """
    floor = direction.floor
    if floor is None or (nearest is not None and nearest >= floor - REACH_SLACK):
        return False
    reach = await repo.reach(session, query=direction.vector, eligible=eligible, ef_search=ef)
    return reach is None or reach < floor - REACH_SLACK


def _recommendation(row: Any, taste: TasteRef | None) -> RecommendationOut:
    return RecommendationOut(
        track_id=row["track_id"],
        title=row["title"],
        artist=row["artist"],
        album=row["album"],
        score=float(row["score"]),
        preview_url=row["preview_url"],
        artwork_url=row["artwork_url"],
        genre=row["genre"],
        because=_because(row["because"] or []),
        taste=taste,
    )


def _arranged(rows: Sequence[Any], limit: int) -> tuple[list[Any], bool]:
    """One direction's rows (with details) in variety order: (rows, whether the artist rule gave way)."""
    by_id = {int(r["track_id"]): r for r in rows}
    found = [Found(int(r["track_id"]), float(r["score"]), r["norm_artist"] or "") for r in rows]
    merged = merge([found], [1.0], limit)
    return [by_id[f.track_id] for _, f in merged.items], merged.gave_way


async def _search_one(
    session: AsyncSession,
    *,
    query: Query,
    eligible: repo.Eligible,
    known: int,
    limit: int,
) -> tuple[list[Any], bool]:
    """One direction (today's path): rows with details, nearest first; and whether more may exist."""
    direction = query.directions[0]
    astray = False
    if query.vibe_probe is None:
        ef = _ef_search(
            limit=limit, known_tracks=known, taste_share=direction.taste_share, diffuse=query.diffuse
        )
        rows = await repo.nearest(
            session, query=direction.vector, ef_search=ef, eligible=eligible, limit=limit
        )
        nearest = float(rows[0]["score"]) if rows else None
        astray = len(rows) >= limit and await _astray(
            session, direction=direction, nearest=nearest, eligible=eligible, ef=ef
        )
    else:
        candidates: set[int] = set()
        probes = [
            (direction.vector, direction.taste_share, limit),
            (query.vibe_probe, 0.0, limit * VIBE_PROBE_OVERFETCH),
        ]
        for vector, share, want in probes:
            ef = _ef_search(limit=want, known_tracks=known, taste_share=share, diffuse=query.diffuse)
            candidates.update(
                await repo.probe(session, query=vector, ef_search=ef, eligible=eligible, limit=want)
            )
        rows = await repo.rank(
            session,
            query=direction.vector,
            model=eligible.model,
            profile_id=eligible.profile_id,
            candidates=sorted(candidates),
            limit=limit,
        )
    if len(rows) < limit or astray:
        # The index scan ran out of budget before filling the page, or went astray; an exact
        # scan settles which eligible tracks are nearest.
        rows = await repo.nearest(
            session, query=direction.vector, ef_search=0, exact=True, eligible=eligible, limit=limit
        )
    return list(rows), len(rows) >= limit


async def _single(
    session: AsyncSession, *, query: Query, eligible: repo.Eligible, known: int, limit: int
) -> list[RecommendationOut]:
    taste = query.directions[0].taste
    rows, more = await _search_one(session, query=query, eligible=eligible, known=known, limit=limit)
    arranged, gave_way = _arranged(rows, limit)
    if gave_way and more and limit < MAX_LIMIT:
        # Only one artist was left to give: look further for others.
        wider = min(MAX_LIMIT, 2 * limit)
        rows, _ = await _search_one(session, query=query, eligible=eligible, known=known, limit=wider)
        arranged, _ = _arranged(rows, limit)
    return [_recommendation(r, taste) for r in arranged]


async def _found(
    session: AsyncSession,
    *,
    direction: Direction,
    want: int,
    eligible: repo.Eligible,
    excluded: int,
    vibe_candidates: tuple[list[int], np.ndarray, list[str]] | None,
    diffuse: bool,
) -> tuple[list[Found], bool]:
    """One direction's nearest eligible tracks, best first; and whether more may exist."""
    known = direction.known + excluded
    ef = _ef_search(limit=want, known_tracks=known, taste_share=direction.taste_share, diffuse=diffuse)
    rows = await repo.nearest(
        session, query=direction.vector, ef_search=ef, eligible=eligible, limit=want, details=False
    )
    nearest = 1.0 - float(rows[0]["distance"]) if rows else None
    if len(rows) < want or await _astray(
        session, direction=direction, nearest=nearest, eligible=eligible, ef=ef
    ):
        rows = await repo.nearest(
            session,
            query=direction.vector,
            ef_search=0,
            exact=True,
            eligible=eligible,
            limit=want,
            details=False,
        )
    found = {
        int(r["track_id"]): Found(int(r["track_id"]), 1.0 - float(r["distance"]), r["norm_artist"] or "")
        for r in rows
    }
    if vibe_candidates is not None:
        ids, vectors, artists = vibe_candidates
        if ids:
            scores = vectors @ direction.vector
            for tid, score, artist in zip(ids, scores.tolist(), artists, strict=True):
                found.setdefault(tid, Found(tid, float(score), artist))
    ranked = sorted(found.values(), key=lambda f: (-f.score, f.track_id))[:want]
    return ranked, len(rows) >= want


async def _several(
    session: AsyncSession, *, query: Query, eligible: repo.Eligible, excluded: int, limit: int
) -> list[RecommendationOut]:
    weights = [d.weight for d in query.directions]
    quota = shares(weights, limit)
    vibe_candidates = None
    if query.vibe_probe is not None:
        want = limit * VIBE_PROBE_OVERFETCH
        ef = _ef_search(limit=want, known_tracks=excluded, taste_share=0.0, diffuse=query.diffuse)
        vibe_candidates = await repo.probe_vectors(
            session, query=query.vibe_probe, ef_search=ef, eligible=eligible, limit=want
        )
    wants = [min(MAX_LIMIT, q + max(TASTE_SLACK_MIN, q)) for q in quota]
    for attempt in range(2):
        lists: list[list[Found]] = []
        more: list[bool] = []
        for direction, want in zip(query.directions, wants, strict=True):
            found, has_more = await _found(
                session,
                direction=direction,
                want=want,
                eligible=eligible,
                excluded=excluded,
                vibe_candidates=vibe_candidates,
                diffuse=query.diffuse,
            )
            lists.append(found)
            more.append(has_more)
        merged = merge(lists, weights, limit)
        short = len(merged.items) < limit or merged.gave_way
        if attempt == 1 or not short or not any(more):
            break
        # A taste ran dry or only one artist was left: every taste looks as far as the whole list.
        wants = [min(MAX_LIMIT, max(w, limit + TASTE_SLACK_MIN)) for w in wants]
    items = merged.items
    rows = await repo.details_of(
        session,
        profile_id=eligible.profile_id,
        track_ids=[f.track_id for _, f in items],
        distances=[1.0 - f.score for _, f in items],
    )
    return [_recommendation(r, query.directions[i].taste) for (i, _), r in zip(items, rows, strict=True)]


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
    eligible = repo.Eligible(
        model=model,
        profile_id=profile.id,
        contexts=contexts,
        exclude=exclude,
        max_scan_tuples=MAX_SCAN_TUPLES,
    )
    if len(query.directions) == 1:
        known = (profile.taste_tracks_used or 0) + len(exclude)
        return await _single(session, query=query, eligible=eligible, known=known, limit=limit)
    return await _several(session, query=query, eligible=eligible, excluded=len(exclude), limit=limit)


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
        tastes=[
            TasteShare(index=d.taste.index, label=d.taste.label, weight=d.weight)
            for d in query.directions
            if d.taste is not None
        ],
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
