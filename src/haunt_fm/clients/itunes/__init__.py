"""iTunes Search API client: 30-second previews."""

from haunt_fm.clients.itunes.client import (
    DEFAULT_BASE_URL,
    ItunesClient,
    ItunesError,
    ItunesRateLimited,
    ItunesTrack,
    parse_results,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "ItunesClient",
    "ItunesError",
    "ItunesRateLimited",
    "ItunesTrack",
    "parse_results",
]
