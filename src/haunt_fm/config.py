"""Settings: one pydantic-settings class, every variable prefixed HAUNTFM_."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import platformdirs
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    user_dir = Path(platformdirs.user_data_dir("haunt-fm"))
    # As root the embedded PostgreSQL runs as an unprivileged user, which can't reach
    # /root/.local/share: root's data goes where that user can be given its own directory —
    # unless an earlier version already keeps a database in the old place.
    if os.geteuid() == 0 and not (user_dir / "pg" / "PG_VERSION").exists():
        return Path("/var/lib/haunt-fm")
    return user_dir


class Settings(BaseSettings):
    """Runtime configuration, read from the environment (and `.env`)."""

    model_config = SettingsConfigDict(
        env_prefix="HAUNTFM_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
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

    # Preview lookup (iTunes Search API); `/search` is appended to the URL.
    itunes_api_url: str = "https://itunes.apple.com"
    itunes_rate_per_minute: float = Field(default=20.0, gt=0)
    itunes_country: str = "US"
    preview_worker_enabled: bool = True
    preview_not_found_retry_days: float = Field(default=30.0, ge=0)

    # Playback (Home Assistant REST API -> Music Assistant).
    ha_url: str | None = None
    ha_token: SecretStr | None = None

    # Embeddings (CLAP).
    clap_model: str = "laion/larger_clap_music"
    clap_text_model: str | None = None
    embedding_worker_enabled: bool = True
    embedding_batch_size: int = Field(default=10, ge=1, le=1000)
    embedding_interval_seconds: float = Field(default=30.0, ge=0)
    # Renewed every third of this while a batch runs: a dead worker's tracks free up this fast.
    embedding_lease_seconds: float = Field(default=120.0, gt=0)
    embedding_max_attempts: int = Field(default=3, ge=1)
    torch_threads: int | None = Field(default=None, ge=1)
    model_cache_dir: Path | None = None
    audio_cache_dir: Path | None = None
    max_preview_bytes: int = Field(default=20 * 1024 * 1024, gt=0)

    # Taste profile.
    taste_half_life_days: float = Field(default=30.0, gt=0)
    # How long a request waits for a worker to embed a new vibe text (then 503).
    vibe_embed_timeout_seconds: float = Field(default=20.0, ge=0, le=600)

    # HTTP limits of `serve` (a slow or oversized request can't starve the others).
    http_max_header_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    http_header_timeout_seconds: float = Field(default=10.0, gt=0)
    http_body_timeout_seconds: float = Field(default=30.0, gt=0)
    http_max_connections: int = Field(default=500, ge=10)

    log_level: str = "INFO"

    # The command line: a running haunt-fm (http://host:8321) that commands with an API
    # counterpart talk to over HTTP, with api_token as the bearer token, instead of the database.
    url: str | None = None

    @field_validator("database_url", "api_token", "lastfm_api_key", "ha_token", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("ha_url", "clap_text_model", "url", mode="before")
    @classmethod
    def _blank_str_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

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


@lru_cache
def get_settings() -> Settings:
    return Settings()
