"""The dashboard: one server-rendered page plus its static files.

The page holds no data (it is served without the API token); its script reads
everything from /api/* with the token the user typed in, if one is needed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates

from haunt_fm.errors import NotFound

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
_MEDIA_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}

templates = Jinja2Templates(directory=HERE / "templates")

router = APIRouter(include_in_schema=False)


def _fingerprints() -> dict[str, str]:
    """Content hashes of the static files, so a new release never runs a cached old script."""
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        for path in sorted(STATIC_DIR.iterdir())
        if path.is_file() and path.suffix in _MEDIA_TYPES
    }


STATIC_FILES = _fingerprints()

# No inline script, no outside origin: the page can only run our own script.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


@router.get("/", response_class=HTMLResponse)
async def dashboard(request: Request) -> HTMLResponse:
    response = templates.TemplateResponse(
        request,
        "dashboard.html",
        {"asset": lambda name: f"/static/{name}?v={STATIC_FILES[name]}"},
    )
    response.headers["Content-Security-Policy"] = _CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-cache"
    return response


@router.get("/static/{name}")
async def static_file(name: str) -> FileResponse:
    # Only the files that shipped with the package: no path ever reaches the filesystem.
    if name not in STATIC_FILES:
        raise NotFound(f"There is no static file called {name!r}.")
    return FileResponse(
        STATIC_DIR / name,
        media_type=_MEDIA_TYPES[Path(name).suffix],
        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )
