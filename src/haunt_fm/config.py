"""Settings: one pydantic-settings class, every variable prefixed HAUNTFM_.

A blank value means "not set" for every setting (its default applies). `get_settings()`
also reads the env file that HAUNTFM_ENV_FILE names (default `.env` in the working
directory; blank or `none`: no file), and turns an invalid value into a `SettingsError`
whose message is one line naming the variable and what it accepts.
"""

from __future__ import annotations

import os
import types
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
import platformdirs
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "HAUNTFM_"
# Not a setting: it says where the settings file is, so it is read from the environment only.
ENV_FILE_VARIABLE = "HAUNTFM_ENV_FILE"
DEFAULT_ENV_FILE = ".env"

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class SettingsError(ValueError):
    """The configuration cannot be used; the message is one line a person can act on."""


def _default_data_dir() -> Path:
    user_dir = Path(platformdirs.user_data_dir("haunt-fm"))
    # As root the embedded PostgreSQL runs as an unprivileged user, which can't reach
    # /root/.local/share: root's data goes where that user can be given its own directory —
    # unless an earlier version already keeps a database in the old place.
    if os.geteuid() == 0 and not (user_dir / "pg" / "PG_VERSION").exists():
        return Path("/var/lib/haunt-fm")
    return user_dir


# Settings that no longer exist. They stay readable only so that startup can refuse them
# with a sentence naming the replacement, instead of silently doing something else.
RETIRED_SETTINGS: dict[str, str] = {
    "clap_text_model": (
        "HAUNTFM_CLAP_TEXT_MODEL is retired: a vibe embedded by one CLAP checkpoint cannot be compared "
        "with audio embedded by another, so unset it and, for vibe text that works, set "
        "HAUNTFM_CLAP_MODEL to a checkpoint whose text tower works (e.g. laion/larger_clap_general; the "
        "library is re-embedded in the background)."
    ),
}


