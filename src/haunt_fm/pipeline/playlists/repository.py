"""Playlist queries: known-favourite candidates, saving playlists and reading them back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pgvector.sqlalchemy import Vector
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import BigInteger, Text

from haunt_fm.db.base import EMBEDDING_DIM

# The profile's listened and liked tracks with their play count x recency weight, the same
# rule as the taste profile: per track, sum over its listens that were not skipped of
# 2^(-age / half_life), age from the profile's newest listen (only ratios matter; anchoring
# there never underflows), divided by the heaviest track's weight; a liked track (an `up` in
# any vibe) weighs at least 1. A track only ever skipped is no favourite. Left out: tracks
# thumbed down in one of `contexts` ('general' and the asked-for vibe), and soft dislikes —
# tracks skipped at least twice since their last complete play and their last thumbs up.
# `in_last` marks the known tracks of the profile's previous playlist: they go to the back, so
# favourites rotate from one playlist to the next.
_KNOWN_CTE = """
    WITH newest AS (
        SELECT max(played_at) AS at FROM listen_events WHERE profile_id = :pid
    ), listened AS (
        SELECT e.track_id,
               sum(exp(greatest(-ln(2.0) * greatest(CAST(extract(epoch FROM n.at - e.played_at)
                                                          AS double precision), 0)
                                / :half_life_s, -700))) AS w,
               count(*) AS plays, max(e.played_at) AS last_played
        FROM listen_events e CROSS JOIN newest n
        WHERE e.profile_id = :pid AND NOT e.skipped
        GROUP BY e.track_id
    ), soft_disliked AS (
        SELECT s.track_id
        FROM listen_events s
        WHERE s.profile_id = :pid AND s.skipped
          AND NOT EXISTS (SELECT 1 FROM listen_events c
                          WHERE c.profile_id = :pid AND c.track_id = s.track_id
                            AND NOT c.skipped AND c.played_at > s.played_at)
          AND NOT EXISTS (SELECT 1 FROM feedback f
                          WHERE f.profile_id = :pid AND f.track_id = s.track_id
                            AND f.rating = 'up' AND f.created_at > s.played_at)
        GROUP BY s.track_id
        HAVING count(*) >= 2
    ), last_playlist AS (
        SELECT pt.track_id
        FROM playlist_tracks pt
        WHERE pt.kind = 'known'
          AND pt.playlist_id = (SELECT max(id) FROM playlists WHERE profile_id = :pid)
    ), liked AS (
        SELECT DISTINCT track_id FROM feedback WHERE profile_id = :pid AND rating = 'up'
    ), candidates AS (
        SELECT coalesce(l.track_id, k.track_id) AS track_id, coalesce(l.w, 0) AS w,
               coalesce(l.plays, 0) AS plays, l.last_played, k.track_id IS NOT NULL AS liked
        FROM listened l FULL JOIN liked k ON k.track_id = l.track_id
    ), ranked AS (
        SELECT c.*,
               greatest(coalesce(c.w / nullif(max(c.w) OVER (), 0), 0),
                        CASE WHEN c.liked THEN 1.0 ELSE 0.0 END) AS weight,
               c.track_id IN (SELECT track_id FROM last_playlist) AS in_last
        FROM candidates c
        WHERE NOT EXISTS (
            SELECT 1 FROM feedback d
            WHERE d.profile_id = :pid AND d.track_id = c.track_id
              AND d.rating = 'down' AND d.vibe_norm = ANY(:contexts))
          AND c.track_id NOT IN (SELECT track_id FROM soft_disliked)
    )
