"""Discovery: expand listened tracks through Last.fm `track.getSimilar` into candidate tracks.

Each seed is one short job on the lease queue (`DISCOVERY_STAGE`; a concurrent run, in any
process, claims other seeds): ask Last.fm, upsert the candidates through the track identity
rule, keep every seed -> candidate edge, recompute the candidates' summed match, mark the
seed expanded, commit, and wake the preview lookup for the new candidates.
Progress is therefore durable and visible in /api/status while a run goes on, and a run
that stops (bad key, Last.fm down, Ctrl-C) keeps everything it did.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from haunt_fm import queue
from haunt_fm.clients._http import ClientError
from haunt_fm.clients.lastfm import LastfmAuthError, LastfmClient, SimilarResult
from haunt_fm.config import Settings
from haunt_fm.db.base import utcnow
from haunt_fm.db.session import transaction
from haunt_fm.errors import AppError, Conflict
from haunt_fm.pipeline import common
from haunt_fm.pipeline.discovery import repository as repo
from haunt_fm.pipeline.discovery.models import DISCOVERY_STAGE
from haunt_fm.pipeline.discovery.repository import Candidate, Seed
from haunt_fm.pipeline.discovery.schemas import DiscoverOut, SeedError
from haunt_fm.pipeline.profiles import service as profiles
from haunt_fm.pipeline.tracks.identity import identity_params
from haunt_fm.queue import Claim, Expiry, StageRunner, hold

log = logging.getLogger(__name__)

# Seeds in flight at once: enough that Last.fm's latency, not our waiting, is hidden
# behind the rate limit (5 requests/s at ~300 ms each needs 2; 4 leaves room).
DISCOVERY_CONCURRENCY = 4
# This many seeds failing in a row (after the client's own retries) means Last.fm is down.
MAX_CONSECUTIVE_FAILURES = 5
# A seed's lease is renewed while Last.fm answers (the limiter's queue can be long).
SEED_LEASE_SECONDS = 60.0
# Crash loops: a seed whose run died this many times in a row waits a day.
SEED_MAX_ATTEMPTS = 5
PROGRESS_WRITE_SECONDS = 1.0
_DB_RETRIES = 3
_RETRYABLE_SQLSTATES = {"40P01", "40001"}  # deadlock detected, serialization failure

NO_KEY_MESSAGE = (
    "Discovery needs a Last.fm API key: set HAUNTFM_LASTFM_API_KEY (create one at "
    "https://www.last.fm/api/account/create) and restart haunt-fm."
)
STATE_KEY = "discovery"


class DiscoveryStopped(AppError):
    """Last.fm stopped the run (rejected key, or failing on every seed); what was done is kept."""

    status_code = 502


@dataclass(frozen=True, slots=True)
class Progress:
    """One step of a run: `seed` is None for the first event (the plan)."""

    done: int
    total: int
    seed: Seed | None = None
    outcome: str = ""  # expanded | unknown | skipped | failed
    similar: int = 0
    new: int = 0
    error: str | None = None


ProgressFn = Callable[[Progress], Any]


@dataclass
class _Run:
    total: int
    skipped: int = 0
    expanded: int = 0
    unknown: int = 0
    failed: int = 0
    edges: int = 0
    done: int = 0
    consecutive_failures: int = 0
    new_ids: set[int] = field(default_factory=set)
    seen_ids: set[int] = field(default_factory=set)
    errors: list[SeedError] = field(default_factory=list)
    stop_reason: str | None = None

    def result(self, *, remaining: int, elapsed: float) -> DiscoverOut:
        return DiscoverOut(
            seeds=self.expanded,
            candidates_new=len(self.new_ids),
            candidates_seen=len(self.seen_ids - self.new_ids),
            preview_lookups_queued=len(self.new_ids),
            seeds_skipped=self.skipped,
            seeds_remaining=remaining,
            seeds_failed=self.failed,
            seeds_without_similar=self.unknown,
            edges=self.edges,
            errors=self.errors,
            elapsed_s=round(elapsed, 3),
        )


@dataclass(frozen=True, slots=True)
class _Stored:
    similar: int
    new_ids: list[int]
    seen_ids: list[int]


def _retryable_db_error(exc: DBAPIError) -> bool:
    orig = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code in _RETRYABLE_SQLSTATES


def candidates_of(seed: Seed, result: SimilarResult) -> list[Candidate]:
    """Last.fm's similar tracks as candidates: one per identity (best match), never the seed itself."""
    by_key: dict[str, Candidate] = {}
    for track in result.tracks:
        ident = identity_params(title=track.name, artist=track.artist)
        key = ident["norm_key"]
        if key == seed.norm_key:
            continue
        known = by_key.get(key)
        if known is not None and known.match >= track.match:
            continue
        by_key[key] = Candidate(
            title=track.name,
            artist=track.artist,
            norm_artist=ident["norm_artist"],
            norm_title=ident["norm_title"],
            norm_key=key,
            mbid=track.mbid,
            url=track.url,
            duration_ms=track.duration_s * 1000 if track.duration_s else None,
            match=track.match,
        )
    return list(by_key.values())


