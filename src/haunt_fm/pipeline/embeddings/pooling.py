"""Window embeddings to track vectors: mean of the RAW window embeddings, then L2-normalise.

Torch-free, so the PyTorch and the ONNX Runtime paths (and the fidelity gate that compares
them) pool in exactly the same way.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; a zero or non-finite row is an error, never a silent NaN."""
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    if not np.all(np.isfinite(norms)) or np.any(norms == 0):
        raise ValueError("embedding has zero or non-finite norm")
    return (x / norms).astype(np.float32)


def pool_windows(raw: np.ndarray, counts: Sequence[int]) -> np.ndarray:
    """Unit vectors, one per track, from consecutive raw window embeddings (`counts` per track)."""
    bounds = np.cumsum([0, *counts])
    pooled = np.stack([raw[a:b].mean(axis=0) for a, b in itertools.pairwise(bounds)])
    return normalise(pooled)
