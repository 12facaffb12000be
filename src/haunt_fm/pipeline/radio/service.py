"""Endless radio on a speaker: batches of the profile's music that keep ahead of the listener.

A radio is a row that holds its own lease on the queue (see `models`). Starting one picks
the first batch as playlists do (`playlists.service.pick_tracks`), saves it, and — holding
the new radio's lease — queues it through Music Assistant (`enqueue: replace`, then `add`).
From then on whoever holds the lease (`work`, run by `tasks.RadioRunner`) reads the speaker's
new listens (`rules`), ends the radio or adds the next batch, sends what is unsent, and
settles: due again when the radio would fall silent, at once when a listen poked it
meanwhile, or after the retry policy's delay when Home Assistant failed.

Every step is a short transaction of its own; no transaction is open while Home Assistant
or a vibe encoder is asked anything.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from haunt_fm import queue
from haunt_fm.clients.homeassistant import HomeAssistantClient, HomeAssistantError
from haunt_fm.config import Settings
from haunt_fm.db.session import transaction
from haunt_fm.errors import AppError, Conflict, NotFound
from haunt_fm.pipeline.playlists import playback as player
from haunt_fm.pipeline.playlists.schemas import PlaybackFailure, PlaybackOut, PlaylistTrackOut
from haunt_fm.pipeline.playlists.service import pick_tracks, track_list
from haunt_fm.pipeline.profiles import service as profiles
from haunt_fm.pipeline.profiles.models import Profile
from haunt_fm.pipeline.profiles.repository import speaker_key
from haunt_fm.pipeline.radio import repository as repo
from haunt_fm.pipeline.radio import rules
from haunt_fm.pipeline.radio.models import RADIO_STAGE
from haunt_fm.pipeline.radio.schemas import (
    RadioIn,
    RadioList,
    RadioOut,
    RadioPlaybackOut,
    RadioStarted,
    RadioStopped,
    RadioTrackOut,
    SpeakerOut,
    SteerOut,
    StopPlaybackOut,
)
from haunt_fm.pipeline.recommendations.service import vibe_vector
from haunt_fm.pipeline.recommendations.vibe import VibeEncoder
from haunt_fm.queue import Claim
from haunt_fm.retry import RetryPolicy

log = logging.getLogger(__name__)

# A holder renews its lease every third of this; a holder that dies frees the radio this fast.
LEASE_SECONDS = 30.0
RECENT_HOURS = 24
# Music a replaced radio queued may still reach the speaker this long after.
LEFTOVER_HOURS = 6
SPEAKER_DAYS = 30
MAX_SPEAKERS = 100
RETRY_MAX_SECONDS = 120.0

NOT_CONFIGURED = (
    "A radio plays through Home Assistant: set HAUNTFM_HA_URL and HAUNTFM_HA_TOKEN (a long-lived access "
    "token), then start it again."
)
NOT_CONFIGURED_NOW = (
    "Home Assistant is no longer configured (HAUNTFM_HA_URL and HAUNTFM_HA_TOKEN), so the radio cannot "
    "queue its tracks."
)


def retry_policy(settings: Settings) -> RetryPolicy:
    """How a radio tries Home Assistant again after a failure to queue its tracks."""
    base = settings.radio_retry_seconds
    return RetryPolicy(
        max_attempts=settings.radio_retry_attempts, base_delay=base, max_delay=max(base, RETRY_MAX_SECONDS)
    )


# --- starting, stopping, listing ---------------------------------------------------------


async def start_radio(
    sessions: async_sessionmaker[AsyncSession],
    *,
    request: RadioIn,
    settings: Settings,
    vibe_encoder: VibeEncoder,
) -> RadioStarted:
    """Start a radio on the speaker (ending the one playing there) and queue its first batch."""
    client = player.open_client(settings)
    if client is None:
        raise Conflict(NOT_CONFIGURED)
    speaker = request.speaker_entity
    try:
        encoded = await vibe_vector(vibe=request.vibe, alpha=request.alpha, vibe_encoder=vibe_encoder)
        warnings: list[str] = []
        friendly: str | None = None
        try:
            # 422 for an unknown speaker, before anything is saved.
            state, warnings = await player.speaker_state(client, speaker)
            friendly = (state.get("attributes") or {}).get("friendly_name")
        except HomeAssistantError as exc:
            warnings = [
                f"Home Assistant could not be asked about {speaker} ({player.explain(exc)}); the radio "
                "queues its tracks as soon as it answers."
            ]
        except httpx.InvalidURL as exc:  # the client lets this one through
            raise Conflict(f"HAUNTFM_HA_URL is not a valid URL ({exc}).") from None
        owner = queue.worker_id("radio-start@")
        async with transaction(sessions) as session:
            profile = await _profile_for(session, name=request.profile, speaker=speaker, friendly=friendly)
            chosen = await pick_tracks(
                session,
                profile=profile,
                total=request.batch,
                known_pct=request.known_pct,
                vibe=request.vibe,
                alpha=request.alpha,
                settings=settings,
                vibe_encoder=vibe_encoder,
                encoded=encoded,
            )
            await repo.end(
                session,
                speaker=speaker,
                reason="replaced",
                detail=f"Another radio started on {speaker}.",
            )
            radio_id = await repo.insert(
                session,
                speaker=speaker,
                profile_id=profile.id,
                vibe=request.vibe,
                alpha=request.alpha,
                known_pct=request.known_pct,
                batch=request.batch,
                cursor=await repo.max_listen_id(session),
                owner=owner,
                lease_seconds=LEASE_SECONDS,
            )
            queued = track_list(chosen, first_position=1)
            await repo.add_tracks(
                session, radio_id=radio_id, batch_no=1, tracks=[t.model_dump() for t in queued]
            )
        claim = Claim(key=radio_id, attempts=1, owner=owner)
        async with queue.hold(sessions, RADIO_STAGE, [claim], lease_seconds=LEASE_SECONDS):
            first = await _send_and_settle(
                sessions, claim=claim, speaker=speaker, pokes_seen=0, settings=settings, client=client
            )
    finally:
        await client.aclose()
    async with transaction(sessions) as session:
        document = await _document(session, radio_id=radio_id)
    return RadioStarted(
        **document.model_dump(),
        queued=queued,
        first_playback=first or player.failed(speaker, player.INTERRUPTED),
        warnings=warnings + (first.warnings if first else []),
    )


async def stop_radio(
    sessions: async_sessionmaker[AsyncSession], *, speaker: str, stop_playback: bool, settings: Settings
) -> RadioStopped:
    """Stop the speaker's radio (and, when asked, the player); 404 when none is playing there."""
    async with transaction(sessions) as session:
        radio_id = await repo.end(session, speaker=speaker, reason="stopped", detail="Stopped on request.")
    if radio_id is None:
        raise NotFound(f"No radio is playing on {speaker}; GET /api/radio lists the radios.")
    stop = StopPlaybackOut(requested=False, status="not_requested")
    if stop_playback:
        stop = await _stop_player(settings, speaker)
    async with transaction(sessions) as session:
        document = await _document(session, radio_id=radio_id)
    return RadioStopped(**document.model_dump(), stop_playback=stop)


