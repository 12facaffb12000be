"""Fixtures shared by the taste, recommendation and feedback tests."""

from tests.recommendations.support import serve_app  # noqa: F401
