"""Loopback stand-ins for the outside services, speaking their real wire formats."""

from tests.fakes.homeassistant import FakeHomeAssistant, ServiceCall
from tests.fakes.itunes import FakeItunes
from tests.fakes.lastfm import FakeLastfm
from tests.fakes.server import FakeServer, FakeService, Fault, RecordedRequest, max_in_window

__all__ = [
    "FakeHomeAssistant",
    "FakeItunes",
    "FakeLastfm",
    "FakeServer",
    "FakeService",
    "Fault",
    "RecordedRequest",
    "ServiceCall",
    "max_in_window",
]