async def _stop_player(settings: Settings, speaker: str) -> StopPlaybackOut:
    client = player.open_client(settings)
    if client is None:
        return StopPlaybackOut(
            requested=True,
            status="failed",
            error="The radio is stopped, but the player could not be: Home Assistant is not configured.",
        )
    try:
        await client.media_stop(speaker)
    except HomeAssistantError as exc:
        return StopPlaybackOut(requested=True, status="failed", error=player.explain(exc))
    except httpx.InvalidURL as exc:
        return StopPlaybackOut(
            requested=True, status="failed", error=f"HAUNTFM_HA_URL is not a valid URL ({exc})."
        )
    finally:
        await client.aclose()
    return StopPlaybackOut(requested=True, status="stopped")


async def list_radios(session: AsyncSession, *, limit: int) -> RadioList:
    """Active radios, then those that ended in the last day; and the speakers one can start on."""
    now = datetime.now(UTC)
    radios = await repo.recent(session, since=now - timedelta(hours=RECENT_HOURS), limit=limit)
    rows = await repo.tracks_of(session, radio_ids=[int(r["radio_id"]) for r in radios])
    by_radio: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_radio.setdefault(int(row["radio_id"]), []).append(row)
    speakers = await repo.speakers(session, since=now - timedelta(days=SPEAKER_DAYS), limit=MAX_SPEAKERS)
    return RadioList(
        radios=[_radio_out(r, by_radio.get(int(r["radio_id"]), [])) for r in radios],
        speakers=[SpeakerOut.model_validate(s) for s in speakers],
    )


