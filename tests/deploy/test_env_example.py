"""`.env.example` and the README's configuration table list exactly the Settings fields, and
the defaults they show are the real ones; a blank value is unset for every setting, and an
invalid one is refused with one line naming the variable and what it accepts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from haunt_fm.config import (
    ENV_FILE_VARIABLE,
    RETIRED_SETTINGS,
    Settings,
    SettingsError,
    env_file,
    get_settings,
    load_settings,
)

REPO = Path(__file__).resolve().parents[2]
ENV_EXAMPLE = REPO / ".env.example"
README = REPO / "README.md"
# The variable naming the env file, read from the environment only.
NOT_SETTINGS = {ENV_FILE_VARIABLE}

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


def _defaults() -> dict[str, Any]:
    return Settings(_env_file=None).model_dump()  # type: ignore[call-arg]


def test_env_example_defaults_are_the_real_defaults(tmp_path: Path) -> None:
    """Uncomment every line: the settings must come out unchanged (a blank value is the default)."""
    lines = [f"{name}={value}" for name, (_commented, value) in _env_assignments().items()]
    assert sum(1 for _c, value in _env_assignments().values() if value) > 15, "the example shows the defaults"
    env_file = tmp_path / ".env"
    env_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert Settings(_env_file=env_file).model_dump() == _defaults()  # type: ignore[call-arg]


def test_env_example_states_each_default() -> None:
    """Each variable shows its default as a value, or says in its comment what the default is."""
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        match = _ASSIGNMENT.match(line.strip())
        if match is None or match.group(3):
            continue
        comment = []
        for above in reversed(lines[:i]):
            if not above.startswith("# ") or _ASSIGNMENT.match(above.strip()) or above.startswith("# ---"):
                break
            comment.append(above.lower())
        assert any(word in " ".join(comment) for word in ("default", "unset")), (
            f"{match.group(2)} is blank in .env.example and its comment does not say what the default is"
        )


def test_env_example_leaves_secrets_blank_and_loads_as_the_defaults() -> None:
    secrets = {
        f"HAUNTFM_{name.upper()}"
        for name, field in Settings.model_fields.items()
        if "SecretStr" in str(field.annotation)
    }
    assert secrets >= {"HAUNTFM_LASTFM_API_KEY", "HAUNTFM_HA_TOKEN", "HAUNTFM_API_TOKEN"}
    assignments = _env_assignments()
    for name in secrets:
        assert assignments[name][1] == "", f"{name} must be blank in .env.example"
    # The file as shipped (copied to .env unchanged) is the default configuration.
    assert Settings(_env_file=ENV_EXAMPLE).model_dump() == _defaults()  # type: ignore[call-arg]


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


# -- blank and invalid values ---------------------------------------------------------------


@pytest.mark.parametrize("blank", ["", "   "], ids=["empty", "spaces"])
@pytest.mark.parametrize("name", sorted(_settings_names()))
def test_a_blank_value_is_unset(
    name: str, blank: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`HAUNTFM_X=` means the default, for every setting: in the environment, in an env file,
    and as an argument."""
    field = name.removeprefix("HAUNTFM_").lower()
    monkeypatch.setenv(name, blank)
    assert Settings(_env_file=None).model_dump() == _defaults()  # type: ignore[call-arg]
    monkeypatch.delenv(name)
    env_file = tmp_path / ".env"
    env_file.write_text(f"{name}={blank}\n", encoding="utf-8")
    assert Settings(_env_file=env_file).model_dump() == _defaults()  # type: ignore[call-arg]
    assert Settings(_env_file=None, **{field: blank}).model_dump() == _defaults()  # type: ignore[call-arg]


def test_a_blank_environment_variable_leaves_the_env_file_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("HAUNTFM_LASTFM_API_KEY=from-the-file\nHAUNTFM_TORCH_THREADS=3\n", encoding="utf-8")
    monkeypatch.setenv("HAUNTFM_LASTFM_API_KEY", "")
    monkeypatch.setenv("HAUNTFM_TORCH_THREADS", "")
    settings = Settings(_env_file=env_file)  # type: ignore[call-arg]
    assert settings.lastfm_api_key is not None
    assert settings.lastfm_api_key.get_secret_value() == "from-the-file"
    assert settings.torch_threads == 3


@pytest.mark.parametrize(
    ("name", "value", "accepts"),
    [
        ("HAUNTFM_LOG_LEVEL", "verbose", "one of DEBUG, INFO, WARNING, ERROR"),
        ("HAUNTFM_TORCH_THREADS", "abc", "a whole number of at least 1"),
        ("HAUNTFM_TORCH_THREADS", "0", "a whole number of at least 1"),
        ("HAUNTFM_ITUNES_RATE_PER_MINUTE", "fast", "a number greater than 0"),
        ("HAUNTFM_ITUNES_RATE_PER_MINUTE", "-1", "a number greater than 0"),
        ("HAUNTFM_EMBEDDING_BATCH_SIZE", "5000", "a whole number from 1 to 1000"),
        ("HAUNTFM_VIBE_EMBED_TIMEOUT_SECONDS", "601", "a number from 0 to 600"),
        ("HAUNTFM_PREVIEW_WORKER_ENABLED", "maybe", "true or false"),
    ],
)
def test_an_invalid_value_is_one_line_naming_the_variable_and_what_it_accepts(
    name: str, value: str, accepts: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{name} must be {accepts}")
    assert message.endswith(f"got {value!r}.")


def test_every_invalid_value_is_named_in_the_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAUNTFM_LOG_LEVEL", "loud")
    monkeypatch.setenv("HAUNTFM_TORCH_THREADS", "many")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert "\n" not in message and "HAUNTFM_LOG_LEVEL" in message and "HAUNTFM_TORCH_THREADS" in message


def test_log_level_reads_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAUNTFM_LOG_LEVEL", " debug ")
    assert load_settings().log_level == "DEBUG"


# -- which env file --------------------------------------------------------------------------


def test_env_file_is_dot_env_unless_told_otherwise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_FILE_VARIABLE, raising=False)
    assert env_file() == Path(".env")
    for off in ("", " ", "none", "None"):
        monkeypatch.setenv(ENV_FILE_VARIABLE, off)
        assert env_file() is None
    named = tmp_path / "haunt.env"
    named.write_text("HAUNTFM_ITUNES_COUNTRY=SE\n", encoding="utf-8")
    monkeypatch.setenv(ENV_FILE_VARIABLE, str(named))
    assert env_file() == named
    get_settings.cache_clear()
    try:
        assert get_settings().itunes_country == "SE"
    finally:
        get_settings.cache_clear()
    monkeypatch.setenv(ENV_FILE_VARIABLE, str(tmp_path / "missing.env"))
    with pytest.raises(SettingsError, match=r"HAUNTFM_ENV_FILE names .*missing\.env"):
        env_file()


def test_the_test_suite_reads_no_env_file() -> None:
    """tests/conftest.py switches the env file off for this process and every child."""
    assert env_file() is None