async def store_expansion(session: AsyncSession, *, seed: Seed, result: SimilarResult) -> _Stored:
    """Upsert the candidates and edges of one seed, rescore them, mark the seed expanded (flush only)."""
    candidates = candidates_of(seed, result)
    stored = await repo.upsert_candidates(session, candidates)
    edges = [(stored[c.norm_key].id, c.match) for c in candidates]
    await repo.upsert_edges(session, seed_id=seed.id, edges=edges)
    await repo.rescore(session, track_ids=[track_id for track_id, _ in edges])
    await repo.mark_expanded(session, seed_id=seed.id)
    return _Stored(
        similar=len(candidates),
        new_ids=[s.id for s in stored.values() if s.inserted],
        seen_ids=[s.id for s in stored.values() if not s.inserted],
    )


async def store_candidates(session: AsyncSession, *, candidates: list[Candidate], source: str) -> _Stored:
    """Upsert candidates found without a seed (e.g. a tag's top tracks) under `source`; each keeps
    its `match` as its discovery score unless it has a better one (flush only)."""
    stored = await repo.upsert_candidates(session, candidates, source=source)
    await repo.raise_scores(session, scores=[(stored[c.norm_key].id, c.match) for c in candidates])
    new_ids = [s.id for s in stored.values() if s.inserted]
    if new_ids:
        # New tracks: the preview lookup and the tags stage have work on every machine.
        await queue.notify(session, "previews")
        await queue.notify(session, "tags")
    return _Stored(
        similar=len(candidates),
        new_ids=new_ids,
        seen_ids=[s.id for s in stored.values() if not s.inserted],
    )


def lastfm_client(
    settings: Settings, *, http: httpx.AsyncClient | None, sessions: async_sessionmaker[AsyncSession]
) -> LastfmClient:
    """A Last.fm client on the limiter every process on this database shares."""
    return common.lastfm_client(settings, http=http, sessions=sessions, no_key_message=NO_KEY_MESSAGE)