async def _profile_for(
    session: AsyncSession, *, name: str | None, speaker: str, friendly: str | None
) -> Profile:
    """The named profile; else the one mapped to the speaker (by name first, as listens are); else default."""
    if name:
        return await profiles.require(session, name=name)
    keys = [speaker_key(friendly)] if friendly else []
    profile_id = await repo.mapped_profile_id(session, keys=[*keys, speaker_key(speaker)])
    if profile_id is not None:
        found = await repo.profile(session, profile_id=profile_id)
        if found is not None:
            return found
    return await profiles.require(session, name=None)


# --- one turn of a radio's work ----------------------------------------------------------


async def work(
    sessions: async_sessionmaker[AsyncSession],
    *,
    claim: Claim,
    settings: Settings,
    vibe_encoder: VibeEncoder,
) -> None:
    """Read the speaker's new listens, end or extend the radio, queue what is unsent; then settle."""
    radio_id, pokes_seen = int(claim.key), int(claim["pokes"])
    try:
        radio = await _advance(sessions, radio_id=radio_id, settings=settings, vibe_encoder=vibe_encoder)
    except Exception as exc:  # a vibe that can't be encoded now, a database hiccup, a bug: try later
        if not isinstance(exc, AppError):
            log.exception("radio %s: reading its listens failed", radio_id)
        await _settle(sessions, claim=claim, pokes_seen=pokes_seen, settings=settings, error=_message(exc))
        return
    if radio is None:
        await _settle(sessions, claim=claim, pokes_seen=pokes_seen, settings=settings)
        return
    client = player.open_client(settings)
    if client is None:
        await _settle(
            sessions,
            claim=claim,
            pokes_seen=pokes_seen,
            settings=settings,
            error=NOT_CONFIGURED_NOW,
            final=True,
        )
        return
    try:
        await _send_and_settle(
            sessions, claim=claim, speaker=radio["speaker_entity"], pokes_seen=pokes_seen, settings=settings,
            client=client,
        )  # fmt: skip
    finally:
        await client.aclose()


