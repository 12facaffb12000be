"""Home Assistant client: playback through Music Assistant."""

from haunt_fm.clients.homeassistant.client import (
    ENQUEUE_MODES,
    HomeAssistantAuthError,
    HomeAssistantClient,
    HomeAssistantError,
    HomeAssistantServiceError,
    HomeAssistantUnavailable,
)

__all__ = [
    "ENQUEUE_MODES",
    "HomeAssistantAuthError",
    "HomeAssistantClient",
    "HomeAssistantError",
    "HomeAssistantServiceError",
    "HomeAssistantUnavailable",
]
