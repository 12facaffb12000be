"""Fixtures for the playlist tests: a Home Assistant stand-in shared by the module, reset per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes import FakeHomeAssistant
from tests.playlists.support import HA_TOKEN, SPEAKERS


@pytest.fixture(scope="module")
def ha_server() -> Iterator[FakeHomeAssistant]:
    with FakeHomeAssistant(token=HA_TOKEN) as fake:
        yield fake


@pytest.fixture
def ha(ha_server: FakeHomeAssistant) -> FakeHomeAssistant:
    """The stand-in with the seed's Music Assistant speakers, nothing recorded yet."""
    ha_server.reset()
    for entity_id, name in SPEAKERS.items():
        ha_server.add_player(entity_id, friendly_name=name)
    return ha_server
