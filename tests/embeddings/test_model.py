"""ClapEmbedder against a tiny random CLAP checkpoint loaded through the real load path."""

from __future__ import annotations

import asyncio
import concurrent.futures
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from haunt_fm.pipeline.embeddings.audio import SAMPLE_RATE, decode_audio
from haunt_fm.pipeline.embeddings.model import (
    PIPELINE_VERSION,
    TEXT_TOWER_PROMPTS,
    WINDOW_SAMPLES,
    ClapEmbedder,
    ModelUnavailable,
    split_windows,
)
from tests.support import audio as gen


def _noise(seconds: float, seed: int, level: float = 0.1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (level * rng.standard_normal(round(seconds * SAMPLE_RATE))).astype(np.float32)


def _tone(seconds: float, freq: float) -> np.ndarray:
    return gen.tone(seconds, freq=freq, sample_rate=SAMPLE_RATE)


class _Spy:
    """Wraps the feature extractor and records every window it is handed."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[list[np.ndarray]] = []

    def __call__(self, windows: list[np.ndarray], **kwargs: Any) -> Any:
        self.calls.append([np.array(w) for w in windows])
        return self.inner(windows, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def spy(embedder: ClapEmbedder, monkeypatch: pytest.MonkeyPatch) -> _Spy:
    spy = _Spy(embedder._feature_extractor)
    monkeypatch.setattr(embedder, "_feature_extractor", spy)
    return spy


# --- loading ---------------------------------------------------------------------------------


def test_loads_tiny_model_from_local_dir(embedder: ClapEmbedder, tiny_clap_dir: Path) -> None:
    assert embedder.model_id == str(tiny_clap_dir)
    assert embedder.embedding_dim == 512
    assert isinstance(PIPELINE_VERSION, int) and PIPELINE_VERSION >= 1
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("where", ["/nonexistent/clap-model", "./no-such-model-dir"])
def test_missing_path_is_model_unavailable(where: str) -> None:
    with pytest.raises(ModelUnavailable) as err:
        ClapEmbedder.load(where, torch_threads=2)
    msg = str(err.value)
    assert "HAUNTFM_CLAP_MODEL" in msg and where in msg
    assert "could not be found" in msg


def test_directory_without_weights_is_model_unavailable(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelUnavailable) as err:
        ClapEmbedder.load(str(tmp_path), torch_threads=2)
    msg = str(err.value)
    assert "HAUNTFM_CLAP_MODEL" in msg and str(tmp_path) in msg
    assert "could not be downloaded or found" in msg


def test_a_separate_text_model_can_not_be_loaded() -> None:
    # Text from one checkpoint is noise against audio from another: there is no way to ask.
    with pytest.raises(TypeError):
        ClapEmbedder.load("/nonexistent", torch_threads=2, text_model="laion/larger_clap_general")  # type: ignore[call-arg]


def test_a_copy_of_the_checkpoint_embeds_text_alike(
    embedder: ClapEmbedder, tiny_clap_dir: Path, tmp_path: Path
) -> None:
    # The text tower's weights really load (left random, they would give other vectors).
    copy = ClapEmbedder.load(str(shutil.copytree(tiny_clap_dir, tmp_path / "copy")), torch_threads=2)
    texts = ["calm piano lullaby", "heavy metal guitar"]
    np.testing.assert_allclose(copy.embed_text(texts), embedder.embed_text(texts), atol=1e-6)


def test_torch_threads_are_set(tiny_clap_dir: Path) -> None:
    try:
        ClapEmbedder.load(str(tiny_clap_dir), torch_threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(2)


# --- windowing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (30.0, [10, 10, 10]),
        (30.02, [10, 10, 10]),  # AAC decodes a few ms long: the sliver is dropped
        (29.5, [10, 10, 9.5]),
        (23.5, [10, 10, 3.5]),
        (21.0, [10, 10]),  # a 1 s tail is dropped
        (10.0, [10]),
        (4.0, [4]),  # shorter than a window: one window
        (0.5, [0.5]),
    ],
)
def test_split_windows(seconds: float, expected: list[float]) -> None:
    samples = _noise(seconds, seed=1)
    windows = split_windows(samples)
    assert [w.size for w in windows] == [round(s * SAMPLE_RATE) for s in expected]
    assert all(w.size <= WINDOW_SAMPLES for w in windows)
    # Consecutive, non-overlapping slices of the source.
    np.testing.assert_array_equal(np.concatenate(windows), samples[: sum(w.size for w in windows)])


def test_split_windows_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        split_windows(np.zeros(0, dtype=np.float32))
    with pytest.raises(ValueError):
        split_windows(np.zeros((2, 1000), dtype=np.float32))


def test_30s_preview_feeds_three_exact_windows(embedder: ClapEmbedder, spy: _Spy) -> None:
    samples = _noise(30, seed=2)
    result = embedder.embed_audio([samples])
    assert result.windows == [3]
    fed = [w for call in spy.calls for w in call]
    assert [w.size for w in fed] == [WINDOW_SAMPLES] * 3
    for i, w in enumerate(fed):
        np.testing.assert_array_equal(w, samples[i * WINDOW_SAMPLES : (i + 1) * WINDOW_SAMPLES])


def test_windows_are_batched_across_tracks(embedder: ClapEmbedder, spy: _Spy) -> None:
    tracks = [_noise(30, seed=s) for s in range(4)]  # 12 windows
    result = embedder.embed_audio(tracks, batch_windows=8)
    assert result.windows == [3, 3, 3, 3]
    assert [len(call) for call in spy.calls] == [8, 4]  # one batch spans three tracks


def test_features_are_deterministic(embedder: ClapEmbedder) -> None:
    # The extractor's "rand_trunc" crops randomly only beyond 480,000 samples, which a
    # window never is; a different numpy seed must not change anything.
    windows = split_windows(_noise(25, seed=3))
    np.random.seed(1)
    first = embedder.features(windows)
    np.random.seed(2)
    second = embedder.features(windows)
    torch.testing.assert_close(first["input_features"], second["input_features"], rtol=0, atol=0)
    assert first["input_features"].shape == (3, 1, 1001, 64)
    assert not first["is_longer"].any()
    with pytest.raises(ValueError):
        embedder.features([_noise(10.5, seed=4)])  # never more than 480,000 samples per window


# --- audio embeddings --------------------------------------------------------------------------


def test_embed_audio_gives_unit_vectors(embedder: ClapEmbedder) -> None:
    result = embedder.embed_audio([_noise(30, seed=5), _tone(29.9, 440), _tone(6, 880)])
    assert result.vectors.shape == (3, 512)
    assert result.vectors.dtype == np.float32
    assert result.windows == [3, 3, 1]
    np.testing.assert_allclose(np.linalg.norm(result.vectors, axis=1), 1.0, atol=1e-5)


def test_embed_audio_is_deterministic(embedder: ClapEmbedder) -> None:
    samples = _tone(30, 440)
    a = embedder.embed_audio([samples]).vectors
    b = embedder.embed_audio([samples.copy()]).vectors
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_different_audio_gives_different_vectors(embedder: ClapEmbedder) -> None:
    v = embedder.embed_audio([_tone(30, 440), _tone(30, 3000), _noise(30, seed=6)]).vectors
    sims = v @ v.T
    assert sims[0, 1] < 0.99 and sims[0, 2] < 0.99 and sims[1, 2] < 0.999
    # ...while the same tone, a little quieter, stays closer than a different tone.
    quieter = embedder.embed_audio([0.5 * _tone(30, 440)]).vectors[0]
    assert float(quieter @ v[0]) > float(v[1] @ v[0])


@pytest.mark.parametrize("batch_windows", [1, 4, 32])
def test_batched_equals_one_by_one(embedder: ClapEmbedder, batch_windows: int) -> None:
    tracks = [_noise(30, seed=7), _tone(24, 660), _tone(8, 220), _noise(29.7, seed=8)]
    together = embedder.embed_audio(tracks, batch_windows=batch_windows)
    alone = [embedder.embed_audio([t]) for t in tracks]
    assert together.windows == [r.windows[0] for r in alone]
    np.testing.assert_allclose(together.vectors, np.concatenate([r.vectors for r in alone]), atol=1e-5)


def test_mean_of_raw_window_embeddings(embedder: ClapEmbedder) -> None:
    samples = _noise(30, seed=9)
    windows = split_windows(samples)
    raw = embedder.window_embeddings(windows)
    assert raw.shape == (3, 512)
    # Raw projections, not unit vectors...
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0, atol=1e-3)
    # ...and normalising each reproduces transformers' get_audio_features, which normalises.
    with torch.inference_mode():
        out = embedder._model.get_audio_features(**embedder.features(windows))
    lib = (out if isinstance(out, torch.Tensor) else out.pooler_output).numpy()
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), lib, atol=1e-5)
    mean = raw.mean(axis=0)
    expected = mean / np.linalg.norm(mean)
    np.testing.assert_allclose(embedder.embed_audio([samples]).vectors[0], expected, atol=1e-5)


def test_embeds_a_decoded_m4a_preview(embedder: ClapEmbedder, tmp_path: Path) -> None:
    samples = decode_audio(gen.make_aac_m4a(tmp_path / "p.m4a", seconds=30))
    result = embedder.embed_audio([samples])
    assert result.windows == [3]
    assert result.vectors.shape == (1, 512)


async def test_embedding_runs_off_the_event_loop(embedder: ClapEmbedder) -> None:
    samples = _tone(12, 500)
    threaded = await asyncio.to_thread(embedder.embed_audio, [samples])
    np.testing.assert_allclose(threaded.vectors, embedder.embed_audio([samples]).vectors, atol=1e-6)


def test_embed_audio_rejects_empty_waveform(embedder: ClapEmbedder) -> None:
    with pytest.raises(ValueError, match="waveform 1"):
        embedder.embed_audio([_tone(5, 440), np.zeros(0, dtype=np.float32)])
    empty = embedder.embed_audio([])
    assert empty.vectors.shape == (0, 512) and empty.windows == []


# --- text --------------------------------------------------------------------------------------


def test_embed_text_gives_unit_vectors(embedder: ClapEmbedder) -> None:
    texts = ["chill ambient", "aggressive drum and bass", "chill ambient"]
    v = embedder.embed_text(texts)
    assert v.shape == (3, 512) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(v[0], v[2], atol=1e-6)  # same text, same vector, even in one padded batch
    assert float(v[0] @ v[1]) < 0.99
    np.testing.assert_allclose(embedder.embed_text(["chill ambient"])[0], v[0], atol=1e-5)


def test_text_tower_check_passes_for_distinct_prompts(embedder: ClapEmbedder) -> None:
    ok, note = embedder.text_tower_check()
    assert ok is True
    assert embedder.model_id in note and "ok" in note


def test_text_tower_check_flags_collapse(embedder: ClapEmbedder, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    base = rng.standard_normal(512)
    collapsed = base + 0.05 * rng.standard_normal((len(TEXT_TOWER_PROMPTS), 512))
    collapsed /= np.linalg.norm(collapsed, axis=1, keepdims=True)
    monkeypatch.setattr(embedder, "embed_text", lambda texts: collapsed[: len(texts)])
    ok, note = embedder.text_tower_check()
    assert ok is False
    assert "collapsed" in note and "HAUNTFM_CLAP_MODEL=laion/larger_clap_general" in note
    assert "Last.fm tags" in note and "HAUNTFM_CLAP_TEXT_MODEL" not in note


def test_inputs_prepared_beside_a_running_batch_embed_the_same(embedder: ClapEmbedder) -> None:
    # How a worker overlaps: the next batch's features in one thread, the current batch's
    # inference in another.
    current = [_noise(30, seed=21), _tone(30, 330)]
    following = [_tone(20, 550), _noise(12, seed=22)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        running = pool.submit(embedder.embed_inputs, embedder.audio_inputs(current))
        prepared = pool.submit(embedder.audio_inputs, following)
        first, inputs = running.result(), prepared.result()
    assert inputs.windows == [2, 1] and inputs.input_features.shape[0] == 3
    second = embedder.embed_inputs(inputs)
    np.testing.assert_allclose(first.vectors, embedder.embed_audio(current).vectors, atol=1e-6)
    np.testing.assert_allclose(second.vectors, embedder.embed_audio(following).vectors, atol=1e-6)
    assert embedder.embed_inputs(embedder.audio_inputs([])).vectors.shape == (0, 512)


def test_the_collapsed_tiny_model_fails_the_check_and_keeps_its_audio(
    embedder: ClapEmbedder, tiny_clap_collapsed_dir: Path
) -> None:
    collapsed = ClapEmbedder.load(str(tiny_clap_collapsed_dir), torch_threads=2)
    vecs = collapsed.embed_text(["heavy metal guitar", "calm piano lullaby", "jazz"])
    assert float(np.min(vecs @ vecs.T)) > 0.999  # every text, one vector
    ok, note = collapsed.text_tower_check()
    assert ok is False and "collapsed" in note
    # The audio tower is the healthy model's: the same preview, the same vector.
    audio = [_tone(12.0, 440.0)]
    np.testing.assert_allclose(
        collapsed.embed_audio(audio).vectors, embedder.embed_audio(audio).vectors, atol=1e-6
    )


def test_a_zero_text_vector_fails_the_check_instead_of_crashing(
    embedder: ClapEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(texts: list[str]) -> np.ndarray:
        raise ValueError("embedding has zero or non-finite norm")

    monkeypatch.setattr(embedder, "embed_text", broken)
    ok, note = embedder.text_tower_check()
    assert ok is False and "broken" in note