async def discover(
    *,
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    http: httpx.AsyncClient | None,
    limit: int = 50,
    profile: str | None = None,
    max_seeds: int | None = None,
    force: bool = False,
    client: LastfmClient | None = None,
    concurrency: int = DISCOVERY_CONCURRENCY,
    progress: ProgressFn | None = None,
) -> DiscoverOut:
    """Expand due listened tracks through Last.fm; commits per seed, records app_state['discovery']."""
    if client is None and not settings.lastfm_configured:
        raise Conflict(NO_KEY_MESSAGE)
    started = utcnow()
    t0 = time.monotonic()
    # Force: everything not expanded by a run that started after this one (a concurrent one).
    cutoff = started if force else started - timedelta(days=settings.discovery_reexpand_days)
    async with transaction(session_factory) as session:
        profile_id = None
        if profile:
            profile_id = (await profiles.require(session, name=profile)).id
        listened, due = await repo.seed_counts(session, profile_id=profile_id, cutoff=cutoff)
    total = min(due, max_seeds) if max_seeds is not None else due
    run = _Run(total=total, skipped=listened - due)

    owned_client = client is None
    if client is None:
        client = lastfm_client(settings, http=http, sessions=session_factory)
    runner = _Runner(
        session_factory=session_factory,
        client=client,
        run=run,
        limit=limit,
        claim_params={"cutoff": cutoff, "profile_id": profile_id},
        progress=progress,
        running={"started_at": started.isoformat(), "profile": profile, "seeds_total": run.total},
    )
    await runner.write_running()
    if progress is not None:
        progress(Progress(done=0, total=run.total))
    try:
        await runner.run(concurrency=concurrency)
    except asyncio.CancelledError:
        run.stop_reason = run.stop_reason or "The discovery run was interrupted."
        raise
    finally:
        if owned_client:
            await client.aclose()
        result = run.result(remaining=max(0, due - run.done), elapsed=time.monotonic() - t0)
        last_error = run.stop_reason
        if last_error is None and run.errors:
            last_error = f"{run.failed} seed(s) failed; the last: {run.errors[-1].error}"
        summary = result.model_dump(exclude={"errors"})
        summary |= {"started_at": started.isoformat(), "profile": profile, "limit": limit, "force": force}
        await asyncio.shield(
            _write_state(
                session_factory,
                {
                    "last_run_at": utcnow().isoformat(),
                    "last_run": summary,
                    "last_error": last_error,
                    "running": None,
                },
            )
        )
    if run.stop_reason is not None:
        raise DiscoveryStopped(
            f"{run.stop_reason} Discovery stopped after expanding {run.expanded} of {run.total} seed(s); "
            f"the {len(run.new_ids)} new candidate(s) found so far are kept."
        )
    log.info(
        "discovery: %d seeds expanded, %d new candidates, %d already known, %d failed",
        result.seeds,
        result.candidates_new,
        result.candidates_seen,
        result.seeds_failed,
    )
    return result


async def _write_state(session_factory: async_sessionmaker[AsyncSession], value: dict[str, Any]) -> None:
    try:
        async with transaction(session_factory) as session:
            await repo.merge_state(session, key=STATE_KEY, value=value)
    except Exception:  # status bookkeeping must never fail the run itself
        log.exception("could not record the discovery state")