"""

_KNOWN_SQL = text(
    _KNOWN_CTE
    + """
    SELECT r.track_id, t.title, t.artist, coalesce(t.album, t.itunes_album) AS album,
           t.norm_artist, r.plays, r.weight AS score
    FROM ranked r JOIN tracks t ON t.id = r.track_id
    ORDER BY r.in_last, r.weight DESC, r.plays DESC, r.last_played DESC NULLS LAST, r.track_id
    LIMIT :limit
    """
).bindparams(bindparam("contexts", type_=ARRAY(Text)))

# With a vibe: closest to the vibe first; tracks not embedded (by the current model) yet
# cannot be placed against it and come last, by weight.
_KNOWN_BY_VIBE_SQL = text(
    _KNOWN_CTE
    + """
    SELECT r.track_id, t.title, t.artist, coalesce(t.album, t.itunes_album) AS album,
           t.norm_artist, r.plays, 1 - (te.embedding <=> :vibe) AS score
    FROM ranked r JOIN tracks t ON t.id = r.track_id
    LEFT JOIN track_embeddings te ON te.track_id = r.track_id AND te.model = :model
    ORDER BY r.in_last, te.embedding <=> :vibe NULLS LAST, r.weight DESC, r.plays DESC, r.track_id
    LIMIT :limit
    """
).bindparams(bindparam("contexts", type_=ARRAY(Text)), bindparam("vibe", type_=Vector(EMBEDDING_DIM)))


async def known_candidates(
    session: AsyncSession,
    *,
    profile_id: int,
    contexts: Sequence[str],
    half_life_days: float,
    vibe: np.ndarray | None,
    model: str,
    limit: int,
) -> Sequence[Any]:
    """The profile's favourites, best first: by weight, or closest to `vibe` when given (`model`'s
    vectors only)."""
    params: dict[str, Any] = {
        "pid": profile_id,
        "contexts": list(contexts),
        "half_life_s": half_life_days * 86_400.0,
        "limit": limit,
    }
    if vibe is None:
        return (await session.execute(_KNOWN_SQL, params)).mappings().all()
    return (
        (await session.execute(_KNOWN_BY_VIBE_SQL, {**params, "vibe": vibe, "model": model})).mappings().all()
    )


_INSERT_PLAYLIST_SQL = text(
    """
    INSERT INTO playlists (profile_id, params, vibe, alpha, known_count, new_count, speaker_entity, playback)
    VALUES (:pid, :params, :vibe, :alpha, :known, :new, :speaker, :playback)
    RETURNING id, created_at
    """
).bindparams(bindparam("params", type_=JSONB), bindparam("playback", type_=JSONB))

_INSERT_TRACKS_SQL = text(
    """
    INSERT INTO playlist_tracks (playlist_id, position, track_id, kind, score)
    SELECT :playlist_id, x.position, x.track_id, x.kind, x.score
    FROM unnest(CAST(:positions AS integer[]), CAST(:track_ids AS bigint[]),
                CAST(:kinds AS text[]), CAST(:scores AS double precision[]))
         AS x(position, track_id, kind, score)
    """
).bindparams(bindparam("track_ids", type_=ARRAY(BigInteger)), bindparam("kinds", type_=ARRAY(Text)))

_SET_PLAYBACK_SQL = text("UPDATE playlists SET playback = :playback WHERE id = :id").bindparams(
    bindparam("playback", type_=JSONB)
)


async def save(
    session: AsyncSession,
    *,
    profile_id: int,
    params: dict[str, Any],
    vibe: str | None,
    alpha: float | None,
    speaker_entity: str | None,
    playback: dict[str, Any],
    tracks: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    """Insert a playlist and its tracks; returns its id and created_at."""
    known = sum(1 for t in tracks if t["kind"] == "known")
    row = (
        (
            await session.execute(
                _INSERT_PLAYLIST_SQL,
                {
                    "pid": profile_id,
                    "params": params,
                    "vibe": vibe,
                    "alpha": alpha,
                    "known": known,
                    "new": len(tracks) - known,
                    "speaker": speaker_entity,
                    "playback": playback,
                },
            )
        )
        .mappings()
        .one()
    )
    if tracks:
        await session.execute(
            _INSERT_TRACKS_SQL,
            {
                "playlist_id": row["id"],
                "positions": [t["position"] for t in tracks],
                "track_ids": [t["track_id"] for t in tracks],
                "kinds": [t["kind"] for t in tracks],
                "scores": [t["score"] for t in tracks],
            },
        )
    return dict(row)


async def set_playback(session: AsyncSession, *, playlist_id: int, playback: dict[str, Any]) -> None:
    await session.execute(_SET_PLAYBACK_SQL, {"id": playlist_id, "playback": playback})


_GET_SQL = text(
    """
    SELECT pl.id AS playlist_id, p.name AS profile, pl.created_at, pl.params, pl.vibe, pl.alpha,
           pl.known_count, pl.new_count, pl.speaker_entity, pl.playback
    FROM playlists pl JOIN profiles p ON p.id = pl.profile_id
    WHERE pl.id = :id
    """
)

_TRACKS_SQL = text(
    """
    SELECT pt.position, pt.track_id, t.title, t.artist, coalesce(t.album, t.itunes_album) AS album,
           pt.kind, pt.score
    FROM playlist_tracks pt JOIN tracks t ON t.id = pt.track_id
    WHERE pt.playlist_id = :id
    ORDER BY pt.position
    """
)

# Newest first; the id follows creation order and is the primary key, so no extra index.
_LIST_SQL = text(
    """
    SELECT pl.id AS playlist_id, p.name AS profile, pl.created_at, pl.vibe, pl.alpha,
           pl.known_count, pl.new_count, pl.speaker_entity, pl.playback ->> 'status' AS playback_status,
           (SELECT count(*) FROM playlist_tracks pt WHERE pt.playlist_id = pl.id) AS track_count
    FROM playlists pl JOIN profiles p ON p.id = pl.profile_id
    WHERE (CAST(:pid AS bigint) IS NULL OR pl.profile_id = :pid)
    ORDER BY pl.id DESC
    LIMIT :limit
    """
)


async def get(session: AsyncSession, *, playlist_id: int) -> dict[str, Any] | None:
    """The playlist row with its profile name, or None."""
    row = (await session.execute(_GET_SQL, {"id": playlist_id})).mappings().first()
    return None if row is None else dict(row)


async def tracks_of(session: AsyncSession, *, playlist_id: int) -> Sequence[Any]:
    return (await session.execute(_TRACKS_SQL, {"id": playlist_id})).mappings().all()


async def recent(session: AsyncSession, *, profile_id: int | None, limit: int) -> Sequence[Any]:
    return (await session.execute(_LIST_SQL, {"pid": profile_id, "limit": limit})).mappings().all()
