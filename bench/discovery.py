"""Discovery benchmark: achieved Last.fm and iTunes request rates through the full stage code.

Runs the real discover service (seeds -> Last.fm track.getSimilar -> candidates, edges, scores)
and the real preview lookup loop (claim -> iTunes search -> best match -> record) at the same
time, on the embedded PostgreSQL, against the loopback stand-ins in tests/fakes, with plenty of
work queued. The stand-ins record each request's arrival; over a window of `--seconds` from
the first request the benchmark reports the achieved rate of each service against its limit
(target >= 90 %) and the most requests seen in any sliding window of the limit's length
(target: never above the limit). The stand-ins also enforce the limits server-side, so a
request over the limit would come back as Last.fm error 29 / an iTunes 403.

    .venv/bin/python bench/discovery.py [--seconds 60] [--lastfm-per-second 5] [--itunes-per-minute 120]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import migrated_database, percentile  # noqa: E402
from tests.fakes import FakeItunes, FakeLastfm, max_in_window  # noqa: E402

from haunt_fm.config import Settings  # noqa: E402
from haunt_fm.db.session import create_engine, create_session_factory  # noqa: E402
from haunt_fm.pipeline.discovery import service as discovery  # noqa: E402
from haunt_fm.pipeline.listens.schemas import ListenIn  # noqa: E402
from haunt_fm.pipeline.listens.service import log_listen  # noqa: E402
from haunt_fm.pipeline.previews.tasks import PreviewLookup  # noqa: E402

KEY = "bench-lastfm-key"


def _window(times: list[float], start: float, seconds: float) -> list[float]:
    return [t for t in times if start <= t < start + seconds]


def _report(
    name: str, times: list[float], *, seconds: float, limit: float, per: float, rejected: int
) -> bool:
    """Print the achieved rate in the window and the busiest sliding window; True when on target."""
    start = min(times) if times else 0.0
    inside = _window(times, start, seconds)
    rate = len(inside) / seconds * per
    busiest = max_in_window(times, per)
    gaps = [b - a for a, b in itertools.pairwise(inside)]
    unit = "s" if per == 1.0 else "min"
    ratio = rate / limit
    print(
        f"{name:<8} {len(inside):5d} requests in {seconds:.0f} s = {rate:7.2f}/{unit}  "
        f"limit {limit:g}/{unit}  ratio {ratio:6.1%} (target >= 90 %)"
    )
    print(
        f"{'':<8} busiest {per:g}-s window: {busiest} (limit {limit:g})   "
        f"gap p50 {percentile(gaps, 50) * 1000:.0f} ms  p1 {percentile(gaps, 1) * 1000:.0f} ms   "
        f"rejected by the stand-in for rate: {rejected}   total requests {len(times)}"
    )
    return ratio >= 0.9 and busiest <= limit and rejected == 0


async def run(url: str, *, seconds: float, lastfm_per_second: float, itunes_per_minute: float) -> bool:
    # Enough seeds that Last.fm stays busy past the window; candidates keep iTunes busy far longer.
    seeds_needed = int(lastfm_per_second * (seconds + 8))
    with FakeLastfm(api_key=KEY, pool_size=4000, similar_count=50) as lastfm, FakeItunes() as itunes:
        lastfm.max_per_second = lastfm_per_second
        itunes.max_per_minute = itunes_per_minute
        for artist, title in lastfm.pool:
            itunes.add_track(artist, title, decoys=False, in_store=hash((artist, title)) % 10 != 0)
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=url,
            lastfm_api_key=KEY,
            lastfm_api_url=lastfm.api_url,
            lastfm_rate_per_second=lastfm_per_second,
            itunes_api_url=itunes.url,
            itunes_rate_per_minute=itunes_per_minute,
            embedding_worker_enabled=False,
        )
        engine = create_engine(url, pool_size=12)
        sessions = create_session_factory(engine)
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            for artist, title in lastfm.pool[:seeds_needed]:
                await log_listen(conn, listen=ListenIn(title=title, artist=artist))

        async with httpx.AsyncClient(timeout=httpx.Timeout(20.0, connect=10.0)) as http:
            previews = PreviewLookup(settings=settings, session_factory=sessions, http=http)
            lookup_task = asyncio.create_task(previews.run_forever())
            started = time.monotonic()
            discover_task = asyncio.create_task(
                discovery.discover(session_factory=sessions, settings=settings, http=http, limit=50)
            )
            await asyncio.sleep(seconds + 2)
            for task in (discover_task, lookup_task):
                task.cancel()
            for task in (discover_task, lookup_task):
                try:
                    await task
                except (asyncio.CancelledError, discovery.DiscoveryStopped):
                    pass
            elapsed = time.monotonic() - started

        async with sessions() as session:
            counts = dict(
                (
                    await session.execute(
                        text(
                            "SELECT count(*) FILTER (WHERE lastfm_expanded_at IS NOT NULL) AS expanded, "
                            "count(*) FILTER (WHERE NOT listened) AS candidates, "
                            "count(*) FILTER (WHERE preview_status = 'found') AS found, "
                            "count(*) FILTER (WHERE preview_status = 'not_found') AS not_found, "
                            "count(*) FILTER (WHERE preview_status = 'pending') AS pending, "
                            "(SELECT count(*) FROM track_similarities) AS edges FROM tracks"
                        )
                    )
                )
                .mappings()
                .one()
            )
        await engine.dispose()

        lastfm_times = lastfm.arrival_times("/2.0/")
        itunes_times = itunes.arrival_times("/search")
        lastfm_rejected = sum(1 for r in lastfm.requests if r.status == 429)
        itunes_rejected = sum(1 for r in itunes.requests if r.status in (403, 429))

    print(f"ran {elapsed:.0f} s: discover service + preview lookup loop (concurrency {previews.concurrency})")
    print(
        f"pipeline: {counts['expanded']} seeds expanded, {counts['candidates']} candidates, "
        f"{counts['edges']} edges; previews {counts['found']} found, {counts['not_found']} not found, "
        f"{counts['pending']} still queued"
    )
    ok = _report(
        "Last.fm", lastfm_times, seconds=seconds, limit=lastfm_per_second, per=1.0, rejected=lastfm_rejected
    )
    ok &= _report(
        "iTunes", itunes_times, seconds=seconds, limit=itunes_per_minute, per=60.0, rejected=itunes_rejected
    )
    print("RESULT", "ok" if ok else "FAILED")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--lastfm-per-second", type=float, default=5.0)
    parser.add_argument("--itunes-per-minute", type=float, default=120.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with migrated_database("haunt-fm-bench-discovery-") as (url, _tmp):
        ok = asyncio.run(
            run(
                url,
                seconds=args.seconds,
                lastfm_per_second=args.lastfm_per_second,
                itunes_per_minute=args.itunes_per_minute,
            )
        )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
