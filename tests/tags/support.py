"""Helpers for the tags tests: tracks with tags stored through the real repository."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import text

from haunt_fm.db.session import transaction
from haunt_fm.pipeline.tags import repository as tag_repo
from haunt_fm.pipeline.tags.normalize import normalize_tags
from tests.recommendations.support import Factory


async def tag(db: Factory, track_id: int, tags: Mapping[str, int]) -> None:
    """Give a track these tags (as Last.fm spells them), stored as the tags stage stores them."""
    async with transaction(db) as session:
        await tag_repo.store_tags(session, track_id=track_id, tags=normalize_tags(tags.items()))
        await session.execute(text("UPDATE tracks SET tags_status = 'done' WHERE id = :id"), {"id": track_id})


async def scalar(db: Factory, sql: str, **params: object) -> object:
    async with db() as session:
        return (await session.execute(text(sql), params)).scalar()
