"""/api/history: the Home Assistant webhook and recent listens."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response, status

from haunt_fm.deps import AutocommitDep, SessionDep
from haunt_fm.pipeline.common import LimitQuery
from haunt_fm.pipeline.listens import service
from haunt_fm.pipeline.listens.schemas import ListenIn, ListenLogged, RecentListens

router = APIRouter(prefix="/api/history", tags=["history"])


@router.post(
    "/webhook",
    response_model=ListenLogged,
    status_code=status.HTTP_201_CREATED,
    summary="Log a listen event (from the Home Assistant automation)",
    responses={
        200: {
            "model": ListenLogged,
            "description": "Not a new listen (`duplicate`, `resumed`, `grouped`): nothing stored",
        }
    },
)
async def webhook(body: ListenIn, response: Response, conn: AutocommitDep) -> ListenLogged:
    result = await service.log_listen(conn, listen=body)
    if result.status != "logged":
        response.status_code = status.HTTP_200_OK
    return result


@router.get("/recent", response_model=RecentListens, summary="Recent listen events, newest first")
async def recent(
    session: SessionDep,
    limit: LimitQuery = 20,
    profile: str | None = Query(default=None, max_length=64, description="Only this profile's listens."),
) -> RecentListens:
    return RecentListens(events=await service.recent(session, profile=profile, limit=limit))
