"""Embedding runtimes side by side: torch, onnx (fp32) and onnx-int8, full `laion/larger_clap_music` size.

Weights can't be downloaded here and speed doesn't depend on their values, so this builds
the published architecture with random weights, saves it like a real checkpoint and loads
it through the production path (`ClapEmbedder.load(path, runtime=...)`: export, fidelity
gate, cache). Every runtime then embeds the SAME previews (30 s AAC m4a files of synthetic
music: chords, drums, bass, noise; decoded with PyAV as the worker does), each runtime in a
fresh process so that its peak RSS is its own:

    .venv/bin/python bench/embedding.py                       # all runtimes, 20 previews, 2 threads
    .venv/bin/python bench/embedding.py --runtimes torch,onnx-int8 --previews 10 --profile
    .venv/bin/python bench/embedding.py --outliers 20         # int8 fidelity with outlier channels

Printed per runtime: previews/hour end to end (decode + features + model + pooling, calls of
`--batch` previews like a worker batch), model-only seconds per window (the audio tower
alone, best of a few passes of 12 windows), cosine of its preview vectors to torch fp32's
(min/mean), peak RSS of a worker process loading from a warm cache, and each ratio to torch.
The first start (export + quantisation + gate in a child process) is timed separately, with
the export process's own peak RSS. `--profile` adds ONNX Runtime's time per operator type.

Random weights have no outliers, which trained transformers do (a few channels with
activations 10-100x the rest), and dynamic int8 quantises activations per tensor: so the
int8 cosine on random weights is an optimistic estimate. `--outliers K` scales K random
channels of every LayerNorm's weight by 20x to make such outlier activations and shows how
the int8 cosine responds. In production the gate measures the real checkpoint at first
start, whatever this bench says.

Config values are from the published `laion/larger_clap_music` config.json (HTSAT-base
audio tower, RoBERTa-base text tower), written from memory and cross-checked against the
HTSAT-base overrides (hidden 1024, patch embeds 128, depths [2, 2, 12, 2]) that diffusers'
MusicLDM conversion applies to the same music CLAP, and against the checkpoint size
(pytorch_model.bin, 776,444,665 bytes ≈ 194.1 M float32 parameters): the script prints its
own parameter count for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RUNTIMES = ("torch", "onnx", "onnx-int8")
MODEL_PASS_WINDOWS = 12

PUBLISHED_CHECKPOINT_BYTES = 776_444_665

AUDIO_CONFIG = dict(
    window_size=8,
    num_mel_bins=64,
    spec_size=256,
    hidden_act="gelu",
    patch_size=4,
    patch_stride=[4, 4],
    num_classes=527,
    hidden_size=1024,  # 128 * 2**3 (HTSAT-base)
    projection_dim=512,
    depths=[2, 2, 12, 2],
    num_attention_heads=[4, 8, 16, 32],
    enable_fusion=False,  # larger_clap_music is unfused
    fusion_type=None,
    patch_embed_input_channels=1,
    flatten_patch_embeds=True,
    patch_embeds_hidden_size=128,
    enable_patch_layer_norm=True,
    drop_path_rate=0.0,
    attention_probs_dropout_prob=0.0,
    hidden_dropout_prob=0.1,
    qkv_bias=True,
    mlp_ratio=4.0,
    aff_block_r=4,
    num_hidden_layers=4,
    projection_hidden_act="relu",
    layer_norm_eps=1e-5,
)
TEXT_CONFIG = dict(  # RoBERTa-base
    vocab_size=50265,
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
    hidden_act="gelu",
    max_position_embeddings=514,
    type_vocab_size=1,
    layer_norm_eps=1e-12,
    projection_dim=512,
    projection_hidden_act="relu",
    pad_token_id=1,
    bos_token_id=0,
    eos_token_id=2,
)
FEATURE_EXTRACTOR = dict(
    feature_size=64,
    sampling_rate=48_000,
    hop_length=480,
    max_length_s=10,
    fft_window_size=1024,
    frequency_min=50,
    frequency_max=14_000,
    top_db=None,
    truncation="rand_trunc",
    padding="repeatpad",
)


def peak_rss_mib(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux


# --- stages (each in its own process) ------------------------------------------------------------


def stage_build(work: Path, outliers: int) -> dict:
    """Save the full-size model with random weights, and the previews, under `work`."""
    import torch
    from tests.support.audio import write_audio
    from tests.support.tiny_clap import tiny_tokenizer
    from transformers import (
        ClapAudioConfig,
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapProcessor,
        ClapTextConfig,
    )

    torch.manual_seed(0)
    config = ClapConfig(
        text_config=ClapTextConfig(**TEXT_CONFIG).to_dict(),
        audio_config=ClapAudioConfig(**AUDIO_CONFIG).to_dict(),
        projection_dim=512,
        logit_scale_init_value=1 / 0.07,
    )
    model = ClapModel(config).eval()
    if outliers:
        gen = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for module in model.audio_model.modules():
                if isinstance(module, torch.nn.LayerNorm) and module.weight is not None:
                    idx = torch.randperm(module.weight.numel(), generator=gen)[:outliers]
                    module.weight[idx] *= 20.0
    params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(work / "model")
    # A small offline byte-level BPE stands in for RoBERTa's vocabulary: text isn't benchmarked.
    ClapProcessor(
        feature_extractor=ClapFeatureExtractor(**FEATURE_EXTRACTOR), tokenizer=tiny_tokenizer()
    ).save_pretrained(work / "model")
    (work / "previews").mkdir(exist_ok=True)
    for i, samples in enumerate(synthetic_music(PREVIEWS_MAX)):
        write_audio(
            work / "previews" / f"p{i:03d}.m4a", samples, sample_rate=44_100, codec="aac",
            container_format="mp4", bit_rate=128_000, container_options={"movflags": "+faststart"},
        )  # fmt: skip
    return {"params": params}


PREVIEWS_MAX = 40


def synthetic_music(n: int, sr: int = 44_100, seconds: float = 30.0) -> list[np.ndarray]:
    """`n` different 30 s mixes: a chord progression, a bass line, drums and a noise bed."""
    rng = np.random.default_rng(2024)
    t = np.arange(int(sr * seconds)) / sr
    out = []
    for _ in range(n):
        bpm = rng.uniform(70, 160)
        beat = 60 / bpm
        root = 110 * 2 ** (rng.integers(0, 12) / 12)
        chords = [root * 2 ** (s / 12) for s in rng.choice([0, 3, 5, 7, 8, 10], size=4)]
        idx = (t // (4 * beat)).astype(int) % 4
        base = np.array(chords)[idx]
        bright = rng.uniform(0.2, 1.0)
        mix = sum(
            (bright**k) * np.sin(2 * np.pi * k * base * r * t) for r in (1, 1.26, 1.5) for k in (1, 2, 3)
        )
        bass = np.sign(np.sin(2 * np.pi * base / 2 * t)) * rng.uniform(0.2, 0.8)
        phase = t % beat
        kick = np.exp(-phase / 0.07) * np.sin(2 * np.pi * 50 * phase) * rng.uniform(0.5, 2)
        hat_phase = t % (beat / 2)
        hats = np.exp(-hat_phase / 0.01) * rng.standard_normal(t.size) * rng.uniform(0, 0.6)
        noise = rng.standard_normal(t.size) * rng.uniform(0, 0.2)
        x = mix / 6 + bass + kick + hats + noise
        out.append((0.5 * x / np.max(np.abs(x))).astype(np.float32))
    return out


def stage_load(work: Path, runtime: str, threads: int) -> dict:
    """A worker's start: load with `runtime` (exports on first use). Reports timing and RSS."""
    from haunt_fm.pipeline.embeddings.model import ClapEmbedder

    t0 = time.perf_counter()
    embedder = ClapEmbedder.load(
        str(work / "model"), cache_dir=work / "cache", torch_threads=threads, runtime=runtime
    )
    return {
        "runtime": embedder.runtime,
        "reason": embedder.runtime_reason,
        "details": embedder.runtime_details,
        "load_seconds": time.perf_counter() - t0,
        "peak_rss_mib": peak_rss_mib(),
        "export_process_peak_rss_mib": peak_rss_mib(resource.RUSAGE_CHILDREN),
    }


