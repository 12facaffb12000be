"""skills/haunt-fm/SKILL.md: valid front matter, the seed's speakers, and only real endpoints."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.test_readme import _api_md, _normalise, _readme_endpoints

REPO = Path(__file__).resolve().parents[2]
SKILL = REPO / "skills" / "haunt-fm" / "SKILL.md"
_SPEAKER_ROW = re.compile(r"^\|\s*([^|`]+?)\s*\|\s*`(media_player\.[a-z0-9_]+)`\s*\|$")


def _front_matter() -> tuple[dict[str, Any], str]:
    text = SKILL.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    head, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(head), body


def _speakers(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for line in text.splitlines() if (m := _SPEAKER_ROW.match(line.strip()))}


def test_front_matter() -> None:
    meta, body = _front_matter()
    assert meta["name"] == SKILL.parent.name == "haunt-fm"
    assert 20 < len(meta["description"]) <= 1024 and "<" not in meta["description"]
    assert "HAUNTFM_URL" in meta["metadata"]["openclaw"]["requires"]["env"]
    assert "curl" in meta["metadata"]["openclaw"]["requires"]["bins"]
    assert "$HAUNTFM_URL" in body


def test_speakers_are_the_readmes_music_assistant_entities() -> None:
    _, body = _front_matter()
    skill = _speakers(body)
    assert len(skill) == 13
    assert all(entity.endswith("_2") for entity in skill.values())
    assert skill == _speakers((REPO / "README.md").read_text(encoding="utf-8"))


def test_every_endpoint_it_calls_is_in_the_contract() -> None:
    _, body = _front_matter()
    called = set()
    for line in body.splitlines():
        if "curl" in line or "`GET" in line or "`POST" in line or "`DELETE" in line or "`PUT" in line:
            called.update(m.group(1) for m in re.finditer(r"(/(?:api/[a-z0-9_./{}-]+|health))", line))
    contract = {path for _, path in _readme_endpoints()}
    assert _api_md() is not None
    assert called, "the skill shows how to call the API"
    # Path parameters in the examples: profile names and speaker entity ids.
    named = r"/(antialias|default|media_player\.[a-z0-9_]+)(?=/|$)"
    assert {_normalise(re.sub(named, "/{}", p)) for p in called} <= contract
    for needed in (
        "/api/playlists/generate",
        "/api/feedback",
        "/api/recommendations",
        "/api/profiles",
        "/api/radio",
    ):
        assert needed in {_normalise(p) for p in called}
