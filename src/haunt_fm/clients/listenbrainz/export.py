"""ListenBrainz export files: a streaming reader that turns bytes into typed listens.

An export is a JSON array of listens or JSON lines (one listen per line), each
`{"listened_at": <unix>, "track_metadata": {"artist_name", "track_name", "release_name"?,
"additional_info"?}}`. Exports run to hundreds of MB, so the reader never holds more than
one chunk and one listen (or one line, for JSON lines) in memory.

The core is sans-I/O (`ExportReader.feed` / `close`), so one reader serves an HTTP upload
(`aread(request.stream())`) and a file on disk (`read_file(path)`) alike.

Problems never stop the read: a line (JSON lines) or element (array) that is not valid JSON
or not an object is *malformed*, one without a usable `listened_at`, `artist_name` or
`track_name` is *skipped*; each comes out as a `ReadProblem` with its line number, and the
rest of the file is read. In a JSON array a syntax error breaks the array itself: the reader
reports it and picks the array up again at the next line that starts an element (`{`), so an
export with one element per line (or pretty-printed, one `{` per line) loses only the broken
element.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterable, Iterable, Iterator
from collections.abc import AsyncIterator as AsyncIteratorABC
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any, Literal

import ijson

ExportFormat = Literal["json", "jsonl"]

# Content types an upload may declare, by format (parameters such as charset are ignored).
JSON_CONTENT_TYPES = frozenset({"application/json"})
JSONL_CONTENT_TYPES = frozenset(
    {"application/x-ndjson", "application/jsonl", "application/json-lines", "application/x-jsonlines"}
)
DEFAULT_CHUNK_SIZE = 64 * 1024
# A JSON line longer than this is reported as malformed rather than buffered.
DEFAULT_MAX_LINE_BYTES = 1024 * 1024
# Unix times the reader accepts: after 1970-01-01, before the year 10000.
_MAX_UTS = 253_402_300_800
_BOM = b"\xef\xbb\xbf"


def format_for_content_type(content_type: str | None) -> ExportFormat | None:
    """ "json" or "jsonl" for the content types an export may be sent as; None for any other."""
    if not content_type:
        return None
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type in JSON_CONTENT_TYPES:
        return "json"
    if media_type in JSONL_CONTENT_TYPES:
        return "jsonl"
    return None


@dataclass(frozen=True, slots=True)
class Listen:
    """One listen from an export; `line` is where it ends in the file (1-based)."""

    listened_at: datetime
    artist_name: str
    track_name: str
    release_name: str | None
    additional_info: dict[str, Any] | None
    line: int


@dataclass(frozen=True, slots=True)
class ReadProblem:
    """A line or element the reader could not turn into a listen, and why (a sentence).

    `kind` is "malformed" (not valid JSON, or not a JSON object) or "skipped" (a listen
    without a usable `listened_at`, `artist_name` or `track_name`). `line` is 1-based;
    `index` is the 0-based element index in a JSON array (None for JSON lines, and after a
    syntax error in an array, when the count of elements can no longer be known).
    """

    kind: Literal["malformed", "skipped"]
    line: int
    index: int | None
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f" (element {self.index})" if self.index is not None else "")
        return f"{where}: {self.reason}"


@dataclass(slots=True)
class ReadCounts:
    """How many listens, malformed and skipped entries the reader has seen so far."""

    listens: int = 0
    malformed: int = 0
    skipped: int = 0


Item = Listen | ReadProblem


def storable_text(text: str) -> bool:
    """Whether PostgreSQL can store `text`: no NUL, no unpaired UTF-16 surrogate (JSON escapes
    such as "\ud800" produce them)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _storable_json(value: Any) -> bool:
    # JSON text escapes NUL as \u0000, which PostgreSQL's jsonb refuses as well.
    text = json.dumps(value, ensure_ascii=False)
    return "\\u0000" not in text and storable_text(text)