class _Runner:
    """Claims due seeds from the queue with a few concurrent workers sharing one client (and limiter)."""

    def __init__(
        self,
        *,
        session_factory: async_sessionmaker[AsyncSession],
        client: LastfmClient,
        run: _Run,
        limit: int,
        claim_params: dict[str, Any],
        progress: ProgressFn | None,
        running: dict[str, Any],
    ) -> None:
        self.sessions = session_factory
        self.running = running
        self.client = client
        self.run_state = run
        self.limit = limit
        self.progress = progress
        self.queue = StageRunner(
            sessions=session_factory,
            stage=DISCOVERY_STAGE,
            batch=1,
            lease_seconds=SEED_LEASE_SECONDS,
            max_attempts=SEED_MAX_ATTEMPTS,
            idle_seconds=0.0,
            claim_params=lambda: {**claim_params, "tried": sorted(self._tried)},
            expiry=Expiry(
                "Discovery stopped or crashed on this seed several times; it is tried again next time.",
                next_at=lambda: utcnow() + timedelta(days=1),
            ),
        )
        # Writes of this run go one at a time: no lock waits (or deadlocks) between our own seeds.
        self.write_lock = asyncio.Lock()
        self._last_progress_write = 0.0
        self._claimed = 0
        self._tried: set[int] = set()

    async def run(self, *, concurrency: int) -> None:
        async def worker() -> None:
            while self.run_state.stop_reason is None and self._claimed < self.run_state.total:
                self._claimed += 1
                claims = await self.queue.claim(1)
                if not claims:
                    self._claimed -= 1
                    return  # nothing due any more (another run took the rest)
                self._tried.add(int(claims[0].key))
                async with hold(self.sessions, DISCOVERY_STAGE, claims, lease_seconds=SEED_LEASE_SECONDS):
                    await self.one(claims[0])

        workers = max(1, min(concurrency, self.run_state.total))
        await asyncio.gather(*(worker() for _ in range(workers)))

    async def one(self, claim: Claim) -> None:
        run = self.run_state
        seed = Seed(int(claim.key), claim["artist"], claim["title"], claim["norm_key"])
        try:
            outcome = await self.expand(seed, claim)
        except LastfmAuthError as exc:
            # Every other request would fail the same way: stop, leave the seed for the next run.
            run.stop_reason = run.stop_reason or exc.message
            log.error("discovery stopped: %s", exc.message)
            return
        except ClientError as exc:
            await self._failed(seed, claim, exc.message)
            return
        except Exception as exc:  # a database hiccup on one seed must not lose the others
            log.exception("discovery failed on seed %s", seed.id)
            await self._failed(seed, claim, f"{type(exc).__name__}: {exc}")
            return
        run.done += 1
        if outcome is None:
            run.skipped += 1
            await self._report(Progress(run.done, run.total, seed, "skipped"))
            return
        run.consecutive_failures = 0
        run.expanded += 1
        run.edges += outcome.similar
        run.new_ids.update(outcome.new_ids)
        run.seen_ids.update(outcome.seen_ids)
        if outcome.similar == 0:
            run.unknown += 1
        await self._report(
            Progress(
                run.done,
                run.total,
                seed,
                "expanded" if outcome.similar else "unknown",
                similar=outcome.similar,
                new=len(outcome.new_ids),
            )
        )

    async def _failed(self, seed: Seed, claim: Claim, message: str) -> None:
        run = self.run_state
        try:
            async with transaction(self.sessions) as session:
                # Due again at once: the next run asks Last.fm again (this one never does).
                await queue.retry(session, DISCOVERY_STAGE, claim, error=message, delay=0.0)
        except Exception:  # the seed's lease runs out by itself; the run goes on
            log.warning("discovery: could not record the failure of seed %s", seed.id, exc_info=True)
        run.done += 1
        run.failed += 1
        run.consecutive_failures += 1
        run.errors.append(SeedError(track_id=seed.id, artist=seed.artist, title=seed.title, error=message))
        log.warning("discovery: %s - %s failed: %s", seed.artist, seed.title, message)
        if run.consecutive_failures >= MAX_CONSECUTIVE_FAILURES and run.stop_reason is None:
            run.stop_reason = (
                f"Last.fm failed on {run.consecutive_failures} seeds in a row; the last error: {message}"
            )
        await self._report(Progress(run.done, run.total, seed, "failed", error=message))

    async def _report(self, event: Progress) -> None:
        if self.progress is not None:
            self.progress(event)
        now = time.monotonic()
        if now - self._last_progress_write >= PROGRESS_WRITE_SECONDS or event.done == event.total:
            self._last_progress_write = now
            await self.write_running()

    async def write_running(self) -> None:
        """Publish this run's progress in app_state['discovery'].running (for /api/status)."""
        self.running |= {
            "updated_at": utcnow().isoformat(),
            "seeds_done": self.run_state.done,
            "seeds_expanded": self.run_state.expanded,
            "candidates_new": len(self.run_state.new_ids),
        }
        await _write_state(self.sessions, {"running": self.running})

    async def expand(self, seed: Seed, claim: Claim) -> _Stored | None:
        """Expand one claimed seed in its own transaction; None when its lease was lost meanwhile."""
        # No lock is held while Last.fm answers (the claim's lease is): listens keep flowing.
        result = await self.client.get_similar(seed.artist, seed.title, self.limit)
        for attempt in range(1, _DB_RETRIES + 1):
            async with self.sessions() as session:
                try:
                    async with self.write_lock:
                        if not await queue.complete(session, DISCOVERY_STAGE, claim):
                            await session.rollback()
                            return None
                        stored = await store_expansion(session, seed=seed, result=result)
                        if stored.new_ids:
                            await queue.notify(session, "previews")
                            await queue.notify(session, "tags")
                        await session.commit()
                    return stored
                except DBAPIError as exc:
                    await session.rollback()
                    claim.settled = False
                    if attempt < _DB_RETRIES and _retryable_db_error(exc):
                        log.info("discovery: retrying seed %s after %s", seed.id, exc.orig)
                        continue
                    raise
                except BaseException:
                    await session.rollback()
                    claim.settled = False
                    raise
        raise AssertionError("unreachable")
