"""CLAP embeddings: the only module that imports torch and transformers.

Audio: a 30 s preview (48 kHz mono float32, see `audio.decode_audio`) is cut into exact
10 s windows of 480,000 samples (`split_windows`); windows from all tracks of a batch go
through the feature extractor and the audio tower together; each window's RAW projected
embedding is kept, the windows of a track are mean-pooled, and the mean is L2-normalised.

What transformers gives us: in transformers 5.x `ClapModel.get_audio_features` returns a
`BaseModelOutputWithPooling` whose `pooler_output` is `F.normalize(audio_projection(
audio_model(...).pooler_output))` (4.x returned that same normalised tensor directly).
Averaging unit vectors would discard each window's magnitude, so `window_embeddings`
runs those same two submodules (`audio_model`, then `audio_projection`) itself and stops
before the normalisation; the tests check that normalising its output reproduces
`get_audio_features`. Text goes the same way (`text_model`, `text_projection`, then
L2-normalise), always through the SAME checkpoint as the audio: two separately trained
CLAP models do not share a vector space, so a text vector of one is noise against the
audio vectors of the other.

The audio tower runs on PyTorch or, when `runtime` asks for it, on ONNX Runtime (fp32 or
dynamic int8): `onnx_runtime.py` keeps the exported files, the fidelity gate and the
timing; this module exports (in a child process, so the export's memory never stays in
the worker), picks, and calls whichever tower was chosen through the same
`(input_features, is_longer) -> raw embeddings` interface. Text always runs on PyTorch.

Everything here is synchronous and CPU-bound: the worker calls it from a thread
(`asyncio.to_thread` or its own inference thread), never on the event loop. One lock per
embedder serialises inference, so a vibe-text request arriving mid-batch waits instead
of oversubscribing the cores torch was told to use.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import itertools
import json
import logging
import math
import os
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import transformers
from transformers import ClapModel, ClapProcessor

from haunt_fm.db.base import EMBEDDING_DIM
from haunt_fm.pipeline.embeddings import onnx_runtime as rt
from haunt_fm.pipeline.embeddings.audio import SAMPLE_RATE
from haunt_fm.pipeline.embeddings.download import DownloadProgress
from haunt_fm.pipeline.embeddings.pooling import normalise, pool_windows

log = logging.getLogger(__name__)

# Bump whenever windowing, padding, pooling or normalisation changes: stored vectors
# with an older version are no longer comparable and get recomputed.
PIPELINE_VERSION = 1

WINDOW_SECONDS = 10
WINDOW_SAMPLES = WINDOW_SECONDS * SAMPLE_RATE  # 480,000: what CLAP sees, never more
# A trailing partial window shorter than this is dropped: 1-2 s of audio repeated to fill
# 10 s would weigh as much as a real window in the mean.
MIN_TAIL_SECONDS = 3.0
MIN_TAIL_SAMPLES = int(MIN_TAIL_SECONDS * SAMPLE_RATE)
# Short windows are repeated then zero-padded to 10 s, as LAION trained CLAP on short clips;
# plain zero-padding would mix "silence" into the embedding.
WINDOW_PADDING = "repeatpad"
# Windows per forward pass. At full size on CPU, throughput is flat from 3 to 12 windows per
# pass and lower at 30, while peak RSS grows ~40-55 MB per window (bench/embedding.py).
DEFAULT_WINDOW_BATCH = 12
# ONNX Runtime's int8 and fp32 towers are as fast per window in passes of 3 as of 12, while
# the activations they hold grow with the pass (bench/embedding.py): smaller passes there.
ONNX_WINDOW_BATCH = 6
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")

TEXT_TOWER_PROMPTS = (
    "heavy metal guitar",
    "calm piano lullaby",
    "upbeat dance pop",
    "jazz saxophone solo",
    "rain sounds",
)
TEXT_COLLAPSE_COSINE = 0.9
# A checkpoint whose text tower works (what the collapse advice names).
TEXT_HEALTHY_MODEL = "laion/larger_clap_general"


class ModelUnavailable(RuntimeError):
    """The CLAP model could not be loaded."""


class AudioInputs(NamedTuple):
    """Model inputs of several previews: mel features of every window, and windows per track."""

    input_features: np.ndarray  # (windows, 1, frames, mels) float32
    is_longer: np.ndarray  # (windows, 1) bool
    windows: list[int]


class AudioEmbeddings(NamedTuple):
    """Unit vectors (n, dim) and the number of 10 s windows behind each."""

    vectors: np.ndarray
    windows: list[int]


def default_torch_threads() -> int:
    """CPUs this process may use: its affinity, capped by a cgroup CPU quota (Docker --cpus); ≥ 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    with contextlib.suppress(OSError, ValueError):
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, math.ceil(int(quota) / int(period)))
    return max(1, cpus)


