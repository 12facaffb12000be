"""Every sentence a service can raise that names an API endpoint reads in the CLI's words."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from haunt_fm.cli.wording import cli_words, validation_message
from haunt_fm.pipeline.taste.service import no_taste_message

PIPELINE = Path(__file__).resolve().parents[2] / "src" / "haunt_fm" / "pipeline"
# Where the sentences users read come from (routers only describe endpoints in /docs).
SOURCES = [
    *PIPELINE.rglob("service.py"),
    PIPELINE / "recommendations" / "vibe.py",
    PIPELINE / "playlists" / "playback.py",
]
# Endpoints whose errors no command can meet (there is no command that shows a saved playlist).
NOT_REACHED_BY_THE_CLI = ("GET /api/playlists",)
_URL = re.compile(r"https?://\S+")


def _messages() -> list[str]:
    """String literals (and literal parts of f-strings) in the sources that mention /api/, not docstrings."""
    found = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and "/api/" in _URL.sub("", node.value)
                and id(node) not in docstrings
                and not any(endpoint in node.value for endpoint in NOT_REACHED_BY_THE_CLI)
            ):
                found.append(node.value)
    return found


MESSAGES = _messages()


def test_there_are_api_mentions_to_rewrite() -> None:
    assert len(MESSAGES) >= 5


@pytest.mark.parametrize("message", MESSAGES)
def test_no_endpoint_survives(message: str) -> None:
    rewritten = cli_words(message)
    assert "/api/" not in _URL.sub("", rewritten), rewritten
    assert "?vibe=" not in rewritten


def test_known_sentences() -> None:
    assert cli_words(no_taste_message("kid")) == (
        "Profile 'kid' has no embedded listened or liked track yet. Log listens (the Home Assistant "
        "automation) or like tracks (`haunt-fm feedback TRACK_ID up|down`), then wait for the embedding "
        "worker to embed their previews (progress in `haunt-fm status`)."
    )
    assert (
        cli_words("Or ask by mood instead: pass a vibe, e.g. ?vibe=chill+ambient.")
        == "Or ask by mood instead: pass a vibe, e.g. --vibe 'chill ambient'."
    )
    assert cli_words("auto_play needs speaker_entity: name the player").startswith("--play needs --speaker")
    assert cli_words("Something else entirely.") == "Something else entirely."


def test_validation_errors_name_the_options() -> None:
    errors = [
        {"loc": ["body", "known_pct"], "msg": "Input should be less than or equal to 100"},
        {"loc": ["body"], "msg": "Value error, auto_play needs speaker_entity: name the player"},
    ]
    assert validation_message(errors, options={"known_pct": "--known-pct"}) == (
        "--known-pct: Input should be less than or equal to 100; --play needs --speaker: name the player."
    )
