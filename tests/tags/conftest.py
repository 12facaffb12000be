from tests.discovery.support import lastfm, lastfm_server

__all__ = ["lastfm", "lastfm_server"]
