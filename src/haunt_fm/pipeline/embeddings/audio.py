"""Preview audio: a cached, size-capped download and a PyAV decode to 48 kHz mono float32.

Nothing here imports torch. `decode_audio` and `is_silent` are synchronous and CPU-bound:
the worker calls them through `asyncio.to_thread`, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import re
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import av
import httpx
import numpy as np

SAMPLE_RATE = 48_000
SILENCE_RMS = 1e-4
SILENT_REASON = "preview is silent"
# Below this fraction of the stream's declared duration a decode counts as truncated
# (encoder priming/padding moves durations by ~50 ms, far less than 3% of a preview).
_MIN_DECODED_FRACTION = 0.97
_PERMANENT_STATUSES = frozenset({400, 401, 403, 404, 410, 451})
_TRANSIENT_4XX = frozenset({408, 409, 425, 429})
_SUFFIX_RE = re.compile(r"^\.[A-Za-z0-9]{1,5}$")


class AudioDownloadError(Exception):
    """A preview could not be downloaded; `transient` says whether a retry may succeed."""

    def __init__(self, message: str, *, transient: bool, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.status_code = status_code


class AudioDecodeError(Exception):
    """The bytes are not decodable audio (corrupt, truncated, empty, no audio stream)."""


def cache_path_for(url: str, dest_dir: Path) -> Path:
    """Where the preview for `url` is cached: a SHA-256 of the URL, keeping a short extension."""
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()
    suffix = Path(urlsplit(url).path).suffix
    if not _SUFFIX_RE.match(suffix):
        suffix = ".audio"
    return Path(dest_dir) / f"{digest}{suffix.lower()}"


def _cached(path: Path) -> bool:
    # Files only appear under their final name through an atomic rename, so any file
    # that exists with content is complete.
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _status_error(url: str, status: int) -> AudioDownloadError:
    if status in _TRANSIENT_4XX or status >= 500:
        return AudioDownloadError(f"HTTP {status} for {url}", transient=True, status_code=status)
    if status in (404, 410):
        return AudioDownloadError(
            f"preview gone (HTTP {status}) for {url}", transient=False, status_code=status
        )
    return AudioDownloadError(f"HTTP {status} for {url}", transient=False, status_code=status)


async def download_preview(
    http: httpx.AsyncClient,
    url: str,
    dest_dir: Path,
    *,
    max_bytes: int,
    timeout: float,  # noqa: ASYNC109 - part of the worker's API; enforced with asyncio.timeout below
) -> Path:
    """Download `url` into the cache under `dest_dir` (reused when present) within `timeout` seconds."""
    dest = cache_path_for(url, dest_dir)
    if await asyncio.to_thread(_cached, dest):
        return dest
    chunks: list[bytes] = []
    size = 0
    try:
        # httpx's timeout bounds each connect/read; the outer deadline also stops a server
        # that drips bytes just fast enough to never trip a read timeout.
        # The Content-Type is ignored on purpose: iTunes serves AAC as `audio/x-m4p`,
        # and the decoder probes the bytes anyway.
        async with (
            asyncio.timeout(timeout),
            http.stream("GET", url, timeout=timeout, follow_redirects=True) as resp,
        ):
            if resp.status_code != 200:
                raise _status_error(url, resp.status_code)
            declared = resp.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise AudioDownloadError(
                    f"preview is {int(declared)} bytes, over the {max_bytes}-byte cap: {url}", transient=False
                )
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise AudioDownloadError(
                        f"preview exceeds the {max_bytes}-byte cap: {url}", transient=False
                    )
                chunks.append(chunk)
    except AudioDownloadError:
        raise
    except (httpx.UnsupportedProtocol, httpx.InvalidURL, httpx.TooManyRedirects) as exc:
        raise AudioDownloadError(f"bad preview URL {url}: {exc}", transient=False) from exc
    except (httpx.TimeoutException, TimeoutError) as exc:
        raise AudioDownloadError(f"timed out downloading {url}", transient=True) from exc
    except httpx.HTTPError as exc:
        # Connection refused/reset, a body cut short of its Content-Length, protocol errors.
        raise AudioDownloadError(
            f"network error downloading {url}: {type(exc).__name__}: {exc}", transient=True
        ) from exc
    if size == 0:
        # A CDN hiccup rather than a property of the track: retry within the attempt budget.
        raise AudioDownloadError(f"empty response body for {url}", transient=True)
    await asyncio.to_thread(_write_atomic, dest, b"".join(chunks))
    return dest


def _open_container(source: Path | str | bytes | bytearray | memoryview) -> Any:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        if not data:
            raise AudioDecodeError("audio is empty (0 bytes)")
        return av.open(io.BytesIO(data), mode="r")
    path = Path(source)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise AudioDecodeError(f"cannot read {path}: {exc}") from exc
    if size == 0:
        raise AudioDecodeError(f"audio file is empty (0 bytes): {path}")
    return av.open(str(path), mode="r")


def decode_audio(
    source: Path | str | bytes | bytearray | memoryview,
    *,
    sample_rate: int = SAMPLE_RATE,
    max_seconds: float | None = None,
) -> np.ndarray:
    """Decode a file or bytes to mono float32 at `sample_rate`; raise AudioDecodeError when unusable."""
    limit = None if max_seconds is None else max(0, round(max_seconds * sample_rate))
    parts: list[np.ndarray] = []
    total = 0
    expected_seconds: float | None = None
    stopped_early = False
    try:
        with _open_container(source) as container:
            if not container.streams.audio:
                raise AudioDecodeError("no audio stream")
            stream = container.streams.audio[0]
            # Only the stream's own duration (MP4 header, FLAC STREAMINFO, MP3 Xing/Info,
            # WAV data size): the container-level figure may be a bitrate guess.
            if stream.duration is not None and stream.time_base is not None:
                expected_seconds = float(stream.duration * stream.time_base)
            # Resample once, straight to the target rate, keeping the source channels:
            # the downmix below is a plain mean (what CLAP's training pipeline did via
            # librosa.to_mono) rather than swresample's +3 dB centre matrix.
            resampler = av.AudioResampler(format="fltp", rate=sample_rate)

            def take(frames: list[Any]) -> bool:
                nonlocal total
                for out in frames:
                    arr = out.to_ndarray()
                    mono = arr.mean(axis=0, dtype=np.float32) if arr.shape[0] > 1 else arr[0]
                    parts.append(np.array(mono, dtype=np.float32))
                    total += mono.shape[0]
                return limit is not None and total >= limit

            for frame in container.decode(stream):
                if take(resampler.resample(frame)):
                    stopped_early = True
                    break
            if not stopped_early:
                take(resampler.resample(None))
    except AudioDecodeError:
        raise
    except (av.FFmpegError, OSError, ValueError, EOFError) as exc:
        raise AudioDecodeError(f"cannot decode audio: {exc}") from exc
    if total == 0:
        raise AudioDecodeError("no audio samples decoded")
    samples = np.concatenate(parts) if len(parts) > 1 else parts[0]
    if limit is not None:
        samples = samples[:limit]
    if (
        not stopped_early
        and expected_seconds
        and total < _MIN_DECODED_FRACTION * expected_seconds * sample_rate
    ):
        raise AudioDecodeError(
            f"audio is truncated: decoded {total / sample_rate:.2f}s of a declared {expected_seconds:.2f}s"
        )
    if not np.all(np.isfinite(samples)):
        raise AudioDecodeError("decoded audio contains non-finite samples")
    # AAC/MP3 reconstruction overshoots full scale slightly; CLAP trained on clipped int16 audio.
    return np.clip(samples, -1.0, 1.0, out=samples)


def rms(samples: np.ndarray) -> float:
    """Root-mean-square level of `samples` (0.0 when empty)."""
    if samples.size == 0:
        return 0.0
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


def is_silent(samples: np.ndarray, *, threshold: float = SILENCE_RMS) -> bool:
    """True when the RMS level is below `threshold` (about -80 dBFS): report SILENT_REASON."""
    return rms(samples) < threshold
