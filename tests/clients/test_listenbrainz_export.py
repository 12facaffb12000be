"""The ListenBrainz export reader on generated files: formats, problems, chunking, memory."""

from __future__ import annotations

import io
import json
import tracemalloc
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from haunt_fm.clients.listenbrainz import (
    ExportReader,
    Listen,
    ReadCounts,
    ReadProblem,
    format_for_content_type,
)
from tests.fakes.server import FakeServer

T0 = 1_700_000_000


def listen(i: int, **metadata: Any) -> dict[str, Any]:
    """A listen as ListenBrainz exports it."""
    track: dict[str, Any] = {
        "artist_name": f"Artist {i % 50}",
        "track_name": f"Track {i}",
        "release_name": f"Album {i % 20}",
        "additional_info": {"recording_msid": f"msid-{i}", "duration_ms": 200_000 + i, "tags": ["x"]},
    }
    track.update(metadata)
    return {"listened_at": T0 - 60 * i, "track_metadata": track, "recording_msid": f"msid-{i}"}


def read(
    data: bytes, *, format: Any = None, chunk: int = 65_536
) -> tuple[list[Listen | ReadProblem], ReadCounts]:
    reader = ExportReader(format=format)
    items = list(reader.read_file(io.BytesIO(data), chunk_size=chunk))
    return items, reader.counts


def listens_of(items: Sequence[Listen | ReadProblem]) -> list[Listen]:
    return [i for i in items if isinstance(i, Listen)]


def problems_of(items: Sequence[Listen | ReadProblem]) -> list[tuple[str, int, str]]:
    return [(p.kind, p.line, p.reason) for p in items if isinstance(p, ReadProblem)]


def jsonl(*entries: Any) -> bytes:
    return b"".join((e if isinstance(e, bytes) else json.dumps(e).encode()) + b"\n" for e in entries)


# -- the two formats -----------------------------------------------------------------------


def test_a_json_array_yields_typed_listens() -> None:
    data = json.dumps([listen(0), listen(1, release_name=None, additional_info=None)]).encode()
    items, counts = read(data)
    assert counts == ReadCounts(listens=2, malformed=0, skipped=0)
    first, second = listens_of(items)
    assert first == Listen(
        listened_at=datetime.fromtimestamp(T0, tz=UTC),
        artist_name="Artist 0",
        track_name="Track 0",
        release_name="Album 0",
        additional_info={"recording_msid": "msid-0", "duration_ms": 200_000, "tags": ["x"]},
        line=1,
    )
    assert first.listened_at.tzinfo is UTC and first.listened_at == datetime(
        2023, 11, 14, 22, 13, 20, tzinfo=UTC
    )
    assert second.release_name is None and second.additional_info is None


def test_json_lines_yield_the_same_listens_with_line_numbers() -> None:
    entries = [listen(i) for i in range(5)]
    array_items, _ = read(json.dumps(entries).encode())
    lines_items, counts = read(jsonl(*entries))
    assert counts.listens == 5
    strip = [
        (x.listened_at, x.artist_name, x.track_name, x.release_name, x.additional_info) for x in array_items
    ]
    assert [
        (x.listened_at, x.artist_name, x.track_name, x.release_name, x.additional_info) for x in lines_items
    ] == strip  # type: ignore[union-attr]
    assert [x.line for x in listens_of(lines_items)] == [1, 2, 3, 4, 5]


def test_bom_crlf_blank_lines_and_no_final_newline() -> None:
    data = (
        b"\xef\xbb\xbf\r\n"
        + json.dumps(listen(0)).encode()
        + b"\r\n\r\n  \n"
        + json.dumps(listen(1)).encode()
    )
    items, counts = read(data, chunk=1)
    assert counts == ReadCounts(listens=2, malformed=0, skipped=0)
    assert [x.line for x in listens_of(items)] == [2, 5]


def test_a_pretty_printed_array_reports_the_line_each_listen_ends_on() -> None:
    data = json.dumps([listen(0), listen(1)], indent=2).encode()
    lines = data.decode().split("\n")
    items, _ = read(data)
    ends = [x.line for x in listens_of(items)]
    assert [lines[n - 1].strip() for n in ends] == ["},", "}"]


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/json", "json"),
        ("application/json; charset=utf-8", "json"),
        ("Application/JSON", "json"),
        ("application/x-ndjson", "jsonl"),
        ("application/jsonl", "jsonl"),
        ("application/json-lines", "jsonl"),
        ("text/plain", None),
        ("multipart/form-data; boundary=x", None),
        (None, None),
        ("", None),
    ],
)
def test_format_for_content_type(content_type: str | None, expected: str | None) -> None:
    assert format_for_content_type(content_type) == expected


