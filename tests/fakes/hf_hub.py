"""A stand-in for the Hugging Face hub's file endpoints, serving model repos from local directories.

What huggingface_hub (2.x) asks for and what the real hub answers, reproduced here:

- `HEAD|GET /{org}/{name}/resolve/{revision}/{path}` (revision `main` or the commit):
  - a plain git file (`config.json`, tokenizer files): 200, the body, `ETag: "<git blob sha1>"`,
    `X-Repo-Commit: <commit>`, `Content-Length`;
  - an LFS file (`*.safetensors`, `*.bin`): 302 to the CDN, another origin, with `Location`,
    `X-Linked-Size`, `X-Linked-Etag: "<sha256>"`, `X-Repo-Commit` (the client takes the metadata
    from this answer, follows only redirects that stay on the hub, and downloads from `Location`);
  - a file the repo doesn't hold: 404 with `X-Error-Code: EntryNotFound` (transformers probes
    for optional files this way); an unknown repo: 401 with `X-Error-Code: RepoNotFound`.
- the CDN (its own port, so its own origin), `GET /cdn/{sha256}`: the LFS file's bytes,
  `Accept-Ranges: bytes`, and 206 for `Range: bytes=N-` (the client resumes an interrupted
  download that way).
- `GET /api/models/{org}/{name}/revision/{revision}`: the model's info (`sha` is the commit;
  transformers resolves `main` with it before loading).
- other `/api/...` (listings and registries the client tries and can do without): 404.

No Xet headers: the client downloads over plain HTTP. To watch a download in progress, LFS
bodies can be slowed (`chunk_delay` per `chunk` bytes) and held after `hold_after` bytes until
`release()` (a server that stops sending, as a stalled connection does).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.server import FakeServer, FakeService

COMMIT = "5f2b3c4d6e7f8091a2b3c4d5e6f708192a3b4c5d"
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx")


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub(FakeService):
    """The hub's resolve and CDN endpoints for the repos added with `add_repo`."""

    def __init__(self) -> None:
        super().__init__()
        self.repos: dict[str, Path] = {}
        self.chunk = 64 * 1024
        self.chunk_delay = 0.0
        self.hold_after: int | None = None
        self._released = threading.Event()
        self._blobs: dict[str, Path] = {}  # sha256 -> file
        self._cdn_server: FakeServer | None = None

    def start(self) -> FakeHub:
        """Start the hub and its CDN on 127.0.0.1 (two ephemeral ports)."""
        if self._cdn_server is None:
            self._cdn_server = FakeServer(
                Starlette(routes=[Route("/cdn/{sha}", self._cdn_endpoint, methods=["GET", "HEAD"])])
            ).start()
        super().start()
        return self

    def stop(self) -> None:
        self.release()  # held downloads end, so the servers can stop
        super().stop()
        if self._cdn_server is not None:
            self._cdn_server.stop()
            self._cdn_server = None

    def add_repo(self, repo_id: str, directory: Path) -> None:
        """Serve `directory`'s files as the model repo `repo_id` (e.g. `haunt-fm/tiny-clap`)."""
        self.repos[repo_id] = directory
        for path in directory.iterdir():
            if path.is_file() and path.suffix in LFS_SUFFIXES:
                self._blobs[hashlib.sha256(path.read_bytes()).hexdigest()] = path

    def lfs_size(self, repo_id: str) -> int:
        """Bytes of the repo's LFS files (what a download of its weights fetches)."""
        return sum(p.stat().st_size for p in self.repos[repo_id].iterdir() if p.suffix in LFS_SUFFIXES)

    def release(self) -> None:
        """Let held downloads go on."""
        self._released.set()

    def downloads(self) -> list[str]:
        """CDN paths fetched so far (LFS file bodies, resumed ones included)."""
        return [r.path for r in self.requests if r.method == "GET" and r.path.startswith("/cdn/")]

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(
                    "/{org}/{name}/resolve/{revision}/{path:path}",
                    self._resolve_endpoint,
                    methods=["GET", "HEAD"],
                ),
                Route("/api/models/{org}/{name}/revision/{revision}", self._info_endpoint, methods=["GET"]),
                Route("/api/{rest:path}", self._api_endpoint, methods=["GET", "HEAD"]),
            ]
        )

    async def _resolve_endpoint(self, request: Request) -> Response:
        return await self._dispatch(request, self._resolve)

    async def _cdn_endpoint(self, request: Request) -> Response:
        return await self._dispatch(request, self._cdn)

    async def _info_endpoint(self, request: Request) -> Response:
        return await self._dispatch(request, self._info)

    async def _api_endpoint(self, request: Request) -> Response:
        return await self._dispatch(request, self._api)

    # -- endpoints ------------------------------------------------------------------------
    def _repo(self, request: Request) -> tuple[str, Path] | Response:
        """The repo id and directory a request names at a known revision, or the hub's error answer."""
        repo_id = f"{request.path_params['org']}/{request.path_params['name']}"
        directory = self.repos.get(repo_id)
        if directory is None:
            return _error(401, "RepoNotFound", "Repository not found")
        if request.path_params["revision"] not in ("main", COMMIT):
            return _error(404, "RevisionNotFound", "Invalid rev id")
        return repo_id, directory

    async def _resolve(self, request: Request) -> Response:
        found = self._repo(request)
        if isinstance(found, Response):
            return found
        directory = found[1]
        path = directory / request.path_params["path"]
        if not path.is_file() or directory not in path.resolve().parents:
            return _error(404, "EntryNotFound", "Entry not found")
        data = path.read_bytes()
        if path.suffix in LFS_SUFFIXES:
            sha = hashlib.sha256(data).hexdigest()
            return Response(
                status_code=302,
                headers={
                    "Location": f"{self._cdn_server.url if self._cdn_server else ''}/cdn/{sha}",
                    "X-Linked-Size": str(len(data)),
                    "X-Linked-Etag": f'"{sha}"',
                    "ETag": f'"{_git_blob_sha1(sha.encode())}"',
                    "X-Repo-Commit": COMMIT,
                },
            )
        headers = {"ETag": f'"{_git_blob_sha1(data)}"', "X-Repo-Commit": COMMIT}
        if request.method == "HEAD":
            return Response(headers=headers | {"Content-Length": str(len(data))})
        return Response(data, headers=headers, media_type="application/octet-stream")

    async def _cdn(self, request: Request) -> Response:
        path = self._blobs.get(request.path_params["sha"])
        if path is None:
            return Response(b"Not Found", status_code=404, media_type="text/plain")
        data = path.read_bytes()
        start, status = 0, 200
        if (wanted := request.headers.get("range", "")).startswith("bytes="):
            start, status = int(wanted[len("bytes=") :].split("-")[0] or 0), 206
        headers = {"Accept-Ranges": "bytes", "Content-Length": str(len(data) - start)}
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        if request.method == "HEAD":
            return Response(status_code=status, headers=headers)
        return StreamingResponse(
            self._body(data, start), status_code=status, headers=headers, media_type="binary/octet-stream"
        )

    async def _info(self, request: Request) -> Response:
        """Model info at a revision (transformers resolves `main` to the commit with it)."""
        found = self._repo(request)
        if isinstance(found, Response):
            return found
        repo_id, directory = found
        files = sorted(p.name for p in directory.iterdir() if p.is_file())
        return JSONResponse(
            {
                "_id": "0" * 24,
                "id": repo_id,
                "modelId": repo_id,
                "sha": COMMIT,
                "private": False,
                "disabled": False,
                "gated": False,
                "downloads": 0,
                "likes": 0,
                "tags": ["transformers", "clap"],
                "library_name": "transformers",
                "lastModified": "2024-01-01T00:00:00.000Z",
                "createdAt": "2024-01-01T00:00:00.000Z",
                "siblings": [{"rfilename": name} for name in files],
            }
        )

    async def _api(self, request: Request) -> Response:
        return _error(404, "EntryNotFound", "Entry not found")

    async def _body(self, data: bytes, start: int) -> AsyncIterator[bytes]:
        sent = start
        while sent < len(data):
            if self.hold_after is not None and sent >= self.hold_after:
                await asyncio.to_thread(self._released.wait)
            end = min(len(data), sent + self.chunk)
            if self.hold_after is not None and sent < self.hold_after < end and not self._released.is_set():
                end = self.hold_after
            yield data[sent:end]
            sent = end
            if self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)


def _error(status: int, code: str, message: str) -> Response:
    headers = {"X-Error-Code": code, "X-Error-Message": message}
    if code == "EntryNotFound":  # the repo exists: the hub names its commit
        headers["X-Repo-Commit"] = COMMIT
    return Response(
        f'{{"error":"{message}"}}', status_code=status, headers=headers, media_type="application/json"
    )
