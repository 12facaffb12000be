"""Fixtures for the embedding tests: a tiny saved CLAP model and generated audio files."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def embedder(tiny_clap_dir: Path):
    """The tiny model loaded through the real ClapEmbedder.load code path."""
    from haunt_fm.pipeline.embeddings.model import ClapEmbedder

    return ClapEmbedder.load(str(tiny_clap_dir), torch_threads=2)
