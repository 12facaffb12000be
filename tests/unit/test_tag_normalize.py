"""The tag normalisation rule and vibe-to-tag matching (pure functions, no I/O)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from haunt_fm.pipeline.tags.normalize import (
    MAX_TAG_LENGTH,
    NOISE_TAGS,
    match_vibe,
    normalize_tag,
    normalize_tags,
    vibe_candidates,
)

RECORDED_TAGS = Path(__file__).parent.parent / "fixtures" / "lastfm" / "track.gettoptags.json"


@pytest.mark.parametrize(
    ("spellings", "canonical"),
    [
        (["lo-fi", "lofi", "lo fi", "Lo Fi", "LO-FI", "Lo_Fi", "lo–fi", " lo   fi "], "lo fi"),
        (["hip-hop", "hip hop", "Hip Hop", "hiphop", "HipHop", "hip/hop"], "hip hop"),
        (["post-rock", "Post Rock", "postrock"], "post rock"),
        (["trip-hop", "Trip Hop", "triphop"], "trip hop"),
        (["heavy metal", "Heavy Metal", "heavy-metal", "HEAVY METAL"], "heavy metal"),
        (["R&B", "rnb", "r n b", "R and B", "r+b"], "r and b"),
        (["drum & bass", "drum n bass", "drum 'n' bass", "Drum and Bass", "dnb"], "drum and bass"),
        (["rock 'n' roll", "Rock & Roll", "rock n roll"], "rock and roll"),
        (["Électronique", "electronique", "ÉLECTRONIQUE"], "electronique"),
        (["Música Latina", "musica latina"], "musica latina"),
        (["90's", "90s", "'90s"], "90s"),
        (["singer-songwriter", "Singer/Songwriter", "singer songwriter"], "singer songwriter"),
        (["chillout", "Chill-Out", "chill out"], "chill out"),
        (["female vocalists", "Female Vocalists"], "female vocalists"),
        (["J-Pop", "j pop"], "j pop"),
    ],
)
def test_spellings_of_one_tag_are_one_tag(spellings: list[str], canonical: str) -> None:
    assert {normalize_tag(s) for s in spellings} == {canonical}


def test_different_tags_stay_different() -> None:
    assert normalize_tag("chill") != normalize_tag("chillout")
    assert normalize_tag("metal") != normalize_tag("heavy metal")
    assert normalize_tag("post-punk") != normalize_tag("punk")


@pytest.mark.parametrize(
    "noise",
    ["seen live", "Seen Live", "seen-live", "favourites", "Favorites", "favorite", "albums i own",
     "Albums I Own", "my favorite", "My Favourite Songs", "my top 10", "awesome", "love", "LOVE",
     "favourite songs", "", "   ", "!!!", "x" * (MAX_TAG_LENGTH + 1)],
)  # fmt: skip
def test_tags_about_the_listener_are_dropped(noise: str) -> None:
    assert normalize_tag(noise) is None


@pytest.mark.parametrize("kept", ["1998", "2019", "00s", "80s", "melancholy", "ambient", "british"])
def test_years_and_sound_words_are_kept(kept: str) -> None:
    assert normalize_tag(kept) == kept


def test_every_noise_tag_is_in_canonical_form() -> None:
    # The list is compared after normalisation, so an entry that isn't canonical would never match.
    assert all(" ".join(tag.split()) == tag and tag == tag.casefold() for tag in NOISE_TAGS)
    assert all(normalize_tag(tag.upper()) is None for tag in NOISE_TAGS)


@pytest.mark.parametrize(
    "name", ["Lo-Fi Hip-Hop", "Drum 'n' Bass", "Électronique", "R&B", "90's", "chillout"]
)
def test_normalisation_is_idempotent(name: str) -> None:
    once = normalize_tag(name)
    assert once is not None and normalize_tag(once) == once


def test_normalize_tags_merges_spellings_at_their_highest_weight() -> None:
    pairs = [("ambient", 100), ("Ambient", 64), ("lo-fi", 30), ("Lo Fi", 55), ("seen live", 90), ("1998", 4)]
    assert normalize_tags(pairs) == [("ambient", 100), ("lo fi", 55), ("1998", 4)]
    assert normalize_tags([]) == []


def test_recorded_top_tags_normalise() -> None:
    raw = json.loads(RECORDED_TAGS.read_text())["toptags"]["tag"]
    assert normalize_tags((t["name"], t["count"]) for t in raw) == [
        ("trip hop", 100),
        ("electronic", 48),
        ("chill out", 35),
        ("lo fi", 27),
        ("1998", 4),
        ("bristol", 0),
    ]


# -- vibes ---------------------------------------------------------------------------------


def test_vibe_candidates_whole_phrase_first_then_shorter_runs() -> None:
    assert vibe_candidates("chill ambient lo-fi") == [
        "chill ambient lo fi",
        "chill ambient lo",
        "ambient lo fi",
        "chill ambient",
        "ambient lo",
        "lo fi",
        "chill",
        "ambient",
        "lo",
        "fi",
    ]
    assert vibe_candidates("Heavy Metal")[0] == "heavy metal"


def test_vibe_candidates_drop_stop_words_and_noise() -> None:
    assert vibe_candidates("some music for the rain") == ["rain"]
    assert vibe_candidates("drum and bass") == ["drum and bass", "drum", "bass"]
    assert vibe_candidates("seen live") == ["seen", "live"]
    assert vibe_candidates("") == vibe_candidates("the and of") == []


def test_match_vibe_takes_the_whole_phrase_when_it_is_a_tag() -> None:
    known = {"heavy metal", "heavy", "metal", "jazz"}
    assert match_vibe("Heavy Metal", known) == ["heavy metal"]
    assert match_vibe("heavy-metal", known) == ["heavy metal"]


def test_match_vibe_falls_back_to_the_longest_known_runs() -> None:
    known = {"chill", "lo fi", "lo", "ambient", "dark jazz", "jazz"}
    assert match_vibe("chill lo-fi beats", known) == ["chill", "lo fi"]
    assert match_vibe("chill ambient lofi", known) == ["chill", "ambient", "lo fi"]
    assert match_vibe("some dark jazz please", known) == ["dark jazz"]
    assert match_vibe("jazz and more jazz", known) == ["jazz"]
    assert match_vibe("polka", known) == []
    assert match_vibe("music", {"music"}) == []  # a stop word alone names nothing
