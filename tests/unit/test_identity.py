"""Track identity: real-world variants of one song meet; different songs stay apart."""

from __future__ import annotations

import pytest

from haunt_fm.pipeline.tracks.identity import identity_key, normalize_artist, normalize_title

SAME = [
    (("Sigur Rós", "Hoppípolla"), ("Sigur Ros", "Hoppipolla")),
    (("Radiohead", "Paranoid Android"), ("RADIOHEAD", "paranoid android")),
    (
        ("Radiohead", "Paranoid Android - Remastered 2011"),
        ("Radiohead", "Paranoid Android (Remastered 2015)"),
    ),
    (("Radiohead", "Paranoid Android [2011 Remaster]"), ("Radiohead", "Paranoid Android")),
    (("Pink Floyd", "Time - 2011 Remastered Version"), ("Pink Floyd", "Time")),
    (("Pink Floyd", "Money (2011 - Remaster)"), ("Pink Floyd", "Money")),
    (("The Beatles", "Hey Jude - Remastered 2015"), ("Beatles", "Hey Jude")),
    (
        ("Daft Punk feat. Pharrell Williams", "Get Lucky"),
        ("Daft Punk", "Get Lucky (feat. Pharrell Williams)"),
    ),
    (("Mark Ronson ft. Bruno Mars", "Uptown Funk"), ("Mark Ronson", "Uptown Funk")),
    (("Eminem", "Stan (feat. Dido)"), ("Eminem", "Stan [ft. Dido]")),
    (("Eminem", "Stan featuring Dido"), ("Eminem", "Stan")),
    (("Daft Punk", "Get Lucky (Radio Edit)"), ("Daft Punk", "Get Lucky - Radio Edit")),
    (("Daft Punk", "Get Lucky - Radio Edit"), ("Daft Punk", "Get Lucky")),
    (("Queen", "Bohemian Rhapsody (Live)"), ("Queen", "Bohemian Rhapsody - Live at Wembley 1986")),
    (("Simon & Garfunkel", "The Boxer"), ("Simon and Garfunkel", "The Boxer")),
    (("Norah Jones", "Don't Know Why"), ("Norah Jones", "Dont Know Why")),
    (("Norah Jones", "Don’t Know Why"), ("Norah Jones", "Don't Know Why")),
    (("Beyoncé", "Halo"), ("Beyonce", "Halo")),
    (("Röyksopp", "Eple"), ("Royksopp", "Eple")),
    (("Mø", "Final Song"), ("Mo", "Final Song")),
    (("A-ha", "Take On Me - Single Version"), ("a-ha", "Take On Me (Album Version)")),
    (("The Beach Boys", "God Only Knows - Mono"), ("Beach Boys", "God Only Knows (Stereo)")),
    (("Nirvana", "Lithium (Deluxe Edition)"), ("Nirvana", "Lithium")),
    (("Outkast", "Hey Ya! (Explicit)"), ("OutKast", "Hey Ya!")),
    (("  Radiohead ", "  Creep  "), ("Radiohead", "Creep")),
]

DIFFERENT = [
    (("Daft Punk", "Get Lucky"), ("Daft Punk", "Get Lucky (Daft Punk Remix)")),
    (("Nirvana", "Something in the Way"), ("Nirvana", "Something in the Way (Acoustic)")),
    (("Radiohead", "Creep"), ("Radiohead", "Creep (Instrumental)")),
    (("Sufjan Stevens", "Intro"), ("Sufjan Stevens", "Intro (Reprise)")),
    (("Radiohead", "Creep"), ("TLC", "Creep")),
    (("Metallica", "One"), ("U2", "One")),
    (("Queen", "Bohemian Rhapsody"), ("Queen", "Bohemian Rhapsody Part 2")),
    (("The The", "This Is the Day"), ("This Is the Day", "The The")),
    (
        ("Pink Floyd", "Shine On You Crazy Diamond (Pts. 1-5)"),
        ("Pink Floyd", "Shine On You Crazy Diamond (Pts. 6-9)"),
    ),
]


@pytest.mark.parametrize(("a", "b"), SAME)
def test_variants_of_one_song_share_an_identity(a: tuple[str, str], b: tuple[str, str]) -> None:
    assert identity_key(*a) == identity_key(*b)


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_different_songs_stay_different(a: tuple[str, str], b: tuple[str, str]) -> None:
    assert identity_key(*a) != identity_key(*b)


def test_names_made_only_of_punctuation_still_have_an_identity() -> None:
    assert normalize_artist("!!!") == "!!!"
    assert identity_key("!!!", "Heart of Hearts") != identity_key("???", "Heart of Hearts")


def test_a_band_called_the_the_keeps_its_name() -> None:
    assert normalize_artist("The The") == "the"  # leading article dropped, the name remains
    assert normalize_title("The The") == "the the"
