"""Taste benchmark: does a household get recommendations in the genres each person plays, and how long
does a taste build take?

Starts its own embedded PostgreSQL (pgvector), builds the schema with the real migrations and
loads a synthetic library with COPY: 16 genres as clustered 512-d unit vectors that share a
common component (like real audio embeddings: genre centres at cosine ~0.36), 300 tracks each
at cosine ~0.8 to their centre, plus *bridge* genres that sit between two or three of them (the
centre of their centres), where a single mean of those genres lands. The real app runs under
uvicorn in a child process; everything below goes over HTTP.

1. Quality. Five listeners, each on their own speaker; every listen goes through
   `POST /api/history/webhook`, so skips are found by the real rule (the next track starts
   within 30 s). For each: the share of the top 10 and top 50 recommendations that lie in the
   genres the listener really plays (listens not skipped), *before* (one weighted mean of
   everything played, skips counted as plays: the previous rule, computed exactly in numpy over
   the same eligible tracks) and *after* (`GET /api/recommendations`: tastes, skips ignored).
2. Build time of `POST /api/admin/build-taste-profile` at 1,000 and 10,000 listened tracks
   (about 2 listens each), for a one-genre and a three-genre listener. Target: <= 1 s at 10,000.

    .venv/bin/python bench/taste.py            # about three minutes on 2 busy cores
    .venv/bin/python bench/taste.py --seed 3   # another library, household and index graph
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import numpy as np
from pgvector.asyncpg import register_vector

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import migrated_database  # a hermetic environment and a migrated embedded database
from recommend import Service  # bench/recommend.py: the app under uvicorn in a child process

DIM = 512
PER_GENRE = 300
WITHIN = 0.8
HALF_LIFE_DAYS = 30.0
TARGET_BUILD_S = 1.0
GENRES = (
    "ambient", "metal", "jazz", "rock", "chill", "hiphop", "folk", "techno",
    "classical", "reggae", "soul", "punk", "house", "country", "blues", "opera",
)  # fmt: skip
BRIDGES = {
    "post-rock": ("ambient", "metal"),
    "jazz-rock": ("jazz", "rock"),
    "trip-hop": ("chill", "hiphop"),
    "chill-rock": ("chill", "rock"),
    "rock-hiphop": ("rock", "hiphop"),
    "fusion": ("chill", "rock", "hiphop"),
    "folktronica": ("folk", "techno"),
    "classical-reggae": ("classical", "reggae"),
    "soul-punk": ("soul", "punk"),
}
# name: {genre: (tracks played, skip every listen of it)}; a `skip_share` skips that share of the rest.
LISTENERS: dict[str, dict[str, Any]] = {
    "solo": {"genres": {"jazz": (120, False)}},
    "duo": {"genres": {"ambient": (60, False), "metal": (60, False)}},
    "trio": {"genres": {"chill": (50, False), "rock": (50, False), "hiphop": (50, False)}},
    "duo-skips-one": {"genres": {"folk": (60, False), "techno": (40, True)}},
    "trio-skips-some": {
        "genres": {"classical": (40, False), "reggae": (40, False), "soul": (40, False), "punk": (30, True)},
        "skip_share": 0.2,
    },
}
BUILD_SIZES = (1_000, 10_000)


def unit(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = x / np.linalg.norm(x, axis=-1, keepdims=True)
    return out


class Library:
    """Genre centres, tracks (vectors and genre labels), as the database will hold them."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        common = unit(self.rng.standard_normal(DIM))
        self.centres: dict[str, np.ndarray] = {}
        for g in GENRES:
            own = self.rng.standard_normal(DIM)
            own -= (own @ common) * common
            self.centres[g] = unit(0.6 * common + 0.8 * unit(own))
        for name, parts in BRIDGES.items():
            self.centres[name] = unit(sum(self.centres[p] for p in parts))
        self.vectors: list[np.ndarray] = []
        self.genres: list[str] = []

    def add(self, genre: str, n: int) -> list[int]:
        """n new tracks of a genre; returns their ids (row + 1)."""
        centre = self.centres[genre]
        noise = self.rng.standard_normal((n, DIM))
        noise -= (noise @ centre)[:, None] * centre
        rows = unit(WITHIN * centre + np.sqrt(1 - WITHIN**2) * unit(noise)).astype(np.float32)
        first = len(self.vectors) + 1
        self.vectors.extend(rows)
        self.genres.extend([genre] * n)
        return list(range(first, first + n))


