"""Queries for tags: storing a track's tags, grounding a vibe in them (the tag centroid, in
PostgreSQL), the vibe cache and its marks, tag lookups, and the library's tags.

Claiming and settling the tags stage go through the queue (`TAGS_STAGE`); the writes here are
the stage's own data, made only when the queue says the claim was still held.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
from pgvector.sqlalchemy import Vector
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import SmallInteger, Text

from haunt_fm.db.base import EMBEDDING_DIM

STATE_KEY = "tags"

# Replace a track's tags with a new set in one statement: drop the ones Last.fm no longer
# lists, insert the new, re-weigh the changed; unchanged rows are not touched. Returns how
# many rows changed, so that vibe vectors are recomputed only when something did.
_STORE_SQL = text(
    """
    WITH new AS (
        SELECT n.tag, n.weight FROM unnest(:tags, :weights) AS n(tag, weight)
    ), dropped AS (
        DELETE FROM track_tags t
        WHERE t.track_id = :id AND NOT EXISTS (SELECT 1 FROM new WHERE new.tag = t.tag)
        RETURNING 1
    ), written AS (
        INSERT INTO track_tags (track_id, tag, weight)
        SELECT :id, new.tag, new.weight FROM new
        ON CONFLICT (track_id, tag) DO UPDATE SET weight = EXCLUDED.weight, updated_at = now()
            WHERE track_tags.weight IS DISTINCT FROM EXCLUDED.weight
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM dropped) + (SELECT count(*) FROM written)
    """
).bindparams(bindparam("tags", type_=ARRAY(Text)), bindparam("weights", type_=ARRAY(SmallInteger)))

_FETCHED_SQL = text("UPDATE tracks SET tags_fetched_at = now() WHERE id = :id")

# Every change to track_tags bumps one counter: a cached vibe vector is fresh while the counter
# (and the newest embedding) is what it was computed from. A counter, not a timestamp: a
# transaction that commits late cannot slip under it.
_BUMP_SQL = text(
    """
    INSERT INTO app_state (key, value, updated_at) VALUES (:key, '{"generation": 1}', now())
    ON CONFLICT (key) DO UPDATE SET
        value = app_state.value || jsonb_build_object(
            'generation', coalesce(CAST(app_state.value ->> 'generation' AS bigint), 0) + 1),
        updated_at = now()
    """
)
_MERGE_STATE_SQL = text(
    """
    INSERT INTO app_state (key, value, updated_at) VALUES (:key, CAST(:value AS jsonb), now())
    ON CONFLICT (key) DO UPDATE SET value = app_state.value || EXCLUDED.value, updated_at = now()
    """
)

# Long-interval refresh: tags fetched (or failed) long enough ago are due again.
_REQUEUE_SQL = text(
    """
    UPDATE tracks SET tags_status = 'pending', tags_attempts = 0
    WHERE tags_status IN ('done', 'failed') AND tags_next_at <= now()
    """
)

# The cache row of a vibe with the marks it must match, and where its tag lookups stand: one
# round trip on the hot path.
_CACHED_SQL = text(
    """
    SELECT coalesce((SELECT CAST(value ->> 'generation' AS bigint) FROM app_state WHERE key = :key), 0)
               AS tags_generation,
           (SELECT max(created_at) FROM track_embeddings) AS embeddings_mark,
           g.model, g.tags, g.tag_tracks, g.lookups, g.coherence, g.embedding,
           g.tags_generation AS cached_generation, g.embeddings_mark AS cached_embeddings_mark,
           EXISTS (SELECT 1 FROM jobs j
                   WHERE j.kind = :kind AND j.key = ANY(g.lookups) AND j.status = 'pending') AS discovering,
           EXISTS (SELECT 1 FROM unnest(g.lookups) AS l(tag) LEFT JOIN tag_lookups t ON t.tag = l.tag
                   WHERE t.fetched_at IS NULL OR t.fetched_at < now() - make_interval(secs => :min_age_s))
               AS lookups_due
    FROM (SELECT 1) AS one
    LEFT JOIN vibe_groundings g ON g.vibe_norm = :norm
    """
).columns(embedding=Vector(EMBEDDING_DIM))

# The candidates that are tags of at least one track embedded by the current model (a tag
# nothing embedded carries cannot steer anything; its words are tried instead).
_KNOWN_SQL = text(
    """
    SELECT c.tag FROM unnest(:candidates) AS c(tag)
    WHERE EXISTS (SELECT 1 FROM track_tags x
                  JOIN track_embeddings e ON e.track_id = x.track_id AND e.model = :model
                  WHERE x.tag = c.tag AND x.weight > 0)
    """
).bindparams(bindparam("candidates", type_=ARRAY(Text)))

# The vibe's tag centroid. Per tag: the `per_tag` heaviest-tagged tracks embedded by the current
# model, their unit vectors summed with the tag's weight on each (Last.fm's count), normalised;
# then the tags' directions summed (each matched tag counts the same, however many tracks carry
# it) and normalised. All in PostgreSQL: no vector crosses the wire but the result.
_CENTROID_SQL = (
    text(
        f"""
    WITH picked AS (
        SELECT t.tag, p.track_id, p.weight, p.embedding
        FROM unnest(:tags) AS t(tag)
        CROSS JOIN LATERAL (
            SELECT x.track_id, x.weight, e.embedding
            FROM track_tags x
            JOIN track_embeddings e ON e.track_id = x.track_id AND e.model = :model
            WHERE x.tag = t.tag AND x.weight > 0
            ORDER BY x.weight DESC, x.track_id DESC
            LIMIT :per_tag
        ) p
    ), per_tag AS (
        SELECT tag,
               sum(embedding * CAST(CAST(array_fill(CAST(weight AS real), ARRAY[{EMBEDDING_DIM}]) AS real[])
                                    AS vector({EMBEDDING_DIM}))) AS total,
               sum(weight) AS weight
        FROM picked GROUP BY tag
    ), directions AS (
        SELECT l2_normalize(total) AS direction FROM per_tag WHERE vector_norm(total) > 0
    ), summed AS (
        SELECT sum(direction) AS total FROM directions
    )
    SELECT (SELECT count(DISTINCT track_id) FROM picked) AS tag_tracks,
           CASE WHEN s.total IS NOT NULL AND vector_norm(s.total) > 0 THEN l2_normalize(s.total) END
               AS embedding,
           (SELECT min(vector_norm(total) / weight) FROM per_tag WHERE weight > 0) AS coherence
    FROM summed s
    """
    )
    .bindparams(bindparam("tags", type_=ARRAY(Text)))
    .columns(embedding=Vector(EMBEDDING_DIM))
)

_STORE_GROUNDING_SQL = text(
    """
    INSERT INTO vibe_groundings (vibe_norm, model, tags, tag_tracks, lookups, coherence, embedding,
                                 tags_generation, embeddings_mark, computed_at)
    VALUES (:norm, :model, :tags, :tag_tracks, :lookups, :coherence, :embedding, :tags_generation,
            :embeddings_mark, now())
    ON CONFLICT (vibe_norm) DO UPDATE SET
        model = EXCLUDED.model, tags = EXCLUDED.tags, tag_tracks = EXCLUDED.tag_tracks,
        lookups = EXCLUDED.lookups, coherence = EXCLUDED.coherence, embedding = EXCLUDED.embedding,
        tags_generation = EXCLUDED.tags_generation, embeddings_mark = EXCLUDED.embeddings_mark,
        computed_at = now()
    """
).bindparams(
    bindparam("tags", type_=ARRAY(Text)),
    bindparam("lookups", type_=ARRAY(Text)),
    bindparam("embedding", type_=Vector(EMBEDDING_DIM)),
)

# Tags whose chart was not asked for within the last day.
_DUE_LOOKUPS_SQL = text(
    """
    SELECT c.tag FROM unnest(:tags) WITH ORDINALITY AS c(tag, i)
    LEFT JOIN tag_lookups l ON l.tag = c.tag
    WHERE l.fetched_at IS NULL OR l.fetched_at < now() - make_interval(secs => :min_age_s)
    ORDER BY c.i
    """
).bindparams(bindparam("tags", type_=ARRAY(Text)))
_LOOKUPS_PENDING_SQL = text(
    "SELECT EXISTS (SELECT 1 FROM jobs WHERE kind = :kind AND key = ANY(:tags) AND status = 'pending')"
).bindparams(bindparam("tags", type_=ARRAY(Text)))
_LAST_LOOKUP_SQL = text("SELECT fetched_at FROM tag_lookups WHERE tag = :tag")
_RECORD_LOOKUP_SQL = text(
    """
    INSERT INTO tag_lookups (tag, fetched_at, tracks, candidates_new) VALUES (:tag, now(), :tracks, :new)
    ON CONFLICT (tag) DO UPDATE SET fetched_at = now(), tracks = EXCLUDED.tracks,
        candidates_new = EXCLUDED.candidates_new
    """
)

# The tags of the library (or of one profile's listened tracks) by summed weight; `embedded`
# counts the tracks a vibe could be grounded in (vectors of the current model). `embedded_only`
# keeps the tags embedded tracks carry, ranked by the weight on those.
_TOP_TAGS_SQL = text(
    """
    SELECT tt.tag, sum(tt.weight) AS weight, count(*) AS tracks, count(te.track_id) AS embedded
    FROM track_tags tt
    LEFT JOIN track_embeddings te ON te.track_id = tt.track_id AND te.model = :model
    WHERE tt.weight > 0
      AND (CAST(:profile_id AS bigint) IS NULL OR EXISTS (
            SELECT 1 FROM listen_events e
            WHERE e.track_id = tt.track_id AND e.profile_id = CAST(:profile_id AS bigint)))
    GROUP BY tt.tag
    HAVING NOT :embedded_only OR count(te.track_id) > 0
    ORDER BY CASE WHEN :embedded_only THEN sum(tt.weight) FILTER (WHERE te.track_id IS NOT NULL)
                  ELSE sum(tt.weight) END DESC,
             tt.tag
    LIMIT :limit
    """
)

_STATE_SQL = text("SELECT value FROM app_state WHERE key = :key")


async def store_tags(session: AsyncSession, *, track_id: int, tags: Sequence[tuple[str, int]]) -> int:
    """Make `tags` (normalised, weight 0..100) exactly the track's tags; returns how many rows changed."""
    changed = (
        await session.execute(
            _STORE_SQL,
            {"id": track_id, "tags": [t for t, _ in tags], "weights": [int(w) for _, w in tags]},
        )
    ).scalar_one()
    await session.execute(_FETCHED_SQL, {"id": track_id})
    if changed:
        await session.execute(_BUMP_SQL, {"key": STATE_KEY})
    return int(changed)


