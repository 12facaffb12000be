"""HTTP limits under attack: slow or oversized-header connections against `/health` and RSS.

Before the limits, 100 connections each sending an unfinished 8 MiB header took `serve` from
116 to 959 MiB, and slow headers and bodies were never cut off. This starts a real
`haunt-fm serve` on the embedded database (its HTTP limits from HAUNTFM_HTTP_*, defaults
unless `--env` says otherwise) and runs three attacks, each `--connections` concurrent raw
sockets for `--seconds`; a connection the server ends is replaced after `--reconnect-delay`:

- `header`: a request whose header never ends, `--header-mib` MiB of it streamed in 64 KiB
  chunks as fast as the server reads (expected: 431 at the header cap; as the client is still
  sending, the server's close resets the connection, which mostly discards the 431 before
  the client reads it: "reset" there is the same cut);
- `slowloris`: header bytes dribbled one every `--dribble-seconds`, never finishing
  (expected: 408 at the header timeout, which counts from the connection's start);
- `slow-body`: a webhook POST with a `--body-bytes` Content-Length whose body is dribbled one
  byte every `--dribble-seconds` until the phase ends, then stalls (expected: held while bytes
  keep coming, since the body timeout is per stall; 408 one body timeout after the last byte).

After each phase the attackers start no new connections and the server is given its timeout
plus 5 s to end the open ones. Throughout, a normal client opens a new connection every
`--probe-interval` for `GET /health`; a probe fails on anything but 200 within
`--probe-timeout`. `serve`'s RSS (its process and any children, from /proc) is sampled
every 50 ms: before, peak and 2 s after each phase. The embedded PostgreSQL's processes are
shown beside it for reference (it is pg_ctl's daemon, not `serve`'s child).

Targets: RSS peak - before <= 100 MB; 0 failed /health probes and p99 <= 100 ms in every phase.

    .venv/bin/python bench/http_limits.py [--connections 100] [--header-mib 8] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import percentile, serve_process, temp_dir

from haunt_fm.config import Settings

RSS_TARGET_MB = 100.0
HEALTH_P99_TARGET_MS = 100.0
MIB = 1024 * 1024


# -- memory ------------------------------------------------------------------------------------
def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0  # gone, or a zombie (no VmRSS line)


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        # The command name may hold spaces and parentheses: the fields after its last ")" don't.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _tree(root: int, children: dict[int, list[int]]) -> list[int]:
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


class MemorySampler(threading.Thread):
    """RSS of the `serve` process tree and of the database's, every `interval` seconds."""

    def __init__(self, serve_pid: int, data_dir: Path, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.serve_pid, self.data_dir, self.interval = serve_pid, data_dir, interval
        self.samples: list[tuple[float, int, int]] = []  # (monotonic, serve KiB, postgres KiB)
        self.stop = threading.Event()

    def _postmaster(self) -> int | None:
        for pidfile in self.data_dir.rglob("postmaster.pid"):
            return int(pidfile.read_text().split()[0])
        return None

    def run(self) -> None:
        postmaster = self._postmaster()
        serve: list[int] = []
        database: list[int] = []
        refreshed = 0.0
        while not self.stop.is_set():
            now = time.monotonic()
            if now - refreshed > 1.0:  # the pool opens and closes backends now and then
                children = _children()
                database = _tree(postmaster, children) if postmaster else []
                serve = [pid for pid in _tree(self.serve_pid, children) if pid not in database]
                refreshed = now
            self.samples.append(
                (now, sum(_rss_kib(pid) for pid in serve), sum(_rss_kib(pid) for pid in database))
            )
            self.stop.wait(self.interval)

    def at(self, moment: float) -> tuple[int, int]:
        """The last sample taken at or before `moment`."""
        before = [s for s in self.samples if s[0] <= moment]
        _, serve, database = before[-1] if before else self.samples[0]
        return serve, database

    def peak(self, start: float, end: float) -> tuple[int, int]:
        window = [s for s in self.samples if start <= s[0] <= end]
        return max(s[1] for s in window), max(s[2] for s in window)


# -- /health probes ----------------------------------------------------------------------------
class HealthProbe(threading.Thread):
    """`GET /health` on a new connection every `interval` seconds, as a monitor would."""

    def __init__(self, url: str, *, interval: float, timeout: float) -> None:
        super().__init__(daemon=True)
        self.url, self.interval, self.timeout = url, interval, timeout
        self.samples: list[tuple[float, float, str]] = []  # (monotonic, seconds, "ok" or why not)
        self.stop = threading.Event()

    def run(self) -> None:
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(timeout=self.timeout, limits=limits) as http:
            while not self.stop.is_set():
                started = time.monotonic()
                t0 = time.perf_counter()
                try:
                    status = http.get(self.url + "/health").status_code
                    outcome = "ok" if status == 200 else f"HTTP {status}"
                except httpx.TimeoutException:
                    outcome = "timed out"
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                self.samples.append((started, time.perf_counter() - t0, outcome))
                self.stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def window(self, start: float, end: float) -> list[tuple[float, float, str]]:
        return [s for s in self.samples if start <= s[0] <= end]


# -- attackers ---------------------------------------------------------------------------------
@dataclass
class Attempt:
    outcome: str  # "431", "408", ... (what the server answered), "reset", "closed", "open at the end"
    seconds: float  # from connecting to the end
    idle: float  # from the last byte sent to the end
    sent: int


@dataclass
class Sending:
    sent: int = 0
    last: float = field(default_factory=time.monotonic)

    async def write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        await writer.drain()
        self.sent += len(data)
        self.last = time.monotonic()


Plan = Callable[[asyncio.StreamWriter, Sending, float], Awaitable[None]]


def header_plan(mib: int) -> Plan:
    async def plan(writer: asyncio.StreamWriter, out: Sending, stop: float) -> None:
        await out.write(writer, b"GET /health HTTP/1.1\r\nHost: bench\r\nX-Big: ")
        chunk = b"a" * 65536
        while out.sent < mib * MIB:
            await out.write(writer, chunk)
        # ... and the header never ends.

    return plan


def slowloris_plan(every: float) -> Plan:
    async def plan(writer: asyncio.StreamWriter, out: Sending, stop: float) -> None:
        await out.write(writer, b"GET /health HTTP/1.1\r\nHost: bench\r\nX-Slow: ")
        while True:  # until the server ends it: the header timeout counts from the start
            await asyncio.sleep(every)
            await out.write(writer, b"a")

    return plan


def slow_body_plan(every: float, length: int) -> Plan:
    async def plan(writer: asyncio.StreamWriter, out: Sending, stop: float) -> None:
        await out.write(
            writer,
            b"POST /api/history/webhook HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n{" % length,
        )
        while time.monotonic() + every < stop:
            await asyncio.sleep(every)
            await out.write(writer, b" ")
        # ... then it stalls: the body timeout counts from here.

    return plan


async def _attempt(port: int, plan: Plan, *, stop: float, give_up: float) -> Attempt:
    opened = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        return Attempt(f"connect failed ({type(exc).__name__})", 0.0, 0.0, 0)
    out = Sending()
    answer = bytearray()

    async def read() -> str:
        try:
            while chunk := await reader.read(65536):
                answer.extend(chunk[: 64 - len(answer)])
            return "closed"
        except ConnectionError:
            return "reset"

    async def send() -> None:
        try:
            await plan(writer, out, stop)
        except ConnectionError:
            pass  # the server closed it; the reader says how

    reading = asyncio.create_task(read())
    sending = asyncio.create_task(send())
    try:
        how = await asyncio.wait_for(asyncio.shield(reading), timeout=max(0.0, give_up - time.monotonic()))
    except TimeoutError:
        how = "open at the end"
    ended = time.monotonic()
    sending.cancel()
    reading.cancel()
    writer.close()
    if answer.startswith(b"HTTP/1.1 "):
        how = answer.split(b" ", 2)[1].decode()
    return Attempt(how, ended - opened, ended - out.last, out.sent)


async def attack(
    port: int, plan: Plan, *, connections: int, seconds: float, tail: float, reconnect_delay: float
) -> tuple[list[Attempt], float]:
    """`connections` attackers for `seconds`, then up to `tail` more for the server to end them."""
    stop = time.monotonic() + seconds
    give_up = stop + tail
    attempts: list[Attempt] = []

    async def attacker() -> None:
        while time.monotonic() < stop:
            attempts.append(await _attempt(port, plan, stop=stop, give_up=give_up))
            await asyncio.sleep(reconnect_delay)

    await asyncio.gather(*(attacker() for _ in range(connections)))
    return attempts, time.monotonic()


# -- report ------------------------------------------------------------------------------------
def _mib(kib: int) -> float:
    return kib / 1024


def _size(n: float) -> str:
    return f"{n / 1024:,.0f} KiB" if n >= 10 * 1024 else f"{n:,.0f} bytes"


def _ms(seconds: float) -> float:
    return seconds * 1000


def health_figures(samples: list[tuple[float, float, str]]) -> tuple[int, int, float, float, float]:
    """(probes, failed, p50 ms, p99 ms, max ms) over all probes, failed ones at their duration."""
    latencies = [s[1] for s in samples]
    failed = sum(1 for s in samples if s[2] != "ok")
    return (
        len(samples),
        failed,
        _ms(percentile(latencies, 50)),
        _ms(percentile(latencies, 99)),
        _ms(max(latencies, default=float("nan"))),
    )


def report_phase(
    name: str,
    attempts: list[Attempt],
    *,
    memory: MemorySampler,
    probe: HealthProbe,
    start: float,
    end: float,
    settled: float,
    quiet_p99: float,
) -> bool:
    by_outcome = Counter(a.outcome for a in attempts)
    ends = []
    for outcome, n in by_outcome.most_common():
        mine = [a for a in attempts if a.outcome == outcome]
        ends.append(
            f"{outcome} x{n:,} (median {statistics.median(a.seconds for a in mine):.2f} s after connecting, "
            f"{statistics.median(a.idle for a in mine):.2f} s after its last byte; "
            f"median {_size(statistics.median(a.sent for a in mine))} sent)"
        )
    serve_before, pg_before = memory.at(start)
    serve_peak, pg_peak = memory.peak(start, end)
    serve_after, pg_after = memory.at(settled)
    growth_mb = (serve_peak - serve_before) * 1024 / 1e6
    probes, failed, p50, p99, top = health_figures(probe.window(start, end))
    reasons = Counter(s[2] for s in probe.window(start, end) if s[2] != "ok")
    left_open = by_outcome.get("open at the end", 0)
    ok = growth_mb <= RSS_TARGET_MB and failed == 0 and p99 <= HEALTH_P99_TARGET_MS and left_open == 0
    print(f"{name}: {len(attempts):,} connections in {end - start:.1f} s")
    print("  ended: " + ";\n         ".join(ends))
    print(
        f"  serve RSS: before {_mib(serve_before):.1f} MiB, peak {_mib(serve_peak):.1f}, "
        f"after {_mib(serve_after):.1f}; growth {growth_mb:+.1f} MB "
        f"(target <= {RSS_TARGET_MB:.0f} MB, ratio {max(0.0, growth_mb) / RSS_TARGET_MB:.2f})"
    )
    print(
        f"  postgres RSS (all its processes, reference): before {_mib(pg_before):.1f} MiB, "
        f"peak {_mib(pg_peak):.1f}, after {_mib(pg_after):.1f}"
    )
    print(
        f"  /health: {probes} probes, failed {failed} (target 0){f' {dict(reasons)}' if reasons else ''}; "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {top:.1f} ms "
        f"(target p99 <= {HEALTH_P99_TARGET_MS:.0f} ms, ratio {p99 / HEALTH_P99_TARGET_MS:.2f}; "
        f"{p99 / quiet_p99:.1f}x the quiet p99)"
    )
    print(f"  load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--header-mib", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0, help="of attack per phase")
    parser.add_argument("--dribble-seconds", type=float, default=1.0)
    parser.add_argument("--body-bytes", type=int, default=60_000, help="under the 64 KiB body cap")
    parser.add_argument("--reconnect-delay", type=float, default=1.0)
    parser.add_argument("--probe-interval", type=float, default=0.1)
    parser.add_argument("--probe-timeout", type=float, default=2.0)
    parser.add_argument(
        "--quiet-seconds", type=float, default=5.0, help="of /health probes before any attack"
    )
    parser.add_argument(
        "--phases", default="header,slowloris,slow-body", help="comma-separated: header,slowloris,slow-body"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for serve (repeatable)",
    )
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    limits = Settings.model_fields
    header_timeout = float(
        env.get("HAUNTFM_HTTP_HEADER_TIMEOUT_SECONDS", limits["http_header_timeout_seconds"].default)
    )
    body_timeout = float(
        env.get("HAUNTFM_HTTP_BODY_TIMEOUT_SECONDS", limits["http_body_timeout_seconds"].default)
    )
    plans: dict[str, tuple[str, Plan, float]] = {
        "header": (
            f"header ({args.header_mib} MiB unfinished header per connection)",
            header_plan(args.header_mib),
            header_timeout,
        ),
        "slowloris": (
            f"slowloris (a header byte every {args.dribble_seconds:g} s, never finished)",
            slowloris_plan(args.dribble_seconds),
            header_timeout,
        ),
        "slow-body": (
            f"slow-body (webhook POST, Content-Length {args.body_bytes:,}, a body byte every "
            f"{args.dribble_seconds:g} s, then a stall)",
            slow_body_plan(args.dribble_seconds, args.body_bytes),
            body_timeout,
        ),
    }
    began = time.monotonic()
    print(
        f"{os.cpu_count()} CPUs; load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}; "
        f"{args.connections} connections per phase for {args.seconds:g} s; "
        f"serve settings {env or 'defaults'} "
        f"(header timeout {header_timeout:g} s, body timeout {body_timeout:g} s)"
    )
    ok = True
    with temp_dir("haunt-fm-limits-") as tmp:
        data = Path(tmp) / "data"
        with serve_process(env, data_dir=data) as (url, proc):
            port = int(url.rsplit(":", 1)[1])
            memory = MemorySampler(proc.pid, data)
            probe = HealthProbe(url, interval=args.probe_interval, timeout=args.probe_timeout)
            memory.start()
            probe.start()
            try:
                start = time.monotonic()
                time.sleep(args.quiet_seconds)
                _, quiet_failed, quiet_p50, quiet_p99, quiet_max = health_figures(
                    probe.window(start, time.monotonic())
                )
                serve_kib, pg_kib = memory.at(time.monotonic())
                print(
                    f"quiet: serve RSS {_mib(serve_kib):.1f} MiB, postgres {_mib(pg_kib):.1f} MiB; "
                    f"/health p50 {quiet_p50:.1f} ms, p99 {quiet_p99:.1f} ms, max {quiet_max:.1f} ms, "
                    f"failed {quiet_failed}"
                )
                for key in args.phases.split(","):
                    name, plan, timeout = plans[key]
                    start = time.monotonic()
                    attempts, end = asyncio.run(
                        attack(
                            port,
                            plan,
                            connections=args.connections,
                            seconds=args.seconds,
                            tail=timeout + 5,
                            reconnect_delay=args.reconnect_delay,
                        )
                    )
                    time.sleep(2.0)  # for "after": the server has dropped what it held
                    ok &= report_phase(
                        name,
                        attempts,
                        memory=memory,
                        probe=probe,
                        start=start,
                        end=end,
                        settled=time.monotonic(),
                        quiet_p99=quiet_p99,
                    )
            finally:
                probe.stop.set()
                memory.stop.set()
                probe.join()
                memory.join()
    print(f"total {time.monotonic() - began:.0f} s; result:", "on target" if ok else "MISSED")


if __name__ == "__main__":
    main()
