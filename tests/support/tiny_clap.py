"""A tiny random CLAP checkpoint, saved like a real one, for tests that need a model.

Weights can't be downloaded here, so tests build this once (a few seconds) and load it
through the real `ClapEmbedder.load(path)` code path. The feature extractor carries the
real `laion/larger_clap_music` settings, so windowing, mel extraction and the HTSAT
input geometry (spec_size 256) are exercised exactly as in production; only the towers
are shrunk.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import pre_tokenizers
from transformers import (
    ClapAudioConfig,
    ClapConfig,
    ClapFeatureExtractor,
    ClapModel,
    ClapProcessor,
    ClapTextConfig,
    RobertaTokenizer,
)

SEED = 1234
# RoBERTa's special tokens, in RoBERTa's id order (pad_token_id=1 etc. in ClapTextConfig).
_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
_MERGES = [("Ġ", "a"), ("Ġ", "t"), ("h", "e"), ("i", "n"), ("Ġt", "he"), ("e", "r"), ("o", "n"), ("Ġ", "s")]


def tiny_feature_extractor() -> ClapFeatureExtractor:
    """The `laion/larger_clap_music` preprocessor settings (no fusion)."""
    return ClapFeatureExtractor(
        feature_size=64,
        sampling_rate=48_000,
        hop_length=480,
        max_length_s=10,
        fft_window_size=1024,
        padding_value=0.0,
        return_attention_mask=False,
        frequency_min=50,
        frequency_max=14_000,
        top_db=None,
        truncation="rand_trunc",
        padding="repeatpad",
    )


def tiny_tokenizer() -> RobertaTokenizer:
    """A byte-level BPE tokenizer with RoBERTa's special tokens, built without downloads."""
    vocab: dict[str, int] = {tok: i for i, tok in enumerate(_SPECIALS)}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab.setdefault(ch, len(vocab))
    for merge in _MERGES:
        vocab.setdefault("".join(merge), len(vocab))
    vocab["<mask>"] = len(vocab)
    return RobertaTokenizer(vocab=vocab, merges=list(_MERGES), model_max_length=512)  # type: ignore[arg-type]


def tiny_config(*, vocab_size: int) -> ClapConfig:
    """Small audio and text towers with the real projection size (512)."""
    audio = ClapAudioConfig(
        spec_size=256,
        num_mel_bins=64,
        window_size=8,
        patch_size=4,
        patch_stride=[4, 4],
        patch_embeds_hidden_size=8,
        depths=[1, 1, 1, 1],
        num_attention_heads=[1, 1, 2, 2],
        hidden_size=64,  # patch_embeds_hidden_size * 2 ** (len(depths) - 1)
        enable_fusion=False,
        fusion_type=None,
        mlp_ratio=2.0,
    )
    text = ClapTextConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=514,
        # At the default init scale a random text tower maps every prompt to nearly the
        # same vector (cosine ~0.998), which is exactly the "collapsed tower" failure the
        # embedder detects; a wider init keeps prompts apart so both branches are testable.
        initializer_factor=10.0,
    )
    return ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=512)


def build_tiny_clap(path: Path, *, collapsed_text: bool = False) -> Path:
    """Save a tiny random ClapModel + ClapProcessor to `path` (deterministic) and return it.

    `collapsed_text`: the same model (same audio tower, same audio vectors) with the text
    projection's first layer zeroed, so every text maps to one and the same vector, like the
    reported collapse of `laion/larger_clap_music`'s text tower (its text projection weights
    measured at std 0.006). A constant bias keeps that vector non-zero.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_tokenizer()
    with torch.random.fork_rng():
        torch.manual_seed(SEED)
        model = ClapModel(tiny_config(vocab_size=len(tokenizer)))
        if collapsed_text:
            with torch.no_grad():
                first = model.text_projection.linear1
                first.weight.zero_()
                first.bias.copy_(torch.randn(first.bias.shape))
    model.eval()
    model.save_pretrained(path)
    ClapProcessor(feature_extractor=tiny_feature_extractor(), tokenizer=tokenizer).save_pretrained(path)
    return path