def split_windows(
    samples: np.ndarray, *, window: int = WINDOW_SAMPLES, min_tail: int = MIN_TAIL_SAMPLES
) -> list[np.ndarray]:
    """Cut mono audio into consecutive `window`-sample windows; a short tail is kept if ≥ `min_tail`."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1:
        raise ValueError(f"expected mono audio (1-D), got shape {samples.shape}")
    if samples.size == 0:
        raise ValueError("empty audio")
    if samples.size <= window:
        return [samples]  # a preview shorter than one window is one (padded) window
    windows = [samples[i : i + window] for i in range(0, samples.size, window)]
    if windows[-1].size < min_tail:
        windows.pop()
    return windows


def _batched(items: Sequence[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
    # Progress bars and loading reports clutter worker logs; missing keys are checked
    # explicitly instead.
    tf_logging = transformers.utils.logging
    verbosity = tf_logging.get_verbosity()
    bars = tf_logging.is_progress_bar_enabled()
    tf_logging.set_verbosity_error()
    tf_logging.disable_progress_bar()
    try:
        yield
    finally:
        tf_logging.set_verbosity(verbosity)
        if bars:
            tf_logging.enable_progress_bar()


def _source(model_id_or_path: str, env_var: str) -> tuple[str, bool]:
    """Return (what to pass to from_pretrained, whether it is a local directory)."""
    path = Path(model_id_or_path).expanduser()
    if path.is_dir():
        return str(path), True
    if path.is_absolute() or model_id_or_path.startswith((".", "~")) or path.exists():
        raise ModelUnavailable(
            f"{env_var}={model_id_or_path!r} looks like a local path, but no model directory is there: "
            "the weights could not be found. Point it at a directory saved with save_pretrained "
            "(ClapModel + ClapProcessor) or at a Hugging Face hub id."
        )
    return model_id_or_path, False


def _unavailable(env_var: str, model_id_or_path: str, local: bool, exc: BaseException) -> ModelUnavailable:
    where = (
        f"in the local directory {model_id_or_path!r}"
        if local
        else "from the Hugging Face hub or in the model cache (no network here?)"
    )
    return ModelUnavailable(
        f"CLAP model {model_id_or_path!r} from {env_var} is unavailable: the weights could not be "
        f"downloaded or found {where}: {type(exc).__name__}: {exc}. Set {env_var} to a hub id that is "
        "in the Hugging Face cache (HF_HOME, or HAUNTFM_MODEL_CACHE_DIR when set) or to a local "
        "directory saved with save_pretrained."
    )


def hub_cache_dir(model_id_or_path: str, *, configured: Path | None, earlier: Path | None) -> Path | None:
    """Where hub downloads go: `configured` (HAUNTFM_MODEL_CACHE_DIR) when set, else the standard
    Hugging Face cache (None: HF_HOME, HF_HUB_CACHE and their defaults), so that a model another
    program downloaded is reused — unless `earlier` (where earlier versions always downloaded)
    already holds this model, which is then reused rather than downloaded again."""
    if configured is not None or earlier is None:
        return configured
    from huggingface_hub.file_download import repo_folder_name

    try:
        _, local = _source(model_id_or_path, "HAUNTFM_CLAP_MODEL")
        folder = repo_folder_name(repo_id=model_id_or_path, repo_type="model")
    except (ModelUnavailable, ValueError):  # not a hub id: loading says why
        return None
    return earlier if not local and (earlier / folder).is_dir() else None


def _from_pretrained(loader: Any, source: str, progress: DownloadProgress | None, **kwargs: Any) -> Any:
    """`loader.from_pretrained`, with the hub's download progress reported to `progress`."""
    if progress is None:
        return loader.from_pretrained(source, **kwargs)
    try:
        return loader.from_pretrained(source, tqdm_class=progress.tqdm_class(), **kwargs)
    except TypeError as exc:
        # transformers before `tqdm_class` (4.x) hands unknown arguments to the model's
        # constructor: load without progress (whatever was downloaded stays in the cache).
        if "tqdm_class" not in str(exc):
            raise
        log.debug("this transformers version reports no download progress: %s", exc)
        return loader.from_pretrained(source, **kwargs)


