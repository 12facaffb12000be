"""The radio tests share the playlist tests' Home Assistant stand-in (two Music Assistant speakers)."""

from tests.playlists.conftest import ha, ha_server

__all__ = ["ha", "ha_server"]
