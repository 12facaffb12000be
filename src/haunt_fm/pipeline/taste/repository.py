"""Taste-profile queries: the weighted build runs entirely in PostgreSQL (no vectors cross the wire)."""

from __future__ import annotations

from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from haunt_fm.db.base import EMBEDDING_DIM

# Weights (see service.build_taste for the rule):
# - listened track: sum over its listens of 2^(-age / half_life), age measured from the
#   profile's newest listen. Only ratios matter after normalisation, so anchoring at the
#   newest listen instead of now() gives the same profile and never underflows.
# - the weights of the tracks used are divided by their maximum, so the heaviest
#   listened track weighs 1.0; a liked track (an `up` in any vibe context) weighs at least
#   1.0 — as much as the profile's heaviest listened track.
# - a track thumbed down in `general` never contributes, whatever else happened to it.
_BUILD_SQL = text(
    f"""
    WITH newest AS (
        SELECT max(played_at) AS at FROM listen_events WHERE profile_id = :pid
    ), listened AS (
        SELECT e.track_id,
               -- Clamped at e^-80: years-old (imported) listens would underflow exp(), or the
               -- cast of their weight to real below; e^-80 is as good as nothing next to 1.
               sum(exp(greatest(-ln(2.0) * greatest(extract(epoch FROM n.at - e.played_at), 0)
                                / :half_life_s, -80))) AS w
        FROM listen_events e CROSS JOIN newest n
        WHERE e.profile_id = :pid
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
        SELECT embedding,
               greatest(coalesce(listen_w / nullif(max(listen_w) OVER (), 0), 0),
                        CASE WHEN liked THEN 1.0 ELSE 0.0 END) AS w
        FROM used
    ), agg AS (
        SELECT count(*) AS n,
               sum(embedding * CAST(CAST(array_fill(CAST(w AS real), ARRAY[{EMBEDDING_DIM}]) AS real[])
                                    AS vector({EMBEDDING_DIM}))) AS total
        FROM weighted WHERE w > 0
    )
    UPDATE profiles p SET
        taste_embedding = CASE WHEN agg.n > 0 AND vector_norm(agg.total) > 0
                               THEN l2_normalize(agg.total) END,
        taste_built_at = now(),
        taste_tracks_used = CASE WHEN agg.n > 0 AND vector_norm(agg.total) > 0 THEN agg.n ELSE 0 END,
        taste_model = :model
    FROM agg
    WHERE p.id = :pid
    RETURNING p.taste_embedding, p.taste_built_at, p.taste_tracks_used
    """
).columns(taste_embedding=Vector(EMBEDDING_DIM))

# Stale when anything that feeds the profile changed after it was built: the CLAP model
# changed, a listen or a feedback arrived, activity_at was bumped (feedback deleted, listens
# moved), or one of the profile's listened/liked tracks got its embedding. Every branch is an
# index probe.
_FRESHNESS_SQL = text(
    """
    SELECT p.taste_embedding, p.taste_built_at, p.taste_tracks_used,
           (p.taste_built_at IS NULL
            OR p.taste_model IS DISTINCT FROM :model
            OR p.activity_at > p.taste_built_at
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


async def build(
    session: AsyncSession, *, profile_id: int, half_life_days: float, model: str
) -> dict[str, Any]:
    """Recompute and store the profile's taste vector from `model`'s vectors; returns
    embedding/built_at/tracks_used."""
    params = {"pid": profile_id, "half_life_s": half_life_days * 86_400.0, "model": model}
    row = (await session.execute(_BUILD_SQL, params)).mappings().one()
    return dict(row)


async def freshness(session: AsyncSession, *, profile_id: int, model: str) -> dict[str, Any]:
    """The stored taste vector and whether it is stale (for `model`, the current CLAP model)."""
    return dict((await session.execute(_FRESHNESS_SQL, {"pid": profile_id, "model": model})).mappings().one())
