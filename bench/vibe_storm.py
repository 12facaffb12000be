"""Vibe storm: 100 concurrent requests with 100 new vibes, while webhooks keep arriving.

Before: the vibe path held the request's pooled connection while it opened a second one and
waited for a worker, so ~50 concurrent new vibes exhausted the pool (51 of 100 answered 500
after 30 s) and webhooks stalled meanwhile. Now a request holds at most one connection and
none while it waits. Two set-ups, each a real `haunt-fm serve` on the embedded database:

- `queue`: serve has no model; a separate `haunt-fm worker` (a tiny CLAP model) embeds the
  vibe texts it is told about through the queue (LISTEN/NOTIFY).
- `in-process`: serve runs the worker itself and embeds the texts in-process.

Targets: 0 responses >= 500 of 100, webhook p99 <= 50 ms while the storm runs.

    .venv/bin/python bench/vibe_storm.py [--vibes 100] [--webhooks-per-second 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import percentile, running_service, temp_dir


def _tiny_model(root: Path) -> Path:
    from tests.support.tiny_clap import build_tiny_clap

    return build_tiny_clap(root / "tiny-clap")


async def _wait_for_worker(url: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        while time.monotonic() < deadline:
            workers = (await http.get("/api/status")).json()["worker"]["workers"]
            if workers and all(w["state"] in ("idle", "working") for w in workers):
                return
            await asyncio.sleep(0.5)
    raise RuntimeError("the worker never reported a loaded model")


async def storm(url: str, *, vibes: int, webhooks_per_second: float) -> dict[str, Any]:
    statuses: Counter[int] = Counter()
    vibe_latency: list[float] = []
    hook_latency: list[float] = []
    hook_status: Counter[int] = Counter()
    limits = httpx.Limits(max_connections=vibes + 20, max_keepalive_connections=vibes + 20)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        stop = asyncio.Event()

        async def webhooks() -> None:
            i = 0
            interval = 1.0 / webhooks_per_second
            while not stop.is_set():
                i += 1
                t0 = time.perf_counter()
                r = await http.post(
                    "/api/history/webhook",
                    json={
                        "title": f"Storm song {i}",
                        "artist": f"Storm band {i % 50}",
                        "speaker_name": "Study",
                    },
                )
                hook_latency.append(time.perf_counter() - t0)
                hook_status[r.status_code] += 1
                await asyncio.sleep(max(0.0, interval - (time.perf_counter() - t0)))

        async def vibe(i: int) -> None:
            t0 = time.perf_counter()
            r = await http.get("/api/recommendations", params={"vibe": f"storm vibe number {i}", "alpha": 0})
            vibe_latency.append(time.perf_counter() - t0)
            statuses[r.status_code] += 1

        hooks = asyncio.create_task(webhooks())
        await asyncio.sleep(1.0)  # webhooks warm up first
        t0 = time.perf_counter()
        await asyncio.gather(*(vibe(i) for i in range(vibes)))
        storm_seconds = time.perf_counter() - t0
        stop.set()
        await hooks
    return {
        "statuses": dict(statuses),
        "server_errors": sum(n for code, n in statuses.items() if code >= 500),
        "storm_seconds": storm_seconds,
        "vibe_p50": percentile(vibe_latency, 50),
        "vibe_p99": percentile(vibe_latency, 99),
        "hook_p50": percentile(hook_latency, 50),
        "hook_p99": percentile(hook_latency, 99),
        "hooks": sum(hook_status.values()),
        "hook_errors": sum(n for code, n in hook_status.items() if code >= 500),
    }


def _report(name: str, result: dict[str, Any]) -> bool:
    hook_p50, hook_p99 = result["hook_p50"] * 1000, result["hook_p99"] * 1000
    vibe_p50, vibe_p99 = result["vibe_p50"] * 1000, result["vibe_p99"] * 1000
    ok = result["server_errors"] == 0 and result["hook_errors"] == 0 and hook_p99 <= 50
    print(
        f"{name}: {sum(result['statuses'].values())} vibes in {result['storm_seconds']:.1f} s, "
        f"statuses {result['statuses']}, responses >= 500: {result['server_errors']} (target 0)"
    )
    print(f"  vibe latency p50 {vibe_p50:.0f} ms, p99 {vibe_p99:.0f} ms")
    print(
        f"  webhooks during the storm: {result['hooks']}, >= 500: {result['hook_errors']}, "
        f"p50 {hook_p50:.1f} ms, p99 {hook_p99:.1f} ms (target <= 50 ms, ratio {hook_p99 / 50:.2f})"
    )
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vibes", type=int, default=100)
    parser.add_argument("--webhooks-per-second", type=float, default=100.0)
    args = parser.parse_args()
    ok = True
    with temp_dir("haunt-fm-storm-") as tmp:
        model = _tiny_model(Path(tmp))
        data = Path(tmp) / "data"
        with running_service(
            {"HAUNTFM_CLAP_MODEL": str(model), "HAUNTFM_TORCH_THREADS": "1"}, data_dir=data
        ) as url:
            env = {k: v for k, v in os.environ.items() if not k.startswith("HAUNTFM_")} | {
                "HAUNTFM_DATA_DIR": str(data),
                "HAUNTFM_CLAP_MODEL": str(model),
                "HAUNTFM_TORCH_THREADS": "1",
                "HAUNTFM_LOG_LEVEL": "WARNING",
            }
            worker = subprocess.Popen(
                [str(Path(sys.executable).parent / "haunt-fm"), "worker"], env=env, stderr=subprocess.DEVNULL
            )
            try:
                asyncio.run(_wait_for_worker(url))
                ok &= _report(
                    "queue (serve without a model, a separate worker)",
                    asyncio.run(storm(url, vibes=args.vibes, webhooks_per_second=args.webhooks_per_second)),
                )
            finally:
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=60)
        with running_service(
            {
                "HAUNTFM_CLAP_MODEL": str(model),
                "HAUNTFM_TORCH_THREADS": "1",
                "HAUNTFM_EMBEDDING_WORKER_ENABLED": "true",
            },
            data_dir=Path(tmp) / "data2",
        ) as url:
            asyncio.run(_wait_for_worker(url))
            ok &= _report(
                "in-process (serve runs the worker)",
                asyncio.run(storm(url, vibes=args.vibes, webhooks_per_second=args.webhooks_per_second)),
            )
    print("result:", "on target" if ok else "MISSED")


if __name__ == "__main__":
    main()
