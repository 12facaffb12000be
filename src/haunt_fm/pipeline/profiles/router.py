"""/api/profiles: named profiles and speaker mappings."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, status

from haunt_fm.deps import SessionDep
from haunt_fm.pipeline.profiles import service
from haunt_fm.pipeline.profiles.schemas import (
    ProfileCreate,
    ProfileDeleted,
    ProfileList,
    ProfileOut,
    SpeakersIn,
    SpeakersOut,
)

router = APIRouter(prefix="/api/profiles", tags=["profiles"])

NamePath = Path(description="Profile name.", max_length=64)


@router.get("", response_model=ProfileList, summary="List all named profiles with stats")
async def list_profiles(session: SessionDep) -> ProfileList:
    return ProfileList(profiles=await service.list_profiles(session))


_UNKNOWN: dict[int | str, dict[str, Any]] = {404: {"description": "There is no profile of that name."}}


@router.post(
    "",
    response_model=ProfileOut,
    status_code=status.HTTP_201_CREATED,
    summary="Create a profile",
    responses={409: {"description": "A profile of that name exists."}},
)
async def create_profile(body: ProfileCreate, session: SessionDep) -> ProfileOut:
    return await service.create_profile(session, name=body.name, display_name=body.display_name)


@router.get("/{name}", response_model=ProfileOut, summary="Profile details and stats", responses=_UNKNOWN)
async def get_profile(session: SessionDep, name: str = NamePath) -> ProfileOut:
    return await service.get_profile(session, name=name)


@router.delete(
    "/{name}",
    response_model=ProfileDeleted,
    summary="Delete a profile (events move to default)",
    responses={**_UNKNOWN, 409: {"description": "`default` cannot be deleted."}},
)
async def delete_profile(session: SessionDep, name: str = NamePath) -> ProfileDeleted:
    return await service.delete_profile(session, name=name)


@router.put(
    "/{name}/speakers", response_model=SpeakersOut, summary="Set speaker→profile mappings", responses=_UNKNOWN
)
async def put_speakers(body: SpeakersIn, session: SessionDep, name: str = NamePath) -> SpeakersOut:
    return await service.set_speakers(session, name=name, speakers=body.speakers)


@router.get(
    "/{name}/speakers", response_model=SpeakersOut, summary="List speaker mappings", responses=_UNKNOWN
)
async def get_speakers(session: SessionDep, name: str = NamePath) -> SpeakersOut:
    return await service.get_speakers(session, name=name)
