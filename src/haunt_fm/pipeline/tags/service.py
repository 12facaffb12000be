"""Tags: a vibe grounded in what Last.fm's listeners say about the library's tracks.

A vibe ("chill ambient lo-fi") is matched to the library's tags (`normalize.match_vibe`: the
whole phrase when it is a tag, else the longest known run of its words at each place; stop
words never match alone). Only tags that at least one track embedded by the current model
carries are known: a tag nothing embedded carries cannot steer anything.

The vibe's tag vector is the centroid of the audio of the tracks carrying those tags: per
tag, the weighted mean (Last.fm's count as the weight) of the unit vectors of its
`TAG_TRACKS_MAX` heaviest-tagged embedded tracks, normalised; the tags' directions are then
summed, each tag counting the same, and normalised. It is computed in PostgreSQL and cached
per vibe with the marks of its inputs (the tags generation, the newest embedding, the
model), so it is recomputed exactly when tags or embeddings changed.

When fewer than `MIN_TAG_TRACKS` embedded tracks stand behind it, the library grows toward
the vibe: a `tag.getTopTracks` lookup is queued (a job, at most once a day per tag) for its
longest phrase and the tags it matched (its words, when it matched none), and the tracks
Last.fm lists become candidates like any discovery (previews, embedding, their own tags).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from haunt_fm import queue
from haunt_fm.clients.lastfm import LastfmClient, TagTopTracks
from haunt_fm.db.base import utcnow
from haunt_fm.db.session import transaction
from haunt_fm.pipeline.discovery.repository import Candidate
from haunt_fm.pipeline.discovery.service import store_candidates
from haunt_fm.pipeline.profiles import service as profiles
from haunt_fm.pipeline.tags import repository as repo
from haunt_fm.pipeline.tags.models import TAG_LOOKUP_JOB
from haunt_fm.pipeline.tags.normalize import lookup_tags, match_vibe, vibe_candidates
from haunt_fm.pipeline.tags.schemas import TagOut, TagsOut
from haunt_fm.pipeline.tracks.identity import identity_params
from haunt_fm.pipeline.vibes import normalize_vibe

log = logging.getLogger(__name__)

# Below this many embedded tracks behind a vibe's tags, the library grows toward it.
MIN_TAG_TRACKS = 20
# The heaviest-tagged embedded tracks per tag that make its centroid: the tracks most
# strongly tagged are its best examples, and the cost of a cold vibe stays bounded.
TAG_TRACKS_MAX = 1000
# A tag's chart is asked for at most once a day.
LOOKUP_EVERY = timedelta(days=1)
# Tracks asked for per tag.getTopTracks lookup (one page).
TAG_CHART_LIMIT = 50
SUGGESTIONS = 10
# Below this coherence a tag's tracks are spread over many sounds (bench/recommend.py: genre
# tags ~0.70, mood tags spread over twenty clusters ~0.14, whose centroid a narrow HNSW
# search misses: recall@50 0.86 at ef_search 200, 0.95 at 1000).
DIFFUSE_COHERENCE = 0.3


@dataclass(frozen=True, slots=True)
class Grounding:
    """A vibe as the tags understood it: the matched tags, the tracks behind them, the centroid."""

    tags: list[str]
    tag_tracks: int
    vector: np.ndarray | None
    discovering: bool
    # What Last.fm's charts are being (or were) asked about for this vibe.
    lookups: list[str] = field(default_factory=list)
    # How tightly the tracks behind each tag agree (the smallest over its tags): a centroid of
    # tracks spread over the library lies far from all of them (see `diffuse`).
    coherence: float | None = None

    @property
    def diffuse(self) -> bool:
        """The centroid lies far from every track: an index search needs its widest candidate list."""
        return self.coherence is not None and self.coherence < DIFFUSE_COHERENCE


async def ground_vibe(session: AsyncSession, *, text: str, model: str, discover: bool) -> Grounding:
    """Match `text` to tags and get their centroid (cached); queue tag lookups when it is thin.

    One read when cached (flush only); `discover` says whether Last.fm can be asked (a key is
    configured)."""
    norm = normalize_vibe(text)
    lookup_age_s = LOOKUP_EVERY.total_seconds()
    row = await repo.cached_grounding(
        session, vibe_norm=norm, lookup_kind=TAG_LOOKUP_JOB, lookup_age_s=lookup_age_s
    )
    fresh = (
        row["model"] == model
        and row["cached_generation"] == row["tags_generation"]
        and row["cached_embeddings_mark"] == row["embeddings_mark"]
    )
    if fresh:
        tags, lookups = list(row["tags"]), list(row["lookups"])
        tag_tracks, coherence = int(row["tag_tracks"]), row["coherence"]
        vector = None if row["embedding"] is None else np.asarray(row["embedding"], dtype=np.float32)
        discovering: bool | None = bool(row["discovering"])
        due = bool(row["lookups_due"])
    else:
        known = await repo.known_tags(session, candidates=vibe_candidates(text), model=model)
        tags = match_vibe(text, known)
        vector, tag_tracks, coherence = await repo.centroid(
            session, tags=tags, model=model, per_tag=TAG_TRACKS_MAX
        )
        lookups = lookup_tags(text, tags) if tag_tracks < MIN_TAG_TRACKS else []
        await repo.store_grounding(
            session,
            vibe_norm=norm,
            model=model,
            tags=tags,
            tag_tracks=tag_tracks,
            lookups=lookups,
            coherence=coherence,
            embedding=vector,
            tags_generation=int(row["tags_generation"]),
            embeddings_mark=row["embeddings_mark"],
        )
        discovering, due = None, True
    if lookups and discover and due:
        for tag in await repo.due_lookups(session, tags=lookups, min_age_s=lookup_age_s):
            await queue.enqueue_job(session, kind=TAG_LOOKUP_JOB, payload={"tag": tag}, key=tag)
            discovering = True
    if discovering is None:
        discovering = await repo.lookups_pending(session, kind=TAG_LOOKUP_JOB, tags=lookups)
    return Grounding(tags, tag_tracks, vector, discovering=discovering, lookups=lookups, coherence=coherence)


async def suggestions(session: AsyncSession, *, model: str, limit: int = SUGGESTIONS) -> list[str]:
    """The library's most common tags that embedded tracks carry (what a vibe can be grounded in)."""
    rows = await repo.top_tags(session, model=model, profile_id=None, limit=limit, embedded_only=True)
    return [r["tag"] for r in rows]


