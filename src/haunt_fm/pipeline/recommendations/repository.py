"""Recommendation queries: nearest tracks by cosine distance (pgvector HNSW), current model only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pgvector.sqlalchemy import Vector
from sqlalchemy import JSON, TextClause, TextualSelect, bindparam, text
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
_ELIGIBLE_BINDS = (
    bindparam("q", type_=Vector(EMBEDDING_DIM)),
    bindparam("contexts", type_=ARRAY(Text)),
    bindparam("exclude", type_=ARRAY(BigInteger)),
)

# Track details and `because`: the listened seeds whose Last.fm neighbours led discovery
# here, this profile's first.
_DETAILS_SELECT = """
SELECT n.track_id, 1 - n.distance AS score, t.title, t.artist, t.norm_artist,
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
"""
_DETAILS = _DETAILS_SELECT + "ORDER BY n.distance, n.track_id"


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
        .bindparams(*_ELIGIBLE_BINDS)
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
).bindparams(*_ELIGIBLE_BINDS)

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


# Several tastes: each direction's nearest eligible tracks, ids and distances only (the
# details are read once for the merged list).
def _near_sql(order_by: str) -> TextClause:
    return text(
        f"""
        WITH near AS MATERIALIZED (
            SELECT te.track_id, te.embedding <=> :q AS distance
            FROM track_embeddings te
            WHERE {_ELIGIBLE}
            ORDER BY {order_by}
            LIMIT :limit
        )
        SELECT near.track_id, near.distance, t.norm_artist
        FROM near JOIN tracks t ON t.id = near.track_id
        ORDER BY near.distance, near.track_id
        """
    ).bindparams(*_ELIGIBLE_BINDS)


_NEAR_ANN_SQL = _near_sql("te.embedding <=> :q")
_NEAR_EXACT_SQL = _near_sql("(te.embedding <=> :q) + 0")

# The vibe probe of a multi-taste blend: ids with their vectors (pgvector's binary form minus
# its 4-byte header), so each taste's blend can rank them exactly without another query.
_PROBE_VECTORS_SQL = text(
    f"""
    WITH near AS MATERIALIZED (
        SELECT te.track_id, te.embedding
        FROM track_embeddings te
        WHERE {_ELIGIBLE}
        ORDER BY te.embedding <=> :q
        LIMIT :limit
    )
    SELECT near.track_id, substring(vector_send(near.embedding) FROM 5) AS v, t.norm_artist
    FROM near JOIN tracks t ON t.id = near.track_id
    """
).bindparams(*_ELIGIBLE_BINDS)

# How near `q` the index search gets, with no filter but the model: the cosine of the nearest
# track it finds. It starts from the same entry point and descends the same way as a filtered
# search from `q`, so it tells whether that search reached the neighbourhood it was sent to.
_REACH_SQL = text(
    """
    SELECT 1 - (te.embedding <=> :q) AS cosine
    FROM track_embeddings te
    WHERE te.model = :model
    ORDER BY te.embedding <=> :q
    LIMIT 1
    """
).bindparams(bindparam("q", type_=Vector(EMBEDDING_DIM)))

# Details of a merged list, in its order; `distance` is 1 - the score the list gave each track.
_DETAILS_OF_SQL = (
    text(
        """
        WITH nearest AS MATERIALIZED (
            SELECT x.track_id, x.distance, x.ord
            FROM unnest(CAST(:ids AS bigint[]), CAST(:distances AS double precision[]))
                 WITH ORDINALITY AS x(track_id, distance, ord)
        )
        """
        + _DETAILS_SELECT
        + "ORDER BY n.ord"
    )
    .bindparams(bindparam("ids", type_=ARRAY(BigInteger)))
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


@dataclass(frozen=True, slots=True)
class Eligible:
    """What a search may return: `model`'s vectors only, no track the profile listened to,
    thumbed down in one of `contexts`, or listed in `exclude`; the index scan reads at most
    `max_scan_tuples` rows."""

    model: str
    profile_id: int
    contexts: Sequence[str]
    exclude: Sequence[int]
    max_scan_tuples: int

    def params(self, query: np.ndarray, limit: int) -> dict[str, Any]:
        return {
            "q": query,
            "model": self.model,
            "pid": self.profile_id,
            "contexts": list(self.contexts),
            "exclude": list(self.exclude),
            "limit": limit,
        }


async def _index_scan(
    session: AsyncSession,
    statement: Any,
    *,
    eligible: Eligible,
    query: np.ndarray,
    limit: int,
    ef_search: int,
) -> Any:
    await _scan_settings(session, ef_search=ef_search, max_scan_tuples=eligible.max_scan_tuples)
    return await session.execute(statement, eligible.params(query, limit))


async def nearest(
    session: AsyncSession,
    *,
    query: np.ndarray,
    eligible: Eligible,
    limit: int,
    ef_search: int,
    exact: bool = False,
    details: bool = True,
) -> Sequence[Any]:
    """The `limit` eligible tracks nearest to `query`, nearest first: with details, or only
    (track_id, distance, norm_artist)."""
    if exact:
        statement = _EXACT_SQL if details else _NEAR_EXACT_SQL
        return (await session.execute(statement, eligible.params(query, limit))).mappings().all()
    result = await _index_scan(
        session,
        _ANN_SQL if details else _NEAR_ANN_SQL,
        eligible=eligible,
        query=query,
        limit=limit,
        ef_search=ef_search,
    )
    return result.mappings().all()


async def reach(
    session: AsyncSession, *, query: np.ndarray, eligible: Eligible, ef_search: int
) -> float | None:
    """The cosine to `query` of the nearest `eligible.model` track the index search finds (any
    track, listened or not); None when it finds none."""
    await _scan_settings(session, ef_search=ef_search, max_scan_tuples=eligible.max_scan_tuples)
    value = (await session.execute(_REACH_SQL, {"q": query, "model": eligible.model})).scalar_one_or_none()
    return None if value is None else float(value)


async def probe(
    session: AsyncSession, *, query: np.ndarray, eligible: Eligible, limit: int, ef_search: int
) -> list[int]:
    """Ids of about the `limit` eligible tracks nearest to `query` (index order, not exact)."""
    result = await _index_scan(
        session, _PROBE_SQL, eligible=eligible, query=query, limit=limit, ef_search=ef_search
    )
    return [int(t) for t in result.scalars()]


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


async def probe_vectors(
    session: AsyncSession, *, query: np.ndarray, eligible: Eligible, limit: int, ef_search: int
) -> tuple[list[int], np.ndarray, list[str]]:
    """Ids, unit vectors and artists of about the `limit` eligible tracks nearest to `query`."""
    result = await _index_scan(
        session, _PROBE_VECTORS_SQL, eligible=eligible, query=query, limit=limit, ef_search=ef_search
    )
    rows = result.all()
    vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=">f4").astype(np.float32)
    return [int(r[0]) for r in rows], vectors.reshape(len(rows), EMBEDDING_DIM), [r[2] or "" for r in rows]


async def details_of(
    session: AsyncSession, *, profile_id: int, track_ids: Sequence[int], distances: Sequence[float]
) -> Sequence[Any]:
    """Details and `because` of these tracks, in this order."""
    params = {"pid": profile_id, "ids": list(track_ids), "distances": list(distances)}
    return (await session.execute(_DETAILS_OF_SQL, params)).mappings().all()