async def requeue_due(session: AsyncSession) -> int:
    """Put tracks whose refresh (or retry after a failure) is due back in the queue."""
    result = await session.execute(_REQUEUE_SQL)
    return int(getattr(result, "rowcount", 0) or 0)


async def merge_state(session: AsyncSession, value: dict[str, Any]) -> None:
    """Merge top-level keys into app_state['tags'] (last fetch, last error)."""
    await session.execute(_MERGE_STATE_SQL, {"key": STATE_KEY, "value": json.dumps(value, default=str)})


async def state(session: AsyncSession) -> dict[str, Any]:
    """app_state['tags'] (generation, last fetch, last error)."""
    row = (await session.execute(_STATE_SQL, {"key": STATE_KEY})).first()
    return dict(row[0] or {}) if row is not None else {}


async def cached_grounding(
    session: AsyncSession, *, vibe_norm: str, lookup_kind: str, lookup_age_s: float
) -> dict[str, Any]:
    """The current marks (tags generation, newest embedding), the vibe's cache row (None fields
    when there is none), whether its lookups are queued or running, and whether one is due."""
    params = {"key": STATE_KEY, "norm": vibe_norm, "kind": lookup_kind, "min_age_s": lookup_age_s}
    return dict((await session.execute(_CACHED_SQL, params)).mappings().one())