async def list_tags(session: AsyncSession, *, profile: str | None, limit: int, model: str) -> TagsOut:
    """The library's tags by summed weight, or those of a profile's listened tracks (404: unknown)."""
    profile_id = (await profiles.require(session, name=profile)).id if profile else None
    rows = await repo.top_tags(session, model=model, profile_id=profile_id, limit=limit)
    return TagsOut(profile=profile or None, tags=[TagOut.model_validate(dict(r)) for r in rows])


def chart_candidates(chart: TagTopTracks) -> list[Candidate]:
    """A tag's chart as candidates, one per identity; rank 1 scores 1, the last 0.1 (like a match)."""
    tracks = chart.tracks
    by_key: dict[str, Candidate] = {}
    for i, track in enumerate(tracks):
        ident = identity_params(title=track.name, artist=track.artist)
        if ident["norm_key"] in by_key:
            continue
        by_key[ident["norm_key"]] = Candidate(
            title=track.name,
            artist=track.artist,
            norm_artist=ident["norm_artist"],
            norm_title=ident["norm_title"],
            norm_key=ident["norm_key"],
            mbid=track.mbid or None,
            url=track.url,
            duration_ms=track.duration_s * 1000 if track.duration_s else None,
            match=round(1.0 - 0.9 * i / max(1, len(tracks) - 1), 6),
        )
    return list(by_key.values())


async def lookup_tag(
    sessions: async_sessionmaker[AsyncSession],
    *,
    client: LastfmClient,
    tag: str,
    limit: int = TAG_CHART_LIMIT,
) -> dict[str, object]:
    """Ask Last.fm for the tag's top tracks (unless asked within the day) and add them as
    candidates whose source is the tag; returns what happened."""
    async with transaction(sessions) as session:
        last = await repo.last_lookup(session, tag=tag)
    if last is not None and utcnow() - last < LOOKUP_EVERY:
        return {"tag": tag, "skipped": f"asked at {last.isoformat()}, less than a day ago"}
    # No connection is held while Last.fm answers.
    chart = await client.get_tag_top_tracks(tag, limit=limit)
    candidates = chart_candidates(chart)
    async with transaction(sessions) as session:
        stored = await store_candidates(session, candidates=candidates, source=f"tag:{tag}")
        await repo.record_lookup(session, tag=tag, tracks=len(candidates), candidates_new=len(stored.new_ids))
    log.info("tag %r: %d tracks from Last.fm, %d new candidates", tag, len(candidates), len(stored.new_ids))
    return {"tag": tag, "tracks": len(candidates), "candidates_new": len(stored.new_ids)}
