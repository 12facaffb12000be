"""Several tastes per profile: weighted spherical k-means on the profile's unit vectors, k from the data.

Pure numpy, no I/O. A profile's listened and liked tracks (each a unit CLAP vector with its
taste weight: play count x recency, likes at least 1) are split into k tastes, 1 <= k <= 6:

- for each k >= 2, weighted spherical k-means (greedy k-means++ seeding weighted by the taste
  weights, assignment by cosine, centroid = the normalised weighted sum of its tracks), best
  of a few seeded starts, on a sample of at most `SAMPLE` tracks;
- a split is *valid* when every taste holds at least `MIN_TASTE_TRACKS` tracks and
  `MIN_TASTE_SHARE` of the weight, and no two centroids are closer than `MAX_CENTROID_COS`;
- the valid k with the best weighted silhouette (cosine distance) wins if that silhouette
  reaches `MIN_SILHOUETTE`; otherwise the profile has one taste. A single genre gives a
  silhouette near 0 (splitting a blob describes noise); genres a listener really moves
  between give clearly positive ones;
- the winner is refitted on every track (seeded with the sample's centroids) and checked
  again; tastes are ordered by weight, heaviest first.

Everything is seeded, so the same listening gives the same tastes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

MAX_TASTES = 6
# A taste is a habit, not an accident: enough tracks and enough of the listening.
MIN_TASTE_TRACKS = 5
MIN_TASTE_SHARE = 0.08
# Two tastes whose centres are this close are one taste.
MAX_CENTROID_COS = 0.9
# Below this weighted silhouette a split describes noise inside one genre.
MIN_SILHOUETTE = 0.1
# k is chosen on a sample (the silhouette needs all pairwise distances of it).
SAMPLE = 1000
N_INIT = 2
MAX_ITER = 30
# Lloyd iterations stop once fewer than this share of the tracks change taste.
TOL = 0.002
SEED = 20_13


@dataclass(frozen=True, slots=True)
class Split:
    """k tastes: each track's taste, the unit centroids and each taste's share of the weight."""

    labels: np.ndarray
    centroids: np.ndarray
    shares: np.ndarray
    silhouette: float | None

    @property
    def k(self) -> int:
        return len(self.centroids)


def _normalise_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    out: np.ndarray = x / np.where(norms > 0, norms, 1.0)
    return out


def _one_hot(labels: np.ndarray, k: int, weights: np.ndarray) -> np.ndarray:
    m = np.zeros((len(labels), k), dtype=np.float32)
    m[np.arange(len(labels)), labels] = weights
    return m


def _centroids(x: np.ndarray, w: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    return _normalise_rows(_one_hot(labels, k, w).T @ x)


def _seed(x: np.ndarray, w: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-means++ with cosine distance, every draw weighted by the taste weights: each new
    centre is the best of a few candidates drawn by distance (as scikit-learn seeds)."""
    trials = 2 + int(np.log(k))
    first = int(rng.choice(len(x), p=w / w.sum()))
    centres = [first]
    closest = np.maximum(1.0 - x @ x[first], 0.0)
    for _ in range(1, k):
        score = w * closest**2
        total = float(score.sum())
        if total <= 0:
            picks = rng.integers(len(x), size=trials)
        else:
            picks = rng.choice(len(x), size=trials, p=score / total)
        options = np.minimum(closest[None, :], np.maximum(1.0 - x[picks] @ x.T, 0.0))
        best = int(np.argmin((options**2 * w[None, :]).sum(axis=1)))
        centres.append(int(picks[best]))
        closest = options[best]
    return x[centres].copy()


