"""Test helpers shared across test packages (tiny models, generated audio)."""
