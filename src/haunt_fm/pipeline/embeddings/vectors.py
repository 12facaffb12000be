"""Checks on vectors coming out of a model before anything stores or compares them."""

from __future__ import annotations

from typing import Any

import numpy as np

from haunt_fm.db.base import EMBEDDING_DIM


def unit_rows(vectors: Any, n: int) -> np.ndarray:
    """Check a model's answer is (n, 512) and finite, and L2-normalise its rows."""
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.shape != (n, EMBEDDING_DIM):
        raise ValueError(f"the model returned shape {arr.shape}, expected ({n}, {EMBEDDING_DIM})")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    if not np.all(np.isfinite(arr)) or np.any(norms == 0):
        raise ValueError("the model returned a zero or non-finite vector")
    normalised: np.ndarray = arr / norms
    return normalised
