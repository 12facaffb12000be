"""Typed errors: each carries a status code and reads as a sentence a user can act on."""

from __future__ import annotations

import math
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


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

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind, sentence = _HTTP_ERRORS.get(exc.status_code, ("http_error", None))
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
