"""History imports: a Last.fm user's scrobbles or a ListenBrainz export become the profile's listens.

Starting an import checks what can be checked at once (the profile, the Last.fm key and
user, the upload) so a request answers with a sentence rather than a job that fails later,
then queues one job (`tasks.py`). The job imports in batches; each batch's listens, the
import's counters and its cursor commit together, so a job stopped anywhere (shutdown,
crash, Ctrl-C) resumes where the last batch ended, with nothing lost or counted twice.

Imported listens are listens: the webhook's track identity and 60-second duplicate rule
(`listens.service.store_batch`), play counts that order discovery's seeds, and the taste
profile's recency decay by their own `played_at`. Importing the same history again adds
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from collections.abc import AsyncIterable, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import httpx
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from haunt_fm import queue
from haunt_fm.clients._http import ClientError
from haunt_fm.clients.lastfm import (
    LastfmAuthError,
    LastfmClient,
    LastfmPrivateProfile,
    LastfmUserNotFound,
    Scrobble,
)
from haunt_fm.clients.listenbrainz import (
    ExportFormat,
    ExportReader,
    Listen,
    format_for_content_type,
    storable_text,
)
from haunt_fm.config import Settings
from haunt_fm.db.session import transaction
from haunt_fm.errors import AppError, Conflict, Invalid, NotFound
from haunt_fm.pipeline import common
from haunt_fm.pipeline.common import as_utc
from haunt_fm.pipeline.imports import repository as repo
from haunt_fm.pipeline.imports.models import IMPORT_JOB
from haunt_fm.pipeline.imports.schemas import ImportOut
from haunt_fm.pipeline.listens import service as listens
from haunt_fm.pipeline.listens.service import ListenBatch, NewListen, prepare_batch
from haunt_fm.pipeline.profiles import service as profiles
from haunt_fm.retry import is_transient

log = logging.getLogger(__name__)

# user.getRecentTracks answers at most 200 scrobbles a page.
LASTFM_PAGE = 200
MAX_PROBLEMS = 100
SPOOL_DIR = "imports"
_DB_ATTEMPTS = 3
_RETRYABLE_SQLSTATES = {"40P01", "40001"}  # deadlock detected, serialization failure
_SNIFF_BYTES = 64
_BOM = b"\xef\xbb\xbf"

NO_KEY_MESSAGE = (
    "Importing from Last.fm needs a Last.fm API key: set HAUNTFM_LASTFM_API_KEY (create one at "
    "https://www.last.fm/api/account/create) and restart haunt-fm."
)


class LastfmUserUnknown(NotFound):
    """Last.fm has no such user (404)."""


class LastfmHistoryPrivate(Conflict):
    """The user hides their listening history on Last.fm (409)."""


class LastfmUnavailable(AppError):
    """Last.fm rejected our key or could not be reached (502)."""

    status_code = 502


class PayloadTooLarge(AppError):
    """The upload is larger than HAUNTFM_IMPORT_MAX_BYTES (413)."""

    status_code = 413


class ImportFailed(Exception):
    """The import cannot go on (a vanished profile or file); a sentence, never retried."""

    transient = False


class ImportInterrupted(Exception):
    """The import stopped on something passing (the database went away); the job tries again."""

    transient = True


class LeaseLost(Exception):
    """Another worker took the import's job over; this one stops without writing anything."""

    transient = True


@dataclass(slots=True)
class Counts:
    """An import's progress: listens stored, duplicates, skipped entries, `done` of `total` `unit`s."""

    imported: int = 0
    duplicates: int = 0
    skipped: int = 0
    done: int = 0
    total: int | None = None
    unit: str = "scrobbles"


ProgressFn = Callable[[Counts], Awaitable[None]]


# -- reading ------------------------------------------------------------------------------


