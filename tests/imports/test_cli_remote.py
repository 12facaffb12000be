"""`haunt-fm --url URL import ...`: the service runs the import (a ListenBrainz export is uploaded
from disk), the command follows it to its end; nothing local is used (no database, no key)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.cli.support import NO_DATABASE, cli_env, run
from tests.discovery.support import LASTFM_KEY
from tests.fakes import FakeLastfm
from tests.imports.support import (
    BASE_UTS,
    assert_no_duplicated_listens,
    distinct_listens,
    lastfm_settings,
    listen_json,
    scalar,
    write_jsonl,
)

TOKEN = "import-cli-token-41c0"


async def test_remote_imports_run_on_the_service_and_are_followed_to_their_end(
    db: async_sessionmaker[AsyncSession], serve: Callable[..., str], tmp_path: Path, lastfm: FakeLastfm
) -> None:
    url = serve(start_background=True, api_token=TOKEN, **lastfm_settings(lastfm))
    never = tmp_path / "never"
    env = cli_env(
        HAUNTFM_URL=url,
        HAUNTFM_API_TOKEN=TOKEN,
        HAUNTFM_DATABASE_URL=NO_DATABASE,
        HAUNTFM_DATA_DIR=str(never),
    )
    export = write_jsonl(
        tmp_path / "export.jsonl",
        [*distinct_listens(300), "{oops", listen_json(BASE_UTS - 10, "Artist 0", "Song 0")],
    )

    done = await run("import", "listenbrainz", str(export), env=env, cwd=tmp_path)
    assert done.code == 0, done.err
    # The upload keeps its file name; the command follows the import the service runs.
    assert "import 1: ListenBrainz export.jsonl → default" in done.err
    assert "import 1: done" in done.out
    assert "imported:    300" in done.out and "duplicates:  1 (already stored)" in done.out
    assert "line 301: The line is not valid JSON" in done.out

    again = await run("import", "listenbrainz", str(export), "--json", env=env, cwd=tmp_path)
    doc = again.json()
    assert (doc["import_id"], doc["status"], doc["imported"], doc["duplicates"]) == (2, "done", 0, 301)
    assert doc["filename"] == "export.jsonl"

    missing = await run("import", "listenbrainz", str(tmp_path / "nope.jsonl"), env=env, cwd=tmp_path)
    assert missing.code == 1 and "There is no file" in missing.err
    ghost = await run("import", "listenbrainz", str(export), "-p", "ghost", env=env, cwd=tmp_path)
    assert ghost.code == 1
    assert "Profile 'ghost' does not exist. Create it with `haunt-fm profiles create ghost`." in ghost.err

    # Last.fm: the service's key, none here.
    lastfm.add_user("rj", lastfm.generate_scrobbles(500, newest_uts=BASE_UTS + 10**6, spacing=200))
    scrobbles = await run("import", "lastfm", "--user", "rj", "--json", env=env, cwd=tmp_path)
    body = scrobbles.json()
    assert (body["status"], body["imported"], body["user"]) == ("done", 500, "rj")
    unknown = await run("import", "lastfm", "--user", "nobody-here", env=env, cwd=tmp_path)
    assert unknown.code == 1 and "Last.fm has no user called 'nobody-here'" in unknown.err

    assert await scalar(db, "SELECT count(*) FROM listen_events") == 800
    await assert_no_duplicated_listens(db)
    listed = json.loads((await run("status", "--json", env=env, cwd=tmp_path)).out)
    assert listed["imports"]["last_finished"]["import_id"] == body["import_id"]
    table = await run("status", env=env, cwd=tmp_path)
    assert "Last import:" in table.out
    assert f"import {body['import_id']}: Last.fm rj → default: done, 500 imported" in table.out
    assert TOKEN not in "".join(r.out + r.err for r in (done, again, scrobbles, unknown))
    assert LASTFM_KEY not in scrobbles.out + scrobbles.err
    assert not never.exists(), "a remote command touched the local data directory"
