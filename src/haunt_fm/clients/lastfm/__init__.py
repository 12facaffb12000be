"""Last.fm client: similar-track discovery."""

from haunt_fm.clients.lastfm.client import (
    DEFAULT_BASE_URL,
    LastfmAuthError,
    LastfmClient,
    LastfmError,
    SimilarResult,
    SimilarTrack,
    parse_similar,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "LastfmAuthError",
    "LastfmClient",
    "LastfmError",
    "SimilarResult",
    "SimilarTrack",
    "parse_similar",
]
