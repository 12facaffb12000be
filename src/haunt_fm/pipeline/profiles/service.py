"""Named profiles: one per listener, with the speakers that attribute listens to them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from haunt_fm.errors import Conflict, NotFound
from haunt_fm.pipeline.profiles import repository as repo
from haunt_fm.pipeline.profiles.models import DEFAULT_PROFILE, Profile
from haunt_fm.pipeline.profiles.schemas import ProfileDeleted, ProfileOut, SpeakersOut


async def require(session: AsyncSession, *, name: str | None) -> Profile:
    """The named profile (default when None), or a 404 that names it."""
    if name is None or name == DEFAULT_PROFILE:
        return await repo.get_default(session)
    profile = await repo.get_by_name(session, name)
    if profile is None:
        raise NotFound(f"Profile '{name}' does not exist. Create it with POST /api/profiles.")
    return profile


async def _with_tastes(session: AsyncSession, rows: Sequence[Any]) -> list[ProfileOut]:
    tastes = await repo.tastes_of(session, profile_ids=[int(r["id"]) for r in rows])
    return [ProfileOut.model_validate({**dict(r), "tastes": tastes.get(int(r["id"]), [])}) for r in rows]


async def list_profiles(session: AsyncSession) -> list[ProfileOut]:
    """Every profile with its listening stats and tastes, default first."""
    await repo.get_default(session)
    return await _with_tastes(session, await repo.list_with_stats(session))


async def get_profile(session: AsyncSession, *, name: str) -> ProfileOut:
    """One profile with its stats and tastes."""
    await require(session, name=name)
    return (await _with_tastes(session, await repo.list_with_stats(session, name=name)))[0]


async def create_profile(session: AsyncSession, *, name: str, display_name: str | None) -> ProfileOut:
    """Create a profile; 409 when the name is taken."""
    if await repo.create(session, name=name, display_name=display_name) is None:
        raise Conflict(f"Profile '{name}' already exists.")
    return await get_profile(session, name=name)


async def delete_profile(session: AsyncSession, *, name: str) -> ProfileDeleted:
    """Delete a profile, moving its listens and feedback to default."""
    if name == DEFAULT_PROFILE:
        raise Conflict("The 'default' profile cannot be deleted; every unattributed listen belongs to it.")
    profile = await require(session, name=name)
    default = await repo.get_default(session)
    listens, feedback = await repo.delete_moving_to_default(session, profile=profile, default=default)
    return ProfileDeleted(profile=name, listens_moved=listens, feedback_moved=feedback)


async def set_speakers(session: AsyncSession, *, name: str, speakers: list[str]) -> SpeakersOut:
    """Replace the profile's speaker mapping (a speaker mapped here leaves its old profile)."""
    profile = await require(session, name=name)
    await repo.replace_speakers(session, profile_id=profile.id, speakers=speakers)
    return SpeakersOut(profile=profile.name, speakers=await repo.speakers_of(session, profile.id))


async def get_speakers(session: AsyncSession, *, name: str) -> SpeakersOut:
    """The speakers mapped to a profile."""
    profile = await require(session, name=name)
    return SpeakersOut(profile=profile.name, speakers=await repo.speakers_of(session, profile.id))
