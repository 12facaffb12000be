"""ONNX Runtime for the CLAP audio tower: cached exports, the fidelity gate, and `auto`'s choice.

The audio tower (mel features -> projected 512-d RAW window embedding, exactly what
`ClapEmbedder.window_embeddings` computes with PyTorch) is exported once per model to ONNX,
quantised to dynamic int8 for `onnx-int8`, and kept in `<model cache>/onnx/<key>/`, where
the key names the model id, its revision (hub commit or a hash of the local weight files)
and the onnxruntime and torch versions. `runtime.json` there records, per file: its
SHA-256, the fidelity gate's verdict on exactly those bytes, and `auto`'s timing with the
CPU it was measured on. A file whose bytes have no verdict is verified again before use;
a timing from another CPU or thread count is measured again.

The fidelity gate embeds a fixed synthetic probe set (chords, noise bands, percussion, a
sweep, a square-wave arpeggio; 30 s = 3 windows each) with PyTorch fp32 and with the
exported file, and accepts the file only if every probe's pooled vector has cosine
>= 0.99 to PyTorch's, the mean is >= 0.995, and every probe keeps the same ranking of the
other probes (pairs of neighbours closer than 0.005 in similarity count as ties). A file
that fails is never used.

Nothing here imports torch: `model.py` hands in its exporter and its PyTorch tower as
callables (`prepare`), and runs `prepare` in a child process so that the export's memory
(about twice the model) never stays in the worker.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from haunt_fm.pipeline.embeddings.audio import SAMPLE_RATE
from haunt_fm.pipeline.embeddings.pooling import pool_windows

log = logging.getLogger(__name__)

TORCH = "torch"
ONNX = "onnx"
ONNX_INT8 = "onnx-int8"
AUTO = "auto"
RUNTIMES = (TORCH, ONNX, ONNX_INT8)
# The fallback chain: a runtime that can't be used is replaced by the next one.
FALLBACK = (ONNX_INT8, ONNX, TORCH)

FILES = {ONNX: "audio_tower_fp32.onnx", ONNX_INT8: "audio_tower_int8_dynamic.onnx"}
QUANTISATION = {
    ONNX: "none (fp32)",
    ONNX_INT8: "dynamic int8 (QInt8 weights per output channel, activations per tensor at run time)",
}
MANIFEST = "runtime.json"

GATE_MIN_COSINE = 0.99
GATE_MIN_MEAN_COSINE = 0.995
# Two neighbours whose PyTorch similarities to a probe differ by less than this are a tie at
# the precision the gate accepts (a mean cosine of 0.995 moves similarities by more): their
# order is not checked. With random full-size weights two probes' similarities to the chord
# probe differ by 3e-5, and int8 reorders them depending on the pass size.
GATE_NEIGHBOUR_MARGIN = 1 - GATE_MIN_MEAN_COSINE
# Bump when the probes or the criteria change: verdicts from another version are redone.
GATE_VERSION = 2
PROBE_SECONDS = 30  # 3 windows each, like a preview
PROBE_SEED = 17
# auto's timing: a few seconds of windows per candidate, in rounds that alternate between
# candidates so that a burst of load elsewhere on the machine hits them all alike.
MEASURE_WINDOWS = 6
MEASURE_MIN_SECONDS = 2.0
MEASURE_MIN_ROUNDS = 2
MEASURE_MAX_ROUNDS = 6
# Another worker on this machine exporting the same model: wait for it rather than export twice.
LOCK_TIMEOUT_SECONDS = 1800.0

# (input_features (n, 1, frames, mels) float32, is_longer (n, 1) bool) -> raw embeddings (n, 512)
AudioTower = Callable[[np.ndarray, np.ndarray], np.ndarray]


# --- probes and the gate ------------------------------------------------------------------------


def probe_set() -> dict[str, np.ndarray]:
    """The fixed synthetic probes (48 kHz mono float32, 30 s each), in a fixed order."""
    n = PROBE_SECONDS * SAMPLE_RATE
    t = np.arange(n) / SAMPLE_RATE
    rng = np.random.default_rng(PROBE_SEED)

    def band(lo: float, hi: float) -> np.ndarray:
        spectrum = np.fft.rfft(rng.standard_normal(n))
        freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
        spectrum[(freqs < lo) | (freqs > hi)] = 0
        return np.fft.irfft(spectrum, n)

    chord = sum(
        sum(np.sin(2 * np.pi * k * f * t) / k for k in range(1, 5)) for f in (220.0, 277.18, 329.63)
    ) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.25 * t))
    beat = t % 0.5
    hat = t % 0.25
    percussion = (
        np.exp(-beat / 0.08) * np.sin(2 * np.pi * 55 * beat)
        + 0.3 * np.exp(-hat / 0.01) * band(5000, 12000) / 30
    )
    period, f0, f1 = 5.0, 100.0, 8000.0
    tau = t % period
    k = np.log(f1 / f0)
    sweep = np.sin(2 * np.pi * f0 * period / k * (np.exp(k * tau / period) - 1))
    notes = np.array([220.0, 261.63, 329.63, 392.0])[(t // 0.25).astype(int) % 4]
    arpeggio = np.sign(np.sin(2 * np.pi * np.cumsum(notes) / SAMPLE_RATE))
    probes = {
        "sine chord": chord,
        "low noise band": band(60, 250),
        "high noise band": band(4000, 10000),
        "percussion": percussion,
        "sweep": sweep,
        "square arpeggio": arpeggio,
    }
    return {name: (0.5 * x / np.max(np.abs(x))).astype(np.float32) for name, x in probes.items()}


@dataclass(frozen=True)
class ProbeInputs:
    """The probe set as model inputs: features of every window, and windows per probe."""

    names: list[str]
    counts: list[int]
    input_features: np.ndarray
    is_longer: np.ndarray

    def vectors(self, tower: AudioTower, *, batch_windows: int) -> np.ndarray:
        """Pooled unit vectors of the probes through `tower`, in passes of `batch_windows`."""
        raw = [
            tower(self.input_features[i : i + batch_windows], self.is_longer[i : i + batch_windows])
            for i in range(0, len(self.input_features), batch_windows)
        ]
        return pool_windows(np.concatenate(raw).astype(np.float32, copy=False), self.counts)


@dataclass(frozen=True)
class Gate:
    """The fidelity gate's verdict on one exported file."""

    passed: bool
    min_cosine: float
    mean_cosine: float
    neighbours_preserved: bool
    cosines: dict[str, float]
    sha256: str = ""

    def summary(self) -> str:
        order = "kept" if self.neighbours_preserved else "CHANGED"
        return (
            f"min cosine {self.min_cosine:.4f} (needs {GATE_MIN_COSINE}), mean {self.mean_cosine:.4f} "
            f"(needs {GATE_MIN_MEAN_COSINE}), probe neighbour order {order}"
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Gate:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def fidelity_gate(reference: np.ndarray, candidate: np.ndarray, names: Sequence[str]) -> Gate:
    """Compare the probes' unit vectors from PyTorch (`reference`) with an exported model's."""
    cosines = np.sum(reference * candidate, axis=1)
    ref_sims, cand_sims = reference @ reference.T, candidate @ candidate.T
    preserved = True
    for i in range(len(names)):
        for j in range(len(names)):
            for k in range(len(names)):
                # Probe i ranks j above k by a clear margin: the candidate must too.
                if i not in (j, k) and ref_sims[i, j] - ref_sims[i, k] > GATE_NEIGHBOUR_MARGIN:
                    preserved &= bool(cand_sims[i, j] > cand_sims[i, k])
    lo, mean = float(cosines.min()), float(cosines.mean())
    ok = bool(np.all(np.isfinite(cosines))) and lo >= GATE_MIN_COSINE and mean >= GATE_MIN_MEAN_COSINE
    return Gate(
        passed=bool(ok and preserved),
        min_cosine=lo,
        mean_cosine=mean,
        neighbours_preserved=bool(preserved),
        cosines={name: round(float(c), 6) for name, c in zip(names, cosines, strict=True)},
    )


# --- ONNX Runtime -------------------------------------------------------------------------------


class OnnxAudioTower:
    """An ONNX Runtime session of the exported audio tower, callable like the PyTorch one.

    `threads` intra-op threads, one inter-op thread, and no spin-waiting: idle pool threads
    would otherwise burn the cores the worker's decode thread needs between passes. No
    memory pattern: ONNX Runtime would keep one preallocated block per input shape it has
    seen (passes of 6 and a tail of 3 are two), which nearly doubled peak RSS at full size;
    the arena alone keeps the speed. `run` is thread-safe; the embedder still serialises calls.
    """

    def __init__(self, path: Path, *, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.enable_mem_pattern = False
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self.path = path
        self.threads = threads
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        # The exporter drops `is_longer` when the graph doesn't use it (unfused checkpoints).
        self._inputs = {i.name for i in self._session.get_inputs()}

    def __call__(self, input_features: np.ndarray, is_longer: np.ndarray) -> np.ndarray:
        feeds: dict[str, np.ndarray] = {"input_features": np.ascontiguousarray(input_features, np.float32)}
        if "is_longer" in self._inputs:
            feeds["is_longer"] = np.ascontiguousarray(is_longer, np.bool_)
        out = self._session.run(["embedding"], feeds)[0]
        return np.asarray(out, dtype=np.float32)


def quantise_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantisation of an fp32 ONNX file (weights per channel)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its "consider pre-processing" advice on the root logger
    try:
        quantize_dynamic(source, target, weight_type=QuantType.QInt8, per_channel=True)
    finally:
        root.setLevel(level)


# --- cache --------------------------------------------------------------------------------------


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def cpu_fingerprint() -> str:
    """What auto's timing depends on besides threads: the CPU model, its flags' SIMD level, cores."""
    model, flags = platform.processor() or platform.machine(), ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("", platform.machine(), platform.processor()):
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                have = set(value.split())
                flags = "+".join(
                    f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in have
                )
    return f"{model} [{flags or platform.machine()}] x{os.cpu_count() or 1}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")[-60:] or "model"


@dataclass
class RuntimeCache:
    """One model's exported audio towers and `runtime.json`, under `<root>/onnx/<key>/`."""

    root: Path
    model_id: str
    revision: str
    versions: dict[str, str] = field(
        default_factory=lambda: {
            "onnxruntime": package_version("onnxruntime"),
            "torch": package_version("torch"),
        }
    )

    @property
    def dir(self) -> Path:
        v = self.versions
        name = f"{_slug(self.model_id)}-{self.revision[:16]}-ort{v['onnxruntime']}-torch{v['torch']}"
        return self.root / "onnx" / _slug(name)

    def path(self, runtime: str) -> Path:
        return self.dir / FILES[runtime]

    def read(self) -> dict[str, Any]:
        try:
            data = json.loads((self.dir / MANIFEST).read_text())
        except (OSError, ValueError):
            data = {}
        if not isinstance(data, dict) or data.get("revision") != self.revision:
            data = {}
        data.setdefault("model_id", self.model_id)
        data.setdefault("revision", self.revision)
        data.setdefault("versions", self.versions)
        data.setdefault("runtimes", {})
        return data

    def write(self, manifest: Mapping[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{MANIFEST}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True))
        os.replace(tmp, self.dir / MANIFEST)

    @contextlib.contextmanager
    def locked(self, timeout: float = LOCK_TIMEOUT_SECONDS) -> Iterator[None]:
        """Exclusive use of this directory across processes (two workers starting at once)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.dir / ".lock"), timeout=timeout):
            yield

    def hashes(self, runtimes: Sequence[str]) -> dict[str, str | None]:
        """The SHA-256 of each runtime's file as it is on disk now (None when absent)."""
        return {rt: sha256_file(self.path(rt)) if self.path(rt).is_file() else None for rt in runtimes}


def onnx_runtimes_for(requested: str) -> tuple[str, ...]:
    """The exported files a request needs verified: its own and the ones it may fall back to."""
    if requested == ONNX:
        return (ONNX,)
    if requested in (ONNX_INT8, AUTO):
        return (ONNX, ONNX_INT8)
    return ()


def _verdict(manifest: Mapping[str, Any], runtime: str, sha: str | None) -> Gate | str | None:
    """The gate for the file's current bytes; an error string when it can't exist; None: not known."""
    entry = manifest.get("runtimes", {}).get(runtime) or {}
    if entry.get("error"):
        return str(entry["error"])
    gate = entry.get("gate")
    if sha is None or not gate or gate.get("sha256") != sha or gate.get("version") != GATE_VERSION:
        return None
    return Gate.from_dict(gate)


def _passed(manifest: Mapping[str, Any], hashes: Mapping[str, str | None]) -> list[str]:
    """The runtimes whose current bytes passed the gate."""
    verdicts = {rt: _verdict(manifest, rt, sha) for rt, sha in hashes.items()}
    return [rt for rt, v in verdicts.items() if isinstance(v, Gate) and v.passed]


def _measurement_current(manifest: Mapping[str, Any], hashes: Mapping[str, str | None], threads: int) -> bool:
    m = manifest.get("measurement") or {}
    candidates = sorted([TORCH, *_passed(manifest, hashes)])
    return (
        m.get("cpu") == cpu_fingerprint()
        and m.get("threads") == threads
        and sorted(m.get("seconds_per_window", {})) == candidates
    )


def is_ready(
    manifest: Mapping[str, Any], hashes: Mapping[str, str | None], *, measure: bool, threads: int
) -> bool:
    """Whether every needed file has a verdict on its current bytes (and auto a current timing)."""
    if any(_verdict(manifest, rt, sha) is None for rt, sha in hashes.items()):
        return False
    return not measure or _measurement_current(manifest, hashes, threads)


# --- preparing (in a child process) ---------------------------------------------------------------


def _atomic(target: Path, make: Callable[[Path], None]) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        make(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def error_text(exc: BaseException) -> str:
    """One line naming an exception, for verdicts and status."""
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"[:500]


def prepare(
    cache: RuntimeCache,
    *,
    runtimes: Sequence[str],
    measure: bool,
    threads: int,
    torch_tower: AudioTower,
    probes: ProbeInputs,
    export: Callable[[Path], None],
    batch_windows: int,
) -> dict[str, Any]:
    """Export, quantise, gate and (for auto) time what `runtimes` need; returns the manifest.

    Idempotent: existing files are kept, a verdict is computed only for bytes without one,
    and the timing only when the CPU, the thread count or the candidates changed.
    """
    manifest = cache.read()
    entries: dict[str, dict[str, Any]] = manifest["runtimes"]
    cache.dir.mkdir(parents=True, exist_ok=True)
    # Called under the directory's lock, so no one else writes here: a temporary file is what an
    # export stopped midway left behind (its worker stopped; up to the model's size).
    for stale in cache.dir.glob(".*.tmp"):
        stale.unlink(missing_ok=True)

    def build(runtime: str, make: Callable[[Path], None]) -> None:
        entry = entries.setdefault(runtime, {})
        if cache.path(runtime).is_file() or entry.get("error"):
            return
        t0 = time.perf_counter()
        try:
            _atomic(cache.path(runtime), make)
        except Exception as exc:  # an exporter or quantiser bug: record it, don't retry every start
            log.warning("could not build the %s audio tower: %s", runtime, exc, exc_info=True)
            entry["error"] = f"building the {runtime} file failed: {error_text(exc)}"
            return
        entry.update(
            file=FILES[runtime],
            quantisation=QUANTISATION[runtime],
            build_seconds=round(time.perf_counter() - t0, 2),
            built_at=datetime.now(UTC).isoformat(timespec="seconds"),
            bytes=cache.path(runtime).stat().st_size,
        )
        entry.pop("gate", None)
        cache.write(manifest)

    build(ONNX, export)  # int8 is quantised from the fp32 file, so it is always needed
    if ONNX_INT8 in runtimes:
        if cache.path(ONNX).is_file():
            build(ONNX_INT8, lambda tmp: quantise_int8(cache.path(ONNX), tmp))
        elif not cache.path(ONNX_INT8).is_file():
            entries.setdefault(ONNX_INT8, {})["error"] = entries[ONNX].get(
                "error", "no fp32 file to quantise"
            )

    reference: np.ndarray | None = None
    hashes = cache.hashes(runtimes)
    for runtime in runtimes:
        sha = hashes[runtime]
        if sha is None or _verdict(manifest, runtime, sha) is not None:
            continue
        if reference is None:
            reference = probes.vectors(torch_tower, batch_windows=batch_windows)
        try:
            candidate = probes.vectors(
                OnnxAudioTower(cache.path(runtime), threads=threads), batch_windows=batch_windows
            )
            gate = fidelity_gate(reference, candidate, probes.names)
        except Exception as exc:  # an unloadable or broken file fails the gate
            gate = Gate(passed=False, min_cosine=0.0, mean_cosine=0.0, neighbours_preserved=False, cosines={})
            entries[runtime]["gate_error"] = error_text(exc)
        entries[runtime]["gate"] = {**asdict(gate), "sha256": sha, "version": GATE_VERSION}
        log.info(
            "%s audio tower: fidelity gate %s: %s",
            runtime,
            "passed" if gate.passed else "FAILED",
            gate.summary(),
        )
        cache.write(manifest)

    if measure and not _measurement_current(manifest, hashes, threads):
        towers: dict[str, AudioTower] = {TORCH: torch_tower}
        for runtime in _passed(manifest, hashes):
            towers[runtime] = OnnxAudioTower(cache.path(runtime), threads=threads)
        seconds = measure_towers(
            towers, probes.input_features[:MEASURE_WINDOWS], probes.is_longer[:MEASURE_WINDOWS]
        )
        manifest["measurement"] = {
            "cpu": cpu_fingerprint(),
            "threads": threads,
            "windows_per_pass": min(MEASURE_WINDOWS, len(probes.input_features)),
            "seconds_per_window": {rt: round(s, 5) for rt, s in seconds.items()},
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        cache.write(manifest)
    return manifest


def measure_towers(
    towers: Mapping[str, AudioTower], input_features: np.ndarray, is_longer: np.ndarray
) -> dict[str, float]:
    """Best seconds per window of each tower, timed in alternating rounds after a warm-up."""
    best = dict.fromkeys(towers, float("inf"))
    spent = dict.fromkeys(towers, 0.0)
    for tower in towers.values():
        tower(input_features, is_longer)  # first run: allocations, kernel selection
    rounds = 0
    while rounds < MEASURE_MIN_ROUNDS or (
        rounds < MEASURE_MAX_ROUNDS and min(spent.values()) < MEASURE_MIN_SECONDS
    ):
        for name, tower in towers.items():
            t0 = time.perf_counter()
            tower(input_features, is_longer)
            elapsed = time.perf_counter() - t0
            spent[name] += elapsed
            best[name] = min(best[name], elapsed / len(input_features))
        rounds += 1
    return best


# --- choosing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """Which runtime runs, and why (for logs, the heartbeat and /api/status)."""

    runtime: str
    reason: str
    details: dict[str, Any]


def _refusal(runtime: str, verdict: Gate | str | None) -> str:
    if isinstance(verdict, Gate):
        return f"{runtime} failed the fidelity gate ({verdict.summary()})"
    if isinstance(verdict, str):
        return f"{runtime} is unavailable ({verdict})"
    return f"{runtime} could not be verified"


def choose(
    requested: str, manifest: Mapping[str, Any], hashes: Mapping[str, str | None], *, threads: int
) -> Choice:
    """The runtime to run for `requested`, given what the cache knows about the files on disk."""
    verdicts = {rt: _verdict(manifest, rt, sha) for rt, sha in hashes.items()}
    usable = _passed(manifest, hashes)
    refused = [_refusal(rt, verdicts[rt]) for rt in FALLBACK if rt in verdicts and rt not in usable]
    details: dict[str, Any] = {
        "requested": requested,
        "gate": {
            rt: (asdict(v) if isinstance(v, Gate) else {"passed": False, "error": v or "not verified"})
            for rt, v in verdicts.items()
        },
    }
    measurement = manifest.get("measurement") or {}
    if requested == AUTO:
        timing = measurement.get("seconds_per_window") or {}
        candidates = [rt for rt in (*usable, TORCH) if rt in timing]
        details["seconds_per_window"] = timing
        details["measured_on"] = {k: measurement.get(k) for k in ("cpu", "threads", "measured_at")}
        if not candidates:
            runtime = TORCH
            why = "auto: no timing available, so torch"
        else:
            runtime = min(candidates, key=lambda rt: timing[rt])
            others = ", ".join(f"{rt} {timing[rt]:.3f}" for rt in candidates if rt != runtime)
            why = (
                f"auto: {runtime} is the fastest runtime that passed the fidelity gate, "
                f"{timing[runtime]:.3f} s/window{f' (vs {others})' if others else ''} on "
                f"{measurement.get('cpu')} with {measurement.get('threads')} threads"
            )
    else:
        chain = FALLBACK[FALLBACK.index(requested) :] if requested in FALLBACK else (TORCH,)
        runtime = next(rt for rt in chain if rt == TORCH or rt in usable)
        why = f"HAUNTFM_EMBEDDING_RUNTIME={requested}"
        if runtime != requested:
            why += f", but {_refusal(requested, verdicts.get(requested))}; falling back to {runtime}"
    if runtime in usable:
        why += f"; {runtime} gate: {verdicts[runtime].summary()}"  # type: ignore[union-attr]
    if refused and (requested == AUTO or runtime != requested):
        why += "; refused: " + "; ".join(refused)
    details.update(runtime=runtime, reason=why)
    return Choice(runtime=runtime, reason=why, details=details)


def torch_only(requested: str, reason: str) -> Choice:
    """The choice when no ONNX runtime could even be prepared."""
    why = f"{'auto' if requested == AUTO else f'HAUNTFM_EMBEDDING_RUNTIME={requested}'}: {reason}"
    if requested != TORCH:
        why += "; falling back to torch"
    return Choice(TORCH, why, {"requested": requested, "runtime": TORCH, "reason": why})