def test_format_is_sniffed_and_a_mislabelled_upload_still_reads() -> None:
    lines = jsonl(listen(0), listen(1))
    reader = ExportReader()
    assert len(listens_of(list(reader.read_file(io.BytesIO(lines))))) == 2 and reader.format == "jsonl"
    reader = ExportReader()
    assert (
        len(listens_of(list(reader.read_file(io.BytesIO(b"\n [" + lines.replace(b"}\n{", b"},{") + b"]")))))
        == 2
    )
    assert reader.format == "json"
    # Declared as application/json, but one listen per line: read as JSON lines.
    reader = ExportReader(format="json")
    assert len(listens_of(list(reader.read_file(io.BytesIO(lines))))) == 2 and reader.format == "jsonl"
    # Declared JSON lines with a broken first line: still JSON lines, the rest reads.
    items, counts = read(b"garbage\n" + lines, format="jsonl")
    assert counts == ReadCounts(listens=2, malformed=1, skipped=0) and problems_of(items)[0][:2] == (
        "malformed",
        1,
    )


@pytest.mark.parametrize(
    ("data", "format", "reason"),
    [
        (b"hello", None, "The line is not valid JSON (Expecting value)."),
        (b"  42 ", "json", "The file is not a JSON array of listens."),
        (b'"a string"', None, "Expected a listen (a JSON object), found a string."),
    ],
)
def test_files_that_are_no_export(data: bytes, format: Any, reason: str) -> None:
    items, counts = read(data, format=format)
    assert problems_of(items) == [("malformed", 1, reason)] and counts.listens == 0


def test_an_empty_file_has_nothing() -> None:
    for data in (b"", b"  \n\n ", b"\xef\xbb\xbf", b"[]", b"[\n]\n"):
        assert read(data) == ([], ReadCounts())


# -- problems never stop the read ----------------------------------------------------------


def test_malformed_json_lines_are_reported_with_their_line_numbers() -> None:
    data = jsonl(
        listen(0), b'{"listened_at": 1700000000, "track_metadata": {', b"[1, 2]", listen(3), b"nul", listen(5)
    )
    items, counts = read(data)
    assert counts == ReadCounts(listens=3, malformed=3, skipped=0)
    assert [(k, line) for k, line, _ in problems_of(items)] == [
        ("malformed", 2),
        ("malformed", 3),
        ("malformed", 5),
    ]
    assert [x.track_name for x in listens_of(items)] == ["Track 0", "Track 3", "Track 5"]
    assert str(next(p for p in items if isinstance(p, ReadProblem))).startswith(
        "line 2: The line is not valid JSON"
    )


def test_a_broken_element_in_an_array_costs_only_that_element() -> None:
    rows = [json.dumps(listen(i)) for i in range(6)]
    rows[2] = rows[2].replace('"track_name"', "track_name")  # a syntax error inside element 2
    data = ("[\n" + ",\n".join(rows) + "\n]\n").encode()
    items, counts = read(data)
    assert counts == ReadCounts(listens=5, malformed=1, skipped=0)
    [problem] = [p for p in items if isinstance(p, ReadProblem)]
    assert problem.line == 4 and problem.index == 2 and "broken" in problem.reason
    assert [x.track_name for x in listens_of(items)] == [
        "Track 0",
        "Track 1",
        "Track 3",
        "Track 4",
        "Track 5",
    ]


def test_a_broken_pretty_printed_array_reads_on() -> None:
    text = json.dumps([listen(i) for i in range(4)], indent=2)
    lines = text.split("\n")
    broken = next(n for n, line in enumerate(lines) if '"Track 1"' in line)
    lines[broken] = lines[broken].replace('"Track 1"', "Track 1")
    items, counts = read("\n".join(lines).encode(), chunk=5)
    assert [x.track_name for x in listens_of(items)] == ["Track 0", "Track 2", "Track 3"]
    assert counts.malformed == 1 and problems_of(items)[0][1] == broken + 1


def test_a_truncated_array_keeps_what_came_before() -> None:
    data = json.dumps([listen(i) for i in range(3)]).encode()[:-40]
    items, counts = read(data)
    assert [x.track_name for x in listens_of(items)] == ["Track 0", "Track 1"]
    assert problems_of(items)[-1][2] == "The file ends before the JSON array is closed."
    assert counts == ReadCounts(listens=2, malformed=1, skipped=0)


