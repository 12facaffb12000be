"""The radio's rules, as pure functions over its tracks and the speaker's listens (no I/O).

Reading the room, listen by listen (in the order they started):
1. A listen of a track the radio queued is that track **heard** (the first time counts).
2. The previously heard radio track was **skipped** when this listen started within
   min(30 s, half its duration) of it (`listens.rules.is_skip`; the duration the speaker
   reported, else the track's known one, else a 30 s window). Replaying the same track is
   not a skip.
3. A listen of a track the radio didn't queue is **outside**: the radio ends — unless the
   track was queued by the radio this one replaced on the speaker (a leftover of it).

Keeping ahead: once the track playing now is one of the last `KEEP_AHEAD` tracks still to be
played (those Music Assistant could not find don't count), the next batch is due.

Silence: the radio ends when nothing from it was heard for longer than its queued tracks could
last — from the later of the last listen and the last track queued, the track playing now and
every upcoming one at its duration (`DEFAULT_TRACK_SECONDS` when unknown), plus
`SILENCE_SLACK_SECONDS`.

Steering: the tracks skipped or thumbed down during the radio push the rest of it away — their
artists are never queued again in it, and the query for the next batches moves away from them:
query = normalise(q - `STEER_BETA` x mean(their embeddings)).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from haunt_fm.pipeline.listens.rules import is_skip

KEEP_AHEAD = 3
# Half the (unit-length at most) mean of what the room turned down: enough to leave its
# neighbourhood, not so much that the query points at the opposite of it.
STEER_BETA = 0.5
DEFAULT_TRACK_SECONDS = 240.0
SILENCE_SLACK_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class TrackState:
    """One queued track of the radio, as stored."""

    position: int
    track_id: int
    send_status: str  # pending | queued | failed
    duration_s: float | None  # the track's known duration
    played_at: datetime | None = None
    heard_duration_s: float | None = None  # what the speaker reported when it was heard
    sent_at: datetime | None = None
    skipped: bool = False

    @property
    def heard(self) -> bool:
        return self.played_at is not None

    @property
    def length_s(self) -> float:
        """How long it plays, as best known."""
        return self.heard_duration_s or self.duration_s or DEFAULT_TRACK_SECONDS


@dataclass(frozen=True, slots=True)
class Listen:
    """A listen on the radio's speaker."""

    event_id: int
    track_id: int
    played_at: datetime
    duration_s: float | None
    title: str
    artist: str


@dataclass(slots=True)
class Reading:
    """What the new listens say: tracks heard and skipped, or the outside track that ends it."""

    heard: dict[int, Listen] = field(default_factory=dict)  # position -> the listen that matched
    skipped: set[int] = field(default_factory=set)  # positions
    outside: Listen | None = None
    cursor: int = 0
    last_heard_at: datetime | None = None


def now_playing(tracks: Iterable[TrackState]) -> TrackState | None:
    """The radio track heard most recently (None before the first is heard)."""
    heard = [t for t in tracks if t.played_at is not None]
    return max(heard, key=lambda t: (t.played_at, t.position)) if heard else None


def read_listens(
    *,
    tracks: Sequence[TrackState],
    listens: Sequence[Listen],
    leftovers: Iterable[int] = (),
    cursor: int,
) -> Reading:
    """Apply rules 1-3 to `listens` (any order; read in the order they started)."""
    by_track = {t.track_id: t for t in tracks}
    left = set(leftovers)
    reading = Reading(cursor=cursor)
    latest = now_playing(tracks)
    # (track, when it started, how long it lasts) of the radio track heard last.
    prev: tuple[TrackState, datetime, float] | None = None
    if latest is not None and latest.played_at is not None:
        prev = (latest, latest.played_at, latest.length_s)
    for listen in sorted(listens, key=lambda x: (x.played_at, x.event_id)):
        reading.cursor = max(reading.cursor, listen.event_id)
        track = by_track.get(listen.track_id)
        if track is None and listen.track_id in left:
            continue
        if prev is not None and (track is None or track.track_id != prev[0].track_id):
            before, started, lasts = prev
            if is_skip(started_at=started, duration_s=lasts, next_started_at=listen.played_at):
                reading.skipped.add(before.position)
        if track is None:
            reading.outside = listen
            break
        if not track.heard and track.position not in reading.heard:
            reading.heard[track.position] = listen
        prev = (track, listen.played_at, listen.duration_s or track.duration_s or DEFAULT_TRACK_SECONDS)
        if reading.last_heard_at is None or listen.played_at > reading.last_heard_at:
            reading.last_heard_at = listen.played_at
    return reading


def apply(tracks: Sequence[TrackState], reading: Reading) -> list[TrackState]:
    """The tracks with the reading's heard and skipped marks applied."""
    out = []
    for t in tracks:
        listen = reading.heard.get(t.position)
        played_at, heard_duration = t.played_at, t.heard_duration_s
        if listen is not None:
            played_at, heard_duration = listen.played_at, listen.duration_s
        out.append(
            TrackState(
                position=t.position,
                track_id=t.track_id,
                send_status=t.send_status,
                duration_s=t.duration_s,
                played_at=played_at,
                heard_duration_s=heard_duration,
                sent_at=t.sent_at,
                skipped=t.skipped or t.position in reading.skipped,
            )
        )
    return out


def upcoming(tracks: Sequence[TrackState]) -> list[TrackState]:
    """Tracks still to play: after the one playing now, not heard, not refused by Music Assistant."""
    current = now_playing(tracks)
    after = current.position if current is not None else 0
    return [t for t in tracks if t.position > after and not t.heard and t.send_status != "failed"]


def needs_more(tracks: Sequence[TrackState]) -> bool:
    """Whether the next batch is due: the track playing now is one of the last KEEP_AHEAD to play."""
    return now_playing(tracks) is not None and len(upcoming(tracks)) < KEEP_AHEAD


def silent_after(
    tracks: Sequence[TrackState], *, started_at: datetime, last_heard_at: datetime | None
) -> datetime | None:
    """When the radio counts as silent; None while nothing of it has reached the speaker yet."""
    sent = [t.sent_at for t in tracks if t.sent_at is not None and t.send_status == "queued"]
    if not sent:
        return None
    anchor = max([*sent, started_at, *([last_heard_at] if last_heard_at else [])])
    current = now_playing(tracks)
    remaining = sum(t.length_s for t in upcoming(tracks))
    if current is not None:
        remaining += current.length_s
    return anchor + timedelta(seconds=remaining + SILENCE_SLACK_SECONDS)


def state_of(track: TrackState, current: TrackState | None) -> str:
    """`playing`, `played`, `skipped`, `upcoming`, `missed` (passed over unheard) or `failed`."""
    if track.send_status == "failed":
        return "failed"
    if current is not None and track.position == current.position:
        return "skipped" if track.skipped else "playing"
    if track.heard:
        return "skipped" if track.skipped else "played"
    if current is not None and track.position < current.position:
        return "missed"
    return "upcoming"
