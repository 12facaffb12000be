"""Taste-profile queries: PostgreSQL weighs the profile's tracks; their vectors cross the wire as raw
float4 bytes (pgvector's binary form) for the mean and the clustering, done in numpy."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
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
#   The age is a double precision: extract() answers numeric, whose exp() costs ~10 us a listen.
# - the weights of the tracks used are divided by their maximum, so the heaviest
#   listened track weighs 1.0; a liked track (an `up` in any vibe context) weighs at least
#   1.0 — as much as the profile's heaviest listened track.
# - a track thumbed down in `general` never contributes, whatever else happened to it.
_WEIGHTED_CTE = """
    WITH newest AS (
        SELECT max(played_at) AS at FROM listen_events WHERE profile_id = :pid
    ), listened AS (
        SELECT e.track_id,
               -- Clamped at e^-80: years-old (imported) listens would underflow exp(); e^-80
               -- is as good as nothing next to 1.
               sum(exp(greatest(
                   -ln(2.0)
                   * greatest(CAST(extract(epoch FROM n.at - e.played_at) AS double precision), 0)
                   / :half_life_s, -80))) AS w
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
        -- Vectors of the current model only: another model's live in another space.
        JOIN track_embeddings te ON te.track_id = c.track_id AND te.model = :model
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

_STORE_SQL = text(
    """
    UPDATE profiles SET taste_embedding = :taste, taste_built_at = now(), taste_tracks_used = :used,
                        taste_model = :model
    WHERE id = :pid
    RETURNING taste_built_at
    """
).bindparams(bindparam("taste", type_=Vector(EMBEDDING_DIM)))

# The tracks that feed the taste, as ONE bytea of fixed-size records: the track id (int8), its
# weight (float8) and its vector (`vector_send` is pgvector's binary output: int16 dim, int16
# unused, then big-endian float4s; the header is cut). 2 KB a track instead of ~6 KB of text,
# and one row instead of 10,000 for the driver to build.
_WEIGHTED_TRACKS_SQL = text(
    _WEIGHTED_CTE
    + """
    SELECT string_agg(int8send(track_id) || float8send(CAST(w AS double precision))
                      || substring(vector_send(embedding) FROM 5), ''::bytea)
    FROM weighted
    WHERE w > 0
    """
)
_RECORD = np.dtype([("id", ">i8"), ("w", ">f8"), ("v", ">f4", (EMBEDDING_DIM,))])

# Stale when anything that feeds the profile changed after it was built: the CLAP model
# changed, a listen or a feedback arrived, activity_at was bumped (feedback deleted, listens
# moved, a listen of it marked skipped by another profile's next listen), one of the profile's
# listened/liked tracks got its embedding, or it has a taste vector but no tastes yet (built
# before tastes existed) or tastes without their cohesion (built before migration 0011).
# Every branch is an index probe. `tastes` is the stored tastes without their vectors.
_FRESHNESS_SQL = text(
    """
    SELECT p.taste_embedding, p.taste_built_at, p.taste_tracks_used,
           coalesce((SELECT json_agg(json_build_object('index', pt.idx, 'label', pt.label,
                                                       'weight', pt.weight, 'tracks', pt.tracks,
                                                       'cohesion', pt.cohesion)
                                     ORDER BY pt.idx)
                     FROM profile_tastes pt WHERE pt.profile_id = p.id), '[]') AS tastes,
           (p.taste_built_at IS NULL
            OR p.taste_model IS DISTINCT FROM :model
            OR p.activity_at > p.taste_built_at
            OR (p.taste_embedding IS NOT NULL
                AND NOT EXISTS (SELECT 1 FROM profile_tastes pt
                                WHERE pt.profile_id = p.id AND pt.cohesion IS NOT NULL))
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
    INSERT INTO profile_tastes (profile_id, idx, centroid, weight, tracks, label, top_artists, built_at,
                                cohesion)
    VALUES (:pid, :idx, :centroid, :weight, :tracks, :label, :top_artists, :built_at, :cohesion)
    """
).bindparams(bindparam("centroid", type_=Vector(EMBEDDING_DIM)), bindparam("top_artists", type_=ARRAY(Text)))

# Which taste each track is in, with its weight: the clustering's answer, as a relation.
_MEMBERS = """
    unnest(CAST(:track_ids AS bigint[]), CAST(:idxs AS integer[]), CAST(:ws AS double precision[]))
    AS x(track_id, idx, w)
"""
_MEMBER_BINDS = (
    bindparam("track_ids", type_=ARRAY(BigInteger)),
    bindparam("idxs", type_=ARRAY(Integer)),
    bindparam("ws", type_=ARRAY(Float)),
)

# Each taste's artists, weighed by the taste weight of their tracks; one display name each.
_TOP_ARTISTS_SQL = text(
    f"""
    SELECT x.idx, min(t.artist) AS artist, sum(x.w) AS score
    FROM {_MEMBERS} JOIN tracks t ON t.id = x.track_id
    GROUP BY x.idx, t.norm_artist
    ORDER BY x.idx, score DESC, t.norm_artist
    """
).bindparams(*_MEMBER_BINDS)

# Each taste's tags (the tags stage's, pipeline/tags), weighed by the taste weight of its
# tracks times the tag's own weight.
_TOP_TAGS_SQL = text(
    f"""
    SELECT x.idx, tt.tag, sum(x.w * tt.weight) AS score
    FROM {_MEMBERS} JOIN track_tags tt ON tt.track_id = x.track_id
    GROUP BY x.idx, tt.tag
    ORDER BY x.idx, score DESC, tt.tag
    """
).bindparams(*_MEMBER_BINDS)


def _params(profile_id: int, half_life_days: float, model: str) -> dict[str, Any]:
    return {"pid": profile_id, "half_life_s": half_life_days * 86_400.0, "model": model}


async def store_taste(
    session: AsyncSession, *, profile_id: int, taste: np.ndarray | None, tracks_used: int, model: str
) -> datetime:
    """Store the profile's taste vector (None: nothing feeds it), its model and when it was built."""
    params = {"pid": profile_id, "taste": taste, "used": tracks_used, "model": model}
    built_at: datetime = (await session.execute(_STORE_SQL, params)).scalar_one()
    return built_at


async def weighted_tracks(
    session: AsyncSession, *, profile_id: int, half_life_days: float, model: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(track ids, weights, unit vectors n x 512 of `model`) of what feeds the taste, by track id."""
    params = _params(profile_id, half_life_days, model)
    raw = (await session.execute(_WEIGHTED_TRACKS_SQL, params)).scalar_one()
    records = np.frombuffer(raw or b"", dtype=_RECORD)
    # Ordered here, not in SQL (20 MB of vectors would spill a sort to disk): the clustering is
    # seeded, and the same listening must give the same tastes.
    records = records[np.argsort(records["id"], kind="stable")]
    return (
        records["id"].astype(np.int64),
        records["w"].astype(np.float64),
        records["v"].astype(np.float32),
    )


async def freshness(session: AsyncSession, *, profile_id: int, model: str) -> dict[str, Any]:
    """The stored taste vector, the stored tastes (without vectors) and whether they are stale
    (for `model`, the current CLAP model)."""
    params = {"pid": profile_id, "model": model}
    return dict((await session.execute(_FRESHNESS_SQL, params)).mappings().one())


async def centroids(session: AsyncSession, *, profile_id: int) -> list[np.ndarray]:
    """The stored tastes' centroids, in taste order."""
    rows = (await session.execute(_CENTROIDS_SQL, {"pid": profile_id})).all()
    return [np.asarray(r[1], dtype=np.float32) for r in rows]


async def replace_tastes(session: AsyncSession, *, profile_id: int, tastes: Sequence[dict[str, Any]]) -> None:
    """Make `tastes` (idx, centroid, weight, tracks, label, top_artists, built_at, cohesion) the profile's."""
    await session.execute(_DELETE_TASTES_SQL, {"pid": profile_id})
    if tastes:
        await session.execute(_INSERT_TASTE_SQL, [{"pid": profile_id, **t} for t in tastes])


async def top_artists(
    session: AsyncSession,
    *,
    track_ids: Sequence[int],
    tastes: Sequence[int],
    weights: Sequence[float],
    limit: int,
) -> dict[int, list[str]]:
    """Each taste's `limit` heaviest artists."""
    params = {"track_ids": list(track_ids), "idxs": list(tastes), "ws": list(weights)}
    out: dict[int, list[str]] = {}
    for idx, artist, _score in await session.execute(_TOP_ARTISTS_SQL, params):
        names = out.setdefault(int(idx), [])
        if len(names) < limit:
            names.append(str(artist))
    return out


async def top_tags(
    session: AsyncSession, *, track_ids: Sequence[int], tastes: Sequence[int], weights: Sequence[float]
) -> dict[int, list[str]]:
    """Each taste's tags, best first (a taste whose tracks have no tags yet is left out)."""
    rows = await session.execute(
        _TOP_TAGS_SQL, {"track_ids": list(track_ids), "idxs": list(tastes), "ws": list(weights)}
    )
    out: dict[int, list[str]] = {}
    for idx, tag, _score in rows:
        out.setdefault(int(idx), []).append(str(tag))
    return out