async def known_tags(session: AsyncSession, *, candidates: Sequence[str], model: str) -> set[str]:
    """The candidates that tracks embedded by `model` carry."""
    if not candidates:
        return set()
    rows = await session.execute(_KNOWN_SQL, {"candidates": list(candidates), "model": model})
    return {r[0] for r in rows}


async def centroid(
    session: AsyncSession, *, tags: Sequence[str], model: str, per_tag: int
) -> tuple[np.ndarray | None, int, float | None]:
    """(the tags' centroid of `model`'s vectors or None, how many tracks stand behind it, how
    tightly they agree)."""
    if not tags:
        return None, 0, None
    row = (
        (await session.execute(_CENTROID_SQL, {"tags": list(tags), "model": model, "per_tag": per_tag}))
        .mappings()
        .one()
    )
    vector = None if row["embedding"] is None else np.asarray(row["embedding"], dtype=np.float32)
    coherence = None if row["coherence"] is None else float(row["coherence"])
    return vector, int(row["tag_tracks"] or 0), coherence


async def store_grounding(
    session: AsyncSession,
    *,
    vibe_norm: str,
    model: str,
    tags: Sequence[str],
    tag_tracks: int,
    lookups: Sequence[str],
    coherence: float | None,
    embedding: np.ndarray | None,
    tags_generation: int,
    embeddings_mark: datetime | None,
) -> None:
    """Cache a vibe's tag grounding with the marks it was computed from."""
    await session.execute(
        _STORE_GROUNDING_SQL,
        {
            "norm": vibe_norm,
            "model": model,
            "tags": list(tags),
            "tag_tracks": tag_tracks,
            "lookups": list(lookups),
            "coherence": coherence,
            "embedding": embedding,
            "tags_generation": tags_generation,
            "embeddings_mark": embeddings_mark,
        },
    )


