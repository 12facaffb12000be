"""Queries for discovery: seeds, the seed lock, candidate upserts, edges and scores."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# How many listened tracks (of one profile, or all) there are, and how many are due.
_SEED_COUNTS_SQL = text(
    """
    SELECT count(*) AS listened,
           count(*) FILTER (WHERE t.lastfm_expanded_at IS NULL OR t.lastfm_expanded_at < :cutoff) AS due
    FROM tracks t
    WHERE t.listened AND (CAST(:profile_id AS bigint) IS NULL OR EXISTS (
        SELECT 1 FROM listen_events e WHERE e.track_id = t.id AND e.profile_id = CAST(:profile_id AS bigint)))
    """
)

# Input sorted by norm_key, so concurrent runs lock shared candidate rows in one order.
# (xmax = 0) is true for a row this statement inserted, false for one it updated.
_UPSERT_CANDIDATES_SQL = text(
    """
    INSERT INTO tracks (title, artist, norm_artist, norm_title, norm_key, source, mbid, lastfm_url,
                        duration_ms)
    SELECT c.title, c.artist, c.norm_artist, c.norm_title, c.norm_key, :source, c.mbid, c.url, c.duration_ms
    FROM unnest(CAST(:titles AS text[]), CAST(:artists AS text[]), CAST(:norm_artists AS text[]),
                CAST(:norm_titles AS text[]), CAST(:norm_keys AS text[]), CAST(:mbids AS text[]),
                CAST(:urls AS text[]), CAST(:durations AS integer[]))
         AS c(title, artist, norm_artist, norm_title, norm_key, mbid, url, duration_ms)
    ORDER BY c.norm_key
    ON CONFLICT (norm_key) DO UPDATE SET
        mbid = coalesce(tracks.mbid, EXCLUDED.mbid),
        lastfm_url = coalesce(tracks.lastfm_url, EXCLUDED.lastfm_url),
        duration_ms = coalesce(tracks.duration_ms, EXCLUDED.duration_ms)
    RETURNING id, norm_key, (xmax = 0) AS inserted, preview_status
    """
)

_UPSERT_EDGES_SQL = text(
    """
    INSERT INTO track_similarities (seed_track_id, candidate_track_id, match)
    SELECT :seed_id, e.candidate_id, e.match
    FROM unnest(CAST(:candidate_ids AS bigint[]), CAST(:matches AS double precision[]))
         AS e(candidate_id, match)
    ORDER BY e.candidate_id
    ON CONFLICT (seed_track_id, candidate_track_id) DO UPDATE SET match = EXCLUDED.match, updated_at = now()
    """
)

# Recomputed from the edges, so expanding a seed again replaces its contribution instead of adding it twice.
_RESCORE_SQL = text(
    """
    UPDATE tracks t SET discovery_score = s.total
    FROM (SELECT candidate_track_id AS id, sum(match) AS total FROM track_similarities
          WHERE candidate_track_id = ANY(CAST(:ids AS bigint[])) GROUP BY candidate_track_id) s
    WHERE t.id = s.id AND t.discovery_score IS DISTINCT FROM s.total
    """
)

# A candidate found without a seed (a tag's chart) has no edges to sum: its own score stands,
# unless it already has a better one.
_RAISE_SCORES_SQL = text(
    """
    UPDATE tracks t SET discovery_score = s.score
    FROM unnest(CAST(:ids AS bigint[]), CAST(:scores AS double precision[])) AS s(id, score)
    WHERE t.id = s.id AND t.discovery_score < s.score
    """
)

_MARK_EXPANDED_SQL = text("UPDATE tracks SET lastfm_expanded_at = now() WHERE id = :id")

_MERGE_STATE_SQL = text(
    """
    INSERT INTO app_state (key, value, updated_at) VALUES (:key, CAST(:value AS jsonb), now())
    ON CONFLICT (key) DO UPDATE SET value = app_state.value || EXCLUDED.value, updated_at = now()
    """
)


@dataclass(frozen=True, slots=True)
class Seed:
    id: int
    artist: str
    title: str
    norm_key: str


@dataclass(frozen=True, slots=True)
class Candidate:
    title: str
    artist: str
    norm_artist: str
    norm_title: str
    norm_key: str
    mbid: str | None
    url: str | None
    duration_ms: int | None
    match: float


@dataclass(frozen=True, slots=True)
class StoredCandidate:
    id: int
    inserted: bool
    pending_preview: bool


async def seed_counts(session: AsyncSession, *, profile_id: int | None, cutoff: datetime) -> tuple[int, int]:
    """(listened tracks, of which due for expansion), of one profile or of everyone."""
    row = (await session.execute(_SEED_COUNTS_SQL, {"profile_id": profile_id, "cutoff": cutoff})).one()
    return int(row.listened), int(row.due)


async def upsert_candidates(
    session: AsyncSession, candidates: Sequence[Candidate], *, source: str = "lastfm"
) -> dict[str, StoredCandidate]:
    """Insert new candidate tracks (with `source`), fill Last.fm metadata on known ones; by norm_key."""
    if not candidates:
        return {}
    ordered = sorted(candidates, key=lambda c: c.norm_key)
    rows = await session.execute(
        _UPSERT_CANDIDATES_SQL,
        {
            "titles": [c.title for c in ordered],
            "artists": [c.artist for c in ordered],
            "norm_artists": [c.norm_artist for c in ordered],
            "norm_titles": [c.norm_title for c in ordered],
            "norm_keys": [c.norm_key for c in ordered],
            "mbids": [c.mbid for c in ordered],
            "urls": [c.url for c in ordered],
            "durations": [c.duration_ms for c in ordered],
            "source": source,
        },
    )
    return {
        r.norm_key: StoredCandidate(int(r.id), bool(r.inserted), r.preview_status == "pending") for r in rows
    }


async def upsert_edges(session: AsyncSession, *, seed_id: int, edges: Sequence[tuple[int, float]]) -> None:
    """Keep (seed -> candidate, match); a known edge takes the new match."""
    if not edges:
        return
    await session.execute(
        _UPSERT_EDGES_SQL,
        {"seed_id": seed_id, "candidate_ids": [e[0] for e in edges], "matches": [e[1] for e in edges]},
    )


async def rescore(session: AsyncSession, *, track_ids: Sequence[int]) -> None:
    """discovery_score = the sum of match over every seed pointing at the track."""
    if track_ids:
        await session.execute(_RESCORE_SQL, {"ids": sorted(track_ids)})


async def raise_scores(session: AsyncSession, *, scores: Sequence[tuple[int, float]]) -> None:
    """discovery_score = `score` for tracks whose score is lower (seedless candidates)."""
    if scores:
        await session.execute(
            _RAISE_SCORES_SQL, {"ids": [s[0] for s in scores], "scores": [s[1] for s in scores]}
        )


async def mark_expanded(session: AsyncSession, *, seed_id: int) -> None:
    await session.execute(_MARK_EXPANDED_SQL, {"id": seed_id})


async def merge_state(session: AsyncSession, *, key: str, value: dict[str, Any]) -> None:
    """Merge top-level keys into app_state[key]."""
    await session.execute(_MERGE_STATE_SQL, {"key": key, "value": json.dumps(value, default=str)})