def _lloyd(x: np.ndarray, w: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    k = len(centres)
    labels = np.full(len(x), -1)
    sims = x @ centres.T
    for _ in range(MAX_ITER):
        new = sims.argmax(axis=1)
        changed = int(np.count_nonzero(new != labels))
        labels = new
        centres = _centroids(x, w, labels, k)
        sims = x @ centres.T
        if changed <= TOL * len(x):
            break
    labels = sims.argmax(axis=1)
    objective = float((w * sims[np.arange(len(x)), labels]).sum())
    return labels, centres, objective


def _kmeans(x: np.ndarray, w: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    best: tuple[np.ndarray, np.ndarray, float] | None = None
    for _ in range(N_INIT):
        fit = _lloyd(x, w, _seed(x, w, k, rng))
        if best is None or fit[2] > best[2]:
            best = fit
    assert best is not None
    return best[0], best[1]


def weighted_silhouette(distances: np.ndarray, labels: np.ndarray, w: np.ndarray, k: int) -> float:
    """Mean silhouette (weighted by w) of a clustering, from a precomputed distance matrix."""
    sums = distances @ _one_hot(labels, k, w)  # n x k: weighted distance sums to each cluster
    totals = np.bincount(labels, weights=w, minlength=k)
    own = totals[labels] - w
    idx = np.arange(len(labels))
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(own > 0, sums[idx, labels] / own, 0.0)
        means = sums / np.where(totals > 0, totals, np.nan)
    means[idx, labels] = np.inf
    b = means.min(axis=1)
    denom = np.maximum(a, b)
    s = np.where((own > 0) & (denom > 0), (b - a) / np.where(denom > 0, denom, 1.0), 0.0)
    return float((w * s).sum() / w.sum())


def _valid(x: np.ndarray, w: np.ndarray, labels: np.ndarray, centres: np.ndarray, *, min_tracks: int) -> bool:
    k = len(centres)
    counts = np.bincount(labels, minlength=k)
    shares = np.bincount(labels, weights=w, minlength=k) / w.sum()
    if counts.min() < min_tracks or shares.min() < MIN_TASTE_SHARE:
        return False
    cos = centres @ centres.T
    np.fill_diagonal(cos, -1.0)
    return float(cos.max()) <= MAX_CENTROID_COS


def _ordered(
    x: np.ndarray, w: np.ndarray, labels: np.ndarray, centres: np.ndarray, sil: float | None
) -> Split:
    k = len(centres)
    shares = np.bincount(labels, weights=w, minlength=k) / w.sum()
    order = np.argsort(-shares, kind="stable")
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    return Split(rank[labels], centres[order].astype(np.float32), shares[order], sil)


def one_taste(vectors: np.ndarray, weights: np.ndarray) -> Split:
    """Everything in one taste: the normalised weighted mean."""
    x = np.asarray(vectors, dtype=np.float32)
    w = np.asarray(weights, dtype=np.float64)
    centre = _normalise_rows(w.astype(np.float32)[None, :] @ x)
    return Split(np.zeros(len(x), dtype=np.int64), centre.astype(np.float32), np.ones(1), None)


def split_tastes(vectors: np.ndarray, weights: np.ndarray) -> Split:
    """Split a profile's weighted unit vectors into 1..MAX_TASTES tastes (see the module docstring)."""
    # Hundreds of small matrix products: OpenBLAS threads only contend with each other (and with
    # the service) on them; one thread is 4-10x faster on a busy 2-core machine.
    with threadpool_limits(limits=1, user_api="blas"):
        return _split(vectors, weights)


def _split(vectors: np.ndarray, weights: np.ndarray) -> Split:
    x = np.asarray(vectors, dtype=np.float32)
    w = np.asarray(weights, dtype=np.float64)
    n = len(x)
    k_max = min(MAX_TASTES, n // MIN_TASTE_TRACKS)
    if k_max < 2:
        return one_taste(x, w)
    rng = np.random.default_rng(SEED)
    sample = np.sort(rng.choice(n, size=SAMPLE, replace=False)) if n > SAMPLE else np.arange(n)
    xs, ws = x[sample], w[sample]
    # A sample holds proportionally fewer tracks per taste; the full refit checks the real count.
    min_tracks = max(2, round(MIN_TASTE_TRACKS * len(sample) / n))
    distances = np.maximum(1.0 - xs @ xs.T, 0.0)
    candidates: list[tuple[float, int, np.ndarray]] = []
    for k in range(2, k_max + 1):
        labels, centres = _kmeans(xs, ws.astype(np.float32), k, rng)
        if not _valid(xs, ws, labels, centres, min_tracks=min_tracks):
            continue
        sil = weighted_silhouette(distances, labels, ws, k)
        if sil >= MIN_SILHOUETTE:
            candidates.append((sil, k, centres))
    # Best silhouette first; on a tie the fewer tastes.
    for sil, _k, centres in sorted(candidates, key=lambda c: (-c[0], c[1])):
        if n > len(sample):
            labels, centres, _ = _lloyd(x, w.astype(np.float32), centres)
        else:
            labels = (x @ centres.T).argmax(axis=1)
        if len(np.unique(labels)) == len(centres) and _valid(
            x, w, labels, centres, min_tracks=MIN_TASTE_TRACKS
        ):
            return _ordered(x, w, labels, centres, sil)
    return one_taste(x, w)