async def due_lookups(session: AsyncSession, *, tags: Sequence[str], min_age_s: float) -> list[str]:
    """The tags (in the given order) whose chart was not asked for within `min_age_s` seconds."""
    if not tags:
        return []
    rows = await session.execute(_DUE_LOOKUPS_SQL, {"tags": list(tags), "min_age_s": min_age_s})
    return [r[0] for r in rows]


async def lookups_pending(session: AsyncSession, *, kind: str, tags: Sequence[str]) -> bool:
    """Whether a lookup job for one of `tags` is queued or running."""
    if not tags:
        return False
    return bool((await session.execute(_LOOKUPS_PENDING_SQL, {"kind": kind, "tags": list(tags)})).scalar())


async def last_lookup(session: AsyncSession, *, tag: str) -> datetime | None:
    """When the tag's chart was last asked for."""
    row = (await session.execute(_LAST_LOOKUP_SQL, {"tag": tag})).first()
    return None if row is None else row[0]


async def record_lookup(session: AsyncSession, *, tag: str, tracks: int, candidates_new: int) -> None:
    """Remember that the tag's chart was asked for now."""
    await session.execute(_RECORD_LOOKUP_SQL, {"tag": tag, "tracks": tracks, "new": candidates_new})


async def top_tags(
    session: AsyncSession, *, model: str, profile_id: int | None, limit: int, embedded_only: bool = False
) -> Sequence[Any]:
    """Tags by summed weight (tag, weight, tracks, embedded), of everything or of one profile's listens."""
    params = {"model": model, "profile_id": profile_id, "limit": limit, "embedded_only": embedded_only}
    return (await session.execute(_TOP_TAGS_SQL, params)).mappings().all()
