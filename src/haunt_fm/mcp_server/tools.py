"""The tools: each resolves the names people use, then calls the service its /api/* endpoint calls.

A tool's docstring is its description: it is written for the model that picks the tool.
Errors are tool errors (`isError`) carrying the sentence the API answers with.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Annotated, Any, Literal

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from haunt_fm.clients.homeassistant import HomeAssistantError
from haunt_fm.db.session import transaction
from haunt_fm.errors import AppError, Conflict, Invalid, NotFound, is_database_unavailable
from haunt_fm.mcp_server import names
from haunt_fm.mcp_server.backend import Backend
from haunt_fm.mcp_server.schemas import (
    FeedbackGiven,
    HomeAssistantBrief,
    ImportBrief,
    ImportsBrief,
    Listen,
    Listens,
    PlayedPlaylist,
    PlaylistTrack,
    RadioStartedOut,
    RadioStoppedOut,
    Recommendations,
    RecommendedTrack,
    SpeakerOut,
    Speakers,
    StatusBrief,
    WorkerBrief,
    why,
)
from haunt_fm.mcp_server.speakers import Speaker, SpeakerBook, players, speaker_book
from haunt_fm.pipeline.feedback import service as feedback
from haunt_fm.pipeline.feedback.schemas import FeedbackIn
from haunt_fm.pipeline.imports.schemas import ImportOut
from haunt_fm.pipeline.listens import service as listens
from haunt_fm.pipeline.listens.schemas import TrackRef
from haunt_fm.pipeline.playlists import playback as player
from haunt_fm.pipeline.playlists.schemas import MAX_TRACKS, PlaylistIn
from haunt_fm.pipeline.playlists.service import generate_playlist
from haunt_fm.pipeline.profiles import service as profiles
from haunt_fm.pipeline.profiles.schemas import ProfileList, ProfileOut
from haunt_fm.pipeline.radio import service as radio
from haunt_fm.pipeline.radio.schemas import DEFAULT_BATCH, MAX_BATCH, MIN_BATCH, RadioIn
from haunt_fm.pipeline.recommendations.service import get_recommendations
from haunt_fm.pipeline.status.schemas import StatusOut
from haunt_fm.pipeline.status.service import pipeline_status
from haunt_fm.pipeline.vibes import GENERAL_VIBE, VIBE_MAX_CHARS

DATABASE_AWAY = "The database is not reachable right now (restarting, or busy); try again in a few seconds."
MAX_RECOMMEND = 50
MAX_LISTENS = 100
# Active radios come first in the list; more speakers than this play no household's radios.
RADIOS_LISTED = 50

ProfileArg = Annotated[
    str | None,
    Field(
        description=(
            "Whose taste: a profile name or display name as people say it ('antialias', 'Me'); "
            "omit for the household's default profile. list_profiles shows them."
        ),
        max_length=200,
    ),
]
VibeArg = Annotated[
    str | None,
    Field(
        description="A mood or style in plain words ('something calm', 'upbeat 80s synth'); omit for none.",
        max_length=VIBE_MAX_CHARS,
    ),
]
AlphaArg = Annotated[
    float,
    Field(
        ge=0.0,
        le=1.0,
        description="With a vibe: how much the person's taste counts against the vibe, 0..1 (1 = taste only, "
        "0 = vibe only, 0.5 = both equally). Ignored without a vibe.",
    ),
]
SpeakerArg = Annotated[
    str,
    Field(
        min_length=1,
        max_length=300,
        description="The speaker as people say it ('kitchen', 'the study', 'Kids Room speaker') or its "
        "Home Assistant entity id. list_speakers shows them.",
    ),
]
KnownPctArg = Annotated[
    float,
    Field(ge=0, le=100, description="Percent of known favourites; the rest are discoveries. 0..100."),
]


def _reasons(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in exc.errors())


def _sentence(exc: AppError) -> str:
    # Some errors carry more than the sentence (a 409 vibe's `suggestions`): say those too.
    more = ""
    for key, value in exc.body().items():
        if key not in ("detail", "error"):
            shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
            more += f" {key.replace('_', ' ').capitalize()}: {shown}."
    return exc.message + more


@asynccontextmanager
async def answering(backend: Backend) -> AsyncIterator[None]:
    """Turn what the services raise into tool errors a model can read and act on."""
    away = backend.database_away()
    if away:
        raise ToolError(away)
    try:
        yield
    except ToolError:
        raise
    except AppError as exc:
        raise ToolError(_sentence(exc)) from exc
    except ValidationError as exc:
        raise ToolError(f"Invalid input: {_reasons(exc)}.") from exc
    except HomeAssistantError as exc:
        raise ToolError(player.explain(exc)) from exc
    except Exception as exc:
        if is_database_unavailable(exc):
            raise ToolError(DATABASE_AWAY) from exc
        raise


def _profile_label(p: ProfileOut) -> str:
    return f"{p.name} ({p.display_name})" if p.display_name and p.display_name != p.name else p.name


async def _profile_name(session: AsyncSession, said: str | None) -> str | None:
    """The profile a person means; NotFound listing the profiles when none (or several) fit."""
    if said is None or not said.strip():
        return None
    known = await profiles.list_profiles(session)
    try:
        found = names.pick(said, known, lambda p: [p.name, p.display_name or ""], fillers=False)
    except names.Ambiguous as exc:
        options = " or ".join(_profile_label(p) for p in exc.matches)  # type: ignore[arg-type]
        raise Invalid(f"'{said}' could be the profile {options}; say which.") from None
    if found is None:
        choices = ", ".join(map(_profile_label, known))
        raise NotFound(f"Profile '{said.strip()}' does not exist. Known profiles: {choices}.")
    return found.name


def _playable(book: SpeakerBook, said: str) -> tuple[Speaker, str]:
    """The speaker `said` names, and the Home Assistant entity music is played on there."""
    target = book.resolve(said)
    if target.entity_id is None:
        raise Invalid(
            f"haunt-fm knows '{target.name}' only by name, not its Home Assistant entity; pass the "
            f"entity id (Developer Tools > States lists them). Known speakers: {book.choices()}."
        )
    return target, target.entity_id


@contextmanager
def _with_choices(book: SpeakerBook, target: Speaker) -> Iterator[None]:
    """An entity id no source knew that Home Assistant refuses (422): add the known speakers."""
    try:
        yield
    except Invalid as exc:
        if not target.as_written:
            raise
        raise Invalid(f"{exc.message} Known speakers: {book.choices()}.") from None


def _import_brief(item: ImportOut | None) -> ImportBrief | None:
    return None if item is None else ImportBrief.model_validate(item.model_dump())


class Tools:
    """The MCP tools, bound to the process's backend (read at every call)."""

    def __init__(self, backend: Callable[[], Backend]) -> None:
        self._backend = backend

    async def _book(self, backend: Backend) -> SpeakerBook:
        # Home Assistant first, then the database: no pooled connection waits on the network.
        client = player.open_client(backend.settings)
        try:
            states, problem = await players(client)
        finally:
            if client is not None:
                await client.aclose()
        async with backend.sessions() as session:
            return await speaker_book(session, states=states, problem=problem)

    async def _where_and_for_whom(
        self, backend: Backend, *, speaker: str, profile: str | None, not_configured: str
    ) -> tuple[SpeakerBook, Speaker, str, str | None]:
        """Where to play (the speaker and its entity) and whose music (the named profile, else the
        speaker's); Conflict(`not_configured`) without Home Assistant."""
        if not backend.settings.ha_configured:
            raise Conflict(not_configured)
        book = await self._book(backend)
        target, entity = _playable(book, speaker)
        async with backend.sessions() as session:
            name = await _profile_name(session, profile) or target.profile
        return book, target, entity, name

    async def recommend(
        self,
        profile: ProfileArg = None,
        vibe: VibeArg = None,
        alpha: AlphaArg = 0.5,
        limit: Annotated[int, Field(ge=1, le=MAX_RECOMMEND, description="How many tracks, 1..50.")] = 10,
    ) -> Recommendations:
        """Suggest music a person has not heard yet, from their taste and/or a vibe.

        Use it when someone asks what to listen to, or for "something like ..." by mood ("something
        calm for Alex"). Returns tracks best first, each with a score, why it was picked (the
        listened tracks that led to it) and which of the person's tastes found it (someone who
        plays both jazz and metal gets both, taking turns). Nothing is played: use play_playlist
        to play music. Without a vibe the person's taste decides; a person with no taste yet
        needs a vibe. A vibe is understood through the library's Last.fm tags (`vibe_basis`);
        one that matches nothing is an error listing tags that would work.
        """
        backend = self._backend()
        async with answering(backend):
            async with backend.sessions() as session:
                name = await _profile_name(session, profile)
            async with transaction(backend.sessions) as session:
                result = await get_recommendations(
                    session,
                    profile=name,
                    limit=limit,
                    vibe=vibe,
                    alpha=alpha,
                    settings=backend.settings,
                    vibe_encoder=backend.vibe_encoder(),
                )
        return Recommendations(
            profile=result.profile,
            vibe=result.vibe,
            alpha=result.alpha,
            basis=result.basis,
            vibe_basis=result.vibe_basis,
            tastes=result.tastes,
            tracks=[
                RecommendedTrack(
                    track_id=r.track_id,
                    title=r.title,
                    artist=r.artist,
                    album=r.album,
                    score=round(r.score, 4),
                    why=why(r.because),
                    taste=r.taste.label if r.taste else None,
                )
                for r in result.recommendations
            ],
        )

    async def play_playlist(
        self,
        speaker: SpeakerArg,
        profile: ProfileArg = None,
        vibe: VibeArg = None,
        total_tracks: Annotated[
            int, Field(ge=1, le=MAX_TRACKS, description="How many tracks, 1..200 (about 20 is an hour).")
        ] = 20,
        known_pct: KnownPctArg = 30,
        alpha: AlphaArg = 0.5,
    ) -> PlayedPlaylist:
        """Make a playlist for a person and play it now on a speaker (Music Assistant via Home Assistant).

        Use it when someone asks to play music somewhere ("play something calm in the study"). It
        mixes the person's known favourites with discoveries, saves the playlist, replaces what the
        speaker was playing, and says what played (`playback.status`: played, partial or failed, with
        the reason). Without a profile, the profile mapped to the speaker is used, else the default.
        """
        backend = self._backend()
        async with answering(backend):
            book, target, entity, name = await self._where_and_for_whom(
                backend, speaker=speaker, profile=profile, not_configured=player.NOT_CONFIGURED
            )
            request = PlaylistIn(
                total_tracks=total_tracks,
                known_pct=known_pct,
                profile=name,
                vibe=vibe,
                alpha=alpha,
                speaker_entity=entity,
                auto_play=True,
            )
            with _with_choices(book, target):
                result = await generate_playlist(
                    backend.sessions,
                    request=request,
                    settings=backend.settings,
                    vibe_encoder=backend.vibe_encoder(),
                )
        return PlayedPlaylist(
            playlist_id=result.playlist_id,
            profile=result.profile,
            speaker=target.name,
            speaker_entity=entity,
            vibe=result.vibe,
            vibe_basis=result.vibe_basis,
            known_count=result.known_count,
            new_count=result.new_count,
            tracks=[PlaylistTrack.model_validate(t.model_dump()) for t in result.tracks],
            playback=result.playback,
            warnings=result.warnings,
        )

    async def give_feedback(
        self,
        rating: Annotated[
            Literal["up", "down"], Field(description="`up`: they like it; `down`: they don't want it again.")
        ],
        track_id: Annotated[
            int | None,
            Field(
                ge=1,
                description="The track, from recommend, play_playlist or recent_listens; or use speaker.",
            ),
        ] = None,
        speaker: Annotated[
            str | None,
            Field(
                max_length=300,
                description="Rate what is playing on this speaker ('the kitchen') instead of a track_id.",
            ),
        ] = None,
        profile: ProfileArg = None,
        vibe: Annotated[
            str,
            Field(
                min_length=1,
                max_length=VIBE_MAX_CHARS,
                description="The mood the rating applies to; `general` (default) applies everywhere.",
            ),
        ] = GENERAL_VIBE,
    ) -> FeedbackGiven:
        """Record a thumbs up or down for a track, for one person, so future music follows it.

        Use it when someone says they love or hate a song ("I don't like this one", "more like
        this"). Name the track by `track_id`, or by `speaker` to rate what is playing there now (or,
        when nothing is, what was played there last). `down` keeps the track out of that person's
        recommendations and playlists (only for `vibe` when one is given); `up` makes it a favourite.
        Without a profile, the speaker's mapped profile is used, else the default.
        """
        backend = self._backend()
        async with answering(backend):
            if (track_id is None) == (speaker is None or not speaker.strip()):
                raise Invalid(
                    "Name the track: pass track_id (from recommend, play_playlist or recent_listens) or "
                    "speaker (to rate what is playing there), not both."
                )
            target: Speaker | None = None
            if speaker is not None and speaker.strip():
                target = (await self._book(backend)).resolve(speaker)
                track, found_by = await self._playing(backend, target)
                track_id = track.track_id
            else:
                found_by = f"track {track_id}"
            assert track_id is not None
            async with backend.sessions() as session:
                name = await _profile_name(session, profile) or (target.profile if target else None)
            rating_in = FeedbackIn(track_id=track_id, rating=rating, profile=name, vibe=vibe)
            async with transaction(backend.sessions) as session:
                saved = await feedback.give_feedback(session, feedback=rating_in)
        return FeedbackGiven(**saved.model_dump(), found_by=found_by)

    async def _playing(self, backend: Backend, target: Speaker) -> tuple[TrackRef, str]:
        """What is playing on the speaker (Home Assistant), else what was played there last (listens)."""
        title, artist = target.media_title, target.media_artist
        if target.as_written and backend.settings.ha_configured:
            title, artist = await self._now_on(backend, target)
        async with backend.sessions() as session:
            if title and target.state in ("playing", "paused", None):
                if not artist:
                    raise Conflict(
                        f"{target.name} is playing '{title}', which has no artist (a radio stream or a "
                        "video?), so there is no track to rate."
                    )
                track = await listens.find_track(session, title=title, artist=artist)
                if track is None:
                    raise Conflict(
                        f"'{title}' by {artist} is playing on {target.name}, but haunt-fm has not logged it "
                        "yet (Home Assistant reports a listen when a track starts); try again in a moment, "
                        "or pass track_id."
                    )
                return track, f"playing on {target.name}"
            last = await listens.recent(session, profile=None, limit=1, speakers=target.aliases)
        if not last:
            raise NotFound(
                f"Nothing is playing on {target.name} and no listen was logged there; pass track_id instead."
            )
        event = last[0]
        ref = TrackRef(track_id=event.track_id, title=event.title, artist=event.artist, album=event.album)
        return ref, f"last played on {target.name} at {event.played_at.isoformat(timespec='seconds')}"

    async def _now_on(self, backend: Backend, target: Speaker) -> tuple[str | None, str | None]:
        assert target.entity_id is not None
        client = player.open_client(backend.settings)
        assert client is not None
        async with client:
            state = await client.get_state(target.entity_id)
        if state is None:
            raise Invalid(f"Unknown speaker: Home Assistant has no entity {target.entity_id}.")
        target.state = state.get("state")
        attributes: dict[str, Any] = state.get("attributes") or {}
        return attributes.get("media_title"), attributes.get("media_artist")

    async def recent_listens(
        self,
        profile: ProfileArg = None,
        speaker: Annotated[
            str | None, Field(max_length=300, description="Only listens on this speaker ('the kitchen').")
        ] = None,
        limit: Annotated[int, Field(ge=1, le=MAX_LISTENS, description="How many, 1..100.")] = 10,
    ) -> Listens:
        """What was listened to lately, newest first: title, artist, who, which speaker, when.

        Use it for "what was that song in the kitchen?" or "what has Sam been listening to?".
        Without a profile, everyone's listens; without a speaker, every speaker's. `skipped`
        marks songs cut short (they don't count toward the taste); `source` says whether a listen
        came live from Home Assistant or from an imported history (Last.fm, ListenBrainz).
        """
        backend = self._backend()
        async with answering(backend):
            target = (await self._book(backend)).resolve(speaker) if speaker and speaker.strip() else None
            async with backend.sessions() as session:
                name = await _profile_name(session, profile)
                events = await listens.recent(
                    session, profile=name, limit=limit, speakers=target.aliases if target else None
                )
        return Listens(
            profile=name,
            speaker=target.name if target else None,
            events=[
                Listen.model_validate({**e.model_dump(), "speaker": e.speaker_name or e.speaker_entity})
                for e in events
            ],
        )

    async def list_speakers(self) -> Speakers:
        """The household's speakers: names, Home Assistant entities, what is playing, whose they are.

        Use it to find the speaker someone means, or to see what is playing where. Speakers come from
        Music Assistant's players in Home Assistant, the profiles' speaker mappings, and past listens.
        """
        backend = self._backend()
        async with answering(backend):
            book = await self._book(backend)
        return Speakers(
            speakers=[
                SpeakerOut(
                    name=s.name,
                    entity_id=s.entity_id,
                    music_assistant=s.music_assistant,
                    state=s.state,
                    now_playing=s.now_playing,
                    profile=s.profile,
                    also_known_as=[a for a in s.aliases if a not in (s.name, s.entity_id)],
                    sources=s.sources,
                )
                for s in book.speakers
            ],
            home_assistant=book.home_assistant_problem or "ok",
        )

    async def list_profiles(self) -> ProfileList:
        """The household's profiles (one per listener): name, display name, listens, speakers, tastes.

        Use it to find whose taste to use; `taste_built_at` null means no taste yet (ask with a vibe).
        `tastes` describes what each person listens to (a label of top tags or artists, its share
        of the listening, its top artists), heaviest first.
        """
        backend = self._backend()
        async with answering(backend), transaction(backend.sessions) as session:
            return ProfileList(profiles=await profiles.list_profiles(session))

    async def pipeline_status(self) -> StatusBrief:
        """How haunt-fm is doing: listens, tracks found and embedded, tags, the worker, imports, profiles.

        Use it when music can't be recommended yet or someone asks whether haunt-fm is working:
        `pipeline.embedding.pending` tracks still to be analysed (`outdated`: left to re-analyse
        after a model change), `pipeline.tags.pending` Last.fm tags still to fetch (vibes need
        them), `imports.running` history imports in progress, `worker.last_error` and
        `discovery.last_error` what went wrong.
        """
        full = await self.status_document()
        worker = full.worker
        reconciliation = full.homeassistant.reconciliation
        return StatusBrief(
            version=full.version,
            pipeline=full.pipeline,
            worker=WorkerBrief(
                enabled=worker.enabled,
                state=worker.state,
                model=worker.model,
                last_batch_at=worker.last_batch_at,
                last_error=worker.last_error,
                text_tower_ok=worker.text_tower_ok,
                live_workers=len(worker.workers),
            ),
            discovery=full.discovery,
            tags=full.tags,
            home_assistant=HomeAssistantBrief(
                configured=full.homeassistant.configured,
                last_reconciled_at=reconciliation.last_run_at,
                listens_recovered=reconciliation.listens_recovered,
                last_error=reconciliation.error,
            ),
            imports=ImportsBrief(
                running=[b for b in map(_import_brief, full.imports.running) if b is not None],
                last_finished=_import_brief(full.imports.last_finished),
            ),
            profiles=full.profiles,
            feedback=full.feedback,
        )

    async def start_radio(
        self,
        speaker: SpeakerArg,
        profile: ProfileArg = None,
        vibe: VibeArg = None,
        alpha: AlphaArg = 0.5,
        known_pct: KnownPctArg = 20,
        batch: Annotated[
            int,
            Field(
                ge=MIN_BATCH,
                le=MAX_BATCH,
                description="Tracks queued at a time, 3..50; the next batch follows when one of the last "
                "3 plays.",
            ),
        ] = DEFAULT_BATCH,
    ) -> RadioStartedOut:
        """Start endless music on a speaker: a radio that keeps adding tracks while it plays.

        Use it when someone wants music to keep going ("keep playing something like this in the
        kitchen", "put on a jazz radio"); use play_playlist for a fixed set of tracks. It queues a
        first batch of the person's favourites and discoveries now, replacing what the speaker was
        playing (and any radio already on it), and adds more as they play. Songs skipped or
        thumbed down while it plays steer it away from them. It ends with stop_radio, when the
        speaker plays something else, or after a long silence. Without a profile, the profile
        mapped to the speaker is used, else the default.
        """
        backend = self._backend()
        async with answering(backend):
            book, target, entity, name = await self._where_and_for_whom(
                backend, speaker=speaker, profile=profile, not_configured=radio.NOT_CONFIGURED
            )
            request = RadioIn(
                speaker_entity=entity,
                profile=name,
                vibe=vibe,
                alpha=alpha,
                known_pct=known_pct,
                batch=batch,
            )
            with _with_choices(book, target):
                started = await radio.start_radio(
                    backend.sessions,
                    request=request,
                    settings=backend.settings,
                    vibe_encoder=backend.vibe_encoder(),
                )
        # The API's document, shortened to what the model needs (the rest is left out).
        return RadioStartedOut.model_validate({**started.model_dump(), "speaker": target.name})

    async def stop_radio(
        self,
        speaker: SpeakerArg,
        stop_playback: Annotated[
            bool,
            Field(
                description="Also stop the player now. Without it the radio adds nothing more but the "
                "tracks already queued play on."
            ),
        ] = False,
    ) -> RadioStoppedOut:
        """Stop the radio on a speaker (started by start_radio), and with stop_playback the music too.

        Use it when someone says "stop the radio" or "that's enough music in the kitchen" (with
        stop_playback, since otherwise the tracks already queued play on). Answers how many
        tracks it played and skipped. If no radio plays there, the error names the speakers
        where one does.
        """
        backend = self._backend()
        async with answering(backend):
            book = await self._book(backend)
            target, entity = _playable(book, speaker)
            try:
                stopped = await radio.stop_radio(
                    backend.sessions,
                    speaker=entity,
                    stop_playback=stop_playback,
                    settings=backend.settings,
                )
            except NotFound:
                raise NotFound(await self._no_radio(backend, book, target)) from None
        counts = {"played": len(stopped.played), "skipped": len(stopped.skipped)}
        return RadioStoppedOut.model_validate({**stopped.model_dump(), "speaker": target.name, **counts})

    async def _no_radio(self, backend: Backend, book: SpeakerBook, target: Speaker) -> str:
        """No radio on the speaker: say so, and where radios do play."""
        async with backend.sessions() as session:
            listed = await radio.list_radios(session, limit=RADIOS_LISTED)
        playing = []
        for r in listed.radios:
            if r.active:
                known = book.find(r.speaker_entity)
                playing.append(known.label if known else r.speaker_entity)
        where = f"Radios are playing on: {', '.join(playing)}." if playing else "No radio plays anywhere."
        return f"No radio is playing on {target.label}. {where}"

    async def status_document(self) -> StatusOut:
        """The whole /api/status document (the status resource)."""
        backend = self._backend()
        async with answering(backend), backend.sessions() as session:
            return await pipeline_status(
                session, settings=backend.settings, local_worker=backend.local_worker()
            )

    async def profile_document(self, name: str) -> ProfileOut:
        """One profile with its stats (GET /api/profiles/{name})."""
        backend = self._backend()
        async with answering(backend), transaction(backend.sessions) as session:
            return await profiles.get_profile(session, name=await _profile_name(session, name) or "default")
