"""Preview download (against a real local HTTP server) and PyAV decoding."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pytest

from haunt_fm.pipeline.embeddings.audio import (
    SAMPLE_RATE,
    SILENT_REASON,
    AudioDecodeError,
    AudioDownloadError,
    cache_path_for,
    decode_audio,
    download_preview,
    is_silent,
    rms,
)
from tests.support import audio as gen

SECONDS = 30
FREQ = 440.0
AMPLITUDE = 0.3  # tone() default


def _bytes(path: Path) -> bytes:
    return path.read_bytes()


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def _dominant_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples[: SAMPLE_RATE * 4]))
    return float(np.fft.rfftfreq(SAMPLE_RATE * 4, 1 / SAMPLE_RATE)[np.argmax(spectrum)])


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audio")


@pytest.fixture(scope="module")
def m4a(files: Path) -> Path:
    return gen.make_aac_m4a(files / "preview.m4a", seconds=SECONDS, freq=FREQ)


FORMATS: dict[str, Callable[[Path], Path]] = {
    "aac-m4a-faststart": lambda p: gen.make_aac_m4a(p / "a.m4a", SECONDS, FREQ),
    "aac-m4a-moov-at-end": lambda p: gen.make_aac_m4a(p / "b.m4a", SECONDS, FREQ, faststart=False),
    "aac-m4a-mono-48k": lambda p: gen.make_aac_m4a(p / "c.m4a", SECONDS, FREQ, 48_000, channels=1),
    "mp3": lambda p: gen.make_mp3(p / "a.mp3", SECONDS, FREQ),
    "ogg-vorbis": lambda p: gen.make_ogg_vorbis(p / "a.ogg", SECONDS, FREQ),
    "flac": lambda p: gen.make_flac(p / "a.flac", SECONDS, FREQ),
    "wav-stereo": lambda p: gen.make_wav(p / "a.wav", SECONDS, FREQ),
    "wav-mono-22k": lambda p: gen.make_wav(p / "b.wav", SECONDS, FREQ, 22_050, channels=1),
}


# --- decoding ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", FORMATS)
def test_decode_formats_to_48k_mono_float32(kind: str, files: Path) -> None:
    path = FORMATS[kind](files)
    samples = decode_audio(path)
    assert samples.dtype == np.float32
    assert samples.ndim == 1
    assert samples.shape[0] / SAMPLE_RATE == pytest.approx(SECONDS, rel=0.01)
    # Resampled, not just relabelled: the tone is still at 440 Hz at 48 kHz.
    assert _dominant_hz(samples) == pytest.approx(FREQ, abs=1.0)
    # Stereo is averaged (a plain mean), not summed at +3 dB: the level of the source survives.
    assert rms(samples) == pytest.approx(AMPLITUDE / np.sqrt(2), rel=0.05)
    assert float(np.abs(samples).max()) <= 1.0


def test_decode_bytes_matches_path(m4a: Path) -> None:
    from_path = decode_audio(m4a)
    from_bytes = decode_audio(m4a.read_bytes())
    np.testing.assert_array_equal(from_path, from_bytes)


def test_decode_max_seconds_stops_early(m4a: Path) -> None:
    samples = decode_audio(m4a, max_seconds=12.5)
    assert samples.shape == (int(12.5 * SAMPLE_RATE),)
    np.testing.assert_array_equal(samples, decode_audio(m4a)[: samples.shape[0]])


def test_decode_other_sample_rate(m4a: Path) -> None:
    samples = decode_audio(m4a, sample_rate=16_000)
    assert samples.shape[0] / 16_000 == pytest.approx(SECONDS, rel=0.01)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda p: gen.make_aac_m4a(p / "t1.m4a", 20, FREQ), id="m4a-faststart"),
        pytest.param(
            lambda p: gen.make_aac_m4a(p / "t2.m4a", 20, FREQ, faststart=False), id="m4a-moov-at-end"
        ),
        pytest.param(lambda p: gen.make_mp3(p / "t.mp3", 20, FREQ), id="mp3"),
        pytest.param(lambda p: gen.make_flac(p / "t.flac", 20, FREQ), id="flac"),
    ],
)
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_file_raises(make: Callable[[Path], Path], keep: float, files: Path) -> None:
    full = make(files)
    cut = gen.make_truncated(full, files / f"cut-{keep}-{full.name}", keep_fraction=keep)
    with pytest.raises(AudioDecodeError):
        decode_audio(cut)
    with pytest.raises(AudioDecodeError):
        decode_audio(cut, max_seconds=60)  # a cap longer than the file doesn't hide the cut
    assert decode_audio(full).shape[0] / SAMPLE_RATE == pytest.approx(20, rel=0.01)


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(lambda p: gen.make_garbage(p / "garbage.m4a"), id="garbage-file"),
        pytest.param(lambda p: gen.make_empty(p / "empty.m4a"), id="zero-length-file"),
        pytest.param(lambda p: b"", id="empty-bytes"),
        pytest.param(lambda p: b"\x00\x00\x00\x1cftypM4A ", id="header-only-bytes"),
        pytest.param(lambda p: p / "does-not-exist.m4a", id="missing-file"),
        pytest.param(
            lambda p: (p / "page.html").write_text("<html>404</html>") and p / "page.html", id="html"
        ),
    ],
)
def test_undecodable_input_raises(source: Callable[[Path], object], files: Path) -> None:
    with pytest.raises(AudioDecodeError):
        decode_audio(source(files))  # type: ignore[arg-type]


def test_silence_detection(files: Path, m4a: Path) -> None:
    silent = decode_audio(gen.make_silent_m4a(files / "silent.m4a", seconds=5))
    assert silent.shape[0] / SAMPLE_RATE == pytest.approx(5, rel=0.01)
    assert is_silent(silent)
    assert not is_silent(decode_audio(m4a))
    rng = np.random.default_rng(0)
    assert is_silent((1e-5 * rng.standard_normal(SAMPLE_RATE)).astype(np.float32))  # -100 dBFS hiss
    assert not is_silent((1e-3 * rng.standard_normal(SAMPLE_RATE)).astype(np.float32))  # -60 dBFS
    assert is_silent(np.zeros(0, dtype=np.float32))
    assert SILENT_REASON == "preview is silent"


# --- downloading ------------------------------------------------------------------------------


class _Server:
    def __init__(self, body: bytes) -> None:
        self.body = body
        self.hits: Counter[str] = Counter()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _send(self, status: int, body: bytes = b"", *, length: int | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "audio/x-m4p")  # what iTunes really sends
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                server.hits[path] += 1
                if path.endswith(".m4a") and path.startswith("/preview"):
                    self._send(200, server.body)
                elif path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", "/preview-redirected.m4a")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif path.startswith("/status/"):
                    self._send(int(path.rsplit("/", 1)[1]), b"nope")
                elif path == "/oversize-declared":
                    self._send(200, b"x" * 4096)
                elif path == "/oversize-streamed":
                    # No Content-Length: HTTP/1.0 body until close, so only counting catches it.
                    self.send_response(200)
                    self.send_header("Content-Type", "audio/x-m4p")
                    self.end_headers()
                    try:
                        for _ in range(64):
                            self.wfile.write(b"y" * 1024)
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # the client hung up at the cap, as it should
                elif path == "/cut-short":
                    self._send(200, b"z" * 100, length=1_000)
                elif path == "/empty":
                    self._send(200, b"")
                elif path == "/drip":
                    # Each read arrives well within the timeout; the whole body doesn't.
                    self.send_response(200)
                    self.send_header("Content-Length", "1500")
                    self.end_headers()
                    try:
                        for _ in range(15):
                            self.wfile.write(b"d" * 100)
                            self.wfile.flush()
                            time.sleep(0.1)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                elif path == "/slow":
                    time.sleep(2)
                    self._send(200, server.body)
                else:
                    self._send(404)

        return Handler

    def __enter__(self) -> _Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server(m4a: Path) -> Iterator[_Server]:
    with _Server(m4a.read_bytes()) as srv:
        yield srv


async def test_download_ignores_content_type_and_caches(server: _Server, tmp_path: Path, m4a: Path) -> None:
    url = f"{server.base}/preview-1.m4a?country=US"
    async with httpx.AsyncClient() as http:
        path = await download_preview(http, url, tmp_path, max_bytes=10_000_000, timeout=5)
        assert path == cache_path_for(url, tmp_path)
        assert _bytes(path) == _bytes(m4a)
        assert decode_audio(path).shape[0] / SAMPLE_RATE == pytest.approx(SECONDS, rel=0.01)
        again = await download_preview(http, url, tmp_path, max_bytes=10_000_000, timeout=5)
    assert again == path
    assert server.hits["/preview-1.m4a"] == 1  # second call served from the cache
    assert _names(tmp_path) == [path.name]  # no temp files left behind


async def test_download_follows_redirects(server: _Server, tmp_path: Path, m4a: Path) -> None:
    async with httpx.AsyncClient() as http:
        path = await download_preview(
            http, f"{server.base}/redirect", tmp_path, max_bytes=10_000_000, timeout=5
        )
    assert _bytes(path) == _bytes(m4a)


def test_cache_path_is_stable_and_distinct(tmp_path: Path) -> None:
    a = cache_path_for("https://audio-ssl.itunes.apple.com/x/y/mzaf_1.plus.aac.p.m4a", tmp_path)
    assert a == cache_path_for("https://audio-ssl.itunes.apple.com/x/y/mzaf_1.plus.aac.p.m4a", tmp_path)
    assert a.suffix == ".m4a" and a.parent == tmp_path
    assert a != cache_path_for("https://audio-ssl.itunes.apple.com/x/y/mzaf_2.plus.aac.p.m4a", tmp_path)


async def test_partial_temp_file_is_not_a_cache_hit(server: _Server, tmp_path: Path, m4a: Path) -> None:
    url = f"{server.base}/preview-2.m4a"
    final = cache_path_for(url, tmp_path)
    gen.make_truncated(
        m4a, tmp_path / f".{final.name}.deadbeef.part", keep_fraction=0.5
    )  # a crashed download
    async with httpx.AsyncClient() as http:
        path = await download_preview(http, url, tmp_path, max_bytes=10_000_000, timeout=5)
    assert _bytes(path) == _bytes(m4a)
    assert server.hits["/preview-2.m4a"] == 1


@pytest.mark.parametrize(
    ("route", "transient", "status"),
    [
        ("/status/404", False, 404),
        ("/status/410", False, 410),
        ("/status/403", False, 403),
        ("/status/500", True, 500),
        ("/status/503", True, 503),
        ("/status/429", True, 429),
        ("/oversize-declared", False, None),
        ("/oversize-streamed", False, None),
        ("/cut-short", True, None),
        ("/empty", True, None),
        ("/slow", True, None),
        ("/drip", True, None),
    ],
)
async def test_download_errors_are_classified(
    server: _Server, tmp_path: Path, route: str, transient: bool, status: int | None
) -> None:
    async with httpx.AsyncClient() as http:
        with pytest.raises(AudioDownloadError) as err:
            await download_preview(http, server.base + route, tmp_path, max_bytes=2048, timeout=0.5)
    assert err.value.transient is transient
    assert err.value.status_code == status
    assert _names(tmp_path) == []  # nothing cached, no temp files


async def test_connection_refused_is_transient(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nobody listens
    async with httpx.AsyncClient() as http:
        with pytest.raises(AudioDownloadError) as err:
            await download_preview(
                http, f"http://127.0.0.1:{port}/p.m4a", tmp_path, max_bytes=2048, timeout=2
            )
    assert err.value.transient is True


async def test_unsupported_url_is_permanent(tmp_path: Path) -> None:
    async with httpx.AsyncClient() as http:
        with pytest.raises(AudioDownloadError) as err:
            await download_preview(http, "ftp://example.invalid/p.m4a", tmp_path, max_bytes=2048, timeout=2)
    assert err.value.transient is False
