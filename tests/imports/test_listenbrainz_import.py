"""POST /api/admin/import/listenbrainz: the export as the body (JSON array, JSON lines, multipart)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from haunt_fm.pipeline.imports import service
from haunt_fm.pipeline.imports.tasks import import_job_kind
from haunt_fm.pipeline.profiles import service as profiles
from haunt_fm.queue import JobRunner
from haunt_fm.runtime import open_runtime
from tests.conftest import make_settings
from tests.imports.support import (
    BASE_UTS,
    assert_no_duplicated_listens,
    distinct_listens,
    listen_json,
    listens_by_source,
    scalar,
    wait_import,
    write_jsonl,
)

LINES = [
    listen_json(BASE_UTS, "Radiohead", "Airbag", "OK Computer", duration_ms=284_000),  # 1
    '{"listened_at": 1700000100, "track_metadata": {"artist_name": "Broken',  # 2: not JSON
    listen_json(BASE_UTS + 600, "Portishead", "Roads", "Dummy"),  # 3
    {"listened_at": BASE_UTS + 900, "track_metadata": {"track_name": "No Artist"}},  # 4: skipped
    listen_json(BASE_UTS + 1200, "Nul\u0000Band", "Song"),  # 5: a name PostgreSQL can't store
    "",  # 6: blank lines are nothing
    listen_json(BASE_UTS + 30, "Radiohead", "Airbag - Remastered 2009"),  # 7: line 1 again, 30 s later
    "[1, 2]",  # 8: not a listen
    listen_json(BASE_UTS + 3600, "Sigur Rós", "Hoppípolla"),  # 9
]


def _body(entries: list[object]) -> bytes:
    return "".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in entries).encode()


async def test_json_lines_import_counts_problems_with_their_lines_and_imports_the_rest(
    serve: Callable[..., str], db: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=serve(start_background=True)) as http:
        assert (await http.post("/api/profiles", json={"name": "antialias"})).status_code == 201
        response = await http.post(
            "/api/admin/import/listenbrainz",
            params={"profile": "antialias"},
            content=_body(LINES),
            headers={"content-type": "application/x-ndjson"},
        )
        assert response.status_code == 202, response.text
        started = response.json()
        assert (started["status"], started["source"], started["profile"]) == (
            "running",
            "listenbrainz",
            "antialias",
        )
        assert started["progress"]["unit"] == "bytes" and started["progress"]["total"] == len(_body(LINES))
        done = await wait_import(http, started["import_id"])
        assert done["status"] == "done", done
        assert (done["imported"], done["duplicates"], done["skipped"]) == (3, 1, 4)
        assert [(p["line"], p["kind"]) for p in done["problems"]] == [
            (2, "malformed"),
            (4, "skipped"),
            (5, "skipped"),
            (8, "malformed"),
        ]
        assert "not valid JSON" in done["problems"][0]["reason"]
        assert "no artist_name" in done["problems"][1]["reason"]
        assert done["progress"]["done"] == done["progress"]["total"]

        recent = (await http.get("/api/history/recent", params={"profile": "antialias"})).json()["events"]
        assert [(e["artist"], e["source"]) for e in recent] == [
            ("Sigur Rós", "listenbrainz"),
            ("Portishead", "listenbrainz"),
            ("Radiohead", "listenbrainz"),
        ]
        assert recent[2]["duration_s"] == 284 and recent[2]["album"] == "OK Computer"
    # The spooled upload is gone once imported.
    assert list((tmp_path / "data" / "imports").iterdir()) == []
    await assert_no_duplicated_listens(db)


async def test_json_array_and_multipart_uploads_and_importing_again_adds_nothing(
    serve: Callable[..., str], db: async_sessionmaker[AsyncSession]
) -> None:
    listens = distinct_listens(120)
    # Pretty-printed, one element broken: the reader picks the array up again at the next one.
    array = json.dumps(listens, indent=1).replace('"Song 7"', '"Song 7', 1).encode()
    async with httpx.AsyncClient(base_url=serve(start_background=True)) as http:
        response = await http.post(
            "/api/admin/import/listenbrainz", content=array, headers={"content-type": "application/json"}
        )
        assert response.status_code == 202, response.text
        done = await wait_import(http, response.json()["import_id"])
        assert (done["status"], done["imported"], done["skipped"]) == ("done", 119, 1), done
        assert "JSON array is broken" in done["problems"][0]["reason"]

        upload = await http.post(
            "/api/admin/import/listenbrainz",
            params={"profile": "default"},
            data={"note": "a form field before the file"},
            files={"file": ("listens.jsonl", _body(listens), "application/x-ndjson")},
        )
        assert upload.status_code == 202, upload.text
        assert upload.json()["filename"] == "listens.jsonl"
        again = await wait_import(http, upload.json()["import_id"])
        # Song 7's listen was broken in the array; in the lines it is whole, so only it is new.
        assert (again["status"], again["imported"], again["duplicates"], again["skipped"]) == (
            "done",
            1,
            119,
            0,
        )

        third = await http.post(
            "/api/admin/import/listenbrainz",
            files={"export": ("export.json", json.dumps(listens).encode(), "application/octet-stream")},
        )
        assert third.status_code == 202, third.text
        nothing = await wait_import(http, third.json()["import_id"])
        assert (nothing["imported"], nothing["duplicates"]) == (0, 120)
    assert await listens_by_source(db) == {"listenbrainz": 120}
    assert await scalar(db, "SELECT sum(play_count) FROM tracks") == 120
    await assert_no_duplicated_listens(db)


async def _chunks(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_bad_uploads_answer_with_a_sentence_and_leave_nothing_behind(
    serve: Callable[..., str], db: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    big = _body(distinct_listens(100))
    async with httpx.AsyncClient(base_url=serve(start_background=True, import_max_bytes=5000)) as http:
        url = "/api/admin/import/listenbrainz"
        declared = await http.post(url, content=big, headers={"content-type": "application/x-ndjson"})
        assert declared.status_code == 413 and "5000 bytes" in declared.json()["detail"]
        # Chunked, no Content-Length: the endpoint counts what arrives.
        streamed = await http.post(
            url, content=_chunks(big), headers={"content-type": "application/x-ndjson"}
        )
        assert streamed.status_code == 413 and "HAUNTFM_IMPORT_MAX_BYTES" in streamed.json()["detail"]
        assert streamed.json()["error"] == "payload_too_large"

        for body, sentence in (
            (b"", "is empty"),
            (b" \n\t", "is empty"),
            (b"listened_at,artist\n1,x\n", "not a ListenBrainz export"),
        ):
            response = await http.post(url, content=body, headers={"content-type": "application/x-ndjson"})
            assert response.status_code == 422 and sentence in response.json()["detail"], response.text

        no_file = await http.post(url, data={"profile": "default"}, files={"other": ("", b"", "text/plain")})
        assert no_file.status_code == 422 and "has no file" in no_file.json()["detail"]
        broken = await http.post(
            url,
            content=b"--xyz\r\nnot a header\r\n\r\n",
            headers={"content-type": "multipart/form-data; boundary=xyz"},
        )
        assert broken.status_code == 422, broken.text
        unknown = await http.post(url, params={"profile": "ghost"}, content=b"[]")
        assert unknown.status_code == 404 and "Profile 'ghost' does not exist" in unknown.json()["detail"]

        # Other endpoints keep the small body limit.
        huge = await http.post("/api/admin/import/lastfm", content=b"x" * 70_000)
        assert huge.status_code == 413
        assert (await http.get("/api/admin/imports")).json() == {"imports": []}
    assert list((tmp_path / "data" / "imports").iterdir()) == []
    assert await scalar(db, "SELECT count(*) FROM listen_events") == 0


async def test_an_interrupted_import_resumes_at_its_cursor_without_duplicates(
    db: async_sessionmaker[AsyncSession], pg_url: str, tmp_path: Path
) -> None:
    export = write_jsonl(
        tmp_path / "export.jsonl",
        [*distinct_listens(1000), "not json", *distinct_listens(500, start=BASE_UTS - 10**6)],
    )
    settings = make_settings(tmp_path, pg_url, import_batch_size=100)
    async with open_runtime(settings, database_url=pg_url, listen=False) as runtime:
        started = await service.start_listenbrainz_file(sessions=runtime.sessions, path=export)
        assert started.job_id is not None
        batches = 0

        async def stop_after_three(counts: service.Counts) -> None:
            nonlocal batches
            batches += 1
            if batches == 3:
                raise asyncio.CancelledError  # as when `serve` stops mid-import

        kind = import_job_kind(runtime, on_progress=stop_after_three)
        with pytest.raises(asyncio.CancelledError):
            await JobRunner(sessions=runtime.sessions, kinds={kind.name: kind}).run_job(started.job_id)
        async with runtime.sessions() as session:
            halfway = await service.get(session, import_id=started.import_id)
        assert (halfway.status, halfway.imported, halfway.duplicates) == ("running", 300, 0)
        assert await scalar(db, "SELECT lease_owner FROM jobs") is None  # handed back
        assert await scalar(db, "SELECT count(*) FROM listen_events") == 300

        # Asking again for the same file finds the unfinished import; running its job finishes it.
        resumed = await service.start_listenbrainz_file(sessions=runtime.sessions, path=export)
        assert resumed.import_id == started.import_id
        kind = import_job_kind(runtime)
        assert await JobRunner(sessions=runtime.sessions, kinds={kind.name: kind}).run_job(started.job_id)
        async with runtime.sessions() as session:
            done = await service.get(session, import_id=started.import_id)
    assert (done.status, done.imported, done.duplicates, done.skipped) == ("done", 1500, 0, 1)
    assert [p.line for p in done.problems] == [1001]
    assert await scalar(db, "SELECT count(*) FROM listen_events") == 1500
    assert export.exists()  # a file imported in place is the user's: never deleted
    await assert_no_duplicated_listens(db)


async def test_a_profile_deleted_mid_import_fails_it_with_a_sentence(
    db: async_sessionmaker[AsyncSession], pg_url: str, tmp_path: Path
) -> None:
    export = write_jsonl(tmp_path / "export.jsonl", distinct_listens(1000))
    settings = make_settings(tmp_path, pg_url, import_batch_size=100)
    async with open_runtime(settings, database_url=pg_url, listen=False) as runtime:
        async with runtime.sessions() as session:
            await profiles.create_profile(session, name="guest", display_name=None)
            await session.commit()
        started = await service.start_listenbrainz_file(
            sessions=runtime.sessions, path=export, profile="guest"
        )
        assert started.job_id is not None

        async def delete_the_profile(counts: service.Counts) -> None:
            if counts.imported == 200:
                async with runtime.sessions() as session:
                    await profiles.delete_profile(session, name="guest")
                    await session.commit()

        kind = import_job_kind(runtime, on_progress=delete_the_profile)
        await JobRunner(sessions=runtime.sessions, kinds={kind.name: kind}).run_job(started.job_id)
        async with runtime.sessions() as session:
            failed = await service.get(session, import_id=started.import_id)
    assert (failed.status, failed.imported) == ("failed", 200)
    assert failed.error is not None and "Profile 'guest' was deleted during the import" in failed.error
    # What was imported moved to default with the profile's other listens; nothing half-written.
    assert await scalar(db, "SELECT count(*) FROM listen_events") == 200


async def test_an_uploaded_file_name_is_stored_as_plain_text(
    serve: Callable[..., str], db: async_sessionmaker[AsyncSession]
) -> None:
    body = _body(distinct_listens(2))
    async with httpx.AsyncClient(base_url=serve(start_background=True)) as http:
        for sent, kept in (
            (b"C:\\fakepath\\my\x00 listens\x07.jsonl", "my listens.jsonl"),
            (b"../../etc/passwd", "passwd"),
            (b"\xff\xfe.json", "\ufffd\ufffd.json"),
        ):
            form = (
                b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="' + sent + b'"\r\n'
                b"Content-Type: application/x-ndjson\r\n\r\n" + body + b"\r\n--b0undary--\r\n"
            )
            response = await http.post(
                "/api/admin/import/listenbrainz",
                content=form,
                headers={"content-type": "multipart/form-data; boundary=b0undary"},
            )
            assert response.status_code == 202, response.text
            assert response.json()["filename"] == kept
            await wait_import(http, response.json()["import_id"])
