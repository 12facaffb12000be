"""The OpenAPI document tells the truth: every status an endpoint can answer, with its body.

Routes declare what is theirs (404, 409, ...). What the machinery around them can answer
is added here once for every operation, so no endpoint — including ones added later — can
forget it:

- 401 on /api/* (only when HAUNTFM_API_TOKEN is set), with the bearer security scheme so
  /docs' "Authorize" works; security is optional in the document because an unset token
  leaves the API open;
- 413 (body over the limit) and 422 (NUL or lone surrogates, by the request guard) wherever
  a request can carry them; FastAPI's validation 422 is replaced by the real body
  (`detail` is a list of problems, or a sentence);
- 503 with Retry-After on /api/* and /health (database away or every connection busy);
- 500 (a JSON sentence) everywhere;
- every error response without a schema gets the error body `{"detail", "error"}`;
- query parameters may be sent empty (`?profile=&limit=` reads as omitted).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["detail", "error"],
    "properties": {
        "detail": {"type": "string", "description": "What is wrong, as a sentence a person can act on."},
        "error": {"type": "string", "description": "Machine-readable type, e.g. `not_found`, `conflict`."},
    },
}
VALIDATION_SCHEMA: dict[str, Any] = {
    "title": "ValidationError",
    "type": "object",
    "required": ["detail", "error"],
    "properties": {
        "detail": {
            "description": "The problems with the request (FastAPI's list), or one sentence.",
            "anyOf": [
                {"type": "string"},
                {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["loc", "msg", "type"],
                        "properties": {
                            "loc": {
                                "type": "array",
                                "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                            },
                            "msg": {"type": "string"},
                            "type": {"type": "string"},
                        },
                    },
                },
            ],
        },
        "error": {"type": "string"},
    },
}
HEALTH_ERROR_SCHEMA: dict[str, Any] = {
    "title": "HealthError",
    "type": "object",
    "required": ["status", "database"],
    "properties": {"status": {"type": "string", "enum": ["error"]}, "database": {"type": "string"}},
}
_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before asking again.", "schema": {"type": "integer"}}
}
_BODY_METHODS = {"post", "put", "patch", "delete"}
_STANDARD = {
    401: "No or wrong API token (only when HAUNTFM_API_TOKEN is set).",
    413: "The request body is larger than allowed.",
    422: "The request is invalid (parameters, body, or text that cannot be stored).",
    500: "Something went wrong inside haunt-fm (the server log has the details).",
    503: "The database is away (restarting) or every connection is busy; Retry-After says when to ask again.",
}


def _ref(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}


def _patch_operation(path: str, method: str, op: dict[str, Any]) -> None:
    responses: dict[str, Any] = op.setdefault("responses", {})
    api = path.startswith("/api/")
    codes = [500]
    if api or path == "/health":
        codes.append(503)
    if api:
        codes.append(401)
        op["security"] = [{"bearer": []}, {}]
    if method in _BODY_METHODS:
        codes.append(413)
    if api or op.get("parameters") or op.get("requestBody"):
        codes.append(422)
    for standard in codes:
        responses.setdefault(str(standard), {"description": _STANDARD[standard]})
    for param in op.get("parameters", []):
        if param.get("in") == "query":
            # `?profile=&limit=` reads as omitted (the request guard drops empty query values).
            param["allowEmptyValue"] = True
    if any(p.get("name") == "profile" for p in op.get("parameters", [])):
        responses.setdefault("404", {"description": "There is no profile of that name."})
    for code, entry in responses.items():
        if not code.isdigit() or int(code) < 400:
            continue
        if code == "422":
            entry["content"] = _ref("ValidationError")
        elif path == "/health" and code == "503":
            entry["content"] = _ref("HealthError")
        elif "content" not in entry or _is_untyped(entry["content"]):
            entry["content"] = _ref("Error")
        else:
            # A status with its own body (409 `vibe_not_understood`) can also carry the plain
            # error body for its other causes (409: no taste yet).
            body = entry["content"].get("application/json", {})
            own = body.get("schema")
            if own is not None and own != _ref("Error")["application/json"]["schema"]:
                body["schema"] = {"anyOf": [own, _ref("Error")["application/json"]["schema"]]}
        if code == "503":
            entry["headers"] = _RETRY_AFTER


def _is_untyped(content: dict[str, Any]) -> bool:
    schema = content.get("application/json", {}).get("schema")
    return not schema or schema == {}


def install_openapi(app: FastAPI) -> None:
    """Make app.openapi() return the completed document (built once)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        schemas["Error"] = ERROR_SCHEMA
        schemas["ValidationError"] = VALIDATION_SCHEMA
        schemas["HealthError"] = HEALTH_ERROR_SCHEMA
        components["securitySchemes"] = {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "HAUNTFM_API_TOKEN, when it is set; without it the API is open.",
            }
        }
        for path, operations in schema.get("paths", {}).items():
            for method, op in operations.items():
                if isinstance(op, dict) and method in {"get", "post", "put", "patch", "delete"}:
                    _patch_operation(path, method, op)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