def test_text_after_the_array_is_reported() -> None:
    items, counts = read(json.dumps([listen(0)]).encode() + b"\nPS: more")
    assert counts.listens == 1 and problems_of(items) == [
        ("malformed", 2, "There is more text after the end of the JSON array.")
    ]


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ({"track_metadata": {"artist_name": "A", "track_name": "T"}}, "The listen has no listened_at."),
        ({"listened_at": "soon", "track_metadata": {"artist_name": "A", "track_name": "T"}},
         "listened_at 'soon' is not a Unix time."),
        ({"listened_at": True, "track_metadata": {"artist_name": "A", "track_name": "T"}},
         "listened_at True is not a Unix time."),
        ({"listened_at": -5, "track_metadata": {"artist_name": "A", "track_name": "T"}},
         "listened_at -5 is not a Unix time."),
        ({"listened_at": 10**15, "track_metadata": {"artist_name": "A", "track_name": "T"}},
         "listened_at 1000000000000000 is not a Unix time."),
        ({"listened_at": T0}, "The listen has no track_metadata object."),
        ({"listened_at": T0, "track_metadata": "A - T"}, "The listen has no track_metadata object."),
        ({"listened_at": T0, "track_metadata": {"track_name": "T"}}, "The listen has no artist_name."),
        ({"listened_at": T0, "track_metadata": {"artist_name": "  ", "track_name": "T"}},
         "The listen has no artist_name."),
        ({"listened_at": T0, "track_metadata": {"artist_name": "A", "track_name": 7}},
         "The listen has no track_name."),
        ({"listened_at": T0, "track_metadata": {"artist_name": "A\u0000B", "track_name": "T"}},
         "The listen's names contain characters that can't be stored (NUL or a lone surrogate)."),
    ],
)  # fmt: skip
def test_listens_without_what_a_listen_needs_are_skipped(entry: dict[str, Any], reason: str) -> None:
    for data in (jsonl(listen(0), entry, listen(2)), json.dumps([listen(0), entry, listen(2)]).encode()):
        items, counts = read(data)
        assert counts == ReadCounts(listens=2, malformed=0, skipped=1)
        [problem] = [p for p in items if isinstance(p, ReadProblem)]
        assert (problem.kind, problem.reason) == ("skipped", reason)
        assert problem.line == (2 if data.startswith(b"{") else 1)


def test_unstorable_text_never_comes_out() -> None:
    surrogate = (
        b'{"listened_at": 1700000000, "track_metadata": {"artist_name": "A\\ud800", "track_name": "T"}}'
    )
    nul_info = json.dumps(listen(1, additional_info={"note": "a\u0000b"})).encode()
    odd_info = json.dumps(listen(2, additional_info=["not", "a", "dict"])).encode()
    # JSON lines: a lone surrogate in a name skips the listen.
    items, counts = read(jsonl(surrogate, nul_info, odd_info))
    assert counts == ReadCounts(listens=2, malformed=0, skipped=1)
    # Unstorable or odd additional_info is dropped; the listens stay.
    assert [x.additional_info for x in listens_of(items)] == [None, None]
    # A JSON array goes through yajl, which reads a lone surrogate as "?".
    items, counts = read(b"[" + b",".join((surrogate, nul_info, odd_info)) + b"]")
    assert counts == ReadCounts(listens=3, malformed=0, skipped=0)
    assert [(x.artist_name, x.additional_info) for x in listens_of(items)] == [
        ("A?", None), ("Artist 1", None), ("Artist 2", None)
    ]  # fmt: skip


def test_floats_and_digit_strings_are_unix_times() -> None:
    items, _ = read(
        jsonl(listen(0) | {"listened_at": 1700000000.7}, listen(1) | {"listened_at": " 1700000001 "})
    )
    assert [int(x.listened_at.timestamp()) for x in listens_of(items)] == [1700000000, 1700000001]


def test_an_overlong_line_is_malformed_and_not_buffered() -> None:
    reader = ExportReader(max_line_bytes=1000)
    huge = json.dumps(listen(1, additional_info={"pad": "x" * 5000})).encode()
    items = list(reader.read_file(io.BytesIO(jsonl(listen(0), huge, listen(2))), chunk_size=100))
    assert [x.line for x in listens_of(items)] == [1, 3]
    assert problems_of(items) == [("malformed", 2, "The line is longer than 1000 bytes.")]
    assert reader.counts == ReadCounts(listens=2, malformed=1, skipped=0)


# -- chunking and I/O ----------------------------------------------------------------------


