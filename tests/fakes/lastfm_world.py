"""A stand-in world of a few genres whose Last.fm tags match their sound.

    world = TagWorld(genres=("chill", "heavy metal"), per_genre=4)
    world.install(lastfm)                      # track.getTopTags / tag.getTopTracks answer from it
    for track in world.tracks:
        world.write_preview(track, tmp_path / f"{track.slug}.m4a")   # AAC in MP4, like iTunes
    samples = world.samples(world.by_genre("jazz")[0])              # or raw 48 kHz mono audio

Each genre has a recognisable synthetic sound (a soft low chord for `chill`, slow swelling
high pads for `ambient`, a distorted low power chord with noise for `heavy metal`, plucked
walking notes over a ride cymbal for `jazz`), and each track of a genre is a variation of it
(detuned, different note order), so tracks of one genre sound alike and unlike the others.
Their tags are how Last.fm users would write them: the genre in a few spellings, plus noise
(`seen live`, `favourites`, a year) that a normaliser should drop or ignore.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.fakes.lastfm import FakeLastfm

SAMPLE_RATE = 48_000


@dataclass(frozen=True, slots=True)
class Genre:
    """A genre of the world: its tags as Last.fm users write them, heaviest first."""

    name: str
    tags: tuple[tuple[str, int], ...]
    artists: tuple[str, ...]


GENRES: dict[str, Genre] = {
    "chill": Genre(
        "chill",
        (("chill", 100), ("Chillout", 72), ("mellow", 55), ("Lo-Fi", 41), ("relaxing", 30)),
        ("Velvet Harbours", "Slow Gardens", "Quiet Lanterns"),
    ),
    "ambient": Genre(
        "ambient",
        (("ambient", 100), ("Ambient", 64), ("atmospheric", 50), ("drone", 33), ("dreamy", 21)),
        ("Lunar Tides", "Glass Choirs", "Northern Signals"),
    ),
    "heavy metal": Genre(
        "heavy metal",
        (("heavy metal", 100), ("Heavy Metal", 80), ("metal", 66), ("hard rock", 40), ("thrash metal", 25)),
        ("Broken Engines", "Iron Wolves", "Static Comets"),
    ),
    "jazz": Genre(
        "jazz",
        (("jazz", 100), ("Jazz", 75), ("bebop", 48), ("saxophone", 36), ("smooth jazz", 20)),
        ("Amber Owls", "Midnight Foxes", "Golden Orchards"),
    ),
}
DEFAULT_GENRES: tuple[str, ...] = tuple(GENRES)
# Noise a track may carry next to its genre tags (drawn per track, small counts).
WORLD_NOISE: tuple[str, ...] = ("seen live", "favourites", "albums i own", "2019", "awesome")
_TITLE_WORDS = ("Light", "Echo", "Night", "Water", "Stone", "Radio", "Mirror", "Ocean", "Motion", "Honey")


@dataclass(frozen=True, slots=True)
class WorldTrack:
    """One track of the world; `variant` makes its sound differ a little from its genre-mates."""

    artist: str
    title: str
    genre: str
    variant: int
    tags: tuple[tuple[str, int], ...]

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", f"{self.artist} {self.title}".lower()).strip("-")


def _rng(*parts: object) -> np.random.Generator:
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


class TagWorld:
    """`per_genre` tracks for each of `genres`, with tags and audio that agree."""

    def __init__(
        self, genres: Sequence[str] = DEFAULT_GENRES, *, per_genre: int = 4, noise: bool = True, seed: int = 7
    ) -> None:
        unknown = [g for g in genres if g not in GENRES]
        if unknown:
            raise ValueError(f"no such genre in the world: {unknown} (have {sorted(GENRES)})")
        self.seed = seed
        self.tracks: list[WorldTrack] = []
        for name in genres:
            genre = GENRES[name]
            for i in range(per_genre):
                rng = _rng(seed, name, i)
                artist = genre.artists[i % len(genre.artists)]
                title = f"{_TITLE_WORDS[(i + len(name)) % len(_TITLE_WORDS)]} {i + 1}"
                # The genre's own tag always leads; the others vary in weight per track.
                jitter = rng.integers(-10, 11, size=len(genre.tags) - 1)
                tags = [genre.tags[0]] + [
                    (t, max(1, c + int(j))) for (t, c), j in zip(genre.tags[1:], jitter, strict=True)
                ]
                if noise:
                    picked = rng.choice(len(WORLD_NOISE), size=int(rng.integers(1, 3)), replace=False)
                    tags += [(WORLD_NOISE[j], int(rng.integers(1, 15))) for j in picked]
                tags.sort(key=lambda t: t[1], reverse=True)
                self.tracks.append(WorldTrack(artist, title, name, i, tuple(tags)))

    def by_genre(self, genre: str) -> list[WorldTrack]:
        """The world's tracks of one genre."""
        return [t for t in self.tracks if t.genre == genre]

    def install(self, lastfm: FakeLastfm, *, exclusive: bool = True) -> None:
        """Make the fake answer track.getTopTags and tag.getTopTracks from this world.

        `exclusive` turns the fake's default tags off, so only the world's tracks carry tags
        and a tag's chart lists only them.
        """
        if exclusive:
            lastfm.default_tags = False
        for track in self.tracks:
            lastfm.set_tags(track.artist, track.title, list(track.tags))

    # -- sound ------------------------------------------------------------------------------
    def samples(self, track: WorldTrack, seconds: float = 30.0, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        """The track's audio: mono float32 in [-1, 1], recognisably of its genre."""
        t = np.arange(round(seconds * sample_rate), dtype=np.float64) / sample_rate
        rng = _rng(self.seed, track.artist, track.title)
        detune = 1.0 + 0.015 * (track.variant % 5 - 2)
        make = {"chill": _chill, "ambient": _ambient, "heavy metal": _metal, "jazz": _jazz}[track.genre]
        signal = make(t, detune, rng, sample_rate)
        peak = float(np.max(np.abs(signal))) or 1.0
        return (0.8 * signal / peak).astype(np.float32)

    def write_preview(self, track: WorldTrack, path: Path, seconds: float = 30.0) -> Path:
        """Write the track's audio as AAC in MP4 (the iTunes preview format)."""
        from tests.support.audio import write_audio

        return write_audio(
            path,
            self.samples(track, seconds, 44_100),
            sample_rate=44_100,
            codec="aac",
            # FFmpeg's "ipod" muxer writes the M4A brand iTunes previews carry (ftypM4A).
            container_format="ipod",
            bit_rate=128_000,
            container_options={"movflags": "+faststart"},
        )


def _sines(t: np.ndarray, freqs: Sequence[float]) -> np.ndarray:
    return sum((np.sin(2 * np.pi * f * t) for f in freqs), np.zeros_like(t))


def _chill(t: np.ndarray, detune: float, rng: np.random.Generator, sr: int) -> np.ndarray:
    # A soft low major-seventh chord with a slow tremolo.
    chord = _sines(t, [f * detune for f in (196.0, 246.9, 293.7, 370.0)])
    return chord * (0.75 + 0.25 * np.sin(2 * np.pi * 0.5 * t))


def _ambient(t: np.ndarray, detune: float, rng: np.random.Generator, sr: int) -> np.ndarray:
    # Slowly swelling, slightly beating high pads with a breath of noise.
    pad = _sines(t, [f * detune for f in (1046.5, 1051.0, 1318.5, 1568.0)])
    swell = 0.5 + 0.5 * np.sin(2 * np.pi * 0.07 * t - np.pi / 2)
    return pad * swell + 0.05 * rng.standard_normal(t.size)


def _metal(t: np.ndarray, detune: float, rng: np.random.Generator, sr: int) -> np.ndarray:
    # A heavily distorted low power chord, chugging eighth notes, and broadband noise.
    f = 82.4 * detune
    saw = sum((np.sin(2 * np.pi * f * k * t) / k for k in range(1, 12)), np.zeros_like(t))
    saw += sum((np.sin(2 * np.pi * 1.5 * f * k * t) / k for k in range(1, 12)), np.zeros_like(t))
    chug = (np.floor(t * 6.0) % 2 == 0).astype(np.float64) * 0.6 + 0.4
    return np.tanh(6.0 * saw * chug) + 0.25 * rng.standard_normal(t.size)


def _jazz(t: np.ndarray, detune: float, rng: np.random.Generator, sr: int) -> np.ndarray:
    # Plucked walking-bass notes (decaying), a swung ride cymbal (filtered noise bursts).
    scale = np.array([110.0, 123.5, 130.8, 146.8, 164.8, 174.6, 196.0, 220.0]) * detune
    beat = 0.45
    notes = rng.integers(0, len(scale), size=int(t[-1] / beat) + 2)
    idx = np.minimum((t / beat).astype(int), notes.size - 1)
    since = t - idx * beat
    freq = scale[notes[idx]]
    bass = np.sin(2 * np.pi * freq * since) * np.exp(-4.0 * since)
    bass += 0.5 * np.sin(2 * np.pi * 2 * freq * since) * np.exp(-6.0 * since)
    ride = np.diff(rng.standard_normal(t.size + 1)) * np.exp(-18.0 * (t % beat)) * 0.35
    return bass + ride