async def _advance(
    sessions: async_sessionmaker[AsyncSession],
    *,
    radio_id: int,
    settings: Settings,
    vibe_encoder: VibeEncoder,
) -> dict[str, Any] | None:
    """Apply the speaker's new listens; end the radio or add its next batch. The radio, if still on."""
    async with transaction(sessions) as session:
        radio = await repo.get(session, radio_id=radio_id)
        if radio is None or not radio["active"]:
            return None
        rows = await repo.tracks_of(session, radio_ids=[radio_id])
        tracks = [_state(r) for r in rows]
        speaker = radio["speaker_entity"]
        listens = [
            rules.Listen(
                event_id=int(x["event_id"]),
                track_id=int(x["track_id"]),
                played_at=x["played_at"],
                duration_s=x["duration_s"],
                title=x["title"],
                artist=x["artist"],
            )
            for x in await repo.listens_since(
                session, speaker=speaker, cursor=int(radio["listen_cursor"]), started_at=radio["started_at"]
            )
        ]
        leftovers: set[int] = set()
        if listens:
            leftovers = await repo.leftover_track_ids(
                session,
                speaker=speaker,
                radio_id=radio_id,
                since=datetime.now(UTC) - timedelta(hours=LEFTOVER_HOURS),
            )
        reading = rules.read_listens(
            tracks=tracks, listens=listens, leftovers=leftovers, cursor=int(radio["listen_cursor"])
        )
        await repo.record_reading(
            session,
            radio_id=radio_id,
            heard=[(p, x.played_at, x.event_id, _seconds(x.duration_s)) for p, x in reading.heard.items()],
            skipped=sorted(reading.skipped),
            cursor=reading.cursor,
            last_heard_at=reading.last_heard_at,
        )
        tracks = rules.apply(tracks, reading)
        if reading.outside is not None:
            outside = reading.outside
            await repo.end(
                session,
                radio_id=radio_id,
                reason="outside",
                detail=(
                    f"{speaker} played '{outside.title}' by {outside.artist}, which the radio didn't queue."
                ),
            )
            return None
        heard = [t for t in (radio["last_heard_at"], reading.last_heard_at) if t is not None]
        silent = rules.silent_after(
            tracks, started_at=radio["started_at"], last_heard_at=max(heard, default=None)
        )
        if silent is not None and datetime.now(UTC) > silent:
            since = max(heard, default=radio["started_at"])
            await repo.end(
                session,
                radio_id=radio_id,
                reason="silent",
                detail=(
                    f"Nothing from the radio was heard on {speaker} after "
                    f"{since.isoformat(timespec='seconds')}, longer than its queued tracks could last."
                ),
            )
            return None
        if not any(t.send_status != "failed" for t in tracks):
            await repo.end(
                session,
                radio_id=radio_id,
                reason="failed",
                detail=(
                    f"Music Assistant could not find any of the radio's tracks on {speaker}; check that it "
                    "is a Music Assistant player (the `_2` entity) with a music provider set up."
                ),
            )
            return None
        extend = rules.needs_more(tracks)
    if extend:
        return await _extend(sessions, radio=radio, rows=rows, settings=settings, vibe_encoder=vibe_encoder)
    return radio


async def _extend(
    sessions: async_sessionmaker[AsyncSession],
    *,
    radio: dict[str, Any],
    rows: Sequence[dict[str, Any]],
    settings: Settings,
    vibe_encoder: VibeEncoder,
) -> dict[str, Any] | None:
    """Add the next batch: fresh picks, none already in the radio, steered away from what was turned down."""
    radio_id = int(radio["radio_id"])
    encoded = await vibe_vector(vibe=radio["vibe"], alpha=float(radio["alpha"]), vibe_encoder=vibe_encoder)
    async with transaction(sessions) as session:
        profile = await repo.profile(session, profile_id=int(radio["profile_id"]))
        assert profile is not None  # the radio would be gone with it (ON DELETE CASCADE)
        _down, artists, mean = await repo.turned_down(session, radio_id=radio_id)
        exclude = {int(r["track_id"]) for r in rows} | set(
            await repo.tracks_by_artists(session, artists=artists)
        )
        kept = [r for r in rows if r["send_status"] != "failed"]
        try:
            chosen = await pick_tracks(
                session,
                profile=profile,
                total=int(radio["batch"]),
                known_pct=float(radio["known_pct"]),
                vibe=radio["vibe"],
                alpha=float(radio["alpha"]),
                settings=settings,
                vibe_encoder=vibe_encoder,
                encoded=encoded,
                exclude_track_ids=exclude,
                away=None if mean is None else rules.STEER_BETA * mean,
                # The artist rules look back over the last 9 places (2 in any 10).
                after=[r["norm_artist"] for r in kept[-9:]],
            )
        except Conflict:
            chosen = []
        if not chosen:
            await repo.end(
                session,
                radio_id=radio_id,
                reason="exhausted",
                detail=(
                    "Nothing is left to queue that this radio has not played or been turned away from; run "
                    "discovery (POST /api/admin/discover) to grow the pool."
                ),
            )
            return None
        batch = track_list(chosen, first_position=max((int(r["position"]) for r in rows), default=0) + 1)
        await repo.add_tracks(
            session,
            radio_id=radio_id,
            batch_no=max((int(r["batch_no"]) for r in rows), default=0) + 1,
            tracks=[t.model_dump() for t in batch],
        )
    return radio