def to_out(row: dict[str, Any]) -> ImportOut:
    """The API document of an import row."""
    params = row["params"] or {}
    since = params.get("since")
    return ImportOut.model_validate(
        {
            **row,
            "progress": {"done": row["done"], "total": row["total"], "unit": row["unit"]},
            "user": params.get("user"),
            "since": datetime.fromisoformat(since) if since else None,
            "filename": params.get("filename"),
        }
    )


async def get(session: AsyncSession, *, import_id: int) -> ImportOut:
    """One import, or a 404 that names it."""
    row = await repo.get(session, import_id=import_id)
    if row is None:
        raise NotFound(f"There is no import {import_id}; GET /api/admin/imports lists them.")
    return to_out(row)


async def list_imports(session: AsyncSession, *, limit: int) -> list[ImportOut]:
    """Imports, newest first."""
    return [to_out(row) for row in await repo.latest(session, limit=limit)]


async def running(session: AsyncSession) -> list[ImportOut]:
    """Imports still running (or waiting to be retried)."""
    return [to_out(row) for row in await repo.running(session)]


async def last_finished(session: AsyncSession) -> ImportOut | None:
    """The import that ended last, if any."""
    row = await repo.last_finished(session)
    return None if row is None else to_out(row)


# -- starting -----------------------------------------------------------------------------


def lastfm_client(
    settings: Settings, *, http: httpx.AsyncClient | None, sessions: async_sessionmaker[AsyncSession]
) -> LastfmClient:
    """A Last.fm client on the limiter every process on this database shares (discovery's too)."""
    return common.lastfm_client(settings, http=http, sessions=sessions, no_key_message=NO_KEY_MESSAGE)


async def _profile_name(sessions: async_sessionmaker[AsyncSession], profile: str | None) -> str:
    async with transaction(sessions) as session:
        return (await profiles.require(session, name=profile)).name


async def _create(
    sessions: async_sessionmaker[AsyncSession],
    *,
    source: str,
    profile: str,
    params: dict[str, Any],
    total: int | None,
    unit: str,
) -> ImportOut:
    """The import row and its job, queued in one transaction."""
    async with transaction(sessions) as session:
        import_id = await repo.create(
            session, source=source, profile=profile, params=params, total=total, unit=unit
        )
        job_id = await queue.enqueue_job(
            session, kind=IMPORT_JOB, payload={"import_id": import_id}, key=str(import_id)
        )
        assert job_id is not None  # the key is the new import's id: nothing can be pending under it
        await repo.set_job(session, import_id=import_id, job_id=job_id)
        row = await repo.get(session, import_id=import_id)
    assert row is not None
    log.info("import %d queued: %s into profile %r", import_id, source, profile)
    return to_out(row)


async def _find_running(
    sessions: async_sessionmaker[AsyncSession], *, source: str, profile: str, match: dict[str, Any]
) -> ImportOut | None:
    async with transaction(sessions) as session:
        row = await repo.find_running(session, source=source, profile=profile, match=match)
    return None if row is None else to_out(row)


async def start_lastfm(
    *,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    http: httpx.AsyncClient | None,
    user: str,
    profile: str | None = None,
    since: datetime | None = None,
) -> ImportOut:
    """Check the user with Last.fm and queue the import; the same import still running is returned instead.

    404: unknown profile or Last.fm user; 409: no Last.fm key, or a private history;
    502: Last.fm rejected the key or could not be reached.
    """
    if not settings.lastfm_configured:
        raise Conflict(NO_KEY_MESSAGE)
    name = await _profile_name(sessions, profile)
    since = as_utc(since) if since is not None else None
    from_uts = int(since.timestamp()) if since is not None else None
    # Last.fm user names are case-insensitive.
    match = {"user_key": user.casefold(), "from": from_uts}
    existing = await _find_running(sessions, source="lastfm", profile=name, match=match)
    if existing is not None:
        return existing
    async with lastfm_client(settings, http=http, sessions=sessions) as client:
        try:
            first = await client.get_recent_tracks(user, limit=1, from_uts=from_uts)
        except LastfmUserNotFound as exc:
            raise LastfmUserUnknown(exc.message) from None
        except LastfmPrivateProfile as exc:
            raise LastfmHistoryPrivate(exc.message) from None
        except LastfmAuthError:
            raise LastfmUnavailable(
                "Last.fm rejected the configured API key; check HAUNTFM_LASTFM_API_KEY."
            ) from None
        except ClientError as exc:
            raise LastfmUnavailable(
                f"Last.fm could not be asked about {user!r}: {exc.message.rstrip('.')}; try again later."
            ) from None
    params = {
        "user": first.user,
        "user_key": user.casefold(),
        "since": since.isoformat() if since else None,
        "from": from_uts,
    }
    return await _create(
        sessions, source="lastfm", profile=name, params=params, total=first.paging.total, unit="scrobbles"
    )