def _load_pretrained(
    model_id_or_path: str,
    *,
    env_var: str,
    cache_dir: Path | None,
    progress: DownloadProgress | None = None,
) -> tuple[Any, Any]:
    """Load (ClapModel, ClapProcessor) (hub downloads into `cache_dir`, None: the standard Hugging
    Face cache); wrap every failure in ModelUnavailable."""
    source, local = _source(model_id_or_path, env_var)
    kwargs: dict[str, Any] = {"local_files_only": local}
    if cache_dir is not None and not local:
        kwargs["cache_dir"] = str(cache_dir)
    try:
        with _quiet_loading():
            # Typed loosely: with output_loading_info it returns (model, info).
            model, info = _from_pretrained(
                ClapModel, source, None if local else progress, output_loading_info=True, **kwargs
            )
            processor = ClapProcessor.from_pretrained(source, **kwargs)
    except Exception as exc:
        raise _unavailable(env_var, model_id_or_path, local, exc) from exc
    # A checkpoint that lacks weights loads "successfully" with random ones: refuse it.
    missing = [k for k in info.get("missing_keys", ()) if not k.endswith("position_ids")]
    if missing:
        raise ModelUnavailable(
            f"CLAP model {model_id_or_path!r} from {env_var} is incomplete: the weights for "
            f"{len(missing)} parameters were not found (e.g. {missing[0]})."
        )
    model.eval()
    return model, processor


def model_revision(model_id_or_path: str, *, cache_dir: Path | None) -> str:
    """What an exported audio tower is keyed by: the hub commit, or a hash of a local model's files.

    Read from disk, never from the loaded tensors: safetensors weights are memory-mapped, and
    touching the audio tower's pages to hash them would put them in the worker's RSS even
    when ONNX Runtime runs the tower.
    """
    source, local = _source(model_id_or_path, "HAUNTFM_CLAP_MODEL")
    if not local:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(
            source, cache_dir=str(cache_dir) if cache_dir else None, local_files_only=True
        )
        return Path(folder).name  # the commit hash
    digest = hashlib.sha256()
    files = sorted(
        p for p in Path(source).iterdir() if p.name == "config.json" or p.suffix in WEIGHT_SUFFIXES
    )
    for path in files:
        digest.update(path.name.encode())
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


