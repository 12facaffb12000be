"""Fixtures for the MCP tests: a Home Assistant stand-in with the household's speakers, reset per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes import FakeHomeAssistant
from tests.mcp_server.support import HA_TOKEN, add_speakers
from tests.recommendations.support import serve_app  # noqa: F401


@pytest.fixture(scope="module")
def ha_server() -> Iterator[FakeHomeAssistant]:
    with FakeHomeAssistant(token=HA_TOKEN) as fake:
        yield fake


@pytest.fixture
def ha(ha_server: FakeHomeAssistant) -> FakeHomeAssistant:
    """The stand-in with three Music Assistant players and one speaker's own (non-MA) entity."""
    ha_server.reset()
    add_speakers(ha_server)
    return ha_server