class Settings(BaseSettings):
    """Runtime configuration, read from the environment (and `.env`)."""

    # No env file unless one is passed (`get_settings` passes HAUNTFM_ENV_FILE's). A blank
    # environment variable is skipped at the source, so a value in the env file still applies.
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=None, env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )

    # Database: unset -> an embedded PostgreSQL 18 + pgvector under data_dir.
    database_url: SecretStr | None = None
    data_dir: Path = Field(default_factory=_default_data_dir)

    # Access: when set, every /api/* call needs `Authorization: Bearer <token>`.
    api_token: SecretStr | None = None

    # Discovery (Last.fm track.getSimilar).
    lastfm_api_key: SecretStr | None = None
    lastfm_api_url: str = "https://ws.audioscrobbler.com/2.0/"
    lastfm_rate_per_second: float = Field(default=5.0, gt=0)
    discovery_reexpand_days: float = Field(default=7.0, ge=0)
    # serve runs discovery by itself this often (0 = only when asked).
    discovery_interval_hours: float = Field(default=24.0, ge=0)

    # Preview lookup (iTunes Search API); `/search` is appended to the URL.
    itunes_api_url: str = "https://itunes.apple.com"
    itunes_rate_per_minute: float = Field(default=20.0, gt=0)
    itunes_country: str = "US"
    preview_worker_enabled: bool = True
    preview_not_found_retry_days: float = Field(default=30.0, ge=0)

    # Playback (Home Assistant REST API -> Music Assistant).
    ha_url: str | None = None
    ha_token: SecretStr | None = None
    # Listens the webhook missed are recovered from Home Assistant's history every this many
    # minutes (and at start); 0 turns it off. Players read: mapped speakers, players seen in
    # listens, and these extra entity ids (comma-separated).
    ha_reconcile_minutes: float = Field(default=10.0, ge=0)
    ha_players: str | None = None

    # Embeddings (CLAP).
    clap_model: str = "laion/larger_clap_music"
    # Retired (see RETIRED_SETTINGS): read only so that startup can refuse it.
    clap_text_model: str | None = None
    embedding_worker_enabled: bool = True
    embedding_batch_size: int = Field(default=10, ge=1, le=1000)
    embedding_interval_seconds: float = Field(default=30.0, ge=0)
    # Renewed every third of this while a batch runs: a dead worker's tracks free up this fast.
    embedding_lease_seconds: float = Field(default=120.0, gt=0)
    embedding_max_attempts: int = Field(default=3, ge=1)
    torch_threads: int | None = Field(default=None, ge=1)
    # The audio tower's runtime: auto exports to ONNX, verifies fp32 and int8 against
    # PyTorch (the fidelity gate) and runs the fastest that passed, measured on this CPU.
    embedding_runtime: Literal["torch", "onnx", "onnx-int8", "auto"] = "auto"
    model_cache_dir: Path | None = None
    audio_cache_dir: Path | None = None
    max_preview_bytes: int = Field(default=20 * 1024 * 1024, gt=0)

    # Radio (pipeline/radio): Home Assistant failing to queue a batch is tried again after this
    # many seconds, doubling up to 2 minutes; the radio ends after this many failed attempts.
    radio_retry_seconds: float = Field(default=5.0, gt=0, le=600)
    radio_retry_attempts: int = Field(default=8, ge=1, le=100)
    # Tags (Last.fm track.getTopTags): a track's tags are fetched again after this many days.
    tags_refresh_days: float = Field(default=90.0, gt=0)

    # Taste profile.
    taste_half_life_days: float = Field(default=30.0, gt=0)
    # How long a request waits for a worker to embed a new vibe text (then 503).
    vibe_embed_timeout_seconds: float = Field(default=20.0, ge=0, le=600)

    # HTTP limits of `serve` (a slow or oversized request can't starve the others).
    http_max_header_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    http_header_timeout_seconds: float = Field(default=10.0, gt=0)
    http_body_timeout_seconds: float = Field(default=30.0, gt=0)
    http_max_connections: int = Field(default=500, ge=10)
    # History imports: the largest ListenBrainz export an upload may carry (the CLI reads
    # files in place, without a limit).
    import_max_bytes: int = Field(default=2 * 1024**3, gt=0)
    # ListenBrainz listens stored per transaction (and per resume step).
    import_batch_size: int = Field(default=5000, ge=1, le=100_000)

    log_level: LogLevel = "INFO"

    # The command line: a running haunt-fm (http://host:8321) that commands with an API
    # counterpart talk to over HTTP, with api_token as the bearer token, instead of the database.
    url: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: Any) -> Any:
        """`HAUNTFM_X=` (or only spaces), in the environment, an env file or as an argument: the default."""
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (isinstance(v, str) and not v.strip())}
        return data

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level_in_any_case(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().upper() in get_args(LogLevel):
            return value.strip().upper()
        return value  # refused as written, so the error shows what the user wrote

    def retired(self) -> list[str]:
        """Why this configuration must not start: one sentence per retired setting that is set."""
        return [message for field, message in RETIRED_SETTINGS.items() if getattr(self, field) is not None]

    @property
    def resolved_model_cache_dir(self) -> Path:
        return self.model_cache_dir or self.data_dir / "models"

    @property
    def resolved_audio_cache_dir(self) -> Path:
        return self.audio_cache_dir or self.data_dir / "audio"

    @property
    def lastfm_configured(self) -> bool:
        return self.lastfm_api_key is not None

    @property
    def ha_configured(self) -> bool:
        return bool(self.ha_url) and self.ha_token is not None

    @property
    def ha_player_list(self) -> list[str]:
        """HAUNTFM_HA_PLAYERS as entity ids."""
        return [p.strip().lower() for p in (self.ha_players or "").split(",") if p.strip()]


def env_file() -> Path | None:
    """The env file HAUNTFM_ENV_FILE names: `.env` when unset; None when blank or `none`."""
    value = os.environ.get(ENV_FILE_VARIABLE)
    if value is None:
        return Path(DEFAULT_ENV_FILE)
    if not value.strip() or value.strip().lower() == "none":
        return None
    path = Path(value.strip()).expanduser()
    if not path.is_file():
        raise SettingsError(
            f"{ENV_FILE_VARIABLE} names {str(path)!r}, which is not a file; fix the path or unset it."
        )
    return path


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


_KINDS: dict[Any, str] = {
    bool: "true or false (or yes/no, on/off, 1/0)",
    int: "a whole number",
    float: "a number",
    Path: "a path",
    str: "text",
    SecretStr: "text",
}


def accepted_values(field: FieldInfo) -> str:
    """What a setting accepts, in words (from its type and bounds)."""
    annotation, optional = _unwrap_optional(field.annotation)
    if get_origin(annotation) is Literal:
        kind = "one of " + ", ".join(str(a) for a in get_args(annotation))
    else:
        kind = _KINDS.get(annotation, "a valid value")
    bounds: dict[str, Any] = {}
    for item in field.metadata:
        for name in ("gt", "ge", "lt", "le"):
            if isinstance(item, getattr(annotated_types, name.capitalize())):
                bounds[name] = getattr(item, name)
    if "ge" in bounds and "le" in bounds:
        kind += f" from {bounds['ge']:g} to {bounds['le']:g}"
    else:
        words = {"gt": "greater than", "ge": "of at least", "lt": "less than", "le": "of at most"}
        kind += "".join(f" {words[k]} {v:g}" for k, v in bounds.items())
    if optional or field.default is not None or field.default_factory is not None:
        kind += ", or blank for the default"
    return kind


def describe_invalid(exc: ValidationError) -> str:
    """One line: each invalid variable, what it accepts, and what it got (never a secret)."""
    parts = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else ""
        field = Settings.model_fields.get(name)
        if field is None:
            parts.append(error["msg"])
            continue
        secret = "SecretStr" in str(field.annotation)
        got = "" if secret else f"; got {str(error.get('input'))[:60]!r}"
        parts.append(f"{ENV_PREFIX}{name.upper()} must be {accepted_values(field)}{got}")
    return "; ".join(parts) + "."


def load_settings() -> Settings:
    """Settings from the environment and HAUNTFM_ENV_FILE's file; SettingsError when invalid."""
    try:
        return Settings(_env_file=env_file())  # type: ignore[call-arg]
    except ValidationError as exc:
        raise SettingsError(describe_invalid(exc)) from None


@lru_cache
def get_settings() -> Settings:
    """The process's settings (loaded once)."""
    return load_settings()
