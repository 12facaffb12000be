"""Names as people say them, matched to speakers and profiles (pure functions, no service)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from haunt_fm.mcp_server.names import Ambiguous, pick, spoken_key


@dataclass(eq=False)
class Thing:
    aliases: list[str] = field(default_factory=list)


KITCHEN = Thing(["media_player.kitchen_2", "Kitchen"])
KIDS = Thing(["media_player.kids_room_speaker_2", "Kids Room speaker"])
LIVING = Thing(["media_player.living_room_speaker_2", "Living Room speaker"])
STUDY = Thing(["media_player.study_speaker_2", "Study speaker", "Arbeitszimmer"])
CAFE = Thing(["Café Corner"])
SPEAKERS = [KITCHEN, KIDS, LIVING, STUDY, CAFE]


def speaker(said: str) -> Thing | None:
    return pick(said, SPEAKERS, lambda t: t.aliases)


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        ("kitchen", KITCHEN),
        ("the kitchen", KITCHEN),
        ("  The   KITCHEN speaker ", KITCHEN),
        ("media_player.kitchen_2", KITCHEN),
        ("Kids Room speaker", KIDS),
        ("kids room", KIDS),
        ("kids", KIDS),
        ("the kid's room", KIDS),
        ("my study", STUDY),
        ("arbeitszimmer", STUDY),
        ("study room", STUDY),
        ("kitchin", KITCHEN),
        ("cafe corner", CAFE),
        ("living-room", LIVING),
    ],
)
def test_speakers_by_the_names_people_use(said: str, expected: Thing) -> None:
    assert speaker(said) is expected


@pytest.mark.parametrize("said", ["garage", "attic speaker", "", "the", "media_player.attic_2"])
def test_unknown_names_match_nothing(said: str) -> None:
    assert speaker(said) is None


def test_a_name_that_fits_several_is_ambiguous() -> None:
    with pytest.raises(Ambiguous) as caught:
        speaker("room")
    assert caught.value.matches == [KIDS, LIVING]


def test_the_strictest_match_wins_over_looser_ones() -> None:
    exact = Thing(["Kids"])
    assert pick("kids", [KIDS, exact], lambda t: t.aliases) is exact


def test_profiles_keep_their_words() -> None:
    me, mine = Thing(["antialias", "Me"]), Thing(["mine", "My Music"])
    profiles = [me, mine]
    assert pick("Me", profiles, lambda t: t.aliases, fillers=False) is me
    assert pick("my music", profiles, lambda t: t.aliases, fillers=False) is mine
    assert pick("ANTIALIAS", profiles, lambda t: t.aliases, fillers=False) is me
    assert pick("antialais", profiles, lambda t: t.aliases, fillers=False) is me


def test_spoken_key() -> None:
    assert spoken_key("media_player.kids_room_speaker_2") == "kids room"
    assert spoken_key("The Study Speaker") == "study"
    assert spoken_key("Speaker") == "speaker"  # never empties a name
    assert spoken_key("My Music", fillers=False) == "my music"
