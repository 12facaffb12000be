"""Generate audio fixtures with PyAV's own FFmpeg: the formats previews come in, and broken files."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np
import pytest
from av.audio.stream import AudioStream


def has_encoder(name: str) -> bool:
    """Whether this PyAV build can encode with codec `name`."""
    try:
        av.codec.Codec(name, "w")
    except Exception:
        return False
    return True


def tone(
    seconds: float, *, freq: float = 440.0, sample_rate: int = 44_100, amplitude: float = 0.3
) -> np.ndarray:
    """A mono float32 sine."""
    t = np.arange(round(seconds * sample_rate), dtype=np.float64) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_audio(
    path: Path,
    samples: np.ndarray,
    *,
    sample_rate: int,
    codec: str,
    container_format: str | None = None,
    sample_format: str | None = None,
    channels: int = 2,
    bit_rate: int | None = None,
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
) -> Path:
    """Encode mono float32 `samples` (duplicated to `channels`) to `path` with `codec`."""
    if not has_encoder(codec):
        pytest.skip(f"this FFmpeg build has no {codec} encoder")
    layout = "mono" if channels == 1 else "stereo"
    with av.open(str(path), mode="w", format=container_format, options=container_options or {}) as out:
        stream = cast(AudioStream, out.add_stream(codec, rate=sample_rate, options=options or {}))
        stream.layout = layout
        fmt = sample_format or (stream.codec_context.codec.audio_formats or [av.AudioFormat("fltp")])[0].name
        stream.format = fmt
        if bit_rate:
            stream.bit_rate = bit_rate
        frame_size = stream.codec_context.frame_size or 1024
        data = np.tile(samples.astype(np.float32), (channels, 1))
        planar = av.AudioFormat(fmt).is_planar
        pts = 0
        for start in range(0, data.shape[1], frame_size):
            chunk = data[:, start : start + frame_size]
            arr = _to_format(chunk, fmt)
            frame = av.AudioFrame.from_ndarray(
                arr if planar else arr.T.reshape(1, -1), format=fmt, layout=layout
            )
            frame.sample_rate = sample_rate
            frame.pts = pts
            frame.time_base = Fraction(1, sample_rate)
            pts += chunk.shape[1]
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def _to_format(chunk: np.ndarray, fmt: str) -> np.ndarray:
    base = fmt.rstrip("p")
    if base == "flt":
        return np.ascontiguousarray(chunk, dtype=np.float32)
    if base == "dbl":
        return np.ascontiguousarray(chunk, dtype=np.float64)
    if base == "s16":
        return np.ascontiguousarray(np.round(chunk * 32767), dtype=np.int16)
    if base == "s32":
        return np.ascontiguousarray(np.round(chunk * 2147483647.0), dtype=np.int32)
    raise ValueError(f"unsupported sample format {fmt}")


def make_aac_m4a(
    path: Path,
    seconds: float = 30,
    freq: float = 440,
    sample_rate: int = 44_100,
    *,
    faststart: bool = True,
    channels: int = 2,
) -> Path:
    """AAC in MP4 (.m4a), the iTunes preview format (moov atom first, as iTunes serves it)."""
    return write_audio(
        path, tone(seconds, freq=freq, sample_rate=sample_rate), sample_rate=sample_rate,
        codec="aac", container_format="mp4", bit_rate=128_000, channels=channels,
        container_options={"movflags": "+faststart"} if faststart else None,
    )  # fmt: skip


def make_mp3(path: Path, seconds: float = 30, freq: float = 440, sample_rate: int = 44_100) -> Path:
    """MP3 (libmp3lame); skips when the encoder is missing."""
    return write_audio(
        path, tone(seconds, freq=freq, sample_rate=sample_rate), sample_rate=sample_rate,
        codec="libmp3lame", container_format="mp3", bit_rate=128_000,
    )  # fmt: skip


def make_ogg_vorbis(path: Path, seconds: float = 30, freq: float = 440, sample_rate: int = 44_100) -> Path:
    """Ogg/Vorbis (libvorbis, else FFmpeg's experimental native encoder)."""
    codec = "libvorbis" if has_encoder("libvorbis") else "vorbis"
    return write_audio(
        path, tone(seconds, freq=freq, sample_rate=sample_rate), sample_rate=sample_rate,
        codec=codec, container_format="ogg", options={"strict": "experimental"},
    )  # fmt: skip


def make_flac(path: Path, seconds: float = 30, freq: float = 440, sample_rate: int = 44_100) -> Path:
    """FLAC."""
    return write_audio(
        path, tone(seconds, freq=freq, sample_rate=sample_rate), sample_rate=sample_rate,
        codec="flac", container_format="flac", sample_format="s16",
    )  # fmt: skip


def make_wav(
    path: Path, seconds: float = 30, freq: float = 440, sample_rate: int = 44_100, *, channels: int = 2
) -> Path:
    """16-bit PCM WAV."""
    return write_audio(
        path, tone(seconds, freq=freq, sample_rate=sample_rate), sample_rate=sample_rate,
        codec="pcm_s16le", container_format="wav", sample_format="s16", channels=channels,
    )  # fmt: skip


def make_silent_m4a(path: Path, seconds: float = 30, sample_rate: int = 44_100) -> Path:
    """A well-formed AAC/MP4 file of digital silence."""
    silence = np.zeros(round(seconds * sample_rate), dtype=np.float32)
    return write_audio(path, silence, sample_rate=sample_rate, codec="aac", container_format="mp4")


def make_truncated(src: Path, dest: Path, *, keep_fraction: float = 0.5) -> Path:
    """Copy the first `keep_fraction` of `src`'s bytes, like a download cut short."""
    data = src.read_bytes()
    dest.write_bytes(data[: int(len(data) * keep_fraction)])
    return dest


def make_garbage(path: Path, size: int = 64 * 1024, *, seed: int = 7) -> Path:
    """Random bytes that are no audio format."""
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path


def make_empty(path: Path) -> Path:
    """A zero-length file."""
    path.write_bytes(b"")
    return path
