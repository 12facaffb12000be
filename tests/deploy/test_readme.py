"""The README's promises: the quick-start commands exist, its API table is the contract in
docs/API.md, every endpoint it lists is served by the app, and the app serves nothing it
doesn't list."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from haunt_fm.app import create_app
from haunt_fm.config import Settings

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
API_MD = REPO / "docs" / "API.md"

_ROW = re.compile(r"^\|\s*(GET|POST|PUT|PATCH|DELETE)\s*\|\s*`(/[^`]*)`\s*\|")
_INLINE = re.compile(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`\s]*)")


def _normalise(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path.split("?", 1)[0])


def _readme() -> str:
    return README.read_text(encoding="utf-8")


def _readme_endpoints() -> list[tuple[str, str]]:
    section = _readme().split("\n## API", 1)[1].split("\n## ", 1)[0]
    return [(m.group(1), _normalise(m.group(2))) for line in section.splitlines() if (m := _ROW.match(line))]


def _api_md() -> str:
    return API_MD.read_text(encoding="utf-8")


@cache
def _app() -> FastAPI:
    url = "postgresql://nobody@127.0.0.1:1/none"  # never connected: the lifespan is not run
    return create_app(Settings(_env_file=None, database_url=url), database_url=url, start_background=False)  # type: ignore[call-arg]


@cache
def _documented() -> frozenset[tuple[str, str]]:
    """(METHOD, path) pairs of the app's OpenAPI document."""
    paths: dict[str, Any] = _app().openapi()["paths"]
    return frozenset((m.upper(), _normalise(p)) for p, ops in paths.items() for m in ops)


def _api(endpoints: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [e for e in endpoints if e[1].startswith("/api/")]


def _pages(endpoints: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [e for e in endpoints if not e[1].startswith("/api/")]


def test_quick_start_uses_the_makefile_targets() -> None:
    text = _readme()
    for command in ("make setup", "make run", "make test"):
        assert f"{command}" in text, command
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    for target in ("setup", "run", "test"):
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), f"Makefile has no `{target}` target"


def test_readme_api_table_is_the_contract() -> None:
    api_md = _api_md()
    contract = {
        (m.group(1), _normalise(m.group(2))) for line in api_md.splitlines() if (m := _ROW.match(line))
    }
    contract |= {(m.group(1), _normalise(m.group(2))) for m in _INLINE.finditer(api_md)}
    listed = _readme_endpoints()
    assert len(listed) == len(set(listed)), "an endpoint is listed twice"
    assert set(listed) == contract, {
        "missing from README": sorted(contract - set(listed)),
        "not in API.md": sorted(set(listed) - contract),
    }


@pytest.mark.parametrize(("method", "path"), _api(_readme_endpoints()), ids=lambda v: str(v))
def test_readme_api_endpoint_is_served_and_documented_at_docs(method: str, path: str) -> None:
    assert (method, path) in _documented(), f"{method} {path} is in the README but the app does not serve it"


def test_every_endpoint_the_app_serves_is_in_the_readme() -> None:
    unlisted = sorted(_documented() - set(_readme_endpoints()))
    assert not unlisted, f"served but missing from the README's API table: {unlisted}"


@pytest.mark.parametrize(("method", "path"), _pages(_readme_endpoints()), ids=lambda v: str(v))
async def test_readme_page_is_served(method: str, path: str, client: httpx.AsyncClient) -> None:
    """Pages (the dashboard, /health) may stay out of the OpenAPI document: ask the app."""
    response = await client.request(method, path)
    assert response.status_code == 200, response.text


def test_readme_lists_every_benchmark() -> None:
    text = _readme()
    section = text.split("\n## Benchmarks", 1)[1].split("\n## ", 1)[0]
    for script in sorted((REPO / "bench").glob("*.py")):
        if not script.name.startswith("_"):
            assert f"bench/{script.name}" in section, f"bench/{script.name} is not described in the README"


def test_readme_track_identity_rule_is_the_codes() -> None:
    """The rule in the README is the one in identity.py's docstring (same numbered steps)."""
    from haunt_fm.pipeline.tracks import identity

    def steps(text: str) -> list[str]:
        found = re.findall(r"^\s*(\d)\. (.+?)(?=^\s*\d\. |\n\n|\Z)", text, re.MULTILINE | re.DOTALL)
        return [" ".join(body.replace("``", "`").split()) for _, body in found]

    section = _readme().split("\n## Track identity", 1)[1].split("\n## ", 1)[0]
    code_steps = steps(identity.__doc__ or "")
    assert len(code_steps) >= 5
    assert steps(section) == code_steps
