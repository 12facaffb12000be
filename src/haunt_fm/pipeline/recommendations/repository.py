"""Recommendation queries: nearest tracks by cosine distance (pgvector HNSW), current model only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pgvector.sqlalchemy import Vector
from sqlalchemy import JSON, TextualSelect, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import BigInteger, Text

from haunt_fm.db.base import EMBEDDING_DIM

# What the profile must not be offered: a vector of another model than the current one (it
# lives in another space; the track is being re-embedded), its own listened tracks, tracks it
# thumbed down in one of the asked-for vibe contexts ('general' and the requested vibe), and
# any ids the caller already holds. The model test reads the row the index scan already
# fetched; each NOT EXISTS is an index probe per candidate (the exclusion constraint's gist
# index on listen_events; the unique index on feedback).
_ELIGIBLE = """
    te.model = :model
    AND NOT EXISTS (SELECT 1 FROM listen_events e WHERE e.track_id = te.track_id AND e.profile_id = :pid)
    AND NOT EXISTS (SELECT 1 FROM feedback f
                    WHERE f.profile_id = :pid AND f.track_id = te.track_id
                      AND f.vibe_norm = ANY(:contexts) AND f.rating = 'down')
    AND te.track_id <> ALL(:exclude)
"""

# Track details and `because`: the listened seeds whose Last.fm neighbours led discovery
# here, this profile's first.
_DETAILS = """
SELECT n.track_id, 1 - n.distance AS score, t.title, t.artist,
       coalesce(t.album, t.itunes_album) AS album, t.preview_url, t.artwork_url, t.genre,
       coalesce(b.seeds, '[]') AS because
FROM nearest n
JOIN tracks t ON t.id = n.track_id
LEFT JOIN LATERAL (
    SELECT json_agg(json_build_object('track_id', s.id, 'title', s.title, 'artist', s.artist,
                                      'match', s.match, 'mine', s.mine)
                    ORDER BY s.mine DESC, s.match DESC) AS seeds
    FROM (
        SELECT st.id, st.title, st.artist, ts.match,
               EXISTS (SELECT 1 FROM listen_events e
                       WHERE e.track_id = ts.seed_track_id AND e.profile_id = :pid) AS mine
        FROM track_similarities ts
        JOIN tracks st ON st.id = ts.seed_track_id
        WHERE ts.candidate_track_id = n.track_id AND st.listened
        ORDER BY mine DESC, ts.match DESC
        LIMIT 6
    ) s
) b ON true
ORDER BY n.distance, n.track_id
"""


def _nearest_sql(order_by: str) -> TextualSelect:
    return (
        text(
            f"""
            WITH nearest AS MATERIALIZED (
                SELECT te.track_id, te.embedding <=> :q AS distance
                FROM track_embeddings te
                WHERE {_ELIGIBLE}
                ORDER BY {order_by}
                LIMIT :limit
            )
            {_DETAILS}
            """
        )
        .bindparams(
            bindparam("q", type_=Vector(EMBEDDING_DIM)),
            bindparam("contexts", type_=ARRAY(Text)),
            bindparam("exclude", type_=ARRAY(BigInteger)),
        )
        .columns(because=JSON)
    )


# Approximate: the HNSW index, with pgvector 0.8 iterative scans so that filtered-out
# candidates do not leave the page short. relaxed_order may return rows slightly out of
# order, so the outer query sorts again by the exact distance.
_ANN_SQL = _nearest_sql("te.embedding <=> :q")
# Exact: `+ 0` keeps the planner off the index, so this is a full scan with a top-N sort.
# Used only when the index scan came back short (its scan budget ran out).
_EXACT_SQL = _nearest_sql("(te.embedding <=> :q) + 0")

# One probe of a multi-probe search: just the ids, in (roughly) index order.
_PROBE_SQL = text(
    f"""
    SELECT te.track_id
    FROM track_embeddings te
    WHERE {_ELIGIBLE}
    ORDER BY te.embedding <=> :q
    LIMIT :limit
    """
).bindparams(
    bindparam("q", type_=Vector(EMBEDDING_DIM)),
    bindparam("contexts", type_=ARRAY(Text)),
    bindparam("exclude", type_=ARRAY(BigInteger)),
)

# The probes' union, ranked by exact distance to the real query.
_RANK_SQL = (
    text(
        f"""
        WITH nearest AS MATERIALIZED (
            SELECT te.track_id, te.embedding <=> :q AS distance
            FROM track_embeddings te
            WHERE te.track_id = ANY(:candidates) AND te.model = :model
            ORDER BY distance
            LIMIT :limit
        )
        {_DETAILS}
        """
    )
    .bindparams(
        bindparam("q", type_=Vector(EMBEDDING_DIM)),
        bindparam("candidates", type_=ARRAY(BigInteger)),
    )
    .columns(because=JSON)
)

_SCAN_SETTINGS_SQL = text(
    """
    SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true),
           set_config('hnsw.ef_search', :ef_search, true),
           set_config('hnsw.max_scan_tuples', :max_scan_tuples, true)
    """
)


async def _scan_settings(session: AsyncSession, *, ef_search: int, max_scan_tuples: int) -> None:
    # SET LOCAL semantics: the settings end with this transaction.
    await session.execute(
        _SCAN_SETTINGS_SQL, {"ef_search": str(ef_search), "max_scan_tuples": str(max_scan_tuples)}
    )


async def nearest(
    session: AsyncSession,
    *,
    query: np.ndarray,
    model: str,
    profile_id: int,
    contexts: Sequence[str],
    exclude: Sequence[int],
    limit: int,
    ef_search: int,
    max_scan_tuples: int,
    exact: bool = False,
) -> Sequence[Any]:
    """The `limit` eligible tracks nearest to `query` (`model`'s vectors), nearest first, with details."""
    params = {
        "q": query,
        "model": model,
        "pid": profile_id,
        "contexts": list(contexts),
        "exclude": list(exclude),
        "limit": limit,
    }
    if exact:
        return (await session.execute(_EXACT_SQL, params)).mappings().all()
    await _scan_settings(session, ef_search=ef_search, max_scan_tuples=max_scan_tuples)
    return (await session.execute(_ANN_SQL, params)).mappings().all()


async def probe(
    session: AsyncSession,
    *,
    query: np.ndarray,
    model: str,
    profile_id: int,
    contexts: Sequence[str],
    exclude: Sequence[int],
    limit: int,
    ef_search: int,
    max_scan_tuples: int,
) -> list[int]:
    """Ids of about the `limit` eligible tracks nearest to `query` (index order, not exact)."""
    await _scan_settings(session, ef_search=ef_search, max_scan_tuples=max_scan_tuples)
    params = {
        "q": query,
        "model": model,
        "pid": profile_id,
        "contexts": list(contexts),
        "exclude": list(exclude),
        "limit": limit,
    }
    return [int(t) for t in (await session.execute(_PROBE_SQL, params)).scalars()]


async def rank(
    session: AsyncSession,
    *,
    query: np.ndarray,
    model: str,
    profile_id: int,
    candidates: Sequence[int],
    limit: int,
) -> Sequence[Any]:
    """The `limit` candidates nearest to `query` by exact distance, nearest first, with details."""
    params = {"q": query, "model": model, "pid": profile_id, "candidates": list(candidates), "limit": limit}
    return (await session.execute(_RANK_SQL, params)).mappings().all()
