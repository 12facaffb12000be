"""The HTTP limits of `serve`: header size cap, header and body read timeouts, slow clients."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import reachable
from tests.support.serve_process import ServeProcess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    workdir = reachable(tmp_path_factory.mktemp("limits"))
    with ServeProcess(
        workdir,
        HAUNTFM_HTTP_MAX_HEADER_BYTES="4096",
        HAUNTFM_HTTP_HEADER_TIMEOUT_SECONDS="1",
        HAUNTFM_HTTP_BODY_TIMEOUT_SECONDS="1",
    ) as proc:
        yield proc


def _connect(serve: ServeProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", serve.port), timeout=20)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _status_and_body(raw: bytes) -> tuple[int, dict[str, str]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


def test_oversized_headers_get_431_and_the_connection_closes(serve: ServeProcess) -> None:
    with _connect(serve) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8192)
        status, body = _status_and_body(_read_all(sock))
    assert status == 431 and body["error"] == "request_header_fields_too_large"
    assert "4 KiB" in body["detail"]


def test_headers_that_never_finish_get_408(serve: ServeProcess) -> None:
    with _connect(serve) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # ... and nothing more
        status, body = _status_and_body(_read_all(sock))
    assert status == 408 and body["error"] == "request_timeout"


def test_a_silent_connection_is_closed(serve: ServeProcess) -> None:
    with _connect(serve) as sock:
        assert _read_all(sock) == b""  # closed by the server, with nothing to answer


def test_a_stalled_body_gets_408(serve: ServeProcess) -> None:
    with _connect(serve) as sock:
        sock.sendall(
            b"POST /api/history/webhook HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
            b'content-length: 100\r\n\r\n{"title": '
        )
        status, body = _status_and_body(_read_all(sock))
    assert status == 408 and "stalled" in body["detail"]


def test_slow_clients_do_not_starve_health(serve: ServeProcess, tmp_path: Path) -> None:
    slow = []
    try:
        for _ in range(100):
            sock = _connect(serve)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            slow.append(sock)
        for _ in range(5):
            assert httpx.get(serve.url + "/health", timeout=10).status_code == 200
        # A normal request with a body still works next to them.
        r = httpx.post(serve.url + "/api/history/webhook", json={"title": "Fine", "artist": "Meanwhile"})
        assert r.status_code == 201
    finally:
        for sock in slow:
            sock.close()