class ClapEmbedder:
    """One loaded CLAP model that embeds audio and text (text only ever against its own audio)."""

    def __init__(self, *, model: Any, processor: Any, model_id: str, torch_threads: int) -> None:
        self._model = model
        self._processor = processor
        self._feature_extractor = processor.feature_extractor
        self._tokenizer = processor.tokenizer
        self.model_id = model_id
        self.torch_threads = torch_threads
        self.embedding_dim = int(model.config.projection_dim)
        audio_config = model.config.audio_config
        # Fusion checkpoints need the 4-channel fusion mel; the others take one mel.
        self._truncation = "fusion" if getattr(audio_config, "enable_fusion", False) else "rand_trunc"
        self._lock = threading.Lock()
        # The audio tower in use: PyTorch until `load` picks an ONNX Runtime one.
        self._tower: rt.AudioTower = self._torch_tower
        self.window_batch = DEFAULT_WINDOW_BATCH  # windows per forward pass unless a call says otherwise
        self.runtime = rt.TORCH
        self.runtime_reason = "HAUNTFM_EMBEDDING_RUNTIME=torch: PyTorch, no export"
        self.runtime_details: dict[str, Any] = {
            "requested": rt.TORCH,
            "runtime": rt.TORCH,
            "reason": self.runtime_reason,
            "threads": torch_threads,
        }
        fe = self._feature_extractor
        if int(fe.sampling_rate) != SAMPLE_RATE or int(fe.nb_max_samples) != WINDOW_SAMPLES:
            raise ModelUnavailable(
                f"CLAP model {model_id!r} expects {fe.sampling_rate} Hz audio, {fe.nb_max_samples} samples "
                f"at most; haunt-fm feeds {WINDOW_SAMPLES}-sample windows at {SAMPLE_RATE} Hz"
            )
        if self.embedding_dim != EMBEDDING_DIM:
            raise ModelUnavailable(
                f"CLAP model {model_id!r} gives {self.embedding_dim}-dim vectors; the database stores "
                f"{EMBEDDING_DIM}-dim ones"
            )

    @classmethod
    def load(
        cls,
        model_id_or_path: str,
        *,
        cache_dir: Path | None = None,
        torch_threads: int | None = None,
        runtime: str = rt.TORCH,
        hub_cache_dir: Path | None = None,
        progress: DownloadProgress | None = None,
    ) -> ClapEmbedder:
        """Load a CLAP hub id or local directory; raise ModelUnavailable.

        A hub id is downloaded into `hub_cache_dir` (None: the standard Hugging Face cache),
        reporting its bytes to `progress`. `runtime` (torch, onnx, onnx-int8 or auto) picks the
        audio tower's runtime; ONNX files are exported, verified and cached under `cache_dir`,
        and a runtime that can't be used falls back along onnx-int8 -> onnx -> torch (see
        `runtime_reason`).
        """
        if runtime not in (*rt.RUNTIMES, rt.AUTO):
            raise ValueError(
                f"unknown embedding runtime {runtime!r}: use one of torch, onnx, onnx-int8, auto"
            )
        threads = torch_threads or default_torch_threads()
        # Process-wide; one worker = one model, so the worker owns the setting.
        torch.set_num_threads(threads)
        model, processor = _load_pretrained(
            model_id_or_path, env_var="HAUNTFM_CLAP_MODEL", cache_dir=hub_cache_dir, progress=progress
        )
        embedder = cls(model=model, processor=processor, model_id=model_id_or_path, torch_threads=threads)
        if runtime != rt.TORCH:
            embedder._select_runtime(
                runtime, source=model_id_or_path, cache_dir=cache_dir, hub_cache_dir=hub_cache_dir
            )
        log.info(
            "loaded CLAP model %s, audio on %s, %d threads: %s",
            embedder.model_id,
            embedder.runtime,
            threads,
            embedder.runtime_reason,
        )
        return embedder

    # -- audio runtime --------------------------------------------------------------------
    def probe_inputs(self) -> rt.ProbeInputs:
        """The fidelity gate's probe set as model inputs."""
        probes = rt.probe_set()
        windows = [split_windows(samples) for samples in probes.values()]
        features, is_longer = self._feature_arrays([w for ws in windows for w in ws])
        return rt.ProbeInputs(
            names=list(probes),
            counts=[len(ws) for ws in windows],
            input_features=features,
            is_longer=is_longer,
        )

    def _select_runtime(
        self, requested: str, *, source: str, cache_dir: Path | None, hub_cache_dir: Path | None
    ) -> None:
        """Prepare (in a child process) and load the ONNX tower `requested` asks for, or fall back."""
        tower: rt.OnnxAudioTower | None = None
        prepared = False
        cache: rt.RuntimeCache | None = None
        try:
            if cache_dir is None:
                raise ModelUnavailable("no model cache directory to keep exported files in")
            revision = model_revision(source, cache_dir=hub_cache_dir)
            cache = rt.RuntimeCache(Path(cache_dir), model_id=self.model_id, revision=revision)
            needed = rt.onnx_runtimes_for(requested)
            measure = requested == rt.AUTO
            with cache.locked():
                manifest, hashes = cache.read(), cache.hashes(needed)
                if not rt.is_ready(manifest, hashes, measure=measure, threads=self.torch_threads):
                    _prepare_in_child(
                        source=source,
                        hf_cache_dir=hub_cache_dir,
                        cache=cache,
                        runtimes=needed,
                        measure=measure,
                        threads=self.torch_threads,
                    )
                    prepared = True
                    manifest, hashes = cache.read(), cache.hashes(needed)
                choice = rt.choose(requested, manifest, hashes, threads=self.torch_threads)
                if choice.runtime != rt.TORCH:
                    tower = rt.OnnxAudioTower(cache.path(choice.runtime), threads=self.torch_threads)
        except Exception as exc:
            log.warning("ONNX runtime unavailable, using torch", exc_info=True)
            choice = rt.torch_only(
                requested, f"the ONNX audio tower could not be prepared: {rt.error_text(exc)}"
            )
            tower = None
        self.runtime, self.runtime_reason = choice.runtime, choice.reason
        self.runtime_details = {
            **choice.details,
            "threads": self.torch_threads,
            "prepared_now": prepared,
            "cache_dir": str(cache.dir) if cache is not None else None,
        }
        if tower is not None:
            self._tower = tower
            self.window_batch = ONNX_WINDOW_BATCH
            # The PyTorch audio tower is no longer needed. Its safetensors weights are
            # memory-mapped and were never touched here, so they never entered RSS; dropping
            # the modules makes sure nothing touches them later.
            self._model.audio_model = None
            self._model.audio_projection = None
            gc.collect()

    def _torch_tower(self, input_features: np.ndarray, is_longer: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            pooled = self._model.audio_model(
                input_features=torch.from_numpy(input_features), is_longer=torch.from_numpy(is_longer)
            ).pooler_output
            return self._model.audio_projection(pooled).float().numpy()

    def _ensure_threads(self) -> None:
        # Intra-op thread counts are set per calling thread in some torch builds; the
        # worker's inference thread is not the one that loaded the model.
        if torch.get_num_threads() != self.torch_threads:
            torch.set_num_threads(self.torch_threads)

    def features(self, windows: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
        """Model inputs for windows of at most 480,000 samples: deterministic (no random crop)."""
        input_features, is_longer = self._feature_arrays(windows)
        return {"input_features": torch.from_numpy(input_features), "is_longer": torch.from_numpy(is_longer)}

    def _feature_arrays(self, windows: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        for w in windows:
            if w.ndim != 1 or not 0 < w.size <= WINDOW_SAMPLES:
                raise ValueError(f"a window must be 1-D with 1..{WINDOW_SAMPLES} samples, got {w.shape}")
        batch = self._feature_extractor(
            [np.asarray(w, dtype=np.float32) for w in windows],
            sampling_rate=SAMPLE_RATE,
            truncation=self._truncation,
            padding=WINDOW_PADDING,
            return_tensors="np",
        )
        # No window exceeds 10 s, so "is_longer" is False for all; with fusion the
        # extractor would mark a RANDOM one longer when none is, which is nondeterministic.
        is_longer = np.zeros((len(windows), 1), dtype=np.bool_)
        return np.ascontiguousarray(batch["input_features"], dtype=np.float32), is_longer

    def window_embeddings(
        self, windows: Sequence[np.ndarray], *, batch_windows: int | None = None
    ) -> np.ndarray:
        """Raw (unnormalised) projected embeddings, one row per window."""
        if not windows:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        out: list[np.ndarray] = []
        with self._lock:
            self._ensure_threads()
            for chunk in _batched(windows, max(1, batch_windows or self.window_batch)):
                out.append(self._tower(*self._feature_arrays(chunk)))
        return np.concatenate(out).astype(np.float32, copy=False)

    def audio_inputs(
        self, waveforms: Sequence[np.ndarray], *, batch_windows: int | None = None
    ) -> AudioInputs:
        """Windows and mel features of 48 kHz mono previews, ready for `embed_inputs`.

        No model and no lock: a worker can run this in its decode thread for the next batch
        while `embed_inputs` runs the current one.
        """
        per_track: list[list[np.ndarray]] = []
        for i, samples in enumerate(waveforms):
            try:
                per_track.append(split_windows(samples))
            except ValueError as exc:
                raise ValueError(f"waveform {i}: {exc}") from exc
        windows = [w for ws in per_track for w in ws]  # one stream: passes fill up across tracks
        chunks = [
            self._feature_arrays(c) for c in _batched(windows, max(1, batch_windows or self.window_batch))
        ]
        if not chunks:
            return AudioInputs(np.zeros((0, 1, 0, 0), np.float32), np.zeros((0, 1), np.bool_), [])
        return AudioInputs(
            np.concatenate([c[0] for c in chunks]),
            np.concatenate([c[1] for c in chunks]),
            [len(ws) for ws in per_track],
        )

    def embed_inputs(self, inputs: AudioInputs, *, batch_windows: int | None = None) -> AudioEmbeddings:
        """Run the audio tower on prepared inputs (one pass at a time, under the lock) and pool per track."""
        if not inputs.windows:
            return AudioEmbeddings(np.zeros((0, self.embedding_dim), dtype=np.float32), [])
        size = max(1, batch_windows or self.window_batch)
        out: list[np.ndarray] = []
        with self._lock:
            self._ensure_threads()
            for i in range(0, len(inputs.input_features), size):
                out.append(self._tower(inputs.input_features[i : i + size], inputs.is_longer[i : i + size]))
        raw = np.concatenate(out).astype(np.float32, copy=False)
        return AudioEmbeddings(pool_windows(raw, inputs.windows), list(inputs.windows))

    def embed_audio(
        self, waveforms: Sequence[np.ndarray], *, batch_windows: int | None = None
    ) -> AudioEmbeddings:
        """Embed 48 kHz mono previews: (n, dim) unit vectors plus the window count per track."""
        return self.embed_inputs(
            self.audio_inputs(waveforms, batch_windows=batch_windows), batch_windows=batch_windows
        )

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised text embeddings (n, dim), in this model's own space."""
        if not texts:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        max_len = min(
            int(getattr(self._tokenizer, "model_max_length", 512) or 512),
            int(self._model.config.text_config.max_position_embeddings) - 2,  # RoBERTa's padding-idx offset
        )
        enc = self._tokenizer(
            list(texts), padding=True, truncation=True, max_length=max_len, return_tensors="pt"
        )
        with self._lock, torch.inference_mode():
            self._ensure_threads()
            out = self._model.text_model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
            projected = self._model.text_projection(out.pooler_output).float().numpy()
        return normalise(projected)

    def text_tower_check(self) -> tuple[bool, str]:
        """Whether distinct prompts get distinct text vectors; (False, advice) when the tower collapsed."""
        advice = (
            "vibes are grounded in Last.fm tags alone; for vibe text too, set "
            f"HAUNTFM_CLAP_MODEL={TEXT_HEALTHY_MODEL} (its text tower works; the library is re-embedded)"
        )
        try:
            vecs = self.embed_text(TEXT_TOWER_PROMPTS)
        except ValueError as exc:  # a zero vector: the projection says nothing at all
            return (
                False,
                f"text tower of {self.model_id} is broken ({exc}), so vibe text can't steer; {advice}",
            )
        sims = vecs @ vecs.T
        pairs = sims[np.triu_indices(len(TEXT_TOWER_PROMPTS), k=1)]
        lo, hi = float(pairs.min()), float(pairs.max())
        if lo > TEXT_COLLAPSE_COSINE:
            return False, (
                f"text tower of {self.model_id} looks collapsed: {len(TEXT_TOWER_PROMPTS)} distinct "
                f"prompts all score cosine > {TEXT_COLLAPSE_COSINE} (min {lo:.3f}), so vibe text can't "
                f"steer; {advice}"
            )
        return True, f"text tower of {self.model_id} ok: prompt cosines {lo:.3f}..{hi:.3f}"


# --- ONNX export (runs in a child process) -------------------------------------------------------


class _AudioTowerModule(torch.nn.Module):
    """What `window_embeddings` computes with PyTorch, as one module to export."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.audio_model = model.audio_model
        self.audio_projection = model.audio_projection

    def forward(self, input_features: torch.Tensor, is_longer: torch.Tensor) -> torch.Tensor:
        pooled = self.audio_model(input_features=input_features, is_longer=is_longer).pooler_output
        return self.audio_projection(pooled)


def export_audio_tower(model: Any, example: tuple[np.ndarray, np.ndarray], path: Path) -> None:
    """Export the audio tower (features -> raw projected embedding) to ONNX, batch axis dynamic."""
    features, is_longer = (torch.from_numpy(np.ascontiguousarray(a)) for a in example)
    if features.shape[0] < 2:
        raise ValueError("export needs an example batch of at least 2 windows (1 would be baked in)")
    batch = torch.export.Dim("batch", min=1, max=4096)
    with torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(
            _AudioTowerModule(model).eval(),
            (features, is_longer),
            str(path),
            dynamo=True,
            verbose=False,
            input_names=["input_features", "is_longer"],
            output_names=["embedding"],
            dynamic_shapes={"input_features": {0: batch}, "is_longer": {0: batch}},
            external_data=False,
        )


def _exit_with_parent(parent: int, poll_seconds: float = 1.0) -> None:
    """End this process soon after its parent (`parent`, the pid that started it) has gone: a worker
    stopped mid-export must not leave an orphan holding twice the model in memory."""
    tick = threading.Event()

    def watch() -> None:
        while os.getppid() == parent:
            tick.wait(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _prepare_main() -> None:
    """Entry of the child process: arguments as JSON on stdin (see `_prepare_in_child`)."""
    args = json.loads(sys.stdin.read())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("torch.onnx", "torch._dynamo", "torch.export", "onnxscript"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    source, threads = args["source"], int(args["threads"])
    hf_cache_dir = Path(args["hf_cache_dir"]) if args["hf_cache_dir"] else None
    _exit_with_parent(int(args["parent"]))
    embedder = ClapEmbedder.load(source, hub_cache_dir=hf_cache_dir, torch_threads=threads)
    if model_revision(source, cache_dir=hf_cache_dir) != args["revision"]:
        raise ModelUnavailable(f"the model at {source!r} changed while its ONNX export was being prepared")
    cache = rt.RuntimeCache(Path(args["cache_root"]), model_id=args["model_id"], revision=args["revision"])
    probes = embedder.probe_inputs()
    example = (probes.input_features[:3], probes.is_longer[:3])
    # No locking here: the parent holds the cache directory's lock while it waits for us.
    rt.prepare(
        cache,
        runtimes=tuple(args["runtimes"]),
        measure=bool(args["measure"]),
        threads=threads,
        torch_tower=embedder._torch_tower,
        probes=probes,
        export=lambda path: export_audio_tower(embedder._model, example, path),
        batch_windows=ONNX_WINDOW_BATCH,
    )


def _prepare_in_child(
    *,
    source: str,
    hf_cache_dir: Path | None,
    cache: rt.RuntimeCache,
    runtimes: tuple[str, ...],
    measure: bool,
    threads: int,
) -> None:
    """Run `_prepare_main` in a fresh Python process and wait for it; raise if it fails.

    A separate process rather than a thread: the export holds about twice the model in
    memory, which the worker would otherwise keep (glibc rarely hands it back), and an
    exporter crash can't take the worker down. A plain interpreter rather than
    multiprocessing, which would re-import the parent's `__main__`.
    """
    args = {
        "parent": os.getpid(),
        "source": source,
        "hf_cache_dir": str(hf_cache_dir) if hf_cache_dir else None,
        "cache_root": str(cache.root),
        "model_id": cache.model_id,
        "revision": cache.revision,
        "runtimes": list(runtimes),
        "measure": measure,
        "threads": threads,
    }
    code = "from haunt_fm.pipeline.embeddings.model import _prepare_main; _prepare_main()"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(args),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
        timeout=rt.LOCK_TIMEOUT_SECONDS,
    )
    for line in proc.stderr.splitlines():
        # Our own progress (export, gate verdicts, timing) is worth a worker log line;
        # the exporter's warnings are not.
        log.log(logging.INFO if " haunt_fm." in line else logging.DEBUG, "export process: %s", line)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        raise RuntimeError(
            f"the export process exited with status {proc.returncode}: {lines[-1] if lines else 'no output'}"
        )
