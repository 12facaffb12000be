"""Hermetic configuration for tests and benchmarks: the caller's HAUNTFM_* variables and the
project's `.env` never reach the code under test, in this process or in a child process."""

from __future__ import annotations

import os
from collections.abc import Mapping

from haunt_fm.config import ENV_FILE_VARIABLE, ENV_PREFIX


def clean_environ(base: Mapping[str, str] | None = None, **values: str) -> dict[str, str]:
    """An environment for a haunt-fm process: `base` (default os.environ) without any HAUNTFM_*
    variable, with the env file switched off, plus `values`."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith(ENV_PREFIX)}
    env[ENV_FILE_VARIABLE] = "none"
    env.update(values)
    return env


def make_hermetic() -> None:
    """Apply `clean_environ` to this process (and so to every child it starts)."""
    clean = clean_environ()
    for key in [k for k in os.environ if k not in clean]:
        del os.environ[key]
    os.environ.update(clean)