async def _send_and_settle(
    sessions: async_sessionmaker[AsyncSession],
    *,
    claim: Claim,
    speaker: str,
    pokes_seen: int,
    settings: Settings,
    client: HomeAssistantClient,
) -> PlaybackOut | None:
    """Queue the radio's unsent tracks on the speaker in order, then settle the claim."""
    radio_id = int(claim.key)
    error: str | None = None
    playback: PlaybackOut | None = None
    try:
        playback, error = await _send(sessions, radio_id=radio_id, speaker=speaker, client=client)
    except Exception as exc:
        log.exception("radio %s: queueing its tracks failed", radio_id)
        error = _message(exc)
    await _settle(sessions, claim=claim, pokes_seen=pokes_seen, settings=settings, error=error)
    return playback


async def _send(
    sessions: async_sessionmaker[AsyncSession], *, radio_id: int, speaker: str, client: HomeAssistantClient
) -> tuple[PlaybackOut | None, str | None]:
    """(what Home Assistant said, why tracks are left unsent); each outcome is stored as it comes."""
    async with transaction(sessions) as session:
        rows = await repo.unsent(session, radio_id=radio_id)
        replace_first = not await repo.any_queued(session, radio_id=radio_id)
    if not rows:
        return None, None
    tracks = [PlaylistTrackOut.model_validate(r) for r in rows]
    active = True

    async def record(track: PlaylistTrackOut, failure: PlaybackFailure | None) -> bool:
        nonlocal active
        async with transaction(sessions) as session:
            active = await repo.mark_sent(
                session,
                radio_id=radio_id,
                position=track.position,
                status="queued" if failure is None else "failed",
                error=None if failure is None else failure.reason,
            )
        return active

    try:
        playback = await player.play(
            client, entity_id=speaker, tracks=tracks, replace_first=replace_first, on_result=record
        )
    except httpx.InvalidURL as exc:
        return None, f"HAUNTFM_HA_URL is not a valid URL ({exc})."
    answered = playback.queued + len(playback.failed)
    if active and answered < len(tracks):
        return playback, playback.error or "Home Assistant did not queue every track."
    return playback, None


async def _settle(
    sessions: async_sessionmaker[AsyncSession],
    *,
    claim: Claim,
    pokes_seen: int,
    settings: Settings,
    error: str | None = None,
    final: bool = False,
) -> None:
    """Settle the claim: due when the radio would fall silent, now when poked meanwhile, or retried."""
    radio_id = int(claim.key)
    policy = retry_policy(settings)
    async with transaction(sessions) as session:
        # Locked until commit, so a listen that pokes the radio now is seen here or wakes it after.
        locked = await repo.lock(session, radio_id=radio_id)
        if locked is None:
            return
        pokes, active = locked
        if not active:
            await queue.complete(session, RADIO_STAGE, claim)
            return
        if error is not None:
            if final or policy.gives_up_after(claim.attempts):
                tries = "" if final else f" after {claim.attempts} attempts"
                await repo.end(session, radio_id=radio_id, reason="failed", detail=f"Gave up{tries}: {error}")
                await queue.fail(session, RADIO_STAGE, claim, error=error)
            else:
                # A listen that arrived meanwhile is read (and Home Assistant asked again) at once.
                delay = 0.0 if pokes != pokes_seen else policy.delay(claim.attempts)
                await queue.retry(session, RADIO_STAGE, claim, error=error, delay=delay)
            return
        if pokes != pokes_seen:
            await queue.complete(session, RADIO_STAGE, claim)
            return
        radio = await repo.get(session, radio_id=radio_id)
        assert radio is not None
        tracks = [_state(r) for r in await repo.tracks_of(session, radio_ids=[radio_id])]
        silent = rules.silent_after(
            tracks, started_at=radio["started_at"], last_heard_at=radio["last_heard_at"]
        )
        # Nothing on the speaker yet (every send so far refused): look again after the retry delay.
        next_at = silent or datetime.now(UTC) + timedelta(seconds=policy.delay(1))
        await queue.complete(session, RADIO_STAGE, claim, next_at=next_at)


