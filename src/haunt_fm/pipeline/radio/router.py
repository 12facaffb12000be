"""/api/radio: start, list and stop the radio on a speaker."""

from __future__ import annotations

from fastapi import APIRouter, Path, Query, status

from haunt_fm.deps import SessionDep, SessionFactoryDep, SettingsDep
from haunt_fm.errors import Invalid
from haunt_fm.pipeline.common import LimitQuery
from haunt_fm.pipeline.playlists.schemas import SPEAKER_ENTITY_PATTERN
from haunt_fm.pipeline.radio import service
from haunt_fm.pipeline.radio.schemas import RadioIn, RadioList, RadioStarted, RadioStopped, clean_speaker
from haunt_fm.pipeline.recommendations.vibe import VibeEncoderDep

router = APIRouter(prefix="/api/radio", tags=["radio"])


@router.post(
    "",
    response_model=RadioStarted,
    status_code=status.HTTP_201_CREATED,
    summary="Start an endless radio on a speaker",
    description=(
        "Picks the first `batch` tracks as playlists do (known favourites mixed with discoveries for the "
        "profile, vibe and alpha) and queues them on the speaker through Music Assistant (`enqueue: "
        "replace`, then `add`). The profile defaults to the one mapped to the speaker (by its name, then "
        "its entity id), else `default`. A radio already playing on the speaker ends (`replaced`).\n\n"
        "While it plays, every listen the speaker reports is read within moments: when one of the last 3 "
        "queued tracks plays, the next batch is added (`enqueue: add`) — never a track the radio already "
        "queued. A track skipped there (the next one started within min(30 s, half its length)) or "
        "thumbed down by the profile during the radio steers the rest away: its artist is not queued "
        "again and the query moves away from it (query = normalise(q - 0.5 x mean(turned down))). The "
        "radio ends when stopped, when the speaker plays a track the radio didn't queue, or when nothing "
        "from it was heard for longer than its queued tracks could last. Home Assistant failing to queue "
        "a batch is tried again with backoff (`playback` shows the error and the next try)."
    ),
    responses={
        404: {"description": "Unknown profile"},
        409: {"description": "Home Assistant is not configured, or nothing to play yet"},
        422: {"description": "Invalid body (batch 3..50, ...) or a speaker Home Assistant does not know"},
        503: {"description": "The vibe text could not be embedded"},
    },
)
async def start(
    body: RadioIn, factory: SessionFactoryDep, settings: SettingsDep, vibe_encoder: VibeEncoderDep
) -> RadioStarted:
    return await service.start_radio(factory, request=body, settings=settings, vibe_encoder=vibe_encoder)


@router.get(
    "",
    response_model=RadioList,
    summary="Radios playing now and ended in the last day, and the speakers one can start on",
)
async def list_radios(session: SessionDep, limit: LimitQuery = 20) -> RadioList:
    return await service.list_radios(session, limit=limit)


@router.delete(
    "/{speaker_entity}",
    response_model=RadioStopped,
    summary="Stop the radio on a speaker",
    description=(
        "The radio queues nothing more (`ended_reason: stopped`). With `stop_playback=true` the player is "
        "stopped too (`media_player.media_stop`); otherwise what is already queued plays on."
    ),
    responses={404: {"description": "No radio is playing on that speaker"}, 422: {"description": "Bad id"}},
)
async def stop(
    factory: SessionFactoryDep,
    settings: SettingsDep,
    speaker_entity: str = Path(
        max_length=300,
        # Documented, checked below by `clean_speaker` (its 422 says what an entity id looks like).
        json_schema_extra={"pattern": SPEAKER_ENTITY_PATTERN},
        description="e.g. `media_player.study_speaker_2`",
    ),
    stop_playback: bool = Query(default=False, description="Also stop the player through Home Assistant."),
) -> RadioStopped:
    try:
        speaker = clean_speaker(speaker_entity)
    except ValueError as exc:
        raise Invalid(f"{exc}.") from None
    return await service.stop_radio(factory, speaker=speaker, stop_playback=stop_playback, settings=settings)
