"""History import benchmark: ListenBrainz export speed and memory, and a Last.fm import at its rate limit.

1. Generates ListenBrainz exports (JSON lines; a few thousand songs with a long tail, one listen
   in a hundred repeated within the minute so the duplicate rule has work) of `--small` and
   `--listens` listens, and imports each into an empty embedded PostgreSQL through the same
   code as `haunt-fm import listenbrainz` (the import job, claimed and run in-process). Each
   import runs in a fresh process, which reports its peak RSS: it must not grow with the file.
   Then the large export is imported again (every listen a duplicate).
2. Imports a 10,000-scrobble Last.fm history from the stand-in at the configured rate limit
   (the stand-in enforces the limit server-side too: a request over it would be error 29).

Targets: >= 5,000 listens/s; peak RSS of the large import within 10 % (or 16 MB) of the
small one's; the Last.fm import within 15 % of (pages + 1) / rate seconds with no request
refused. The machine is shared: the load average is printed with the figures.

    .venv/bin/python bench/import.py [--listens 100000] [--small 10000] [--scrobbles 10000] [--rate 5]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes import FakeLastfm  # noqa: E402

from haunt_fm.config import Settings  # noqa: E402
from haunt_fm.db.embedded import EmbeddedPostgres  # noqa: E402
from haunt_fm.db.migrate import upgrade  # noqa: E402
from haunt_fm.pipeline.imports import service  # noqa: E402
from haunt_fm.pipeline.imports.tasks import import_job_kind  # noqa: E402
from haunt_fm.queue import JobRunner  # noqa: E402
from haunt_fm.runtime import Runtime, open_runtime  # noqa: E402

KEY = "bench-lastfm-key"
SONGS = 6000
TARGET_PER_SECOND = 5000


def generate(path: Path, count: int, *, seed: int = 7) -> int:
    """A JSON-lines export of `count` listens, newest last; returns its size in bytes."""
    rng = random.Random(seed)
    # A long tail: song k is picked with weight 1 / (k + 10).
    cumulative = list(itertools.accumulate(1.0 / (k + 10) for k in range(SONGS)))
    last = 0
    start = 1_500_000_000
    with path.open("w", encoding="utf-8") as handle:
        uts = start
        for i in range(count):
            if i and rng.random() < 0.01:
                uts_i = uts - 30  # the same listen again, half a minute off: a duplicate
                song = last
            else:
                uts += 180 + rng.randrange(120)
                uts_i = uts
                song = rng.choices(range(SONGS), cum_weights=cumulative)[0]
            last = song
            entry = {
                "listened_at": uts_i,
                "track_metadata": {
                    "artist_name": f"Artist {song % 900} feat. Guest {song % 7}",
                    "track_name": f"Song Number {song} (Remastered {1990 + song % 30})",
                    "release_name": f"Album {song % 1500}",
                    "additional_info": {"duration_ms": 180_000 + song % 120_000, "listening_from": "bench"},
                },
            }
            handle.write(json.dumps(entry) + "\n")
    return path.stat().st_size


def _settings(data_dir: Path, url: str, **extra: Any) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=url,
        data_dir=data_dir,
        embedding_worker_enabled=False,
        preview_worker_enabled=False,
        log_level="WARNING",
        **extra,
    )


async def _run_job(runtime: Runtime, started: Any) -> Any:
    kind = import_job_kind(runtime)
    await JobRunner(sessions=runtime.sessions, kinds={kind.name: kind}).run_job(started.job_id)
    async with runtime.sessions() as session:
        return await service.get(session, import_id=started.import_id)


async def _child(path: Path, url: str, data_dir: Path) -> dict[str, Any]:
    settings = _settings(data_dir, url)
    async with open_runtime(settings, database_url=url, pool_size=4, listen=False) as runtime:
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu0 = usage.ru_utime + usage.ru_stime
        t0 = time.perf_counter()
        started = await service.start_listenbrainz_file(sessions=runtime.sessions, path=path)
        done = await _run_job(runtime, started)
        elapsed = time.perf_counter() - t0
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = usage.ru_utime + usage.ru_stime - cpu0
    return {
        "cpu": cpu,
        "status": done.status,
        "imported": done.imported,
        "duplicates": done.duplicates,
        "skipped": done.skipped,
        "elapsed": elapsed,
        "rss_baseline_mb": baseline / 1024,
        "rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _import_in_child(path: Path, url: str, data_dir: Path, pgdata: Path) -> dict[str, Any]:
    db_cpu = _cluster_cpu(pgdata)
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(path), "--url", url, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["db_cpu"] = _cluster_cpu(pgdata) - db_cpu
    return result


async def _truncate(url: str, data_dir: Path) -> None:
    async with open_runtime(_settings(data_dir, url), database_url=url, pool_size=1, listen=False) as runtime:
        async with runtime.sessions() as session:
            await session.execute(
                text("TRUNCATE listen_events, tracks, imports, jobs RESTART IDENTITY CASCADE")
            )
            await session.commit()


async def _lastfm(url: str, data_dir: Path, *, scrobbles: int, rate: float) -> dict[str, Any]:
    with FakeLastfm(api_key=KEY) as lastfm:
        lastfm.max_per_second = rate
        lastfm.add_user("bench", lastfm.generate_scrobbles(scrobbles), now_playing=("Now", "Playing"))
        settings = _settings(
            data_dir, url, lastfm_api_key=KEY, lastfm_api_url=lastfm.api_url, lastfm_rate_per_second=rate
        )
        async with open_runtime(settings, database_url=url, pool_size=4, listen=False) as runtime:
            t0 = time.perf_counter()
            started = await service.start_lastfm(
                sessions=runtime.sessions, settings=settings, http=runtime.http, user="bench"
            )
            done = await _run_job(runtime, started)
            elapsed = time.perf_counter() - t0
        asked = [r for r in lastfm.requests if r.query.get("method") == "user.getrecenttracks"]
        refused = sum(1 for r in asked if r.status != 200)
    return {"done": done, "elapsed": elapsed, "requests": len(asked), "refused": refused}


def _cluster_cpu(pgdata: Path) -> float:
    """CPU seconds the PostgreSQL cluster has used: the postmaster, its live children and its reaped ones."""
    tick = os.sysconf("SC_CLK_TCK")
    postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry.name), int(fields[1])
        if pid == postmaster:
            total += sum(int(x) for x in fields[11:15]) / tick  # utime, stime, cutime, cstime
        elif ppid == postmaster:
            total += sum(int(x) for x in fields[11:13]) / tick
    return total


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--listens", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--scrobbles", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=5.0, help="Last.fm requests per second")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.child is not None:
        print(json.dumps(asyncio.run(_child(args.child, args.url, args.data_dir))))
        return 0

    print(f"machine: {os.cpu_count()} CPUs; {_uptime()}")
    ok = True
    with tempfile.TemporaryDirectory(prefix="haunt-fm-bench-import-") as tmp:
        root = Path(tmp)
        server = EmbeddedPostgres(root / "pg")
        url = server.start()
        try:
            upgrade(url)
            files = {}
            for count in (args.small, args.listens):
                path = root / f"export-{count}.jsonl"
                t0 = time.perf_counter()
                size = generate(path, count)
                files[count] = path
                took = time.perf_counter() - t0
                print(f"generated {count:,} listens: {size / 1_048_576:.1f} MB in {took:.1f} s")

            results = {}
            for count in (args.small, args.listens):
                asyncio.run(_truncate(url, root / "data"))
                r = _import_in_child(files[count], url, root / "data", server.paths.pgdata)
                results[count] = r
                rate = count / r["elapsed"]
                print(
                    f"ListenBrainz {count:>7,} listens into an empty database:{r['elapsed']:7.2f} s = "
                    f"{rate:7,.0f} listens/s ({r['imported']:,} imported, {r['duplicates']:,} duplicates, "
                    f"{r['skipped']} skipped); peak RSS {r['rss_peak_mb']:.0f} MB "
                    f"(at start {r['rss_baseline_mb']:.0f} MB); CPU: importer {r['cpu']:.1f} s, "
                    f"PostgreSQL {r['db_cpu']:.1f} s"
                )
            again = _import_in_child(files[args.listens], url, root / "data", server.paths.pgdata)
            print(
                f"ListenBrainz {args.listens:>7,} listens again (all duplicates):{again['elapsed']:6.2f} s = "
                f"{args.listens / again['elapsed']:7,.0f} listens/s ({again['imported']} imported, "
                f"{again['duplicates']:,} duplicates); peak RSS {again['rss_peak_mb']:.0f} MB; CPU: importer "
                f"{again['cpu']:.1f} s, PostgreSQL {again['db_cpu']:.1f} s"
            )
            big, small = results[args.listens], results[args.small]
            rate = args.listens / big["elapsed"]
            grew = big["rss_peak_mb"] - small["rss_peak_mb"]
            busiest, both = max(big["cpu"], big["db_cpu"]), big["cpu"] + big["db_cpu"]
            print(
                f"  speed: {rate:,.0f} listens/s vs target {TARGET_PER_SECOND:,} "
                f"({rate / TARGET_PER_SECOND:.2f}x); by CPU time, what an idle machine would see: "
                f"{args.listens / both:,.0f} (importer and PostgreSQL in turn) to "
                f"{args.listens / busiest:,.0f} listens/s (side by side)"
            )
            print(
                f"  memory: peak RSS {big['rss_peak_mb']:.0f} MB for {args.listens:,} vs "
                f"{small['rss_peak_mb']:.0f} MB for {args.small:,} listens "
                f"({grew:+.1f} MB for {args.listens / args.small:.0f}x the file)"
            )
            ok &= rate >= TARGET_PER_SECOND and grew <= max(16.0, 0.10 * small["rss_peak_mb"])

            asyncio.run(_truncate(url, root / "data"))
            lf = asyncio.run(_lastfm(url, root / "data", scrobbles=args.scrobbles, rate=args.rate))
            pages = math.ceil(args.scrobbles / service.LASTFM_PAGE)
            floor = (pages + 1) / args.rate  # one request checks the user first
            done = lf["done"]
            print(
                f"Last.fm {args.scrobbles:,} scrobbles at {args.rate:g} requests/s: {lf['elapsed']:.1f} s "
                f"({done.imported:,} imported, {done.duplicates} duplicates, {done.status}); "
                f"{lf['requests']} requests, {lf['refused']} refused; the rate limit alone takes "
                f"{floor:.1f} s ({lf['elapsed'] / floor:.2f}x)"
            )
            ok &= lf["refused"] == 0 and done.imported + done.duplicates == args.scrobbles
            ok &= lf["elapsed"] <= floor * 1.15
        finally:
            server.stop()
    print(f"after: {_uptime()}")
    print("OK" if ok else "BELOW TARGET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
