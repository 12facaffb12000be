"""Where a command with an API counterpart runs: over HTTP (`--url`, HAUNTFM_URL) or in-process.

A command describes its operation once, as a `Call`: the API request (method, path, query,
body) and the service call the API's router makes — the same function, run here against the
database through a `Runtime`. Both backends answer the same `Answer`: the API's JSON document
(printed by `--json`) and the response model it validates as (rendered as a table).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Generic, TypeVar

import typer
from pydantic import BaseModel, ValidationError

from haunt_fm.cli.common import database, fail, print_json, remote_url, settings, upgrade_schema
from haunt_fm.cli.wording import validation_message
from haunt_fm.config import Settings

if TYPE_CHECKING:
    import httpx
    from sqlalchemy.ext.asyncio import AsyncSession

    from haunt_fm.pipeline.recommendations.vibe import VibeEncoder
    from haunt_fm.runtime import Runtime

M = TypeVar("M", bound=BaseModel)
B = TypeVar("B", bound=BaseModel)


class CommandError(Exception):
    """The operation failed; `message` is the sentence the user reads."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Local:
    """What a command's in-process half gets: the runtime, and the edge's transaction."""

    runtime: Runtime

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    def transaction(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A session that commits when the block succeeds, as the API's request dependency does."""
        from haunt_fm.db.session import transaction

        return transaction(self.runtime.sessions)

    def vibe_encoder(self) -> VibeEncoder:
        """The encoder of an API process without a model: tags, and new vibe text to the workers' queue."""
        from haunt_fm.pipeline.recommendations.vibe import make_vibe_encoder

        return make_vibe_encoder(self.settings, self.runtime.sessions, wakeups=self.runtime.wakeups)


@dataclass(frozen=True, slots=True)
class Call(Generic[M]):
    """One API operation, and the service call that does it in-process."""

    method: str
    path: str
    model: type[M]
    local: Callable[[Local], Awaitable[M]]
    params: Mapping[str, Any] = field(default_factory=dict)
    body: BaseModel | None = None
    # Over HTTP: a file sent as the multipart field `file` (streamed from disk), instead of `body`.
    upload: Path | None = None
    # Seconds to wait for the answer over HTTP; None: as long as it takes (discovery, playback).
    timeout: float | None = 60.0
    # In-process: connections the operation needs, and whether it waits for queue wake-ups
    # (a new vibe text that a worker embeds).
    pool_size: int = 3
    listen: bool = False
    # API field -> the command's option, for the API's validation messages (`known_pct` -> `--known-pct`).
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Answer(Generic[M]):
    """The API's JSON document, and the response model it reads as (checked when first needed)."""

    document: dict[str, Any]
    kind: type[M]
    parsed: M | None = None

    @property
    def model(self) -> M:
        if self.parsed is not None:
            return self.parsed
        try:
            return self.kind.model_validate(self.document)
        except ValidationError:
            # A service of another haunt-fm version: its document still prints with --json.
            raise fail(
                "the service answered with a document this command can't read (a different haunt-fm "
                "version?); --json prints it as it is."
            ) from None

    def show(self, *, as_json: bool, render: Callable[[M], None]) -> None:
        """Print the API's JSON document (`--json`), or `render` the model for a person."""
        if as_json:
            print_json(self.document)
        else:
            render(self.model)


def in_transaction(
    operation: Callable[[AsyncSession, Local], Awaitable[M]],
) -> Callable[[Local], Awaitable[M]]:
    """The in-process half of a call whose service takes a session: committed when it succeeds."""

    async def local(rt: Local) -> M:
        async with rt.transaction() as session:
            return await operation(session, rt)

    return local


def request(model: type[B], *, options: Mapping[str, str], **values: Any) -> B:
    """The API request body the options describe, validated as the API validates it."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise fail(validation_message(exc.errors(), options=options)) from None


class LocalBackend:
    """Runs the service call against the database (the embedded one, or HAUNTFM_DATABASE_URL)."""

    def __init__(self, settings: Settings, database_url: str) -> None:
        self.settings = settings
        self.database_url = database_url

    async def call(self, call: Call[M]) -> Answer[M]:
        from haunt_fm.errors import AppError
        from haunt_fm.runtime import open_runtime

        async with open_runtime(
            self.settings, database_url=self.database_url, pool_size=call.pool_size, listen=call.listen
        ) as runtime:
            try:
                model = await call.local(Local(runtime))
            except AppError as exc:
                raise CommandError(exc.message) from None
        return Answer(model.model_dump(mode="json"), call.model, model)


class RemoteBackend:
    """Asks a running haunt-fm over its HTTP API, with HAUNTFM_API_TOKEN as the bearer token."""

    def __init__(self, settings: Settings, base_url: str) -> None:
        self.settings = settings
        self.base_url = base_url

    async def call(self, call: Call[M]) -> Answer[M]:
        headers = {"Accept": "application/json"}
        if self.settings.api_token is not None:
            headers["Authorization"] = f"Bearer {self.settings.api_token.get_secret_value()}"
        params = {k: v for k, v in call.params.items() if v is not None}
        body = call.body.model_dump(mode="json") if call.body is not None else None
        with _opened(call.upload) as upload:
            response = await self._request(call, params=params, body=body, upload=upload, headers=headers)
        return self._answer(call, response)

    async def _request(
        self,
        call: Call[Any],
        *,
        params: dict[str, Any],
        body: Any,
        upload: _Upload | None,
        headers: dict[str, str],
    ) -> httpx.Response:
        import httpx

        from haunt_fm.clients._http import new_http_client

        async with new_http_client(timeout=httpx.Timeout(call.timeout, connect=10.0)) as http:
            files = {"file": (upload.name, upload.file, "application/octet-stream")} if upload else None
            try:
                response = await http.request(
                    call.method,
                    self.base_url + call.path,
                    params=params,
                    json=body,
                    files=files,
                    headers=headers,
                )
            except httpx.ReadTimeout:
                raise CommandError(
                    f"haunt-fm at {self.base_url} did not answer within {call.timeout or 0:.0f} s."
                ) from None
            except httpx.HTTPError as exc:
                reason = str(exc) or type(exc).__name__
                raise CommandError(f"cannot reach haunt-fm at {self.base_url}: {reason}.") from None
        return response

    def _answer(self, call: Call[M], response: httpx.Response) -> Answer[M]:
        try:
            document = response.json()
        except ValueError:
            document = None
        if response.status_code == 401:
            raise CommandError(self._token_message())
        if response.status_code >= 400:
            # Query parameters are the command's options of the same name (`limit` -> `--limit`).
            options = {**{k: "--" + k.replace("_", "-") for k in call.params}, **call.options}
            raise CommandError(self._error_message(response, document, options))
        if not isinstance(document, dict):
            raise CommandError(
                f"{self.base_url} did not answer like haunt-fm (HTTP {response.status_code}, "
                f"{response.headers.get('content-type', 'no content type')}); is --url / HAUNTFM_URL right?"
            )
        return Answer(document, call.model)

    def _token_message(self) -> str:
        if self.settings.api_token is None:
            return (
                f"haunt-fm at {self.base_url} needs an API token: set HAUNTFM_API_TOKEN to the token "
                "the service was started with."
            )
        return (
            f"haunt-fm at {self.base_url} rejected the token in HAUNTFM_API_TOKEN; set it to the "
            "token the service was started with."
        )

    def _error_message(self, response: httpx.Response, document: Any, options: Mapping[str, str]) -> str:
        detail = document.get("detail") if isinstance(document, dict) else None
        if isinstance(detail, list):
            return validation_message(detail, options=options)
        if isinstance(detail, str) and detail:
            return detail
        return f"haunt-fm at {self.base_url} answered HTTP {response.status_code}."


@dataclass(frozen=True, slots=True)
class _Upload:
    name: str
    file: BinaryIO


@contextlib.contextmanager
def _opened(path: Path | None) -> Iterator[_Upload | None]:
    """The file to upload, open for reading (httpx streams it in chunks); None without one."""
    if path is None:
        yield None
        return
    try:
        handle = path.expanduser().open("rb")
    except OSError as exc:
        raise CommandError(f"{str(path)!r} cannot be read: {exc.strerror or exc}.") from None
    with handle:
        yield _Upload(path.name, handle)


def execute(ctx: typer.Context, call: Call[M]) -> Answer[M]:
    """Run `call` remotely (`--url`, HAUNTFM_URL) or in-process; an error ends the command (exit 1)."""
    from haunt_fm.errors import is_database_unavailable

    url = remote_url(ctx)
    current = settings()
    try:
        if url is not None:
            return asyncio.run(RemoteBackend(current, url).call(call))
        with database(current, attach=True) as database_url:
            upgrade_schema(database_url)
            return asyncio.run(LocalBackend(current, database_url).call(call))
    except CommandError as exc:
        raise fail(exc.message) from None
    except Exception as exc:
        if url is None and is_database_unavailable(exc):
            raise fail(f"lost the connection to the database: {type(exc).__name__}: {exc}") from None
        raise