def _unix_time(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    else:
        return None
    if number != number or not 0 < number < _MAX_UTS:  # NaN, or out of range
        return None
    return int(number)


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = value.strip()
    return text or None


def to_listen(obj: Any, *, line: int, index: int | None) -> Item:
    """A decoded export entry as a Listen, or the ReadProblem that says why it isn't one."""
    if not isinstance(obj, dict):
        return ReadProblem(
            "malformed", line, index, f"Expected a listen (a JSON object), found {_kind(obj)}."
        )

    def skipped(reason: str) -> ReadProblem:
        return ReadProblem("skipped", line, index, reason)

    if "listened_at" not in obj:
        return skipped("The listen has no listened_at.")
    uts = _unix_time(obj["listened_at"])
    if uts is None:
        return skipped(f"listened_at {obj['listened_at']!r:.40} is not a Unix time.")
    metadata = obj.get("track_metadata")
    if not isinstance(metadata, dict):
        return skipped("The listen has no track_metadata object.")
    artist, track = _text(metadata.get("artist_name")), _text(metadata.get("track_name"))
    if artist is None:
        return skipped("The listen has no artist_name.")
    if track is None:
        return skipped("The listen has no track_name.")
    release = _text(metadata.get("release_name"))
    if not all(storable_text(t) for t in (artist, track, release or "")):
        return skipped(
            "The listen's names contain characters that can't be stored (NUL or a lone surrogate)."
        )
    info = metadata.get("additional_info")
    if not isinstance(info, dict) or not _storable_json(info):
        # Optional detail: unreadable or unstorable additional_info doesn't cost the listen.
        info = None
    return Listen(
        listened_at=datetime.fromtimestamp(uts, tz=UTC),
        artist_name=artist,
        track_name=track,
        release_name=release,
        additional_info=info,
        line=line,
    )


def _kind(obj: Any) -> str:
    if isinstance(obj, list):
        return "an array"
    if isinstance(obj, str):
        return "a string"
    if isinstance(obj, bool) or obj is None:
        return json.dumps(obj)
    return "a number"


def _first_line(exc: BaseException) -> str:
    # ijson's messages carry a multi-line excerpt of the input; the first line says what broke.
    text = str(exc).strip().splitlines()
    return text[0].rstrip(".") if text else type(exc).__name__


@dataclass(slots=True)
class _ArrayState:
    events: Any = field(default_factory=ijson.sendable_list)
    parser: Any = None
    index: int | None = 0
    # After a syntax error: skipping to the next line that starts an element.
    recovering: bool = False
    # Nothing but whitespace and commas seen yet on the current line.
    line_fresh: bool = True
    # Elements read since the parser was last restarted (an error before any is the same break).
    since_restart: int = 0
    started: bool = False


class ExportReader:
    """Incremental reader of one export: `feed` it bytes, get listens and problems back.

    `format` None sniffs the first byte (`[`: JSON array, `{`: JSON lines). A declared
    "json" whose body starts with `{` is read as JSON lines: an export sent as
    `application/json` that is really one listen per line is the common mistake, and no
    JSON array starts with `{`.
    """

    def __init__(
        self, *, format: ExportFormat | None = None, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    ) -> None:
        self.format: ExportFormat | None = format
        self.counts = ReadCounts()
        self._declared = format
        self._max_line = max_line_bytes
        self._line = 1
        self._head = b""  # bytes before the format is known (only whitespace and a BOM)
        self._sniffed = False
        self._not_array = False
        self._buffer = bytearray()  # the current JSON line
        self._overlong = False
        self._array = _ArrayState()
        self._done = False

    # -- I/O wrappers -----------------------------------------------------------------------
    async def aread(self, chunks: AsyncIterable[bytes] | Iterable[bytes]) -> AsyncIteratorABC[Item]:
        """Listens and problems from an async (or plain) iterable of byte chunks, in file order."""
        if isinstance(chunks, AsyncIterable):
            async for chunk in chunks:
                for item in self.feed(chunk):
                    yield item
        else:
            for chunk in chunks:
                for item in self.feed(chunk):
                    yield item
        for item in self.close():
            yield item

    def read_file(
        self, source: str | os.PathLike[str] | IO[bytes], *, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> Iterator[Item]:
        """Listens and problems from a file path or a binary file object, read in chunks."""
        if isinstance(source, str | os.PathLike):
            with open(source, "rb") as handle:
                yield from self.read_file(handle, chunk_size=chunk_size)
            return
        while chunk := source.read(chunk_size):
            yield from self.feed(chunk)
        yield from self.close()

    # -- sans-I/O core --------------------------------------------------------------------
    def feed(self, chunk: bytes) -> list[Item]:
        """Read the next bytes of the file; returns what they completed."""
        if self._done or not chunk:
            return []
        if not self._sniffed:
            chunk = self._sniff(bytes(chunk))
            if not self._sniffed:
                return []
        items: list[Item] = []
        if self._not_array:
            self._done = True
            items.append(self._problem("malformed", "The file is not a JSON array of listens."))
        elif self.format == "jsonl":
            self._feed_lines(chunk, items)
        else:
            self._feed_array(chunk, items)
        self._count(items)
        return items

    def close(self) -> list[Item]:
        """The end of the file: returns what the last bytes completed, or what is missing."""
        if self._done:
            return []
        self._done = True
        items: list[Item] = []
        if not self._sniffed:
            text = self._head.lstrip(_BOM).strip()
            if text:
                items.append(self._problem("malformed", "The file is neither a JSON array nor JSON lines."))
        elif self.format == "jsonl":
            self._end_line(items)
        else:
            self._close_array(items)
        self._count(items)
        return items

    def _count(self, items: list[Item]) -> None:
        for item in items:
            if isinstance(item, Listen):
                self.counts.listens += 1
            elif item.kind == "malformed":
                self.counts.malformed += 1
            else:
                self.counts.skipped += 1

    def _problem(
        self, kind: Literal["malformed", "skipped"], reason: str, index: int | None = None
    ) -> ReadProblem:
        return ReadProblem(kind, self._line, index, reason)

    def _sniff(self, chunk: bytes) -> bytes:
        """Keep leading whitespace until the first real byte says which format this is."""
        data = self._head + chunk
        body = data[len(_BOM) :] if data.startswith(_BOM) else data
        if len(data) < len(_BOM) and _BOM.startswith(data):
            self._head = data  # could still be a BOM split across chunks
            return b""
        stripped = body.lstrip()
        if not stripped:
            self._head = data
            return b""
        self._sniffed = True
        self._head = b""
        first = stripped[:1]
        if self.format is None or (self.format == "json" and first == b"{"):
            self.format = "json" if first == b"[" else "jsonl"
        self._not_array = self.format == "json" and first != b"["
        return body

    # -- JSON lines -------------------------------------------------------------------------
    def _feed_lines(self, chunk: bytes, items: list[Item]) -> None:
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                self._append(chunk[start:], items)
                return
            self._append(chunk[start:end], items)
            self._end_line(items)
            self._line += 1
            start = end + 1

    def _append(self, piece: bytes, items: list[Item]) -> None:
        if self._overlong or not piece:
            return
        if len(self._buffer) + len(piece) > self._max_line:
            self._overlong = True
            self._buffer.clear()
            items.append(self._problem("malformed", f"The line is longer than {self._max_line} bytes."))
            return
        self._buffer += piece

    def _end_line(self, items: list[Item]) -> None:
        if self._overlong:
            self._overlong = False
            return
        line = bytes(self._buffer).strip()
        self._buffer.clear()
        if not line:
            return
        try:
            obj = json.loads(line)
        except ValueError as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            items.append(self._problem("malformed", f"The line is not valid JSON ({reason})."))
            return
        items.append(to_listen(obj, line=self._line, index=None))

    # -- JSON array -----------------------------------------------------------------------
    def _restart_parser(self) -> None:
        state = self._array
        state.events = ijson.sendable_list()
        state.parser = ijson.items_coro(state.events, "item", use_float=True)
        state.since_restart = 0

    def _feed_array(self, chunk: bytes, items: list[Item]) -> None:
        state = self._array
        if not state.started:
            state.started = True
            self._restart_parser()
        start = 0
        while start <= len(chunk):
            end = chunk.find(b"\n", start)
            piece = chunk[start:] if end < 0 else chunk[start : end + 1]
            if piece:
                self._array_piece(piece, items)
            if end < 0:
                return
            self._line += 1
            state.line_fresh = True
            start = end + 1

    def _array_piece(self, piece: bytes, items: list[Item]) -> None:
        """Feed one piece of one line (it ends at a newline or the chunk's end)."""
        state = self._array
        if state.recovering:
            if not state.line_fresh:
                return
            rest = piece.lstrip(b" \t\r\n,")
            if not rest:
                return
            state.line_fresh = False
            # Only "{" can restart: a "]" may close a nested array as well as the export's.
            if not rest.startswith(b"{"):
                return
            state.recovering = False
            self._restart_parser()
            piece = b"[" + rest
        if piece.strip():
            state.line_fresh = False
        try:
            state.parser.send(piece)
        except ijson.JSONError as exc:
            self._array_events(items)
            self._array_broken(exc, items)
            return
        self._array_events(items)

    def _array_events(self, items: list[Item]) -> None:
        state = self._array
        for obj in state.events:
            items.append(to_listen(obj, line=self._line, index=state.index))
            state.since_restart += 1
            if state.index is not None:
                state.index += 1
        del state.events[:]

    def _array_broken(self, exc: BaseException, items: list[Item]) -> None:
        state = self._array
        # A second break before any element was read again is the same broken stretch.
        if not (state.index is None and state.since_restart == 0):
            detail = _first_line(exc)
            if "trailing garbage" in detail:
                reason = "There is more text after the end of the JSON array."
            else:
                reason = f"The JSON array is broken here ({detail}); reading on from the next listen."
            items.append(self._problem("malformed", reason, state.index))
        state.index = None
        state.recovering = True
        state.line_fresh = False

    def _close_array(self, items: list[Item]) -> None:
        state = self._array
        if state.parser is None or state.recovering:
            return
        try:
            state.parser.close()
        except ijson.JSONError as exc:
            self._array_events(items)
            reason = _first_line(exc)
            if "premature EOF" in reason or "Incomplete" in reason:
                reason = "The file ends before the JSON array is closed."
            else:
                reason = f"The JSON array is broken at its end ({reason})."
            items.append(self._problem("malformed", reason, state.index))
            return
        self._array_events(items)
