"""Taste-profile queries: the weighted mean is built in PostgreSQL; the tastes' clustering needs the
weighted vectors themselves, which cross the wire as raw float4 bytes (pgvector's binary form)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pgvector.sqlalchemy import Vector
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import BigInteger, Float, Integer, Text

from haunt_fm.db.base import EMBEDDING_DIM

# Weights (see service.build_taste for the rule):
# - listened track: sum over its listens that were not skipped of 2^(-age / half_life), age
#   measured from the profile's newest listen. Only ratios matter after normalisation, so
#   anchoring at the newest listen instead of now() gives the same profile and never underflows.
# - the weights of the tracks used are divided by their maximum, so the heaviest
#   listened track weighs 1.0; a liked track (an `up` in any vibe context) weighs at least
#   1.0 — as much as the profile's heaviest listened track.
# - a track thumbed down in `general` never contributes, whatever else happened to it.
_WEIGHTED_CTE = """
    WITH newest AS (
        SELECT max(played_at) AS at FROM listen_events WHERE profile_id = :pid
    ), listened AS (
        SELECT e.track_id,
               sum(exp(-ln(2.0) * greatest(extract(epoch FROM n.at - e.played_at), 0) / :half_life_s)) AS w
        FROM listen_events e CROSS JOIN newest n
        WHERE e.profile_id = :pid AND NOT e.skipped
        GROUP BY e.track_id
    ), liked AS (
        SELECT DISTINCT track_id FROM feedback WHERE profile_id = :pid AND rating = 'up'
    ), candidates AS (
        SELECT coalesce(l.track_id, k.track_id) AS track_id, l.w AS listen_w, k.track_id IS NOT NULL AS liked
        FROM listened l FULL JOIN liked k ON k.track_id = l.track_id
    ), used AS (
        SELECT c.track_id, c.listen_w, c.liked, te.embedding
        FROM candidates c
        JOIN track_embeddings te ON te.track_id = c.track_id
        WHERE NOT EXISTS (
            SELECT 1 FROM feedback d
            WHERE d.profile_id = :pid AND d.track_id = c.track_id
              AND d.rating = 'down' AND d.vibe_norm = 'general')
    ), weighted AS (
        SELECT track_id, embedding,
               greatest(coalesce(listen_w / nullif(max(listen_w) OVER (), 0), 0),
                        CASE WHEN liked THEN 1.0 ELSE 0.0 END) AS w
        FROM used
    )
