"""best_match: which iTunes result is the very song (not a cover, karaoke or tribute)."""

from __future__ import annotations

import pytest

from haunt_fm.clients.itunes import ItunesTrack
from haunt_fm.pipeline.previews.matching import best_match


def song(
    artist: str, title: str, *, preview: bool = True, album: str | None = None, track_id: int = 1
) -> ItunesTrack:
    return ItunesTrack(
        track_id=track_id,
        artist_name=artist,
        track_name=title,
        collection_name=album or f"{title} - Single",
        preview_url=f"https://audio.example/{track_id}.m4a" if preview else None,
        track_time_millis=200_000,
        primary_genre_name="Pop",
        artwork_url=None,
        track_view_url=None,
        kind="song",
        wrapper_type="track",
    )


def test_superset_artist_credit_is_accepted() -> None:
    results = [song("Daft Punk & Pharrell Williams", "Get Lucky")]
    assert best_match("Daft Punk", "Get Lucky", results) is results[0]
    three = [song("Daft Punk, Pharrell Williams & Nile Rodgers", "Get Lucky (feat. Pharrell Williams)")]
    assert best_match("Daft Punk", "Get Lucky", three) is three[0]


def test_a_longer_name_is_not_a_credit() -> None:
    assert best_match("Queen", "Bohemian Rhapsody", [song("Queen Latifah", "Bohemian Rhapsody")]) is None
    assert best_match("Daft Punk", "Get Lucky", [song("Daft Punk Tribute Band", "Get Lucky")]) is None


def test_exact_title_beats_a_same_recording_variant_listed_first() -> None:
    edit = song("Daft Punk", "Get Lucky (Radio Edit)", track_id=1)
    live = song("Daft Punk", "Get Lucky - Live", track_id=2)
    album = song("Daft Punk", "Get Lucky (feat. Pharrell Williams & Nile Rodgers)", track_id=3)
    assert best_match("Daft Punk", "Get Lucky", [edit, live, album]) is album
    # With only variants, the first variant is taken.
    assert best_match("Daft Punk", "Get Lucky", [edit, live]) is edit


def test_different_recordings_are_rejected() -> None:
    results = [song("Daft Punk", "Get Lucky (Remix)"), song("Daft Punk", "Get Lucky (Acoustic)")]
    assert best_match("Daft Punk", "Get Lucky", results) is None


def test_results_without_a_preview_are_skipped() -> None:
    no_preview = song("Radiohead", "Creep", preview=False, track_id=1)
    other = song("Radiohead", "Creep - Remastered 2008", track_id=2)
    assert best_match("Radiohead", "Creep", [no_preview, other]) is other
    assert best_match("Radiohead", "Creep", [no_preview]) is None


def test_karaoke_tribute_and_covers_are_never_taken() -> None:
    decoys = [
        song("Karaoke All Stars", "Creep (Originally Performed by Radiohead) [Karaoke Version]"),
        song("The Hit Crew", "Creep (Made Famous By Radiohead)"),
        song("Radiohead", "Creep", album="Karaoke Hits of the 90s"),  # mislabelled karaoke
        song("Radiohead", "Creep", album="A Tribute to Radiohead"),
        song("Scala & Kolacny Brothers", "Creep"),  # a cover by someone else
    ]
    assert best_match("Radiohead", "Creep", decoys) is None
    real = song("Radiohead", "Creep", album="Pablo Honey", track_id=99)
    assert best_match("Radiohead", "Creep", [*decoys, real]) is real


def test_marker_words_in_the_wanted_song_itself_are_fine() -> None:
    tribute = song("Tenacious D", "Tribute", album="Tenacious D")
    assert best_match("Tenacious D", "Tribute", [tribute]) is tribute


@pytest.mark.parametrize(
    ("wanted", "listed"),
    [
        (("Sigur Rós", "Hoppípolla"), ("Sigur Ros", "Hoppipolla")),
        (("The Beatles", "Let It Be"), ("Beatles", "Let It Be - Remastered 2009")),
        (("Simon & Garfunkel", "The Boxer"), ("Simon and Garfunkel", "The Boxer")),
        (("Daft Punk feat. Pharrell Williams", "Get Lucky"), ("Daft Punk", "Get Lucky")),
        (("Daft Punk & Pharrell Williams", "Get Lucky"), ("Daft Punk", "Get Lucky")),
        (("Florence + the Machine", "Dog Days Are Over"), ("Florence + The Machine", "Dog Days Are Over")),
    ],
)
def test_normalisation_matches_the_same_song(wanted: tuple[str, str], listed: tuple[str, str]) -> None:
    result = song(*listed)
    assert best_match(*wanted, [result]) is result


def test_band_names_with_plus_are_not_split() -> None:
    assert (
        best_match("Florence", "Dog Days Are Over", [song("Florence + the Machine", "Dog Days Are Over")])
        is None
    )