def stage_run(work: Path, runtime: str, threads: int, previews: int, batch: int, profile: bool) -> dict:
    """Embed the previews end to end with `runtime` loaded from a warm cache; save the vectors."""
    from haunt_fm.pipeline.embeddings.audio import decode_audio
    from haunt_fm.pipeline.embeddings.model import ClapEmbedder, split_windows

    t0 = time.perf_counter()
    embedder = ClapEmbedder.load(
        str(work / "model"), cache_dir=work / "cache", torch_threads=threads, runtime=runtime
    )
    load_s = time.perf_counter() - t0
    assert embedder.runtime == runtime, embedder.runtime_reason
    assert not embedder.runtime_details.get("prepared_now"), "the cache should have been warm"
    files = sorted((work / "previews").glob("*.m4a"))[:previews]
    # Warm-up (allocator, kernel selection) on one preview, outside the timed run.
    warm = split_windows(decode_audio(files[0]))
    embedder.window_embeddings(warm)

    vectors, decode_s = [], 0.0
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, len(files), batch):
        d0 = time.perf_counter()
        waveforms = [decode_audio(path) for path in files[i : i + batch]]
        decode_s += time.perf_counter() - d0
        vectors.append(embedder.embed_audio(waveforms).vectors)
    wall = time.perf_counter() - t0
    cpu_util = (time.process_time() - c0) / wall / threads
    # The worker's peak: load, warm-up and the end-to-end run, before the extra passes below.
    peak_rss = peak_rss_mib()
    np.save(work / f"vectors-{runtime}.npy", np.concatenate(vectors))

    # Model only: the audio tower on ready features, passes of 12 windows, best of 3.
    windows = [w for path in files[:4] for w in split_windows(decode_audio(path))][:MODEL_PASS_WINDOWS]
    feats = embedder._feature_arrays(windows)
    t = time.perf_counter()
    embedder._feature_arrays(windows)
    feature_s = (time.perf_counter() - t) / len(windows)
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        embedder._tower(*feats)
        best = min(best, (time.perf_counter() - t) / len(windows))
    ops = onnx_profile(embedder, feats) if profile and runtime != "torch" else None
    return {
        "runtime": runtime,
        "previews": len(files),
        "seconds": wall,
        "decode_seconds": decode_s,
        "previews_per_hour": 3600 * len(files) / wall,
        "cpu_utilisation": cpu_util,
        "model_seconds_per_window": best,
        "feature_seconds_per_window": feature_s,
        "load_seconds": load_s,
        "peak_rss_mib": peak_rss,
        "ops": ops,
    }