"""

_BUILD_SQL = text(
    _WEIGHTED_CTE
    + f"""
    , agg AS (
        SELECT count(*) AS n,
               sum(embedding * CAST(CAST(array_fill(CAST(w AS real), ARRAY[{EMBEDDING_DIM}]) AS real[])
                                    AS vector({EMBEDDING_DIM}))) AS total
        FROM weighted WHERE w > 0
    )
    UPDATE profiles p SET
        taste_embedding = CASE WHEN agg.n > 0 AND vector_norm(agg.total) > 0
                               THEN l2_normalize(agg.total) END,
        taste_built_at = now(),
        taste_tracks_used = CASE WHEN agg.n > 0 AND vector_norm(agg.total) > 0 THEN agg.n ELSE 0 END
    FROM agg
    WHERE p.id = :pid
    RETURNING p.taste_embedding, p.taste_built_at, p.taste_tracks_used
    """
).columns(taste_embedding=Vector(EMBEDDING_DIM))

# The same tracks and weights, one row each, for the clustering. `vector_send` is pgvector's
# binary output (int16 dim, int16 unused, then big-endian float4s): 2 KB a track instead of
# ~6 KB of text to parse.
_WEIGHTED_TRACKS_SQL = text(
    _WEIGHTED_CTE
    + """
    SELECT w.track_id, w.w, substring(vector_send(w.embedding) FROM 5) AS v, t.norm_artist, t.artist
    FROM weighted w JOIN tracks t ON t.id = w.track_id
    WHERE w.w > 0
    ORDER BY w.track_id
    """
)

# Stale when anything that feeds the profile changed after it was built: a listen or a
# feedback arrived, activity_at was bumped (feedback deleted, listens moved, a listen of it
# marked skipped by another profile's next listen), one of the profile's listened/liked tracks
# got its embedding, or it has a taste vector but no tastes yet (built before tastes existed).
# Every branch is an index probe. `tastes` is the stored tastes without their vectors.
_FRESHNESS_SQL = text(
    """
    SELECT p.taste_embedding, p.taste_built_at, p.taste_tracks_used,
           coalesce((SELECT json_agg(json_build_object('index', pt.idx, 'label', pt.label,
                                                       'weight', pt.weight, 'tracks', pt.tracks)
                                     ORDER BY pt.idx)
                     FROM profile_tastes pt WHERE pt.profile_id = p.id), '[]') AS tastes,
           (p.taste_built_at IS NULL
            OR p.activity_at > p.taste_built_at
            OR (p.taste_embedding IS NOT NULL
                AND NOT EXISTS (SELECT 1 FROM profile_tastes pt WHERE pt.profile_id = p.id))
            OR EXISTS (SELECT 1 FROM listen_events e
                       WHERE e.profile_id = p.id AND e.received_at > p.taste_built_at)
            OR EXISTS (SELECT 1 FROM feedback f
                       WHERE f.profile_id = p.id AND f.created_at > p.taste_built_at)
            OR EXISTS (SELECT 1 FROM track_embeddings te
                       WHERE te.created_at > p.taste_built_at
                         AND (EXISTS (SELECT 1 FROM listen_events e
                                      WHERE e.track_id = te.track_id AND e.profile_id = p.id)
                              OR EXISTS (SELECT 1 FROM feedback f
                                         WHERE f.profile_id = p.id AND f.track_id = te.track_id
                                           AND f.rating = 'up')))) AS stale
    FROM profiles p
    WHERE p.id = :pid
    """
).columns(taste_embedding=Vector(EMBEDDING_DIM))

_CENTROIDS_SQL = text(
    "SELECT idx, centroid FROM profile_tastes WHERE profile_id = :pid ORDER BY idx"
).columns(centroid=Vector(EMBEDDING_DIM))

_DELETE_TASTES_SQL = text("DELETE FROM profile_tastes WHERE profile_id = :pid")

_INSERT_TASTE_SQL = text(
    """
    INSERT INTO profile_tastes (profile_id, idx, centroid, weight, tracks, label, top_artists, built_at)
    VALUES (:pid, :idx, :centroid, :weight, :tracks, :label, :top_artists, :built_at)
    """
).bindparams(bindparam("centroid", type_=Vector(EMBEDDING_DIM)), bindparam("top_artists", type_=ARRAY(Text)))

_HAS_TAGS_SQL = text("SELECT to_regclass('track_tags') IS NOT NULL")

# Only run when the table exists (tags arrive with the tags stage): each taste's tags, weighed
# by the taste weight of its tracks times the tag's own weight.
_TOP_TAGS_SQL = text(
    """
    SELECT x.idx, tt.tag, sum(x.w * tt.weight) AS score
    FROM unnest(CAST(:track_ids AS bigint[]), CAST(:idxs AS integer[]), CAST(:ws AS double precision[]))
         AS x(track_id, idx, w)
    JOIN track_tags tt ON tt.track_id = x.track_id
    GROUP BY x.idx, tt.tag
    ORDER BY x.idx, score DESC, tt.tag
    """
).bindparams(
    bindparam("track_ids", type_=ARRAY(BigInteger)),
    bindparam("idxs", type_=ARRAY(Integer)),
    bindparam("ws", type_=ARRAY(Float)),
)


def _params(profile_id: int, half_life_days: float) -> dict[str, Any]:
    return {"pid": profile_id, "half_life_s": half_life_days * 86_400.0}


async def build(session: AsyncSession, *, profile_id: int, half_life_days: float) -> dict[str, Any]:
    """Recompute and store the profile's taste vector; returns embedding/built_at/tracks_used."""
    row = (await session.execute(_BUILD_SQL, _params(profile_id, half_life_days))).mappings().one()
    return dict(row)


async def weighted_tracks(
    session: AsyncSession, *, profile_id: int, half_life_days: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """(track ids, weights, unit vectors n x 512, (norm_artist, artist) per track) of what feeds the taste."""
    rows = (await session.execute(_WEIGHTED_TRACKS_SQL, _params(profile_id, half_life_days))).all()
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    weights = np.array([float(r[1]) for r in rows], dtype=np.float64)
    raw = b"".join(r[2] for r in rows)
    vectors = np.frombuffer(raw, dtype=">f4").astype(np.float32).reshape(len(rows), EMBEDDING_DIM)
    artists = [(r[3] or "", r[4] or "") for r in rows]
    return ids, weights, vectors, artists


async def freshness(session: AsyncSession, *, profile_id: int) -> dict[str, Any]:
    """The stored taste vector, the stored tastes (without vectors) and whether they are stale."""
    return dict((await session.execute(_FRESHNESS_SQL, {"pid": profile_id})).mappings().one())


async def centroids(session: AsyncSession, *, profile_id: int) -> list[np.ndarray]:
    """The stored tastes' centroids, in taste order."""
    rows = (await session.execute(_CENTROIDS_SQL, {"pid": profile_id})).all()
    return [np.asarray(r[1], dtype=np.float32) for r in rows]


async def replace_tastes(session: AsyncSession, *, profile_id: int, tastes: Sequence[dict[str, Any]]) -> None:
    """Make `tastes` (idx, centroid, weight, tracks, label, top_artists, built_at) the profile's."""
    await session.execute(_DELETE_TASTES_SQL, {"pid": profile_id})
    if tastes:
        await session.execute(_INSERT_TASTE_SQL, [{"pid": profile_id, **t} for t in tastes])


async def top_tags(
    session: AsyncSession, *, track_ids: Sequence[int], tastes: Sequence[int], weights: Sequence[float]
) -> dict[int, list[str]] | None:
    """Each taste's tags, best first; None while no `track_tags` table exists."""
    if not (await session.execute(_HAS_TAGS_SQL)).scalar_one():
        return None
    rows = await session.execute(
        _TOP_TAGS_SQL, {"track_ids": list(track_ids), "idxs": list(tastes), "ws": list(weights)}
    )
    out: dict[int, list[str]] = {}
    for idx, tag, _score in rows:
        out.setdefault(int(idx), []).append(str(tag))
    return out
