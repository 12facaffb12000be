"""Playlist benchmark: latency of POST /api/playlists/generate (total_tracks=50) on 100,000 tracks.

Reuses bench/recommend.py's benchmark library: 100,000 synthetic 512-d unit vectors in 200
uneven clusters, loaded with COPY into its own embedded PostgreSQL, HNSW index built after
the load; a profile with 1,000 listened tracks (~3,000 listens over 180 days), 200 tracks
thumbed down in `general` nearest its taste and 30 under one vibe. The real app runs under
uvicorn in a child process; requests go over HTTP, one at a time, without playback (no
`auto_play`), so each one generates AND saves a playlist (51 rows).

Series (>= 200 requests each): taste only; a cached vibe at alpha 0.5 (50 vibes in turn).
Every answer is checked: 50 tracks, 15 known (30 %), no track twice, never three by one
artist in a row, nothing thumbed down.

Target on a 2-core machine: p50 <= 100 ms.

    .venv/bin/python bench/playlist.py               # ~2-4 minutes, most of it the HNSW build
    .venv/bin/python bench/playlist.py --tracks 20000 --requests 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from _common import migrated_database
from recommend import PROFILE, Service, World, load  # bench/recommend.py: the shared library loader

TOTAL = 50
KNOWN_PCT = 30
TARGET_P50_MS = 100.0


def check(body: dict[str, Any], *, banned: set[int]) -> list[str]:
    """What is wrong with one answer (empty when it keeps every rule)."""
    problems = []
    tracks = body["tracks"]
    ids = [t["track_id"] for t in tracks]
    if len(tracks) != TOTAL:
        problems.append(f"{len(tracks)} tracks")
    if body["known_count"] != round(TOTAL * KNOWN_PCT / 100):
        problems.append(f"{body['known_count']} known")
    if len(set(ids)) != len(ids):
        problems.append("duplicate track")
    if banned & set(ids):
        problems.append("disliked track")
    artists = [t["artist"].casefold() for t in tracks]
    if any(artists[i] == artists[i - 1] == artists[i - 2] for i in range(2, len(artists))):
        problems.append("three by one artist in a row")
    return problems


async def series(
    http: httpx.AsyncClient, world: World, *, name: str, requests: int, vibe_of: Any
) -> dict[str, Any]:
    general = {int(r) + 1 for r in world.disliked}
    vibe0 = general | {int(r) + 1 for r in world.vibe_disliked}
    latencies, problems = [], []
    for i in range(requests):
        vibe = vibe_of(i)
        body: dict[str, Any] = {"total_tracks": TOTAL, "known_pct": KNOWN_PCT, "profile": PROFILE}
        if vibe is not None:
            body["vibe"] = vibe
        start = time.perf_counter()
        r = await http.post("/api/playlists/generate", json=body)
        latencies.append((time.perf_counter() - start) * 1000)
        r.raise_for_status()
        problems += check(r.json(), banned=vibe0 if vibe == "vibe 0" else general)
    lat = np.asarray(latencies)
    return {
        "series": name,
        "requests": requests,
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p95_ms": round(float(np.percentile(lat, 95)), 2),
        "mean_ms": round(float(lat.mean()), 2),
        "problems": problems,
    }


async def measure(url: str, world: World, *, requests: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        r = await http.post("/api/admin/build-taste-profile", params={"profile": PROFILE})
        r.raise_for_status()
        for _ in range(20):  # warm the connection pool and the plan cache
            warm = {"total_tracks": TOTAL, "known_pct": KNOWN_PCT, "profile": PROFILE}
            (await http.post("/api/playlists/generate", json=warm)).raise_for_status()
        vibes = list(world.vibes)
        out["series"] = [
            await series(http, world, name="taste only", requests=requests, vibe_of=lambda i: None),
            await series(
                http,
                world,
                name="cached vibe, alpha 0.5",
                requests=requests,
                vibe_of=lambda i: vibes[i % len(vibes)],
            ),
        ]
        listing = (await http.get("/api/playlists", params={"limit": 1})).json()["playlists"]
        out["saved_last"] = listing[0]["track_count"] if listing else 0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tracks", type=int, default=100_000)
    parser.add_argument(
        "--requests", type=int, default=200, help="requests per series (>= 200 for the report)"
    )
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()

    t0 = time.perf_counter()
    world = World(args.tracks)
    print(f"generated {args.tracks:,} vectors in {time.perf_counter() - t0:.1f} s")
    with migrated_database("haunt-fm-bench-playlist-") as (url, tmp):
        figures = asyncio.run(load(url, world))
        print(f"loaded in {figures['load_s']:.1f} s, HNSW built in {figures['index_s']:.1f} s")
        with Service(url, tmp / "data") as svc:
            result = asyncio.run(measure(svc.url, world, requests=args.requests))

    print(
        f"\nPOST /api/playlists/generate total_tracks={TOTAL} known_pct={KNOWN_PCT}, {args.tracks:,} tracks,"
    )
    print(
        f"profile '{PROFILE}' with 1,000 listened and 230 disliked tracks; no playback; each request saves it"
    )
    print(f"\n{'series':26} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8} {'bad':>5}")
    for s in result["series"]:
        print(
            f"{s['series']:26} {s['requests']:>4} {s['p50_ms']:>8.2f} {s['p95_ms']:>8.2f} "
            f"{s['mean_ms']:>8.2f} {len(s['problems']):>5}"
        )
    worst = max(s["p50_ms"] for s in result["series"])
    verdict = "OK" if worst <= TARGET_P50_MS else "MISSED"
    print(
        f"\np50 worst series {worst:.2f} ms vs target {TARGET_P50_MS:.0f} ms: "
        f"ratio {worst / TARGET_P50_MS:.2f} ({verdict})"
    )
    problems = [p for s in result["series"] for p in s["problems"]]
    print(
        f"every answer kept the rules: {'yes' if not problems else 'NO: ' + ', '.join(sorted(set(problems)))}"
    )
    if args.json:
        args.json.write_text(json.dumps({"figures": figures, "result": result}, indent=2, default=str))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