def onnx_profile(embedder, feats) -> list[tuple[str, float, float]]:
    """ONNX Runtime's kernel time per operator type over two passes: (op, ms per pass, share)."""
    import onnxruntime as ort

    tower = embedder._tower
    options = ort.SessionOptions()
    options.intra_op_num_threads = tower.threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.gettempdir()) / "haunt-fm-ort-profile")
    session = ort.InferenceSession(str(tower.path), options, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    feeds = {k: v for k, v in zip(("input_features", "is_longer"), feats, strict=True) if k in names}
    session.run(None, feeds)
    session.end_profiling()  # drop the warm-up pass
    options.enable_profiling = True
    session = ort.InferenceSession(str(tower.path), options, providers=["CPUExecutionProvider"])
    for _ in range(2):
        session.run(None, feeds)
    events = json.loads(Path(session.end_profiling()).read_text())
    totals: dict[str, float] = {}
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            op = e["args"]["op_name"]
            totals[op] = totals.get(op, 0.0) + e["dur"] / 1000 / 2
    all_ms = sum(totals.values()) or 1.0
    return [(op, ms, ms / all_ms) for op, ms in sorted(totals.items(), key=lambda x: -x[1])[:8]]


def int8_graph_summary(work: Path) -> dict:
    """Which operators of the int8 file are quantised and which stay fp32."""
    import glob

    import onnx

    found = glob.glob(str(work / "cache" / "onnx" / "*" / "audio_tower_int8_dynamic.onnx"))
    if not found:
        return {}
    graph = onnx.load(found[0]).graph
    counts: dict[str, int] = {}
    for node in graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


# --- the parent ----------------------------------------------------------------------------------


def _child(args: list[str]) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=False, cwd=ROOT
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"stage {args} failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument(
        "--runtimes", default=",".join(RUNTIMES), help="comma-separated; torch is always included"
    )
    ap.add_argument(
        "--previews", type=int, default=20, help=f"30 s previews per runtime (at most {PREVIEWS_MAX})"
    )
    ap.add_argument("--batch", type=int, default=10, help="previews per embed_audio call (a worker batch)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--profile", action="store_true", help="ONNX Runtime time per operator type")
    ap.add_argument("--outliers", type=int, default=0, help="outlier channels per LayerNorm (fidelity check)")
    ap.add_argument(
        "--workdir", type=Path, help="keep the model, previews and cache here (default: a temp dir)"
    )
    ap.add_argument("--json", type=Path, default=Path("bench/out/embedding.json"))
    ap.add_argument("--stage", help=argparse.SUPPRESS)  # internal: build | load | run, in a child process
    ap.add_argument("--runtime", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stage:
        work = args.workdir
        if args.stage == "build":
            result = stage_build(work, args.outliers)
        elif args.stage == "load":
            result = stage_load(work, args.runtime, args.threads)
        else:
            result = stage_run(work, args.runtime, args.threads, args.previews, args.batch, args.profile)
        print(json.dumps(result, default=str))
        return 0

    runtimes = ["torch", *[r for r in args.runtimes.split(",") if r and r != "torch"]]
    unknown = set(runtimes) - set(RUNTIMES)
    if unknown:
        ap.error(f"unknown runtime(s): {', '.join(sorted(unknown))}")
    args.previews = min(args.previews, PREVIEWS_MAX)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="haunt-fm-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    common = ["--workdir", str(work), "--threads", str(args.threads)]
    t_start = time.perf_counter()
    try:
        import onnxruntime
        import torch

        print(
            f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, {args.threads} threads, "
            f"{os.cpu_count()} CPUs visible; load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}"
        )
        if not (work / "model" / "config.json").exists():
            t = time.perf_counter()
            built = _child(["--stage", "build", "--outliers", str(args.outliers), *common])
            print(
                f"model: {built['params'] / 1e6:.1f} M params = {built['params'] * 4 / 1e6:.0f} MB fp32 "
                f"(published checkpoint {PUBLISHED_CHECKPOINT_BYTES / 1e6:.0f} MB), random weights"
                f"{f', {args.outliers} outlier channels per LayerNorm' if args.outliers else ''}; "
                f"saved with {PREVIEWS_MAX} previews in {time.perf_counter() - t:.0f} s"
            )

        # First start of each ONNX runtime: export, quantise, gate (in the export process).
        first: dict[str, dict] = {}
        for runtime in runtimes[1:]:
            first[runtime] = r = _child(["--stage", "load", "--runtime", runtime, *common])
            gate = r["details"].get("gate", {}).get(runtime, {})
            verdict = "passed" if gate.get("passed") else "FAILED"
            prepared = bool(r["details"].get("prepared_now"))
            how = "prepared in a child process" if prepared else "cache was warm"
            print(
                f"first start {runtime}: {r['load_seconds']:.0f} s "
                f"({how}); "
                + (
                    f"export process peak RSS {r['export_process_peak_rss_mib']:.0f} MiB; "
                    if prepared
                    else ""
                )
                + f"gate {verdict}: "
                f"min cosine {gate.get('min_cosine', float('nan')):.4f}, "
                f"mean {gate.get('mean_cosine', float('nan')):.4f}, neighbour order "
                f"{'kept' if gate.get('neighbours_preserved') else 'changed'}; runs {r['runtime']}"
            )
        print(
            f"pipeline: {args.previews} previews of 30 s (AAC m4a), calls of {args.batch} previews, "
            "passes of 12 windows (torch) or 6 (ONNX); each runtime in a fresh process from a warm cache"
        )

        results: dict[str, dict] = {}
        for runtime in runtimes:
            if runtime != "torch" and first[runtime]["runtime"] != runtime:
                print(f"{runtime:>9}: not run, refused at first start: {first[runtime]['reason']}")
                continue
            flags = ["--previews", str(args.previews), "--batch", str(args.batch)]
            results[runtime] = _child(
                [
                    "--stage",
                    "run",
                    "--runtime",
                    runtime,
                    *flags,
                    *(["--profile"] if args.profile else []),
                    *common,
                ]
            )
        reference = np.load(work / "vectors-torch.npy")
        base = results["torch"]
        print(
            f"{'runtime':>9} | {'previews/h':>10} | {'x torch':>7} | {'model s/window':>14} | "
            f"{'x torch':>7} | {'cosine min / mean':>17} | {'peak RSS':>9} | CPU"
        )
        for runtime, r in results.items():
            vectors = np.load(work / f"vectors-{runtime}.npy")
            cos = np.sum(vectors * reference, axis=1)
            r["cosine_min"], r["cosine_mean"] = float(cos.min()), float(cos.mean())
            speed = r["previews_per_hour"] / base["previews_per_hour"]
            model = base["model_seconds_per_window"] / r["model_seconds_per_window"]
            print(
                f"{runtime:>9} | {r['previews_per_hour']:>10,.0f} | {speed:>6.2f}x | "
                f"{r['model_seconds_per_window']:>14.3f} | {model:>6.2f}x | "
                f"{r['cosine_min']:>8.4f} / {r['cosine_mean']:.4f} | {r['peak_rss_mib']:>5.0f} MiB | "
                f"{r['cpu_utilisation']:.0%}"
            )
        share = base["decode_seconds"] / base["seconds"]
        print(
            f"per window: features {1000 * base['feature_seconds_per_window']:.0f} ms; decode is "
            f"{1000 * base['decode_seconds'] / args.previews / 3:.0f} ms/window "
            f"({share:.0%} of torch's end-to-end time, sequential as the worker runs it today)"
        )
        if "onnx-int8" in results:
            r = results["onnx-int8"]
            ratio = r["previews_per_hour"] / base["previews_per_hour"]
            checks = {
                f">= 1.40x torch end to end: {ratio:.2f}x": ratio >= 1.4,
                f">= 8,000 previews/hour: {r['previews_per_hour']:,.0f}": r["previews_per_hour"] >= 8000,
                f"min cosine >= 0.99: {r['cosine_min']:.4f}": r["cosine_min"] >= 0.99,
                f"peak RSS <= 1,536 MiB: {r['peak_rss_mib']:.0f} MiB": r["peak_rss_mib"] <= 1536,
            }
            print(
                "targets (onnx-int8): "
                + "; ".join(f"{text} {'met' if ok else 'NOT met'}" for text, ok in checks.items())
            )
            counts = int8_graph_summary(work)
            if counts:
                quantised = {k: v for k, v in counts.items() if "Integer" in k or "Quantize" in k}
                fp32 = {k: counts[k] for k in ("MatMul", "Gemm", "Conv") if k in counts}
                print(
                    f"int8 graph: quantised {quantised}; still fp32 {fp32} (activation x activation products)"
                )
        for runtime, r in results.items():
            if r.get("ops"):
                top = ", ".join(f"{op} {ms:.0f} ms ({share:.0%})" for op, ms, share in r["ops"])
                print(f"{runtime} time per pass of 12 windows by operator: {top}")
        auto = _child(["--stage", "load", "--runtime", "auto", *common])
        print(f"auto picks {auto['runtime']}: {auto['reason']}")
        print(f"load average now {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {"threads": args.threads, "first_start": first, "results": results, "auto": auto},
                indent=2,
                default=str,
            )
        )
        print(f"total {time.perf_counter() - t_start:.0f} s; wrote {args.json}")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
