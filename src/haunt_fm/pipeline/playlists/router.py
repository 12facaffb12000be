"""/api/playlists: generate (and play), list, show."""

from __future__ import annotations

from fastapi import APIRouter, Path, Query

from haunt_fm.deps import SessionDep, SessionFactoryDep, SettingsDep
from haunt_fm.pipeline.common import LimitQuery
from haunt_fm.pipeline.playlists import service
from haunt_fm.pipeline.playlists.schemas import MAX_ID, PlaylistIn, PlaylistList, PlaylistOut
from haunt_fm.pipeline.recommendations.schemas import VibeNotUnderstoodOut
from haunt_fm.pipeline.recommendations.vibe import VibeEncoderDep

router = APIRouter(prefix="/api/playlists", tags=["playlists"])


@router.post(
    "/generate",
    response_model=PlaylistOut,
    summary="Generate a playlist of known favourites and discoveries, and optionally play it",
    description=(
        "Known favourites (the profile's listened and liked tracks by play count x recency, or closest "
        "to the vibe first when a vibe is given) take `known_pct` percent of the places, spread evenly "
        "among discoveries (the profile's recommendations). No track twice, never more than two tracks "
        "by one artist in a row; when one side runs short the other fills in. Tracks thumbed down in "
        "`general` or in the asked-for vibe are never included. The playlist is saved.\n\n"
        "A vibe is understood as in `GET /api/recommendations` (Last.fm tags, CLAP text only when the "
        "text tower works); `vibe_basis` says how, and a vibe that can't steer is a 409 "
        "(`vibe_not_understood`, with `suggestions`) before anything is saved.\n\n"
        "With `auto_play`, the speaker is checked first (`GET /api/states/<entity>`; unknown: 422 and "
        "nothing saved), then each track goes to Music Assistant through Home Assistant "
        "(`music_assistant.play_media`, `media_type: track`, the title with `artist` set; the first "
        "playable track `enqueue: replace`, the rest `add`). When Home Assistant fails the playlist is "
        "still saved and returned with `playback.status: failed` and the reason; a track Music "
        "Assistant cannot find is listed in `playback.failed` and the others still play."
    ),
    responses={
        404: {"description": "Unknown profile"},
        409: {
            "description": "Nothing to make a playlist from yet; or a vibe that can't steer (this body)",
            "model": VibeNotUnderstoodOut,
        },
        422: {"description": "Invalid body, `auto_play` without `speaker_entity`, or an unknown speaker"},
        503: {"description": "The vibe text could not be embedded"},
    },
)
async def generate(
    body: PlaylistIn,
    factory: SessionFactoryDep,
    settings: SettingsDep,
    vibe_encoder: VibeEncoderDep,
) -> PlaylistOut:
    return await service.generate_playlist(
        factory, request=body, settings=settings, vibe_encoder=vibe_encoder
    )


@router.get("", response_model=PlaylistList, summary="Recent playlists, newest first")
async def list_playlists(
    session: SessionDep,
    limit: LimitQuery = 20,
    profile: str | None = Query(default=None, max_length=64, description="Only this profile's playlists."),
) -> PlaylistList:
    return await service.list_playlists(session, profile=profile, limit=limit)


@router.get(
    "/{playlist_id}",
    response_model=PlaylistOut,
    summary="A saved playlist with its tracks and playback outcome",
    responses={404: {"description": "Unknown playlist"}},
)
async def get_playlist(session: SessionDep, playlist_id: int = Path(ge=1, le=MAX_ID)) -> PlaylistOut:
    return await service.get_playlist(session, playlist_id=playlist_id)