# --- documents ---------------------------------------------------------------------------


async def get_radio(session: AsyncSession, *, radio_id: int) -> RadioOut:
    """One radio with its tracks; 404 when it does not exist."""
    return await _document(session, radio_id=radio_id)


async def _document(session: AsyncSession, *, radio_id: int) -> RadioOut:
    radio = await repo.get(session, radio_id=radio_id)
    if radio is None:
        raise NotFound(f"Radio {radio_id} does not exist; GET /api/radio lists the radios.")
    return _radio_out(radio, await repo.tracks_of(session, radio_ids=[radio_id]))


def _state(row: dict[str, Any]) -> rules.TrackState:
    duration_ms = row.get("duration_ms")
    return rules.TrackState(
        position=int(row["position"]),
        track_id=int(row["track_id"]),
        send_status=row["send_status"],
        duration_s=None if not duration_ms else duration_ms / 1000.0,
        played_at=row["played_at"],
        heard_duration_s=row["heard_duration_s"],
        sent_at=row["sent_at"],
        skipped=bool(row["skipped"]),
    )


def _radio_out(radio: dict[str, Any], rows: Sequence[dict[str, Any]]) -> RadioOut:
    states = [_state(r) for r in rows]
    current = rules.now_playing(states)
    out = [_track_out(r, s, current, ended=not radio["active"]) for r, s in zip(rows, states, strict=True)]
    turned_down = [r for r in rows if r["skipped"] or r["disliked"]]
    if not radio["active"]:
        status = "ended"
    elif radio["work_error"]:
        status = "retrying"
    else:
        status = "ok"
    return RadioOut(
        radio_id=radio["radio_id"],
        speaker_entity=radio["speaker_entity"],
        profile=radio["profile"],
        vibe=radio["vibe"],
        alpha=radio["alpha"],
        known_pct=radio["known_pct"],
        batch=radio["batch"],
        active=radio["active"],
        started_at=radio["started_at"],
        ended_at=radio["ended_at"],
        ended_reason=radio["ended_reason"],
        ended_detail=radio["ended_detail"],
        last_heard_at=radio["last_heard_at"],
        now_playing=next((t for t in out if t.state == "playing"), None) if radio["active"] else None,
        played=[t for t in out if t.state in ("played", "playing")],
        skipped=[t for t in out if t.state == "skipped"],
        upcoming=[t for t in out if t.state == "upcoming"] if radio["active"] else [],
        failed=[t for t in out if t.state == "failed"],
        steer=SteerOut(
            beta=rules.STEER_BETA,
            turned_down=len(turned_down),
            avoided_artists=sorted({r["norm_artist"] for r in turned_down}),
        ),
        playback=RadioPlaybackOut(
            status=status,  # type: ignore[arg-type]
            last_error=radio["work_error"],
            attempts=int(radio["work_attempts"]) if radio["work_error"] else 0,
            next_retry_at=radio["work_next_at"] if status == "retrying" else None,
        ),
    )


def _track_out(
    row: dict[str, Any], state: rules.TrackState, current: rules.TrackState | None, *, ended: bool
) -> RadioTrackOut:
    shown = rules.state_of(state, current)
    if ended and shown == "playing":
        shown = "played"
    return RadioTrackOut(
        position=row["position"],
        track_id=row["track_id"],
        title=row["title"],
        artist=row["artist"],
        album=row["album"],
        kind=row["kind"],
        score=row["score"],
        batch=row["batch_no"],
        state=shown,  # type: ignore[arg-type]
        sent=row["send_status"] == "queued",
        queued_at=row["queued_at"],
        played_at=row["played_at"],
        disliked=bool(row["disliked"]),
    )


def _seconds(value: float | None) -> int | None:
    return None if value is None else round(value)


def _message(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return str(message)
