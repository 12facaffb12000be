"""Background loops that run inside `serve`: preview lookup and the embedding worker.

Each stage exposes `run_forever(...)` coroutines; this module starts and stops them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import FastAPI

from haunt_fm.config import Settings

log = logging.getLogger(__name__)


def start(app: FastAPI, settings: Settings) -> list[asyncio.Task[None]]:
    """Start the loops the settings enable; returns their tasks."""
    tasks: list[asyncio.Task[None]] = []
    return tasks


async def stop(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the loops and wait for them to finish their current step."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
