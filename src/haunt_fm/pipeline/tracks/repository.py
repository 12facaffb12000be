"""Track rows: find-or-create by normalised identity."""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from haunt_fm.pipeline.tracks.identity import identity_key, normalize_artist, normalize_title
from haunt_fm.pipeline.tracks.models import Track

_UPSERT_SQL = text(
    """
    INSERT INTO tracks (title, artist, album, norm_artist, norm_title, norm_key, source, listened)
    VALUES (:title, :artist, :album, :norm_artist, :norm_title, :norm_key, :source, :listened)
    ON CONFLICT (norm_key) DO UPDATE SET
        listened = tracks.listened OR EXCLUDED.listened,
        album = coalesce(tracks.album, EXCLUDED.album)
    RETURNING id
    """
)


def identity_params(*, title: str, artist: str) -> dict[str, str]:
    norm_artist, norm_title = normalize_artist(artist), normalize_title(title)
    return {
        "norm_artist": norm_artist,
        "norm_title": norm_title,
        "norm_key": identity_key(artist, title),
    }


async def upsert(
    session: AsyncSession,
    *,
    title: str,
    artist: str,
    album: str | None = None,
    source: str = "listen",
    listened: bool = False,
) -> int:
    """The id of the track with this identity, creating it when new."""
    params = {
        "title": title,
        "artist": artist,
        "album": album,
        "source": source,
        "listened": listened,
        **identity_params(title=title, artist=artist),
    }
    return int((await session.execute(_UPSERT_SQL, params)).scalar_one())


async def get(session: AsyncSession, track_id: int) -> Track | None:
    return await session.get(Track, track_id)


async def exists(session: AsyncSession, track_id: int) -> bool:
    return (await session.execute(select(Track.id).where(Track.id == track_id))).first() is not None
