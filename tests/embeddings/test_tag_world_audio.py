"""The Last.fm stand-in world's genres sound like their tags under the tiny CLAP model.

Vibe tests ground a vibe in the audio of the tracks tagged with it; they can only mean
something if tracks of one genre embed near each other and away from the other genres.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.fakes.lastfm_world import DEFAULT_GENRES, TagWorld

pytestmark = pytest.mark.slow


def test_tracks_of_a_genre_embed_together(embedder) -> None:
    world = TagWorld(per_genre=4)
    vectors = embedder.embed_audio([world.samples(t, 30.0) for t in world.tracks]).vectors
    genres = [t.genre for t in world.tracks]
    sims = vectors @ vectors.T
    within = [sims[i, j] for i, j in itertools.combinations(range(len(genres)), 2) if genres[i] == genres[j]]
    across = [sims[i, j] for i, j in itertools.combinations(range(len(genres)), 2) if genres[i] != genres[j]]
    assert np.mean(within) > np.mean(across) + 0.03
    # The centroid of a genre's tracks ranks exactly that genre's tracks first.
    for genre in DEFAULT_GENRES:
        members = [i for i, g in enumerate(genres) if g == genre]
        centroid = vectors[members].mean(axis=0)
        ranked = np.argsort(-(vectors @ centroid))
        assert sorted(ranked[: len(members)].tolist()) == members, genre


def test_world_audio_is_deterministic_and_distinct_per_track() -> None:
    world = TagWorld(genres=("jazz",), per_genre=2)
    a, b = world.tracks
    assert np.array_equal(world.samples(a, 2.0), TagWorld(genres=("jazz",), per_genre=2).samples(a, 2.0))
    assert not np.array_equal(world.samples(a, 2.0), world.samples(b, 2.0))
    samples = world.samples(a, 2.0)
    assert samples.dtype == np.float32 and samples.size == 96_000 and np.max(np.abs(samples)) <= 0.8 + 1e-6


def test_unknown_genre_is_refused() -> None:
    with pytest.raises(ValueError, match="no such genre"):
        TagWorld(genres=("polka",))


def test_world_preview_is_aac_in_mp4(tmp_path) -> None:
    from haunt_fm.pipeline.embeddings.audio import decode_audio

    world = TagWorld(genres=("heavy metal",), per_genre=1)
    [track] = world.tracks
    path = world.write_preview(track, tmp_path / f"{track.slug}.m4a", seconds=3.0)
    assert path.read_bytes()[4:11] == b"ftypM4A"
    decoded = decode_audio(path)
    assert abs(decoded.size / 48_000 - 3.0) < 0.1 and np.max(np.abs(decoded)) > 0.3
