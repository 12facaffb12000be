"""`.env.example` and the README's configuration table list exactly the Settings fields,
and the defaults they show are the real ones."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from haunt_fm.config import RETIRED_SETTINGS, Settings

REPO = Path(__file__).resolve().parents[2]
ENV_EXAMPLE = REPO / ".env.example"
README = REPO / "README.md"
# Client-side variable of the chat skill (skills/haunt-fm), not read by haunt-fm itself.
NOT_SETTINGS = {"HAUNTFM_URL"}

_ASSIGNMENT = re.compile(r"^(#\s*)?(HAUNTFM_[A-Z0-9_]+)=(.*)$")
_NAME = re.compile(r"\bHAUNTFM_[A-Z0-9_]*[A-Z0-9]\b")


def _settings_names() -> set[str]:
    """The settings to document; retired ones are only read to refuse them (README: their note)."""
    return {f"HAUNTFM_{name.upper()}" for name in Settings.model_fields if name not in RETIRED_SETTINGS}


def _retired_names() -> set[str]:
    return {f"HAUNTFM_{name.upper()}" for name in RETIRED_SETTINGS}


def _env_assignments() -> dict[str, tuple[bool, str]]:
    """name -> (commented out, value)."""
    found: dict[str, tuple[bool, str]] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = _ASSIGNMENT.match(line.strip())
        if match:
            name = match.group(2)
            assert name not in found, f"{name} is listed twice in .env.example"
            found[name] = (match.group(1) is not None, match.group(3))
    return found


def _readme_config_rows() -> dict[str, str]:
    """Variable -> default cell of the README's configuration table."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells and re.fullmatch(r"`HAUNTFM_[A-Z0-9_]+`", cells[0]):
            rows[cells[0].strip("`")] = cells[1]
    return rows


def test_env_example_lists_every_setting_and_nothing_else() -> None:
    listed = set(_env_assignments())
    assert listed == _settings_names(), {
        "missing": sorted(_settings_names() - listed),
        "stale": sorted(listed - _settings_names()),
    }
    mentioned = set(_NAME.findall(ENV_EXAMPLE.read_text(encoding="utf-8")))
    assert mentioned <= _settings_names(), sorted(mentioned - _settings_names())


def test_env_example_defaults_are_the_real_defaults(tmp_path: Path) -> None:
    """Uncomment every line that shows a value: the settings must come out unchanged."""
    lines = []
    for name, (commented, value) in _env_assignments().items():
        if commented and value:
            lines.append(f"{name}={value}")
    assert len(lines) > 15, "the example shows the defaults"
    env_file = tmp_path / ".env"
    env_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    documented = Settings(_env_file=env_file)  # type: ignore[call-arg]
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert documented.model_dump() == defaults.model_dump()


def test_env_example_leaves_secrets_blank_and_loads() -> None:
    secrets = {
        f"HAUNTFM_{name.upper()}"
        for name, field in Settings.model_fields.items()
        if "SecretStr" in str(field.annotation)
    }
    assert secrets >= {"HAUNTFM_LASTFM_API_KEY", "HAUNTFM_HA_TOKEN", "HAUNTFM_API_TOKEN"}
    assignments = _env_assignments()
    for name in secrets:
        assert assignments[name][1] == "", f"{name} must be blank in .env.example"
    # The file as shipped (copied to .env unchanged) is a valid configuration.
    settings = Settings(_env_file=ENV_EXAMPLE)  # type: ignore[call-arg]
    assert settings.lastfm_api_key is None and settings.ha_url is None and settings.database_url is None


def test_readme_configuration_table_lists_every_setting_and_nothing_else() -> None:
    rows = _readme_config_rows()
    assert set(rows) == _settings_names(), {
        "missing": sorted(_settings_names() - set(rows)),
        "stale": sorted(set(rows) - _settings_names()),
    }
    mentioned = set(_NAME.findall(README.read_text(encoding="utf-8")))
    assert mentioned <= _settings_names() | NOT_SETTINGS | _retired_names(), sorted(
        mentioned - _settings_names()
    )


@pytest.mark.parametrize("name", sorted(_settings_names()))
def test_readme_default_matches_the_settings(name: str) -> None:
    """A default shown as a literal (`...`) in the README is the real one."""
    cell = _readme_config_rows().get(name)
    if cell is None:
        pytest.fail(f"{name} is missing from the README configuration table")
    literal = re.fullmatch(r"`([^`]*)`", cell)
    field = name.removeprefix("HAUNTFM_").lower()
    default: Any = Settings.model_fields[field].get_default(call_default_factory=True)
    if literal is None:
        # Words instead of a literal: only for defaults that are unset or computed (paths).
        if cell == "unset":
            assert default is None, f"{name}: the README says unset; the default is {default!r}"
        else:
            assert default is None or not isinstance(default, str | int | float), (
                f"{name}: show the default {default!r} as a literal, not {cell!r}"
            )
        return
    parsed = Settings(_env_file=None, **{field: literal.group(1)})  # type: ignore[call-arg]
    assert getattr(parsed, field) == default, f"{name}: README {literal.group(1)!r}, default {default!r}"
