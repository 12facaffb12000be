"""Ingest benchmark: listens per second through the real HTTP stack on the embedded database.

Distinct tracks mixed with exact replays (which must be answered "duplicate"), at a fixed
concurrency, for a fixed time. Prints listens/s, latency percentiles, and stored-vs-expected.
Target on a 2-core machine: >= 500 listens/s sustained, p99 <= 50 ms, zero lost, zero double-stored.

    .venv/bin/python bench/ingest.py [--seconds 20] [--concurrency 32] [--dup-ratio 0.3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RawHttpConnection, percentile, running_service

ARTISTS = [f"Artist {i}" for i in range(400)]


async def run(url: str, *, seconds: float, concurrency: int, dup_ratio: float, warmup: float) -> None:
    rng = random.Random(7)
    sent_unique: dict[tuple[str, str, str], int] = {}  # payload key -> event_id
    latencies: list[float] = []
    counts = {"logged": 0, "duplicate": 0, "error": 0, "wrong": 0}
    base = datetime(2026, 1, 1, tzinfo=UTC)
    seq = 0
    history: list[dict[str, str]] = []
    # The first moments open the pool's connections (a PostgreSQL backend fork each): they are
    # served and checked, but kept out of the latency figures, which are about the steady state.
    measure_from = time.monotonic() + warmup
    stop_at = time.monotonic() + seconds

    async def one(http: RawHttpConnection) -> None:
        nonlocal seq
        while time.monotonic() < stop_at:
            if history and rng.random() < dup_ratio:
                body = rng.choice(history)
                expect = "duplicate"
            else:
                seq += 1
                # 5,000 distinct songs, each played many times an hour apart: new listens of known tracks too.
                song = seq % 5000
                body = {
                    "title": f"Song {song}",
                    "artist": ARTISTS[song % len(ARTISTS)],
                    "album": f"Album {song % 900}",
                    "speaker_name": "Study speaker",
                    "played_at": (base + timedelta(hours=seq // 5000, seconds=song)).isoformat(),
                }
                expect = "logged"
            key = (body["title"], body["artist"], body["played_at"])
            t0 = time.perf_counter()
            try:
                status, payload = await http.request(
                    "POST", "/api/history/webhook", json.dumps(body).encode()
                )
            except (OSError, ConnectionError, asyncio.IncompleteReadError):
                counts["error"] += 1
                await http.close()
                continue
            if time.monotonic() >= measure_from:
                latencies.append(time.perf_counter() - t0)
            if status not in (200, 201):
                counts["error"] += 1
                continue
            data = json.loads(payload)
            counts[data["status"]] += 1
            if expect == "logged":
                if data["status"] != "logged" or key in sent_unique:
                    counts["wrong"] += 1
                sent_unique[key] = data["event_id"]
                history.append(body)
            elif sent_unique.get(key) != data["event_id"] or data["status"] != "duplicate":
                counts["wrong"] += 1

    host, port = url.removeprefix("http://").split(":")
    connections = [RawHttpConnection(host, int(port)) for _ in range(concurrency)]
    started = time.monotonic()
    await asyncio.gather(*(one(conn) for conn in connections))
    elapsed = time.monotonic() - started
    for conn in connections:
        await conn.close()
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        status = (await http.get("/api/status")).json()

    total = counts["logged"] + counts["duplicate"]
    stored = status["pipeline"]["listens"]
    expected = len(sent_unique)
    print(
        f"duration            {elapsed:8.1f} s   concurrency {concurrency}   duplicate ratio {dup_ratio:.0%}"
    )
    print(f"requests answered   {total:8d}   ({counts['logged']} logged, {counts['duplicate']} duplicate)")
    print(
        f"throughput          {total / elapsed:8.1f} listens/s   "
        f"(target >= 500: {total / elapsed / 500:.2f}x)"
    )
    p50, p95, p99 = (percentile(latencies, p) * 1000 for p in (50, 95, 99))

    print(
        f"latency             p50 {p50:.1f} ms   p95 {p95:.1f} ms   p99 {p99:.1f} ms   (target p99 <= 50 ms)"
    )
    print(
        f"stored listens      {stored:8d}   expected {expected}   lost {max(0, expected - stored)}   "
        f"double-stored {max(0, stored - expected)}"
    )
    print(f"errors              {counts['error']:8d}   wrong answers {counts['wrong']}")
    ok = stored == expected and counts["error"] == 0 and counts["wrong"] == 0
    print("RESULT", "ok" if ok else "FAILED")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--dup-ratio", type=float, default=0.3)
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds kept out of the latency figures")
    args = parser.parse_args()
    with running_service() as url:
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        asyncio.run(
            run(
                url,
                seconds=args.seconds,
                concurrency=args.concurrency,
                dup_ratio=args.dup_ratio,
                warmup=args.warmup,
            )
        )


if __name__ == "__main__":
    main()