async def load(url: str, lib: Library, first: int = 1) -> None:
    conn = await asyncpg.connect(url)
    await register_vector(conn)
    try:
        ids = range(first, len(lib.vectors) + 1)
        await conn.copy_records_to_table(
            "tracks",
            records=(
                (i, f"Track {i}", f"Artist {i}", f"artist {i}", f"track {i}", f"artist {i}\x1ftrack {i}",
                 "lastfm", "found", f"https://p/{i}.m4a", "done", lib.genres[i - 1])
                for i in ids
            ),
            columns=["id", "title", "artist", "norm_artist", "norm_title", "norm_key", "source",
                     "preview_status", "preview_url", "embedding_status", "genre"],
        )  # fmt: skip
        await conn.execute("SELECT setval('tracks_id_seq', $1)", len(lib.vectors))
        await conn.copy_records_to_table(
            "track_embeddings",
            records=((i, lib.vectors[i - 1], "bench", 1, 3) for i in ids),
            columns=["track_id", "embedding", "model", "pipeline_version", "windows"],
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


def plan_listens(
    name: str, spec: dict[str, Any], lib: Library, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """The listener's listens in play order over 60 days, each with whether the next cuts it short."""
    tracks: list[tuple[int, bool]] = []
    for genre, (n, skip_all) in spec["genres"].items():
        for tid in rng.choice([i + 1 for i, g in enumerate(lib.genres) if g == genre], size=n, replace=False):
            for _ in range(int(rng.integers(1, 4))):
                tracks.append((int(tid), skip_all or rng.random() < spec.get("skip_share", 0.0)))
    order = rng.permutation(len(tracks))
    at = datetime.now(UTC) - timedelta(days=60)
    step = timedelta(days=59) / max(1, len(tracks))
    out = []
    for k in order:
        tid, skip = tracks[k]
        out.append({"track_id": tid, "played_at": at, "skip": skip})
        at += timedelta(seconds=8) if skip else max(step, timedelta(minutes=4))
    return out


def before(lib: Library, listens: list[dict[str, Any]], limit: int) -> list[int]:
    """The previous rule: one weighted mean of everything played (skips counted), nearest unheard."""
    newest = max(item["played_at"] for item in listens)
    w = np.zeros(len(lib.vectors))
    for item in listens:
        age = (newest - item["played_at"]).total_seconds() / 86_400
        w[item["track_id"] - 1] += 2 ** (-age / HALF_LIFE_DAYS)
    vectors = np.stack(lib.vectors)
    mean = unit((w[:, None] * vectors).sum(axis=0))
    sims = vectors @ mean
    sims[[item["track_id"] - 1 for item in listens]] = -9
    return [int(i) + 1 for i in np.argsort(-sims)[:limit]]


async def quality(
    http: httpx.AsyncClient, lib: Library, plans: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    rows = []
    for name, listens in plans.items():
        assert (await http.post("/api/profiles", json={"name": name})).status_code == 201
        speaker = f"media_player.{name.replace('-', '_')}_2"
        for item in listens:
            tid = item["track_id"]
            body = {
                "title": f"Track {tid}",
                "artist": f"Artist {tid}",
                "profile": name,
                "speaker_entity": speaker,
                "played_at": item["played_at"].isoformat(),
            }
            r = await http.post("/api/history/webhook", json=body)
            assert r.status_code in (200, 201), r.text
        # One more track ends the last one: cut short if it was to be skipped, else played through.
        end = listens[-1]["played_at"] + timedelta(seconds=8 if listens[-1]["skip"] else 600)
        await http.post(
            "/api/history/webhook",
            json={
                "title": "Outro",
                "artist": "Nobody",
                "profile": name,
                "speaker_entity": speaker,
                "played_at": end.isoformat(),
            },
        )
        recent = (await http.get("/api/history/recent", params={"profile": name, "limit": 500})).json()[
            "events"
        ]
        played = {lib.genres[item["track_id"] - 1] for item in listens if not item["skip"]}
        skips_found = sum(e["skipped"] for e in recent if e["title"] != "Outro")
        r = await http.get("/api/recommendations", params={"profile": name, "limit": 50})
        r.raise_for_status()
        after = [rec["track_id"] for rec in r.json()["recommendations"]]
        old = before(lib, listens, 50)

        def share(ids: list[int], k: int, played: set[str] = played) -> float:
            return sum(lib.genres[t - 1] in played for t in ids[:k]) / k

        rows.append(
            {
                "listener": name,
                "plays": ", ".join(sorted(played)),
                "skipped_genres": ", ".join(g for g, (_, s) in LISTENERS[name]["genres"].items() if s),
                "listens": len(listens),
                "skips_planned": sum(item["skip"] for item in listens),
                "skips_found": skips_found,
                "tastes": len(r.json()["tastes"]),
                "before_10": share(old, 10), "after_10": share(after, 10),
                "before_50": share(old, 50), "after_50": share(after, 50),
                "before_top": ", ".join(f"{g} {n}" for g, n in _top_genres(lib, old[:10])),
                "after_top": ", ".join(f"{g} {n}" for g, n in _top_genres(lib, after[:10])),
            }
        )  # fmt: skip
    return rows


def _top_genres(lib: Library, ids: list[int]) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for t in ids:
        counts[lib.genres[t - 1]] = counts.get(lib.genres[t - 1], 0) + 1
    return sorted(counts.items(), key=lambda kv: -kv[1])[:3]


async def add_big_profile(url: str, name: str, track_ids: list[int], rng: np.random.Generator) -> int:
    conn = await asyncpg.connect(url)
    try:
        pid = await conn.fetchval("INSERT INTO profiles (name) VALUES ($1) RETURNING id", name)
        now = datetime.now(UTC)
        records = []
        for tid in track_ids:
            first = float(rng.uniform(0, 180))
            for k in range(int(rng.integers(1, 4))):
                records.append((tid, pid, now - timedelta(days=first + 0.3 * k, seconds=tid % 97), "x", "y"))
        await conn.copy_records_to_table(
            "listen_events",
            records=records,
            columns=["track_id", "profile_id", "played_at", "title", "artist"],
        )
        await conn.execute("UPDATE tracks SET listened = true WHERE id = ANY($1::bigint[])", track_ids)
        await conn.execute("ANALYZE listen_events")
        return len(records)
    finally:
        await conn.close()


async def build_times(http: httpx.AsyncClient, names: list[str], repeats: int) -> dict[str, dict[str, Any]]:
    out = {}
    for name in names:
        times, tastes, used = [], 0, 0
        for _ in range(repeats):
            start = time.perf_counter()
            r = await http.post("/api/admin/build-taste-profile", params={"profile": name})
            times.append(time.perf_counter() - start)
            r.raise_for_status()
            tastes, used = len(r.json()["tastes"]), r.json()["tracks_used"]
        out[name] = {
            "median_s": float(np.median(times)),
            "max_s": max(times),
            "tastes": tastes,
            "tracks": used,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5, help="builds per profile size")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument("--seed", type=int, default=0, help="another library and household (same shapes)")
    args = parser.parse_args()
    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed + 1)
    lib = Library(args.seed)
    for genre in lib.centres:
        lib.add(genre, PER_GENRE)
    plans = {name: plan_listens(name, spec, lib, rng) for name, spec in LISTENERS.items()}
    household = len(lib.vectors)
    big: dict[str, list[int]] = {}
    for n in BUILD_SIZES:
        big[f"one-genre-{n}"] = lib.add("opera", n)
        big[f"three-genres-{n}"] = [
            t for g in ("house", "country", "blues") for t in lib.add(g, n // 3 + (g == "house") * (n % 3))
        ]
    with migrated_database("haunt-fm-bench-taste-") as (url, tmp):
        asyncio.run(load(url, lib))
        listens = {name: asyncio.run(add_big_profile(url, name, ids, rng)) for name, ids in big.items()}
        with Service(url, tmp / "data") as svc:

            async def run() -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
                async with httpx.AsyncClient(base_url=svc.url, timeout=120) as http:
                    return await quality(http, lib, plans), await build_times(http, list(big), args.repeats)

            rows, builds = asyncio.run(run())

    print(
        f"\nlibrary: {household:,} tracks in {len(GENRES)} genres and {len(BRIDGES)} bridge genres "
        f"({PER_GENRE} each, cosine ~{WITHIN} to their centre),\n  + {len(lib.vectors) - household:,} "
        "tracks for the build timings"
    )
    print("\nshare of recommendations inside the genres the listener plays (not skipped)")
    print(
        f"{'listener':16} {'tastes':>6} {'skips':>11} {'top10 before':>13} {'after':>6} "
        f"{'top50 before':>13} {'after':>6}"
    )
    for r in rows:
        print(
            f"{r['listener']:16} {r['tastes']:>6} {r['skips_found']:>5}/{r['skips_planned']:<5} "
            f"{r['before_10']:>13.0%} {r['after_10']:>6.0%} {r['before_50']:>13.0%} {r['after_50']:>6.0%}"
        )
    for r in rows:
        skipped = f"; every {r['skipped_genres']} play skipped" if r["skipped_genres"] else ""
        print(
            f"  {r['listener']}: plays {r['plays']}{skipped}\n"
            f"    top 10 before: {r['before_top']}\n    top 10 after:  {r['after_top']}"
        )
    print(f"\nPOST /api/admin/build-taste-profile, median (max) of {args.repeats}, over HTTP")
    for name, b in builds.items():
        print(
            f"  {name:20} {b['tracks']:>6} tracks, {listens[name]:>6} listens -> {b['tastes']} taste(s): "
            f"{b['median_s'] * 1000:7.0f} ms ({b['max_s'] * 1000:.0f} ms)"
        )
    worst = max(b["median_s"] for name, b in builds.items() if name.endswith("10000"))
    print(
        f"\nbuild at 10,000 tracks, worst median {worst:.2f} s vs target {TARGET_BUILD_S:.0f} s: "
        f"ratio {worst / TARGET_BUILD_S:.2f} ({'OK' if worst <= TARGET_BUILD_S else 'MISSED'})"
    )
    if args.json:
        args.json.write_text(json.dumps({"quality": rows, "builds": builds, "listens": listens}, indent=2))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