def _mixed_files() -> list[bytes]:
    rows = [json.dumps(listen(i, artist_name="Sigur Rós" if i == 3 else f"Artist {i}")) for i in range(12)]
    rows[5] = '{"listened_at": 1, "track_metadata": {"artist_name": "x", "track_name":'
    rows[7] = json.dumps({"listened_at": T0})
    return [
        ("\n".join(rows) + "\n").encode(),
        ("[\n" + ",\n".join(rows) + "\n]").encode(),
        json.dumps([listen(i) for i in range(8)], indent=4).encode(),
    ]


@pytest.mark.parametrize("which", [0, 1, 2])
def test_chunk_boundaries_change_nothing(which: int) -> None:
    data = _mixed_files()[which]
    expected = read(data, chunk=1 << 20)
    for chunk in (1, 2, 3, 7, 64, 1000):
        assert read(data, chunk=chunk) == expected, chunk
    assert expected[1].listens > 0


async def _agen(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def test_async_chunks_sync_iterables_paths_and_files_agree(tmp_path: Path) -> None:
    data = _mixed_files()[1]
    path = tmp_path / "listens.json"
    path.write_bytes(data)
    expected = read(data)[0]
    assert [i async for i in ExportReader().aread(_agen(data, 333))] == expected
    assert [i async for i in ExportReader().aread([data[:100], data[100:]])] == expected
    assert list(ExportReader().read_file(path)) == expected
    assert list(ExportReader().read_file(str(path), chunk_size=10)) == expected
    with path.open("rb") as handle:
        assert list(ExportReader().read_file(handle)) == expected


async def test_an_http_upload_streams_through_the_reader() -> None:
    """A request body read with request.stream(), as the import endpoint will read it."""
    chunks_seen: list[int] = []

    async def upload(request: Request) -> JSONResponse:
        reader = ExportReader(format=format_for_content_type(request.headers.get("content-type")))

        async def body() -> AsyncIterator[bytes]:
            async for chunk in request.stream():
                chunks_seen.append(len(chunk))
                yield chunk

        first_problem = None
        async for item in reader.aread(body()):
            if isinstance(item, ReadProblem) and first_problem is None:
                first_problem = str(item)
        c = reader.counts
        return JSONResponse({"listens": c.listens, "malformed": c.malformed, "skipped": c.skipped,
                             "format": reader.format, "first_problem": first_problem})  # fmt: skip

    rows = [json.dumps(listen(i)).encode() for i in range(3000)]
    rows[1234] = b"{broken"
    payload = b"\n".join(rows) + b"\n"

    with FakeServer(Starlette(routes=[Route("/import", upload, methods=["POST"])])) as server:
        async with httpx.AsyncClient() as http:
            response = await http.post(
                f"{server.url}/import",
                content=_agen(payload, 50_000),
                headers={"content-type": "application/x-ndjson"},
            )
    assert response.json() == {
        "listens": 2999, "malformed": 1, "skipped": 0, "format": "jsonl",
        "first_problem": "line 1235: The line is not valid JSON "
                         "(Expecting property name enclosed in double quotes).",
    }  # fmt: skip
    assert len(chunks_seen) > 1  # it really arrived in pieces


# -- memory ----------------------------------------------------------------------------------


def _write_export(path: Path, count: int, *, array: bool) -> Path:
    with path.open("wb") as out:
        out.write(b"[\n" if array else b"")
        for i in range(count):
            row = json.dumps(listen(i)).encode()
            out.write(row + ((b",\n" if i < count - 1 else b"\n") if array else b"\n"))
        out.write(b"]\n" if array else b"")
    return path


def _peak_while_reading(path: Path) -> tuple[int, int]:
    reader = ExportReader()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        listens = sum(1 for item in reader.read_file(path) if isinstance(item, Listen))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return listens, peak


@pytest.mark.slow
@pytest.mark.parametrize("array", [False, True], ids=["jsonl", "array"])
def test_memory_does_not_grow_with_the_file(tmp_path: Path, array: bool) -> None:
    small = _write_export(tmp_path / "small", 1_000, array=array)
    large = _write_export(tmp_path / "large", 12_000, array=array)
    small_listens, small_peak = _peak_while_reading(small)
    large_listens, large_peak = _peak_while_reading(large)
    assert (small_listens, large_listens) == (1_000, 12_000)
    size = large.stat().st_size
    assert size > 2_500_000
    # Twelve times the listens, about the same peak: nothing accumulates per listen.
    assert large_peak < 1.5 * small_peak + 256 * 1024, (small_peak, large_peak)
    assert large_peak < size / 8, (large_peak, size)
