"""How a profile's weighted vectors split into tastes (pure numpy, no database)."""

from __future__ import annotations

import numpy as np
import pytest

from haunt_fm.pipeline.taste import clusters
from haunt_fm.pipeline.taste.clusters import split_tastes, weighted_silhouette

DIM = 512


def unit(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = x / np.linalg.norm(x, axis=-1, keepdims=True)
    return out


def blob(rng: np.random.Generator, centre: np.ndarray, n: int, within: float = 0.8) -> np.ndarray:
    noise = rng.standard_normal((n, DIM))
    noise -= (noise @ centre)[:, None] * centre
    return unit(within * centre + np.sqrt(1 - within**2) * unit(noise)).astype(np.float32)


def centres(rng: np.random.Generator, k: int, shared: float = 0.6) -> list[np.ndarray]:
    common = unit(rng.standard_normal(DIM))
    return [unit(shared * common + np.sqrt(1 - shared**2) * unit(rng.standard_normal(DIM))) for _ in range(k)]


def test_one_genre_and_noise_are_one_taste() -> None:
    rng = np.random.default_rng(1)
    [c] = centres(rng, 1)
    for x in (blob(rng, c, 300), unit(rng.standard_normal((800, DIM))).astype(np.float32)):
        split = split_tastes(x, np.ones(len(x)))
        assert split.k == 1 and split.silhouette is None and split.shares.tolist() == [1.0]
        assert split.centroids[0] == pytest.approx(unit(x.sum(axis=0)), abs=1e-5)


@pytest.mark.parametrize("k", [2, 3, 4, 6])
def test_k_genres_are_k_tastes_heaviest_first(k: int) -> None:
    rng = np.random.default_rng(k)
    cs = centres(rng, k)
    sizes = [40 + 10 * i for i in range(k)]
    x = np.vstack([blob(rng, c, n) for c, n in zip(cs, sizes, strict=True)])
    truth = np.repeat(np.arange(k), sizes)
    split = split_tastes(x, np.ones(len(x)))
    assert split.k == k and split.silhouette is not None and split.silhouette > 0.3
    # Heaviest first; every taste is exactly one genre.
    assert list(split.shares) == sorted(split.shares, reverse=True)
    for taste in range(k):
        assert len(set(truth[split.labels == taste].tolist())) == 1
    assert split.shares.sum() == pytest.approx(1.0)


def test_weights_decide_the_shares_and_the_order() -> None:
    rng = np.random.default_rng(5)
    a, b = centres(rng, 2)
    x = np.vstack([blob(rng, a, 60), blob(rng, b, 20)])
    w = np.concatenate([np.full(60, 0.1), np.full(20, 1.0)])  # few tracks, played a lot
    split = split_tastes(x, w)
    assert split.k == 2
    assert split.shares == pytest.approx([20 / 26, 6 / 26])
    assert np.all(split.labels[60:] == 0)


def test_small_or_light_groups_are_no_taste() -> None:
    rng = np.random.default_rng(7)
    a, b = centres(rng, 2)
    # Four tracks of another genre: not a habit yet.
    x = np.vstack([blob(rng, a, 50), blob(rng, b, clusters.MIN_TASTE_TRACKS - 1)])
    assert split_tastes(x, np.ones(len(x))).k == 1
    # Enough tracks but barely listened to: under the minimum share.
    x = np.vstack([blob(rng, a, 50), blob(rng, b, 10)])
    w = np.concatenate([np.ones(50), np.full(10, 0.2)])
    assert split_tastes(x, w).k == 1
    assert split_tastes(x, np.ones(len(x))).k == 2
    # Too few tracks to hold two tastes at all.
    assert split_tastes(x[:9], np.ones(9)).k == 1


def test_sub_styles_of_one_genre_stay_one_taste() -> None:
    rng = np.random.default_rng(9)
    a = centres(rng, 1)[0]
    # Two sub-styles whose centres are at cosine 0.95: closer than two tastes may be.
    other = unit(a + 0.33 * unit(rng.standard_normal(DIM)))
    x = np.vstack([blob(rng, a, 80, within=0.9), blob(rng, other, 80, within=0.9)])
    assert split_tastes(x, np.ones(len(x))).k == 1


def test_same_input_same_tastes_and_large_profiles_use_a_sample() -> None:
    rng = np.random.default_rng(11)
    cs = centres(rng, 3)
    x = np.vstack([blob(rng, c, n) for c, n in zip(cs, (1500, 1000, 600), strict=True)])
    w = rng.uniform(0.05, 1.0, len(x))
    first, second = split_tastes(x, w), split_tastes(x, w)
    assert first.k == 3 and np.array_equal(first.labels, second.labels)
    assert np.array_equal(first.centroids, second.centroids)
    assert np.bincount(first.labels).tolist() == [1500, 1000, 600]


def test_weighted_silhouette_matches_the_definition() -> None:
    rng = np.random.default_rng(13)
    x = unit(rng.standard_normal((30, 8)))
    labels = rng.integers(0, 3, 30)
    w = rng.uniform(0.1, 2.0, 30)
    d = np.maximum(1.0 - x @ x.T, 0.0)
    expected = []
    for i in range(30):
        own = [j for j in range(30) if labels[j] == labels[i] and j != i]
        if not own:
            expected.append(0.0)
            continue
        a = sum(w[j] * d[i, j] for j in own) / sum(w[j] for j in own)
        b = min(
            sum(w[j] * d[i, j] for j in range(30) if labels[j] == c)
            / sum(w[j] for j in range(30) if labels[j] == c)
            for c in set(labels.tolist()) - {labels[i]}
        )
        expected.append((b - a) / max(a, b))
    assert weighted_silhouette(d, labels, w, 3) == pytest.approx(
        float(np.dot(w, expected) / w.sum()), abs=1e-9
    )
