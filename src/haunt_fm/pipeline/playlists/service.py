"""Playlists: the profile's known favourites mixed with discoveries, saved, and optionally played.

Known favourites are the profile's listened and liked tracks, ranked by play count x
recency (the taste profile's weights), or closest to the vibe first when a vibe is given
(alpha < 1); never one thumbed down in `general` or in the asked-for vibe. Discoveries
are the profile's recommendations. `mix.interleave` puts them together.

Generation, saving and playback are separate transactions: the playlist is committed
before Home Assistant is asked to play it, so a failure or a crash during playback loses
nothing and no database transaction waits on the speakers.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import httpx
import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from haunt_fm.clients.homeassistant import HomeAssistantError
from haunt_fm.config import Settings
from haunt_fm.db.session import transaction
from haunt_fm.errors import Conflict, NotFound
from haunt_fm.pipeline.playlists import playback as player
from haunt_fm.pipeline.playlists import repository as repo
from haunt_fm.pipeline.playlists.mix import Candidate, interleave, known_share
from haunt_fm.pipeline.playlists.schemas import (
    PlaybackOut,
    PlaylistIn,
    PlaylistList,
    PlaylistOut,
    PlaylistSummary,
    PlaylistTrackOut,
)
from haunt_fm.pipeline.profiles import service as profiles
from haunt_fm.pipeline.profiles.models import Profile
from haunt_fm.pipeline.recommendations.service import MAX_LIMIT, VibeVector, recommend, vibe_vector
from haunt_fm.pipeline.recommendations.vibe import VibeEncoder
from haunt_fm.pipeline.tracks.identity import normalize_artist
from haunt_fm.pipeline.vibes import GENERAL_VIBE, normalize_vibe

# Candidates fetched beyond what the playlist needs, so the artist rule has room to skip.
KNOWN_SLACK = 25
NEW_SLACK_MIN = 10


def _candidate(row: Any, kind: str) -> Candidate:
    return Candidate(
        track_id=int(row["track_id"]),
        title=row["title"],
        artist=row["artist"],
        album=row["album"],
        artist_key=row["norm_artist"] or normalize_artist(row["artist"]),
        kind=kind,  # type: ignore[arg-type]
        score=None if row["score"] is None else float(row["score"]),
    )


async def pick_tracks(
    session: AsyncSession,
    *,
    profile: Profile,
    total: int,
    known_pct: float,
    vibe: str | None,
    alpha: float,
    settings: Settings,
    vibe_encoder: VibeEncoder,
    encoded: VibeVector | None = None,
    exclude_track_ids: Collection[int] = (),
    away: np.ndarray | None = None,
    after: Sequence[str] = (),
) -> list[Candidate]:
    """The playlist's tracks in order; 409 when the profile has nothing to choose from.

    `encoded` is the vibe's vector, encoded before any session work (see `vibe_vector`).
    A radio's next batch passes the tracks it already holds (`exclude_track_ids`), a vector to
    steer the discoveries away from (`away`, see `recommend`) and the artist keys queued just
    before the batch (`after`, for the artist rule).
    """
    excluded = frozenset(int(t) for t in exclude_track_ids)
    contexts = [GENERAL_VIBE] if vibe is None else sorted({GENERAL_VIBE, normalize_vibe(vibe)})
    if encoded is None:
        encoded = await vibe_vector(vibe=vibe, alpha=alpha, vibe_encoder=vibe_encoder)
    # alpha 1 is taste only: the vibe then only decides which dislikes apply.
    vibe_vector_ = encoded.vector if encoded is not None and alpha < 1.0 else None
    known_rows = await repo.known_candidates(
        session,
        profile_id=profile.id,
        contexts=contexts,
        half_life_days=settings.taste_half_life_days,
        vibe=vibe_vector_,
        model=settings.clap_model,
        # Excluded tracks may be among the best: fetch past them.
        limit=total + KNOWN_SLACK + len(excluded),
    )
    known_rows = [r for r in known_rows if int(r["track_id"]) not in excluded]
    known = [_candidate(r, "known") for r in known_rows]
    wanted_new = total - min(known_share(total, known_pct), len(known))
    new: list[Candidate] = []
    no_query: Conflict | None = None
    if wanted_new > 0:
        try:
            recs = await recommend(
                session,
                profile=profile,
                limit=min(MAX_LIMIT, wanted_new + max(NEW_SLACK_MIN, wanted_new // 2)),
                vibe=vibe,
                alpha=alpha,
                settings=settings,
                vibe_encoder=vibe_encoder,
                encoded=encoded,
                # Recommendations already leave out listened tracks; liked-only ones are known here.
                exclude_track_ids=[int(r["track_id"]) for r in known_rows if not r["plays"]]
                + sorted(excluded),
                away=away,
            )
        except Conflict as exc:  # no taste profile and no vibe: known favourites only
            no_query = exc
        else:
            new = [
                Candidate(
                    track_id=r.track_id,
                    title=r.title,
                    artist=r.artist,
                    album=r.album,
                    artist_key=normalize_artist(r.artist),
                    kind="new",
                    score=r.score,
                )
                for r in recs
            ]
    chosen = interleave(known=known, new=new, total=total, known_pct=known_pct, after=after)
    if not chosen:
        if no_query is not None:
            raise no_query
        raise Conflict(
            f"Profile '{profile.name}' has nothing to make a playlist from yet: no listened or liked track "
            "and no recommendation. Log listens, run discovery (POST /api/admin/discover) and let the "
            "embedding worker catch up (progress in /api/status)."
        )
    return chosen


def _warnings(*, total: int, known_pct: float, tracks: list[PlaylistTrackOut]) -> list[str]:
    out: list[str] = []
    known = sum(1 for t in tracks if t.kind == "known")
    share = known_share(total, known_pct)
    if len(tracks) < total:
        out.append(
            f"Only {len(tracks)} of the {total} tracks asked for could be chosen: too few favourites and "
            "discoveries (or too few artists to avoid three in a row by one). Run discovery "
            "(POST /api/admin/discover) to grow the pool."
        )
    elif known < share:
        out.append(
            f"Known favourites took {known} of the {share} places meant for them: too few were available, "
            "or another artist was needed so that no artist plays twice in a row; discoveries filled in."
        )
    elif known > share:
        out.append(
            f"Discoveries took {len(tracks) - known} of the {total - share} places meant for them: too few "
            "were available, or another artist was needed so that no artist plays twice in a row; known "
            "favourites filled in."
        )
    return out


def track_list(chosen: Sequence[Candidate], *, first_position: int = 1) -> list[PlaylistTrackOut]:
    """The chosen candidates as numbered tracks (positions from `first_position`)."""
    return [
        PlaylistTrackOut(
            position=i,
            track_id=c.track_id,
            title=c.title,
            artist=c.artist,
            album=c.album,
            kind=c.kind,
            score=None if c.score is None else round(c.score, 6),
        )
        for i, c in enumerate(chosen, start=first_position)
    ]


async def generate_playlist(
    session_factory: async_sessionmaker[AsyncSession],
    *,
    request: PlaylistIn,
    settings: Settings,
    vibe_encoder: VibeEncoder,
) -> PlaylistOut:
    """Generate, save and (with auto_play) play a playlist; Home Assistant failures never lose it."""
    encoded = await vibe_vector(vibe=request.vibe, alpha=request.alpha, vibe_encoder=vibe_encoder)
    async with transaction(session_factory) as session:
        profile = await profiles.require(session, name=request.profile)
        chosen = await pick_tracks(
            session,
            profile=profile,
            total=request.total_tracks,
            known_pct=request.known_pct,
            vibe=request.vibe,
            alpha=request.alpha,
            settings=settings,
            vibe_encoder=vibe_encoder,
            encoded=encoded,
        )
        profile_id, profile_name = profile.id, profile.name
    tracks = track_list(chosen)
    speaker = request.speaker_entity
    client = player.open_client(settings) if request.auto_play else None
    try:
        play_now = False
        speaker_warnings: list[str] = []
        if not request.auto_play:
            playback = player.not_requested(speaker)
        elif client is None:
            playback = player.failed(speaker, player.NOT_CONFIGURED)
        else:
            assert speaker is not None
            try:
                # 422 for an unknown speaker, before anything is saved.
                speaker_warnings = await player.check_speaker(client, speaker)
            except HomeAssistantError as exc:
                playback = player.failed(speaker, player.explain(exc))
            except httpx.InvalidURL as exc:  # the client lets this one through
                playback = player.failed(speaker, f"HAUNTFM_HA_URL is not a valid URL ({exc}).")
            else:
                play_now = True
                # What a crash during playback would leave behind.
                playback = player.failed(speaker, player.INTERRUPTED, speaker_warnings)
        params = {
            "total_tracks": request.total_tracks,
            "known_pct": request.known_pct,
            "profile": profile_name,
            "vibe": request.vibe,
            "alpha": request.alpha,
            "speaker_entity": speaker,
            "auto_play": request.auto_play,
        }
        if encoded is not None and encoded.basis is not None:
            params["vibe_basis"] = encoded.basis.model_dump()
        async with transaction(session_factory) as session:
            saved = await repo.save(
                session,
                profile_id=profile_id,
                params=params,
                vibe=request.vibe,
                alpha=request.alpha,
                speaker_entity=speaker,
                playback=playback.model_dump(mode="json"),
                tracks=[t.model_dump() for t in tracks],
            )
        if play_now:
            assert client is not None and speaker is not None
            playback = await player.play(client, entity_id=speaker, tracks=tracks, warnings=speaker_warnings)
            async with transaction(session_factory) as session:
                await repo.set_playback(
                    session, playlist_id=int(saved["id"]), playback=playback.model_dump(mode="json")
                )
    finally:
        if client is not None:
            await client.aclose()
    return _document(
        playlist_id=int(saved["id"]),
        profile=profile_name,
        created_at=saved["created_at"],
        params=params,
        tracks=tracks,
        playback=playback,
    )


def _document(
    *,
    playlist_id: int,
    profile: str,
    created_at: Any,
    params: dict[str, Any],
    tracks: list[PlaylistTrackOut],
    playback: PlaybackOut,
) -> PlaylistOut:
    total = int(params["total_tracks"])
    known_pct = float(params["known_pct"])
    known = sum(1 for t in tracks if t.kind == "known")
    return PlaylistOut(
        playlist_id=playlist_id,
        profile=profile,
        created_at=created_at,
        vibe=params.get("vibe"),
        alpha=float(params.get("alpha", 0.5)),
        vibe_basis=params.get("vibe_basis"),
        total_tracks=total,
        known_pct=known_pct,
        known_count=known,
        new_count=len(tracks) - known,
        tracks=tracks,
        playback=playback,
        warnings=_warnings(total=total, known_pct=known_pct, tracks=tracks) + playback.warnings,
    )


async def get_playlist(session: AsyncSession, *, playlist_id: int) -> PlaylistOut:
    """A saved playlist with its tracks and playback outcome; 404 when it does not exist."""
    row = await repo.get(session, playlist_id=playlist_id)
    if row is None:
        raise NotFound(f"Playlist {playlist_id} does not exist; GET /api/playlists lists the recent ones.")
    tracks = [
        PlaylistTrackOut.model_validate(dict(r))
        for r in await repo.tracks_of(session, playlist_id=playlist_id)
    ]
    stored = row["playback"]
    playback = PlaybackOut.model_validate(stored) if stored else player.not_requested(row["speaker_entity"])
    return _document(
        playlist_id=playlist_id,
        profile=row["profile"],
        created_at=row["created_at"],
        params=row["params"],
        tracks=tracks,
        playback=playback,
    )


async def list_playlists(session: AsyncSession, *, profile: str | None, limit: int) -> PlaylistList:
    """Recent playlists, newest first; every profile's unless one is named."""
    profile_id = (await profiles.require(session, name=profile)).id if profile else None
    rows = await repo.recent(session, profile_id=profile_id, limit=limit)
    return PlaylistList(playlists=[PlaylistSummary.model_validate(dict(r)) for r in rows])
