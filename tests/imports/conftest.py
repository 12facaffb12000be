from tests.discovery.support import itunes, itunes_server, lastfm, lastfm_server

__all__ = ["itunes", "itunes_server", "lastfm", "lastfm_server"]
