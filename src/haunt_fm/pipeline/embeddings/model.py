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

Everything here is synchronous and CPU-bound: the worker calls it from a thread
(`asyncio.to_thread` or its own inference thread), never on the event loop. One lock per
embedder serialises inference, so a vibe-text request arriving mid-batch waits instead
of oversubscribing the cores torch was told to use.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import transformers
from transformers import ClapModel, ClapProcessor

from haunt_fm.db.base import EMBEDDING_DIM
from haunt_fm.pipeline.embeddings.audio import SAMPLE_RATE

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


class AudioEmbeddings(NamedTuple):
    """Unit vectors (n, dim) and the number of 10 s windows behind each."""

    vectors: np.ndarray
    windows: list[int]


def default_torch_threads() -> int:
    """CPUs this process may run on (affinity-aware), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


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


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    if not np.all(np.isfinite(norms)) or np.any(norms == 0):
        raise ValueError("embedding has zero or non-finite norm")
    return (x / norms).astype(np.float32)


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
        "cached under HAUNTFM_MODEL_CACHE_DIR or to a local directory saved with save_pretrained."
    )


def _load_pretrained(model_id_or_path: str, *, env_var: str, cache_dir: Path | None) -> tuple[Any, Any]:
    """Load (ClapModel, ClapProcessor); wrap every failure in ModelUnavailable."""
    source, local = _source(model_id_or_path, env_var)
    kwargs: dict[str, Any] = {"local_files_only": local}
    if cache_dir is not None and not local:
        kwargs["cache_dir"] = str(cache_dir)
    try:
        with _quiet_loading():
            # Typed loosely: with output_loading_info it returns (model, info).
            loader: Any = ClapModel
            model, info = loader.from_pretrained(source, output_loading_info=True, **kwargs)
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
        cls, model_id_or_path: str, *, cache_dir: Path | None = None, torch_threads: int | None = None
    ) -> ClapEmbedder:
        """Load a CLAP hub id (cached under `cache_dir`) or local directory; raise ModelUnavailable."""
        threads = torch_threads or default_torch_threads()
        # Process-wide; one worker = one model, so the worker owns the setting.
        torch.set_num_threads(threads)
        model, processor = _load_pretrained(
            model_id_or_path, env_var="HAUNTFM_CLAP_MODEL", cache_dir=cache_dir
        )
        embedder = cls(model=model, processor=processor, model_id=model_id_or_path, torch_threads=threads)
        log.info("loaded CLAP model %s, %d torch threads", embedder.model_id, threads)
        return embedder

    def _ensure_threads(self) -> None:
        # Intra-op thread counts are set per calling thread in some torch builds; the
        # worker's inference thread is not the one that loaded the model.
        if torch.get_num_threads() != self.torch_threads:
            torch.set_num_threads(self.torch_threads)

    def features(self, windows: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
        """Model inputs for windows of at most 480,000 samples: deterministic (no random crop)."""
        for w in windows:
            if w.ndim != 1 or not 0 < w.size <= WINDOW_SAMPLES:
                raise ValueError(f"a window must be 1-D with 1..{WINDOW_SAMPLES} samples, got {w.shape}")
        batch = self._feature_extractor(
            [np.asarray(w, dtype=np.float32) for w in windows],
            sampling_rate=SAMPLE_RATE,
            truncation=self._truncation,
            padding=WINDOW_PADDING,
            return_tensors="pt",
        )
        # No window exceeds 10 s, so "is_longer" is False for all; with fusion the
        # extractor would mark a RANDOM one longer when none is, which is nondeterministic.
        is_longer = torch.zeros((len(windows), 1), dtype=torch.bool)
        return {"input_features": batch["input_features"], "is_longer": is_longer}

    def window_embeddings(
        self, windows: Sequence[np.ndarray], *, batch_windows: int = DEFAULT_WINDOW_BATCH
    ) -> np.ndarray:
        """Raw (unnormalised) projected embeddings, one row per window."""
        if not windows:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        out: list[np.ndarray] = []
        with self._lock, torch.inference_mode():
            self._ensure_threads()
            for chunk in _batched(windows, max(1, batch_windows)):
                inputs = self.features(chunk)
                pooled = self._model.audio_model(**inputs).pooler_output
                out.append(self._model.audio_projection(pooled).float().numpy())
        return np.concatenate(out).astype(np.float32, copy=False)

    def embed_audio(
        self, waveforms: Sequence[np.ndarray], *, batch_windows: int = DEFAULT_WINDOW_BATCH
    ) -> AudioEmbeddings:
        """Embed 48 kHz mono previews: (n, dim) unit vectors plus the window count per track."""
        per_track: list[list[np.ndarray]] = []
        for i, samples in enumerate(waveforms):
            try:
                per_track.append(split_windows(samples))
            except ValueError as exc:
                raise ValueError(f"waveform {i}: {exc}") from exc
        counts = [len(w) for w in per_track]
        if not per_track:
            return AudioEmbeddings(np.zeros((0, self.embedding_dim), dtype=np.float32), [])
        # All windows of all tracks in one stream, so batches fill up across tracks.
        raw = self.window_embeddings([w for ws in per_track for w in ws], batch_windows=batch_windows)
        bounds = np.cumsum([0, *counts])
        pooled = np.stack([raw[a:b].mean(axis=0) for a, b in itertools.pairwise(bounds)])
        return AudioEmbeddings(_normalise(pooled), counts)

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
        return _normalise(projected)

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