def _sniff_export(head: bytes, *, what: str) -> None:
    """An export starts with `[` (a JSON array) or `{` (JSON lines); say so early when it doesn't."""
    text = head.removeprefix(_BOM).lstrip()
    if not text:
        raise Invalid(f"{what} is empty; send the ListenBrainz export (a JSON array or JSON lines).")
    if text[:1] not in (b"[", b"{"):
        raise Invalid(
            f"{what} is not a ListenBrainz export: it should be a JSON array of listens or JSON lines "
            "(one listen per line)."
        )


def _safe_filename(raw: bytes) -> str | None:
    """The upload's file name as text we can store and show: its last path part, printable, short."""
    name = raw.decode("utf-8", "replace").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable())[:255].strip()
    return name or None


class _Spool:
    """Writes an upload to a file in the data directory as it arrives: the body itself, or the
    file part of a multipart form (the first part with a file name, or the one named `file`)."""

    def __init__(self, directory: Path, *, max_bytes: int, boundary: bytes | None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="listenbrainz-", suffix=".upload", dir=directory)
        self.path = Path(name)
        self.file: IO[bytes] = os.fdopen(fd, "wb", buffering=1 << 20)
        self.max_bytes = max_bytes
        self.received = 0
        self.size = 0
        self.head = b""
        self.filename: str | None = None
        self.part_type: str | None = None
        self._parser: MultipartParser | None = None
        self._headers: dict[bytes, bytes] = {}
        self._field = b""
        self._value = b""
        self._state = "before"  # before the file part, in it, after it
        if boundary is not None:
            self._parser = MultipartParser(
                boundary,
                callbacks={
                    "on_part_begin": self._part_begin,
                    "on_header_field": self._header_field,
                    "on_header_value": self._header_value,
                    "on_header_end": self._header_end,
                    "on_headers_finished": self._headers_finished,
                    "on_part_data": self._part_data,
                    "on_part_end": self._part_end,
                },
            )

    def feed(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self.received > self.max_bytes:
            raise PayloadTooLarge(
                f"The upload is larger than {self.max_bytes} bytes (HAUNTFM_IMPORT_MAX_BYTES); split the "
                "export or raise the limit, or import it with `haunt-fm import listenbrainz FILE`."
            )
        if self._parser is None:
            self._write(chunk)
            return
        try:
            self._parser.write(chunk)
        except MultipartParseError as exc:
            raise Invalid(f"The multipart upload is malformed ({exc}).") from None

    def finish(self) -> None:
        """The body ended: check the form had a file, flush the file."""
        if self._parser is not None:
            try:
                self._parser.finalize()
            except MultipartParseError as exc:
                raise Invalid(f"The multipart upload is malformed ({exc}).") from None
            if self._state == "before":
                raise Invalid(
                    "The multipart upload has no file: send the export as a file field (e.g. "
                    "curl -F file=@listens.jsonl)."
                )
        self.file.close()

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
        self.path.unlink(missing_ok=True)

    def _write(self, data: bytes) -> None:
        if len(self.head) < _SNIFF_BYTES:
            # The first bytes after any BOM and leading whitespace tell what the upload is.
            self.head = (self.head + data[:_SNIFF_BYTES]).removeprefix(_BOM).lstrip()[:_SNIFF_BYTES]
        self.file.write(data)
        self.size += len(data)

    # multipart callbacks
    def _part_begin(self) -> None:
        self._headers = {}

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field = self._value = b""

    def _headers_finished(self) -> None:
        if self._state != "before":
            return
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        filename = options.get(b"filename")
        if filename is None and options.get(b"name") != b"file":
            return
        self._state = "in"
        self.filename = _safe_filename(filename) if filename else None
        self.part_type = self._headers.get(b"content-type", b"").decode("latin-1") or None

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._state == "in":
            self._write(data[start:end])

    def _part_end(self) -> None:
        if self._state == "in":
            self._state = "after"


async def start_listenbrainz_upload(
    *,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    body: AsyncIterable[bytes],
    content_type: str | None,
    profile: str | None = None,
) -> ImportOut:
    """Spool an uploaded export to the data directory as it streams in, then queue its import.

    The body is the export itself (JSON array or JSON lines, told by its Content-Type or its
    first byte) or a multipart form with the file. 404: unknown profile; 413: over
    HAUNTFM_IMPORT_MAX_BYTES; 422: empty, not an export, or a broken form.
    """
    name = await _profile_name(sessions, profile)
    media, options = parse_options_header(content_type)
    boundary: bytes | None = None
    if media.lower() == b"multipart/form-data":
        boundary = options.get(b"boundary")
        if not boundary:
            raise Invalid("The multipart upload's Content-Type has no boundary.")
    spool = _Spool(settings.data_dir / SPOOL_DIR, max_bytes=settings.import_max_bytes, boundary=boundary)
    try:
        async for chunk in body:
            spool.feed(chunk)
        spool.finish()
        _sniff_export(spool.head, what="The upload" if boundary is None else "The uploaded file")
        declared = spool.part_type if boundary is not None else content_type
        params = {
            "path": str(spool.path),
            "filename": spool.filename,
            "format": format_for_content_type(declared),
            "bytes": spool.size,
            "spooled": True,
        }
        return await _create(
            sessions, source="listenbrainz", profile=name, params=params, total=spool.size, unit="bytes"
        )
    except BaseException:
        spool.discard()
        raise


def _inspect_file(path: Path) -> tuple[Path, bytes, int]:
    """The file's absolute path, first bytes and size, or a sentence saying why it can't be read."""
    path = path.expanduser().resolve()
    if not path.is_file():
        raise NotFound(f"There is no file {str(path)!r}.")
    try:
        with path.open("rb") as handle:
            return path, handle.read(1 << 16), path.stat().st_size
    except OSError as exc:
        raise Invalid(f"{str(path)!r} cannot be read: {exc.strerror or exc}.") from None


async def start_listenbrainz_file(
    *, sessions: async_sessionmaker[AsyncSession], path: Path, profile: str | None = None
) -> ImportOut:
    """Queue the import of an export file on this machine (read in place, never copied).

    The import of the same file (same path and size) into the same profile still running is
    returned instead, so running the command again resumes it.
    """
    name = await _profile_name(sessions, profile)
    path, head, size = await asyncio.to_thread(_inspect_file, path)
    _sniff_export(head, what=f"The file {path.name!r}")
    match = {"path": str(path), "bytes": size}
    existing = await _find_running(sessions, source="listenbrainz", profile=name, match=match)
    if existing is not None:
        return existing
    params = {**match, "filename": path.name, "format": None, "spooled": False}
    return await _create(
        sessions, source="listenbrainz", profile=name, params=params, total=size, unit="bytes"
    )


# -- running ------------------------------------------------------------------------------


def _retryable_db_error(exc: DBAPIError) -> bool:
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return code in _RETRYABLE_SQLSTATES


def is_retryable(exc: BaseException) -> bool:
    """Whether a later attempt may get past `exc` (Last.fm down, the database away, a deadlock)."""
    if is_transient(exc):
        return True
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and (exc.connection_invalidated or _retryable_db_error(exc))


@dataclass
class _Run:
    """One attempt at an import: commits batch after batch, as the holder of the import's job."""

    sessions: async_sessionmaker[AsyncSession]
    import_id: int
    owner: str
    profile: str
    profile_id: int
    source: str
    counts: Counts
    cursor: dict[str, Any]
    problem_room: int
    progress: ProgressFn | None = None
    problems_logged: int = field(default=0)

    async def commit(
        self,
        batch: ListenBatch,
        *,
        skipped: int,
        problems: list[dict[str, Any]],
        cursor: dict[str, Any],
        done: int,
        total: int | None,
    ) -> None:
        """Store one batch and move the import on, in one transaction (retried on a deadlock)."""
        kept = problems[: max(0, self.problem_room)]
        for attempt in range(1, _DB_ATTEMPTS + 1):
            try:
                async with transaction(self.sessions) as session:
                    stored = await listens.store_batch(
                        session, profile_id=self.profile_id, source=self.source, batch=batch
                    )
                    held = await repo.advance(
                        session,
                        import_id=self.import_id,
                        owner=self.owner,
                        imported=stored.inserted,
                        duplicates=stored.duplicates,
                        skipped=skipped,
                        problems=kept,
                        cursor=cursor,
                        done=done,
                        total=total,
                    )
                    if not held:
                        raise LeaseLost(f"import {self.import_id}: another worker holds it now")
                break
            except IntegrityError:
                await self._require_profile()  # a foreign key: the profile was deleted meanwhile
                raise
            except DBAPIError as exc:
                if attempt < _DB_ATTEMPTS and _retryable_db_error(exc):
                    continue
                raise
        self.problem_room -= len(kept)
        self.cursor = cursor
        c = self.counts
        c.imported += stored.inserted
        c.duplicates += stored.duplicates
        c.skipped += skipped
        c.done, c.total = done, total
        for problem in problems[: max(0, 5 - self.problems_logged)]:
            log.info("import %d: line %s: %s", self.import_id, problem.get("line"), problem["reason"])
            self.problems_logged += 1
        if self.progress is not None:
            await self.progress(c)

    async def _require_profile(self) -> None:
        async with transaction(self.sessions) as session:
            try:
                profile = await profiles.require(session, name=self.profile)
            except NotFound:
                profile = None
        if profile is None or profile.id != self.profile_id:
            raise ImportFailed(
                f"Profile '{self.profile}' was deleted during the import; the {self.counts.imported} "
                "listen(s) imported before moved to 'default' with its other listens."
            )


def _uts(scrobble: Scrobble) -> int:
    return int(scrobble.played_at.timestamp())


async def _run_lastfm(run: _Run, client: LastfmClient, params: dict[str, Any]) -> None:
    """Page back through the user's scrobbles from the cursor, newest first, one page a batch.

    Every request is page 1 up `to` the oldest scrobble done, so scrobbles arriving meanwhile
    never shift the pages. The cursor also counts the scrobbles done at that very second
    (Last.fm's `to` may include it), which are skipped when they come again.
    """
    user, from_uts = params["user"], params.get("from")
    to_uts: int | None = run.cursor.get("to")
    seen = int(run.cursor.get("seen", 0))
    while True:
        page = await client.get_recent_tracks(
            user, limit=LASTFM_PAGE, page=1, from_uts=from_uts, to_uts=to_uts
        )
        rows = [s for s in page.scrobbles if to_uts is None or _uts(s) <= to_uts]
        fresh: list[Scrobble] = []
        dropped = 0
        for scrobble in rows:
            if to_uts is not None and _uts(scrobble) == to_uts and dropped < seen:
                dropped += 1
                continue
            fresh.append(scrobble)
        if not fresh:
            if to_uts is not None and len(rows) >= LASTFM_PAGE and dropped == len(rows):
                # A whole page within one second, all done: step past that second.
                to_uts, seen = to_uts - 1, 0
                continue
            return
        oldest = _uts(fresh[-1])
        seen = (seen if oldest == to_uts else 0) + sum(1 for s in fresh if _uts(s) == oldest)
        to_uts = oldest
        storable = [s for s in fresh if all(storable_text(t or "") for t in (s.artist, s.name, s.album))]
        unstorable = len(fresh) - len(storable)
        problems = [
            {"line": None, "kind": "skipped", "reason": "A scrobble's names contain NUL or a lone surrogate."}
        ] * min(unstorable, 1)
        batch = prepare_batch(
            NewListen(title=s.name, artist=s.artist, album=s.album, played_at=s.played_at) for s in storable
        )
        before = run.counts.done
        done = before + len(fresh) + page.malformed
        total = max(done, before + page.paging.total - dropped)
        await run.commit(
            batch,
            skipped=unstorable + page.malformed,
            problems=problems,
            cursor={"to": to_uts, "seen": seen},
            done=done,
            total=total,
        )
        if len(rows) < LASTFM_PAGE and page.paging.total_pages <= 1:
            return


@dataclass(slots=True)
class _Chunk:
    batch: ListenBatch
    problems: list[dict[str, Any]]
    items: int
    position: int
    last: bool


def _duration_s(info: dict[str, Any] | None) -> int | None:
    if not info:
        return None
    ms = info.get("duration_ms")
    if isinstance(ms, int) and not isinstance(ms, bool) and 0 < ms <= 86_400_000:
        return round(ms / 1000)
    seconds = info.get("duration")
    if isinstance(seconds, int) and not isinstance(seconds, bool) and 0 < seconds <= 86_400:
        return seconds
    return None


class _ExportBatches:
    """An export file read batch by batch (call `next` in a worker thread: parsing is CPU work)."""

    def __init__(self, path: Path, *, format: ExportFormat | None, skip: int) -> None:
        self.handle = path.open("rb")
        self.reader = ExportReader(format=format)
        self.items: Iterator[Listen | Any] = self.reader.read_file(self.handle)
        self.skip = skip
        self.consumed = 0

    def next(self, size: int) -> _Chunk:
        """The next `size` listens (and the problems among them); the last chunk may be empty."""
        found: list[NewListen] = []
        problems: list[dict[str, Any]] = []
        last = True
        for item in self.items:
            self.consumed += 1
            if self.consumed <= self.skip:
                continue  # done before the job stopped
            if isinstance(item, Listen):
                found.append(
                    NewListen(
                        title=item.track_name,
                        artist=item.artist_name,
                        album=item.release_name,
                        played_at=item.listened_at,
                        duration_s=_duration_s(item.additional_info),
                    )
                )
                if len(found) >= size:
                    last = False
                    break
            else:
                problems.append({"line": item.line, "kind": item.kind, "reason": item.reason})
        return _Chunk(prepare_batch(found), problems, self.consumed, self.handle.tell(), last)

    def close_after(self, read: asyncio.Future[_Chunk]) -> None:
        """Close the file once the last read is over (what it read, or its error, no longer matters)."""
        if not read.cancelled():
            read.exception()
        self.handle.close()


async def _run_export(run: _Run, params: dict[str, Any], *, batch_size: int) -> None:
    """Read the export from the cursor on, one batch of listens a transaction.

    HAUNTFM_IMPORT_BATCH_SIZE (5,000): big enough that PostgreSQL, not round trips, sets the
    pace; small enough that a batch is a few MB whatever the file's size.
    """
    path = Path(params["path"])
    what = params.get("filename") or path.name
    try:
        size = (await asyncio.to_thread(path.stat)).st_size
    except OSError:
        raise ImportFailed(
            f"The export file {what!r} is no longer at {str(path)!r} (on this machine); import it again."
        ) from None
    skip = int(run.cursor.get("items", 0))
    if skip and size != params.get("bytes"):
        raise ImportFailed(f"The export file {what!r} changed since the import started; import it again.")
    reader = await asyncio.to_thread(_ExportBatches, path, format=params.get("format"), skip=skip)
    # The next batch is read (in a thread) while PostgreSQL stores this one.
    pending: asyncio.Future[_Chunk] = asyncio.ensure_future(asyncio.to_thread(reader.next, batch_size))
    try:
        while True:
            chunk = await pending
            if not chunk.last:
                pending = asyncio.ensure_future(asyncio.to_thread(reader.next, batch_size))
            await run.commit(
                chunk.batch,
                skipped=len(chunk.problems),
                problems=chunk.problems,
                cursor={"items": chunk.items},
                done=size if chunk.last else min(chunk.position, size),
                total=size,
            )
            if chunk.last:
                return
    finally:
        # A read still running in its thread closes the file when it is done.
        pending.add_done_callback(reader.close_after)


def _discard_spool(params: dict[str, Any]) -> None:
    if params.get("spooled") and params.get("path"):
        with contextlib.suppress(OSError):
            Path(params["path"]).unlink(missing_ok=True)


async def run_import(
    *,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    http: httpx.AsyncClient | None,
    import_id: int,
    owner: str,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Run (or resume) an import as the holder `owner` of its job; returns its counts.

    Raises what stopped it: `ImportFailed` and other non-transient errors end it (see
    `record_failure`), transient ones leave it running for the job's retry.
    """
    async with transaction(sessions) as session:
        row = await repo.get(session, import_id=import_id)
        if row is None or row["status"] != "running":
            return {"import_id": import_id, "status": None if row is None else row["status"]}
        try:
            profile_id = (await profiles.require(session, name=row["profile"])).id
        except NotFound:
            raise ImportFailed(f"Profile '{row['profile']}' no longer exists; the import stopped.") from None
    counts = Counts(
        imported=row["imported"],
        duplicates=row["duplicates"],
        skipped=row["skipped"],
        done=row["done"],
        total=row["total"],
        unit=row["unit"],
    )
    run = _Run(
        sessions=sessions,
        import_id=import_id,
        owner=owner,
        profile=row["profile"],
        profile_id=profile_id,
        source=row["source"],
        counts=counts,
        cursor=dict(row["cursor"] or {}),
        problem_room=MAX_PROBLEMS - len(row["problems"] or []),
        progress=progress,
    )
    params = row["params"] or {}
    if run.cursor:
        log.info("import %d: resuming (%d imported so far)", import_id, counts.imported)
    if row["source"] == "lastfm":
        async with lastfm_client(settings, http=http, sessions=sessions) as client:
            await _run_lastfm(run, client, params)
    else:
        await _run_export(run, params, batch_size=settings.import_batch_size)
    async with transaction(sessions) as session:
        await repo.finish(session, import_id=import_id, status="done", error=None, owner=owner)
    _discard_spool(params)
    log.info(
        "import %d done: %d imported, %d duplicates, %d skipped",
        import_id,
        counts.imported,
        counts.duplicates,
        counts.skipped,
    )
    return {
        "import_id": import_id,
        "imported": counts.imported,
        "duplicates": counts.duplicates,
        "skipped": counts.skipped,
    }


def failure_message(exc: BaseException) -> str:
    """What stopped an import, as a sentence."""
    message = str(getattr(exc, "message", None) or exc or type(exc).__name__).strip()
    if isinstance(exc, DBAPIError):
        message = f"The database failed ({type(exc.orig).__name__ if exc.orig else type(exc).__name__})"
    return message if message.endswith(".") else message + "."


async def record_failure(
    *,
    sessions: async_sessionmaker[AsyncSession],
    import_id: int,
    owner: str,
    message: str,
    retrying: bool,
) -> None:
    """Say why an import stopped: still running (it is tried again) or failed for good."""
    async with transaction(sessions) as session:
        row = await repo.get(session, import_id=import_id)
        error = f"{message} It is tried again shortly." if retrying else message
        settled = await repo.finish(
            session, import_id=import_id, status="running" if retrying else "failed", error=error, owner=owner
        )
    if settled and not retrying and row is not None:
        _discard_spool(row["params"] or {})
