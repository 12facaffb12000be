"""The audio tower on ONNX Runtime: export, the fidelity gate, the cache, fallbacks (tiny model).

`onnx_model_cache` (tests/conftest.py) exported, quantised, gated and timed the tiny model
once, through the real child-process path; tests that change files work on a copy of it.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from pydantic import ValidationError

from haunt_fm.config import Settings
from haunt_fm.pipeline.embeddings import onnx_runtime as rt
from haunt_fm.pipeline.embeddings.audio import SAMPLE_RATE
from haunt_fm.pipeline.embeddings.model import ClapEmbedder, model_revision, split_windows
from tests.support import audio as gen


def _tracks() -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    return [
        gen.tone(30, freq=440, sample_rate=SAMPLE_RATE),
        (0.1 * rng.standard_normal(25 * SAMPLE_RATE)).astype(np.float32),
        gen.tone(7, freq=1800, sample_rate=SAMPLE_RATE),
    ]


def _cache_dir(root: Path) -> Path:
    (found,) = (root / "onnx").iterdir()
    return found


def _manifest(root: Path) -> dict:
    return json.loads((_cache_dir(root) / rt.MANIFEST).read_text())


def _copy(cache: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(cache, tmp_path / "models"))


def _load(tiny_clap_dir: Path, root: Path, runtime: str) -> ClapEmbedder:
    return ClapEmbedder.load(str(tiny_clap_dir), cache_dir=root, torch_threads=2, runtime=runtime)


def _break(path: Path) -> None:
    """Scramble every weight tensor of an exported file, as a broken export would leave it."""
    model = onnx.load(str(path))
    rng = np.random.default_rng(0)
    for init in model.graph.initializer:
        values = numpy_helper.to_array(init)
        if values.size >= 256:
            init.CopyFrom(
                numpy_helper.from_array(rng.permutation(values.ravel()).reshape(values.shape), init.name)
            )
    onnx.save(model, str(path))


def _mtimes(root: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in _cache_dir(root).glob("*.onnx")}


@pytest.fixture(scope="module")
def torch_embedder(tiny_clap_dir: Path) -> ClapEmbedder:
    return ClapEmbedder.load(str(tiny_clap_dir), torch_threads=2)


# --- the gate itself --------------------------------------------------------------------------------


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _at(angle: float, axis: int) -> np.ndarray:
    """A unit vector at `angle` from axis 0 towards `axis`."""
    e = np.eye(8, 512)
    return np.cos(angle) * e[0] + np.sin(angle) * e[axis]


def test_gate_accepts_small_error_and_refuses_a_drifted_probe_or_a_changed_order() -> None:
    rng = np.random.default_rng(3)
    names = [f"p{i}" for i in range(5)]
    reference = np.stack([_at(0.3 * i, i + 1) for i in range(5)])
    close = _unit(reference + 0.001 * rng.standard_normal((5, 512)))
    gate = rt.fidelity_gate(reference, close, names)
    assert gate.passed and gate.neighbours_preserved and gate.min_cosine > 0.999

    drifted = close.copy()
    drifted[2] = _unit(reference[2:3] + 0.3 * rng.standard_normal((1, 512)))[0]
    gate = rt.fidelity_gate(reference, drifted, names)
    assert not gate.passed and gate.min_cosine < rt.GATE_MIN_COSINE
    assert gate.cosines["p2"] == pytest.approx(gate.min_cosine, abs=1e-6)

    # Every vector stays close to its reference (cosine > 0.997), but probe a's nearest
    # neighbour changes from b to c, which PyTorch ranked clearly apart (0.980 vs 0.966).
    reference = np.stack([_at(0, 1), _at(0.20, 1), _at(0.26, 2)])
    swapped = np.stack([_at(0, 1), _at(0.27, 1), _at(0.19, 2)])
    gate = rt.fidelity_gate(reference, swapped, ["a", "b", "c"])
    assert gate.min_cosine > 0.997
    assert not gate.neighbours_preserved and not gate.passed

    # Neighbours PyTorch itself can barely tell apart (0.9801 vs 0.9797) may swap.
    reference = np.stack([_at(0, 1), _at(0.200, 1), _at(0.202, 2)])
    swapped = np.stack([_at(0, 1), _at(0.203, 1), _at(0.199, 2)])
    gate = rt.fidelity_gate(reference, swapped, ["a", "b", "c"])
    assert gate.neighbours_preserved and gate.passed


def test_probe_set_is_fixed_and_varied(torch_embedder: ClapEmbedder) -> None:
    probes = rt.probe_set()
    assert len(probes) >= 6
    assert all(x.dtype == np.float32 and x.size == rt.PROBE_SECONDS * SAMPLE_RATE for x in probes.values())
    again = rt.probe_set()
    assert all(np.array_equal(probes[k], again[k]) for k in probes)
    inputs = torch_embedder.probe_inputs()
    assert inputs.counts == [3] * len(probes)  # several windows each
    vectors = inputs.vectors(torch_embedder._torch_tower, batch_windows=12)
    sims = vectors @ vectors.T
    assert np.max(sims[np.triu_indices(len(probes), k=1)]) < 0.9999  # distinct timbres, distinct vectors


# --- export, gate pass, cache ---------------------------------------------------------------------


def test_export_reproduces_the_pytorch_window_embeddings(
    onnx_model_cache: Path, torch_embedder: ClapEmbedder, tiny_clap_dir: Path
) -> None:
    directory = _cache_dir(onnx_model_cache)
    manifest = _manifest(onnx_model_cache)
    assert manifest["revision"] == model_revision(str(tiny_clap_dir), cache_dir=None)
    assert manifest["versions"]["onnxruntime"] == rt.package_version("onnxruntime")
    fp32 = rt.OnnxAudioTower(directory / rt.FILES[rt.ONNX], threads=2)
    windows = [w for t in _tracks() for w in split_windows(t)]  # 7 windows: a batch size not exported
    feats = torch_embedder._feature_arrays(windows)
    expected = torch_embedder.window_embeddings(windows)
    np.testing.assert_allclose(fp32(*feats), expected, atol=2e-4, rtol=1e-3)
    np.testing.assert_allclose(fp32(feats[0][:1], feats[1][:1]), expected[:1], atol=2e-4, rtol=1e-3)
    for runtime in (rt.ONNX, rt.ONNX_INT8):
        entry = manifest["runtimes"][runtime]
        assert entry["gate"]["sha256"] == rt.sha256_file(directory / rt.FILES[runtime])
    assert (directory / rt.FILES[rt.ONNX_INT8]).stat().st_size < (
        directory / rt.FILES[rt.ONNX]
    ).stat().st_size


def test_the_cache_key_follows_the_model_files(tiny_clap_dir: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(tiny_clap_dir, tmp_path / "model"))
    first = model_revision(str(copy), cache_dir=None)
    assert model_revision(str(tiny_clap_dir), cache_dir=None) == first  # content, not path
    (copy / "preprocessor_config.json").write_text("{}")  # not part of the exported tower
    assert model_revision(str(copy), cache_dir=None) == first
    weights = next(p for p in copy.iterdir() if p.suffix == ".safetensors")
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    second = model_revision(str(copy), cache_dir=None)
    assert second != first
    a = rt.RuntimeCache(tmp_path, model_id=str(copy), revision=first)
    b = rt.RuntimeCache(tmp_path, model_id=str(copy), revision=second)
    assert a.dir != b.dir


@pytest.mark.parametrize("runtime", [rt.ONNX, rt.ONNX_INT8])
def test_a_verified_runtime_runs_and_stays_faithful(
    runtime: str, onnx_model_cache: Path, tiny_clap_dir: Path, torch_embedder: ClapEmbedder, tmp_path: Path
) -> None:
    root = _copy(onnx_model_cache, tmp_path)
    before = _mtimes(root)
    embedder = _load(tiny_clap_dir, root, runtime)
    assert embedder.runtime == runtime
    assert embedder.runtime_details["prepared_now"] is False  # cache reused: no export, no gate
    assert _mtimes(root) == before
    gate = embedder.runtime_details["gate"][runtime]
    assert gate["passed"] and gate["min_cosine"] >= rt.GATE_MIN_COSINE and gate["neighbours_preserved"]
    assert f"{runtime} gate: min cosine" in embedder.runtime_reason
    assert embedder._model.audio_model is None  # the PyTorch audio tower's memory is given back
    got = embedder.embed_audio(_tracks())
    want = torch_embedder.embed_audio(_tracks())
    assert got.windows == want.windows == [3, 3, 1]
    cosines = np.sum(got.vectors * want.vectors, axis=1)
    assert cosines.min() >= (0.9999 if runtime == rt.ONNX else 0.99)
    # Text stays on PyTorch, unchanged.
    np.testing.assert_allclose(
        embedder.embed_text(["dub techno"]), torch_embedder.embed_text(["dub techno"]), atol=1e-6
    )


def test_auto_remembers_its_measured_choice(
    onnx_model_cache: Path, tiny_clap_dir: Path, tmp_path: Path
) -> None:
    root = _copy(onnx_model_cache, tmp_path)
    measured = _manifest(root)["measurement"]
    assert measured["cpu"] == rt.cpu_fingerprint() and measured["threads"] == 2
    assert set(measured["seconds_per_window"]) == {rt.TORCH, rt.ONNX, rt.ONNX_INT8}
    embedder = _load(tiny_clap_dir, root, rt.AUTO)
    assert embedder.runtime_details["prepared_now"] is False
    timing = measured["seconds_per_window"]
    assert embedder.runtime == min(timing, key=timing.get)
    assert embedder.runtime_reason.startswith(f"auto: {embedder.runtime} is the fastest")
    assert embedder.runtime_details["seconds_per_window"] == timing
    assert _manifest(root)["measurement"] == measured


@pytest.mark.slow  # a child process exports or verifies
def test_auto_measures_again_on_another_cpu_without_exporting_again(
    onnx_model_cache: Path, tiny_clap_dir: Path, tmp_path: Path
) -> None:
    root = _copy(onnx_model_cache, tmp_path)
    manifest = _manifest(root)
    manifest["measurement"]["cpu"] = "Some Other CPU [avx2] x64"
    (_cache_dir(root) / rt.MANIFEST).write_text(json.dumps(manifest))
    before = _mtimes(root)
    embedder = _load(tiny_clap_dir, root, rt.AUTO)
    assert embedder.runtime_details["prepared_now"] is True
    assert _manifest(root)["measurement"]["cpu"] == rt.cpu_fingerprint()
    assert _mtimes(root) == before  # measured again, not exported again
    assert _manifest(root)["runtimes"] == manifest["runtimes"]


@pytest.mark.slow  # a child process exports or verifies
def test_a_fresh_cache_exports_and_a_forced_runtime_needs_only_its_files(
    tiny_clap_dir: Path, tmp_path: Path
) -> None:
    embedder = _load(tiny_clap_dir, tmp_path / "models", rt.ONNX)
    assert embedder.runtime == rt.ONNX and embedder.runtime_details["prepared_now"] is True
    files = {p.name for p in _cache_dir(tmp_path / "models").glob("*.onnx")}
    assert files == {rt.FILES[rt.ONNX]}  # no int8 file, and no timing, for a forced fp32 runtime
    assert "measurement" not in _manifest(tmp_path / "models")
    again = _load(tiny_clap_dir, tmp_path / "models", rt.ONNX)
    assert again.runtime_details["prepared_now"] is False


# --- gate failure and fallback ----------------------------------------------------------------------


@pytest.mark.slow  # a child process exports or verifies
def test_a_broken_int8_file_is_refused_and_onnx_int8_falls_back_to_onnx(
    onnx_model_cache: Path, tiny_clap_dir: Path, torch_embedder: ClapEmbedder, tmp_path: Path
) -> None:
    root = _copy(onnx_model_cache, tmp_path)
    _break(_cache_dir(root) / rt.FILES[rt.ONNX_INT8])
    embedder = _load(tiny_clap_dir, root, rt.ONNX_INT8)
    assert embedder.runtime == rt.ONNX
    assert embedder.runtime_details["prepared_now"] is True  # the changed file was verified again
    refused = embedder.runtime_details["gate"][rt.ONNX_INT8]
    assert refused["passed"] is False and refused["min_cosine"] < rt.GATE_MIN_COSINE
    assert (
        "HAUNTFM_EMBEDDING_RUNTIME=onnx-int8, but onnx-int8 failed the fidelity gate"
        in embedder.runtime_reason
    )
    assert "falling back to onnx" in embedder.runtime_reason
    got = embedder.embed_audio(_tracks()).vectors
    np.testing.assert_allclose(got, torch_embedder.embed_audio(_tracks()).vectors, atol=1e-4)
    # The verdict is kept for those bytes: the next start refuses without verifying again.
    again = _load(tiny_clap_dir, root, rt.ONNX_INT8)
    assert again.runtime == rt.ONNX and again.runtime_details["prepared_now"] is False


@pytest.mark.slow  # a child process exports or verifies
def test_auto_leaves_out_a_refused_runtime(
    onnx_model_cache: Path, tiny_clap_dir: Path, tmp_path: Path
) -> None:
    root = _copy(onnx_model_cache, tmp_path)
    _break(_cache_dir(root) / rt.FILES[rt.ONNX_INT8])
    embedder = _load(tiny_clap_dir, root, rt.AUTO)
    assert embedder.runtime in (rt.ONNX, rt.TORCH)
    measured = _manifest(root)["measurement"]["seconds_per_window"]
    assert set(measured) == {rt.TORCH, rt.ONNX}  # measured again, without the refused runtime
    assert "refused: onnx-int8 failed the fidelity gate" in embedder.runtime_reason


@pytest.mark.slow  # a child process exports or verifies
def test_when_every_export_is_broken_auto_runs_torch(
    onnx_model_cache: Path, tiny_clap_dir: Path, torch_embedder: ClapEmbedder, tmp_path: Path
) -> None:
    root = _copy(onnx_model_cache, tmp_path)
    for runtime in (rt.ONNX, rt.ONNX_INT8):
        _break(_cache_dir(root) / rt.FILES[runtime])
    embedder = _load(tiny_clap_dir, root, rt.AUTO)
    assert embedder.runtime == rt.TORCH
    assert not any(g["passed"] for g in embedder.runtime_details["gate"].values())
    assert embedder._model.audio_model is not None
    np.testing.assert_allclose(
        embedder.embed_audio(_tracks()).vectors, torch_embedder.embed_audio(_tracks()).vectors, atol=1e-6
    )


def test_no_cache_directory_means_torch_with_a_reason(tiny_clap_dir: Path) -> None:
    embedder = ClapEmbedder.load(str(tiny_clap_dir), cache_dir=None, torch_threads=2, runtime=rt.ONNX_INT8)
    assert embedder.runtime == rt.TORCH
    assert (
        "could not be prepared" in embedder.runtime_reason
        and "falling back to torch" in embedder.runtime_reason
    )


def test_unknown_runtime_is_refused(tiny_clap_dir: Path) -> None:
    with pytest.raises(ValueError, match="onnx-int8"):
        ClapEmbedder.load(str(tiny_clap_dir), torch_threads=2, runtime="tensorrt")


def test_setting_defaults_to_auto_and_rejects_other_values(tmp_path: Path) -> None:
    assert Settings(_env_file=None, data_dir=tmp_path).embedding_runtime == "auto"  # type: ignore[call-arg]
    assert Settings(_env_file=None, embedding_runtime="onnx-int8").embedding_runtime == "onnx-int8"  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Settings(_env_file=None, embedding_runtime="int4")  # type: ignore[call-arg]


# --- threads ----------------------------------------------------------------------------------------


def test_onnx_embedder_is_safe_to_share_between_threads(
    onnx_model_cache: Path, tiny_clap_dir: Path, tmp_path: Path
) -> None:
    embedder = _load(tiny_clap_dir, _copy(onnx_model_cache, tmp_path), rt.ONNX_INT8)
    assert embedder.runtime_details["threads"] == 2 and embedder._tower.threads == 2  # type: ignore[attr-defined]
    tracks = _tracks()
    alone = embedder.embed_audio(tracks).vectors
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(embedder.embed_audio(tracks).vectors)
            embedder.embed_text(["late night jazz"])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 4
    for r in results:
        np.testing.assert_allclose(r, alone, atol=1e-6)
