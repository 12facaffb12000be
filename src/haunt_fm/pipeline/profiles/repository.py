"""Queries for profiles and speaker mappings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import CursorResult, bindparam, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import BigInteger

from haunt_fm.pipeline.profiles.models import DEFAULT_PROFILE, Profile, SpeakerMapping


def speaker_key(speaker: str) -> str:
    return " ".join(speaker.split()).casefold()


async def get_by_name(session: AsyncSession, name: str) -> Profile | None:
    return (await session.execute(select(Profile).where(Profile.name == name))).scalar_one_or_none()


async def get_default(session: AsyncSession) -> Profile:
    profile = await get_by_name(session, DEFAULT_PROFILE)
    if profile is None:
        # The migration creates it; recreate it if someone deleted it by hand.
        await session.execute(
            insert(Profile).values(name=DEFAULT_PROFILE, display_name="Default").on_conflict_do_nothing()
        )
        profile = await get_by_name(session, DEFAULT_PROFILE)
        assert profile is not None
    return profile


async def create(session: AsyncSession, *, name: str, display_name: str | None) -> Profile | None:
    """Insert a profile; None when the name is taken."""
    row = (
        await session.execute(
            insert(Profile)
            .values(name=name, display_name=display_name)
            .on_conflict_do_nothing(index_elements=[Profile.name])
            .returning(Profile.id)
        )
    ).scalar_one_or_none()
    if row is None:
        return None
    return await session.get(Profile, row)


_STATS_SQL = text(
    """
    SELECT p.id, p.name, p.display_name, p.created_at,
           -- taste_built_at also marks "checked, nothing to build from"; report real builds only.
           CASE WHEN p.taste_embedding IS NULL THEN NULL ELSE p.taste_built_at END AS taste_built_at,
           p.taste_tracks_used,
           coalesce(l.listens, 0) AS listens, coalesce(l.tracks, 0) AS tracks,
           coalesce(f.feedback, 0) AS feedback,
           coalesce(s.speakers, ARRAY[]::text[]) AS speakers,
           (p.taste_built_at IS NULL
            OR p.activity_at > p.taste_built_at
            OR coalesce(l.last_received, '-infinity') > p.taste_built_at
            OR coalesce(f.last_created, '-infinity') > p.taste_built_at
            OR (p.taste_embedding IS NOT NULL
                AND NOT EXISTS (SELECT 1 FROM profile_tastes pt
                                WHERE pt.profile_id = p.id AND pt.cohesion IS NOT NULL))
            OR EXISTS (SELECT 1 FROM track_embeddings te
                       JOIN listen_events e ON e.track_id = te.track_id AND e.profile_id = p.id
                       WHERE te.created_at > p.taste_built_at)) AS taste_stale
    FROM profiles p
    LEFT JOIN LATERAL (
        SELECT count(*) AS listens, count(DISTINCT track_id) AS tracks, max(received_at) AS last_received
        FROM listen_events WHERE profile_id = p.id) l ON true
    LEFT JOIN LATERAL (
        SELECT count(*) AS feedback, max(created_at) AS last_created
        FROM feedback WHERE profile_id = p.id) f ON true
    LEFT JOIN LATERAL (
        SELECT array_agg(speaker ORDER BY speaker) AS speakers
        FROM speaker_mappings WHERE profile_id = p.id) s ON true
    WHERE (CAST(:name AS text) IS NULL OR p.name = :name)
    ORDER BY (p.name <> 'default'), p.name
    """
)


async def list_with_stats(session: AsyncSession, *, name: str | None = None) -> Sequence[Any]:
    return (await session.execute(_STATS_SQL, {"name": name})).mappings().all()


# The tastes the taste stage stored (profile_tastes), without their vectors.
_TASTES_SQL = text(
    """
    SELECT profile_id, idx AS index, label, weight, tracks, top_artists
    FROM profile_tastes
    WHERE profile_id = ANY(:ids)
    ORDER BY profile_id, idx
    """
).bindparams(bindparam("ids", type_=ARRAY(BigInteger)))


async def tastes_of(session: AsyncSession, *, profile_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """Each profile's stored tastes, heaviest first."""
    out: dict[int, list[dict[str, Any]]] = {}
    for row in (await session.execute(_TASTES_SQL, {"ids": list(profile_ids)})).mappings():
        out.setdefault(int(row["profile_id"]), []).append(dict(row))
    return out


async def speakers_of(session: AsyncSession, profile_id: int) -> list[str]:
    rows = await session.execute(
        select(SpeakerMapping.speaker)
        .where(SpeakerMapping.profile_id == profile_id)
        .order_by(SpeakerMapping.speaker)
    )
    return list(rows.scalars())


async def replace_speakers(session: AsyncSession, *, profile_id: int, speakers: list[str]) -> None:
    """Make `speakers` exactly this profile's mapping, moving any taken from other profiles."""
    await session.execute(delete(SpeakerMapping).where(SpeakerMapping.profile_id == profile_id))
    seen: set[str] = set()
    for speaker in speakers:
        key = speaker_key(speaker)
        if key in seen:
            continue
        seen.add(key)
        stmt = insert(SpeakerMapping).values(profile_id=profile_id, speaker=speaker, speaker_norm=key)
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=[SpeakerMapping.speaker_norm],
                set_={"profile_id": profile_id, "speaker": speaker},
            )
        )


async def delete_moving_to_default(
    session: AsyncSession, *, profile: Profile, default: Profile
) -> tuple[int, int]:
    """Delete `profile`; its listens, feedback and playlists move to `default`.

    Listens that would duplicate one of default's within 60 s are dropped (they are
    the same listen); default's own feedback wins over the moved profile's.
    """
    params = {"pid": profile.id, "did": default.id}
    # Hold the row first: a listen arriving meanwhile (its foreign-key check needs a share
    # lock on this row) waits, finds the profile gone, and is logged elsewhere. Without the
    # lock it could slip in after the move below and make the final DELETE fail.
    await session.execute(text("SELECT id FROM profiles WHERE id = :pid FOR UPDATE"), params)
    await session.execute(
        text(
            """
            DELETE FROM listen_events e WHERE e.profile_id = :pid AND EXISTS (
                SELECT 1 FROM listen_events d WHERE d.profile_id = :did AND d.track_id = e.track_id
                AND listen_window(d.played_at) && listen_window(e.played_at))
            """
        ),
        params,
    )
    moved_listens = _rowcount(
        await session.execute(
            text("UPDATE listen_events SET profile_id = :did WHERE profile_id = :pid"), params
        )
    )
    await session.execute(
        text(
            """
            DELETE FROM feedback f WHERE f.profile_id = :pid AND EXISTS (
                SELECT 1 FROM feedback d WHERE d.profile_id = :did AND d.track_id = f.track_id
                AND d.vibe_norm = f.vibe_norm)
            """
        ),
        params,
    )
    moved_feedback = _rowcount(
        await session.execute(text("UPDATE feedback SET profile_id = :did WHERE profile_id = :pid"), params)
    )
    await session.execute(text("UPDATE playlists SET profile_id = :did WHERE profile_id = :pid"), params)
    await session.execute(update(Profile).where(Profile.id == default.id).values(activity_at=func.now()))
    await session.execute(delete(Profile).where(Profile.id == profile.id))
    return int(moved_listens or 0), int(moved_feedback or 0)


def _rowcount(result: object) -> int:
    return int(result.rowcount) if isinstance(result, CursorResult) else 0
