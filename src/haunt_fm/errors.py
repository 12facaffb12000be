"""Typed errors: each carries a status code and reads as a sentence a user can act on."""

from __future__ import annotations

import logging
import math
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


def error_type(name: str) -> str:
    """`NotFound` -> `not_found`: the machine-readable type of an error class."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class AppError(Exception):
    """An error a client caused or can act on; rendered as {"detail": message, "error": type}."""

    status_code = 400
    error = "app_error"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "error" not in cls.__dict__:
            cls.error = error_type(cls.__name__)

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code

    def body(self) -> dict[str, Any]:
        return {"detail": self.message, "error": self.error}


class NotFound(AppError):
    status_code = 404


class Conflict(AppError):
    status_code = 409


class Invalid(AppError):
    status_code = 422


class Unavailable(AppError):
    status_code = 503


class DatabaseUnavailable(Unavailable):
    """The database cannot be reached right now (restarting, down, or every connection busy)."""


# Seconds a client should wait before asking again while the database is away.
RETRY_AFTER_SECONDS = 5
# SQLSTATE classes and codes that mean "the connection, not the statement, failed".
_CONNECTION_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")


def is_database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database is unreachable or overloaded (not that a query was wrong)."""
    from sqlalchemy import exc as sa_exc

    if isinstance(exc, sa_exc.TimeoutError):  # the connection pool is exhausted
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        orig = exc.orig
        code = str(getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or "")
        if code and any(code.startswith(prefix) for prefix in _CONNECTION_SQLSTATES):
            return True
        return (
            isinstance(exc, sa_exc.InterfaceError)
            or _connection_failure(orig)
            or _connection_failure(exc.__cause__)
        )
    return _connection_failure(exc)


def _connection_failure(exc: BaseException | None) -> bool:
    if exc is None:
        return False
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    # asyncpg's "connection was closed in the middle of operation", "cannot connect now", ...
    return type(exc).__module__.startswith("asyncpg") and type(exc).__name__ in {
        "ConnectionDoesNotExistError",
        "ConnectionFailureError",
        "CannotConnectNowError",
        "InterfaceError",
        "PostgresConnectionError",
    }


def database_unavailable_response(message: str | None = None) -> JSONResponse:
    """503 with a sentence and Retry-After: what every endpoint answers while the database is away."""
    return JSONResponse(
        {
            "detail": message
            or "The database is not reachable right now (restarting, or busy); try again in a few seconds.",
            "error": "database_unavailable",
        },
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


# Starlette's own errors (no route, wrong method, ...) get a sentence and a type too.
_HTTP_ERRORS = {
    404: ("not_found", "There is no such page or endpoint; /docs lists the API."),
    405: ("method_not_allowed", "This endpoint does not accept that method."),
}


def install_error_handlers(app: FastAPI) -> None:
    """Render AppError subclasses, validation and routing errors as JSON with `detail` and `error`."""

    @app.exception_handler(AppError)
    async def _app_error(_request: Request, exc: AppError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes the bad input; a JSON body may carry NaN or Infinity,
        # which its encoder refuses (a 500). Echo those as text instead.
        detail = _finite(jsonable_encoder(exc.errors(), sqlalchemy_safe=True))
        return JSONResponse({"detail": detail, "error": "validation_error"}, status_code=422)

    from sqlalchemy import exc as sa_exc

    async def _database(_request: Request, exc: Exception) -> JSONResponse:
        if is_database_unavailable(exc):
            log.warning("database unavailable: %s: %s", type(exc).__name__, str(exc).splitlines()[0][:200])
            return database_unavailable_response()
        raise exc  # a real bug: the 500 handler below answers (and the traceback is logged)

    for kind in (sa_exc.DBAPIError, sa_exc.TimeoutError, ConnectionError, OSError):
        app.add_exception_handler(kind, _database)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        if is_database_unavailable(exc):
            return database_unavailable_response()
        # Never a plain-text 500: a sentence, a type, and the details in the server log.
        return JSONResponse(
            {
                "detail": "Something went wrong inside haunt-fm; the server log has the details.",
                "error": "internal_error",
            },
            status_code=500,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            # FastAPI's answer to a body that isn't text at all: invalid input like any other.
            return JSONResponse(
                {"detail": "The request body is not valid JSON (or not UTF-8 text).", "error": "invalid"},
                status_code=422,
            )
        kind, sentence = _HTTP_ERRORS.get(exc.status_code, ("http_error", None))
        if exc.status_code == 405:
            # Starlette's Allow names only the first route on the path; list every method it has.
            exc.headers = {**(exc.headers or {}), "Allow": ", ".join(_allowed_methods(request))}
        detail = (
            exc.detail
            if isinstance(exc.detail, str) and exc.detail not in ("Not Found", "Method Not Allowed")
            else None
        )
        return JSONResponse(
            {"detail": detail or sentence or str(exc.detail), "error": kind},
            status_code=exc.status_code,
            headers=dict(exc.headers or {}),
        )


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _allowed_methods(request: Request) -> list[str]:
    from starlette.routing import Match

    allowed = []
    for method in ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed
