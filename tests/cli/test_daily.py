"""The everyday commands, each run twice: in-process on the test database, and with HAUNTFM_URL
against a live app over HTTP (with a database URL that leads nowhere, so nothing local is used).
`--json` prints exactly the API's document; errors read in the command line's own words."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from tests.cli.support import NO_DATABASE, Mode, cli_env, run
from tests.playlists.support import E0, World, build_world
from tests.recommendations.support import Factory, cache_vibe

TOKEN = "cli-test-token-8d2f"
# Mentions of the HTTP API that must never reach a command-line user.
API_WORDING = ("/api/", "?vibe=", "auto_play", "speaker_entity", "POST ", "GET ")


@pytest.fixture(params=["local", "remote"])
async def mode(
    request: pytest.FixtureRequest, serve: Callable[..., str], pg_url: str, tmp_path: Path
) -> AsyncIterator[tuple[Mode, httpx.AsyncClient]]:
    """The mode, and an HTTP client for the same data (to compare with what the API answers)."""
    url = serve(api_token=TOKEN)
    if request.param == "local":
        env = cli_env(HAUNTFM_DATABASE_URL=pg_url, HAUNTFM_DATA_DIR=str(tmp_path / "data"))
    else:
        env = cli_env(
            HAUNTFM_URL=url,
            HAUNTFM_API_TOKEN=TOKEN,
            HAUNTFM_DATABASE_URL=NO_DATABASE,
            HAUNTFM_DATA_DIR=str(tmp_path / "never"),
        )
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as api:
        yield Mode(request.param, env, tmp_path), api
    if request.param == "remote":
        assert not (tmp_path / "never").exists(), "a remote command touched the local data directory"


async def _world(db: Factory) -> World:
    world = await build_world(db, known=3, new=6)
    await cache_vibe(db, "dreamy haze", E0)
    return world


def _no_api_wording(message: str) -> None:
    for phrase in API_WORDING:
        assert phrase not in message, (phrase, message)


async def test_json_is_the_api_document(mode: tuple[Mode, httpx.AsyncClient], db: Factory) -> None:
    cli, api = mode
    await _world(db)
    # The API first: it builds the taste profile that both then read.
    cases = [
        (["recommend"], "/api/recommendations", {"limit": 20}),
        (
            ["recommend", "--vibe", "Dreamy  Haze", "--alpha", "0.3", "-n", "4", "-p", "default"],
            "/api/recommendations",
            {"vibe": "Dreamy  Haze", "alpha": 0.3, "limit": 4, "profile": "default"},
        ),
        (["status"], "/api/status", {}),
        (["recent", "-n", "2"], "/api/history/recent", {"limit": 2}),
        (["profiles", "list"], "/api/profiles", {}),
        (["profiles", "show", "default"], "/api/profiles/default", {}),
        (["profiles", "speakers", "default"], "/api/profiles/default/speakers", {}),
    ]
    for args, path, params in cases:
        expected = (await api.get(path, params=params)).json()
        assert (await cli.run(*args, "--json")).json() == expected, args


async def test_tables_for_people(mode: tuple[Mode, httpx.AsyncClient], db: Factory) -> None:
    cli, _ = mode
    await _world(db)
    rec = await cli.run("recommend", "-n", "3")
    assert rec.code == 0, rec.err
    assert "Recommendations for 'default' (from taste)" in rec.out
    assert "New Artist 0" in rec.out and "New Artist 3" not in rec.out
    assert rec.err == ""

    status = await cli.run("status")
    assert status.code == 0, status.err
    # The vibe cached for the world comes with a live worker that checked its text tower.
    assert "Embedding worker: idle (model " in status.out and "Profiles" in status.out
    assert status.err == ""

    async with db() as session, session.begin():
        await session.execute(
            text("UPDATE listen_events SET skipped = true WHERE id = (SELECT max(id) FROM listen_events)")
        )
    recent = await cli.run("recent")
    assert recent.code == 0 and "Recent listens" in recent.out and "webhook" in recent.out
    # The newest listen, cut short: the first row says so.
    rows = [line for line in recent.out.splitlines() if "webhook" in line]
    assert "skipped" in rows[0] and not any("skipped" in row for row in rows[1:])

    # `recommend` built the taste: its tastes show with the profile.
    profile = await cli.run("profiles", "show", "default")
    assert profile.code == 0 and "taste 1: " in profile.out and "of the listening" in profile.out
    listed = await cli.run("profiles", "list")
    assert "tastes" in listed.out and "100%" in listed.out


async def test_changes_and_errors(mode: tuple[Mode, httpx.AsyncClient], db: Factory) -> None:
    cli, api = mode
    world = await _world(db)
    n0 = world.new[0]

    created = await cli.run("profiles", "create", "antialias", "--display-name", "Me")
    assert (created.code, created.out) == (0, "Created profile 'antialias'.\n"), created.err
    assert (await api.get("/api/profiles/antialias")).json()["display_name"] == "Me"
    again = await cli.run("profiles", "create", "antialias")
    assert again.code == 1 and again.err == "error: Profile 'antialias' already exists.\n"
    bad = await cli.run("profiles", "create", "Bad Name")
    assert bad.code == 1 and bad.err.startswith("error: NAME: profile names are 1-64 characters")

    speakers = await cli.run("profiles", "speakers", "antialias", "Study speaker", "media_player.kitchen")
    assert speakers.out == "Speakers of 'antialias': Study speaker, media_player.kitchen\n", speakers.err
    shown = await cli.run("profiles", "speakers", "antialias", "--json")
    assert shown.json() == (await api.get("/api/profiles/antialias/speakers")).json()
    cleared = await cli.run("profiles", "speakers", "antialias", "--clear")
    assert cleared.out == "No speaker is mapped to 'antialias'.\n"
    both = await cli.run("profiles", "speakers", "antialias", "--clear", "x")
    assert both.code == 2 and "--clear and SPEAKER don't go together" in both.err

    down = (await cli.run("feedback", str(n0), "down", "-p", "antialias", "--json")).json()
    assert (down["track_id"], down["rating"], down["vibe"], down["replaced"]) == (
        n0,
        "down",
        "general",
        False,
    )
    up = await cli.run("feedback", str(n0), "up", "--profile", "antialias")
    assert up.code == 0, up.err
    assert up.out == (
        f"Thumbs up for New Artist 0 - N0 (track {n0}), profile 'antialias', everywhere "
        "(replaces the earlier rating).\n"
    )
    listed = (await api.get("/api/feedback", params={"profile": "antialias"})).json()["feedback"]
    assert [(f["track_id"], f["rating"]) for f in listed] == [(n0, "up")]
    missing = await cli.run("feedback", "999999", "up")
    assert missing.code == 1 and missing.err == "error: Track 999999 does not exist.\n"
    sideways = await cli.run("feedback", str(n0), "sideways")
    assert sideways.code == 2

    rebuilt = await cli.run("taste", "rebuild")
    assert rebuilt.code == 0 and rebuilt.out.startswith("Taste of 'default' rebuilt from 3 track(s) at ")
    assert (await cli.run("taste", "rebuild", "-p", "antialias", "--json")).json()["tracks_used"] == 1

    assert (await cli.run("profiles", "create", "empty")).code == 0
    no_taste = await cli.run("taste", "rebuild", "-p", "empty")
    assert no_taste.code == 1
    assert "like tracks (`haunt-fm feedback TRACK_ID up|down`)" in no_taste.err
    assert "(progress in `haunt-fm status`)" in no_taste.err
    _no_api_wording(no_taste.err)
    no_query = await cli.run("recommend", "-p", "empty")
    assert no_query.code == 1 and "pass a vibe, e.g. --vibe 'chill ambient'" in no_query.err
    _no_api_wording(no_query.err)
    nobody = await cli.run("recent", "-p", "nobody")
    assert nobody.code == 1
    assert (
        nobody.err
        == "error: Profile 'nobody' does not exist. Create it with `haunt-fm profiles create nobody`.\n"
    )

    deleted = await cli.run("profiles", "delete", "antialias")
    assert deleted.out == "Deleted profile 'antialias'; 0 listen(s) and 1 rating(s) moved to 'default'.\n"
    refused = await cli.run("profiles", "delete", "default")
    assert refused.code == 1 and "cannot be deleted" in refused.err

    play = await cli.run("playlist", "-n", "3", "--json")
    body = play.json()
    assert len(body["tracks"]) == 3 and body["playback"]["status"] == "not_requested"
    assert (await api.get(f"/api/playlists/{body['playlist_id']}")).json() == body
    table = await cli.run("playlist", "-n", "4", "--known-pct", "50")
    assert table.code == 0 and "2 known, 2 new" in table.out
    no_speaker = await cli.run("playlist", "--play")
    assert no_speaker.code == 2 and "error: --play needs --speaker" in no_speaker.err
    _no_api_wording(no_speaker.err)
    too_many = await cli.run("playlist", "--known-pct", "150")
    assert too_many.code == 2 and "--known-pct" in too_many.err and "known_pct" not in too_many.err


async def test_retry_failed(mode: tuple[Mode, httpx.AsyncClient], db: Factory) -> None:
    cli, api = mode
    world = await _world(db)
    async with db() as s, s.begin():
        await s.execute(
            text("UPDATE tracks SET preview_status = 'failed' WHERE id = :t"), {"t": world.new[5]}
        )
        await s.execute(
            text("UPDATE tracks SET embedding_status = 'failed' WHERE id = ANY(:t)"), {"t": world.new[3:5]}
        )
    assert (await cli.run("retry-failed", "--stage", "previews", "--json")).json() == {
        "requeued": 1,
        "stages": {"previews": 1},
    }
    both = await cli.run("retry-failed")
    assert both.out == "Requeued 2 failed track(s): 0 preview lookup(s), 2 embedding(s).\n", both.err
    pipeline = (await api.get("/api/status")).json()["pipeline"]
    assert pipeline["preview"]["failed"] == 0 and pipeline["embedding"]["failed"] == 0
    wrong = await cli.run("retry-failed", "--stage", "audio")
    assert wrong.code == 2


async def test_remote_needs_the_token(serve: Callable[..., str], tmp_path: Path) -> None:
    url = serve(api_token=TOKEN)
    base = cli_env(HAUNTFM_URL=url, HAUNTFM_DATABASE_URL=NO_DATABASE)
    missing = await run("status", env=base, cwd=tmp_path)
    assert missing.code == 1
    assert missing.err == (
        f"error: haunt-fm at {url} needs an API token: set HAUNTFM_API_TOKEN to the token "
        "the service was started with.\n"
    )
    wrong = await run("recent", env={**base, "HAUNTFM_API_TOKEN": "nope"}, cwd=tmp_path)
    assert wrong.code == 1 and "rejected the token in HAUNTFM_API_TOKEN" in wrong.err
    assert "nope" not in wrong.out + wrong.err
    # --url wins over HAUNTFM_URL.
    elsewhere = {**base, "HAUNTFM_URL": "http://127.0.0.1:1", "HAUNTFM_API_TOKEN": TOKEN}
    flag = await run("--url", url + "/", "profiles", "list", env=elsewhere, cwd=tmp_path)
    assert flag.code == 0 and "default" in flag.out, flag.err
    # The API's validation error, in the command's options.
    long = await run("recent", "-p", "a" * 70, env={**base, "HAUNTFM_API_TOKEN": TOKEN}, cwd=tmp_path)
    assert long.code == 1
    assert long.err.startswith("error: --profile: String should have at most 64 characters")
    bad = await run("--url", "nas.local:8321", "status", env=base, cwd=tmp_path)
    assert bad.code == 2 and "--url must be the http:// address of a running haunt-fm" in bad.err


async def test_remote_that_is_not_there(tmp_path: Path) -> None:
    from tests.playlists.support import closed_port_url

    url = closed_port_url()
    out = await run("--url", url, "recent", env=cli_env(), cwd=tmp_path)
    assert out.code == 1 and out.err.startswith(f"error: cannot reach haunt-fm at {url}")
    assert "Traceback" not in out.err


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["db", "backup", "x.dump"], "db backup"),
        (["db", "restore", "--yes", "x.dump"], "db restore"),
        (["db", "shell"], "db shell"),
        (["db", "upgrade"], "db upgrade"),
        (["serve"], "serve"),
        (["worker"], "worker"),
        (["mcp"], "mcp"),
        (["backfill", "--since", "2026-01-01"], "backfill"),
    ],
)
async def test_local_only_commands_say_so(args: list[str], named: str, tmp_path: Path) -> None:
    (tmp_path / "x.dump").write_bytes(b"")
    flag = await run("--url", "http://127.0.0.1:1", *args, env=cli_env(), cwd=tmp_path)
    assert flag.code == 2
    assert f"`haunt-fm {named}` only runs on the machine with the database" in flag.err
    assert "drop --url" in flag.err
    if args[0] in ("db", "backfill"):
        env = cli_env(HAUNTFM_URL="http://127.0.0.1:1", HAUNTFM_DATA_DIR=str(tmp_path / "data"))
        from_env = await run(*args, env=env, cwd=tmp_path)
        assert from_env.code == 2 and "HAUNTFM_URL is set (http://127.0.0.1:1)" in from_env.err
        assert not (tmp_path / "data").exists()


async def test_a_document_of_another_version_still_prints_as_json(tmp_path: Path) -> None:
    from fastapi import FastAPI

    from tests.support.live_server import LiveServer

    other = FastAPI()

    @other.get("/api/history/recent")
    async def recent() -> dict[str, object]:
        return {"events": [{"event_id": 1, "renamed_field": "x"}]}

    with LiveServer(other) as server:
        env = cli_env(HAUNTFM_URL=server.url)
        table = await run("recent", env=env, cwd=tmp_path)
        assert table.code == 1 and "a document this command can't read" in table.err
        raw = await run("recent", "--json", env=env, cwd=tmp_path)
        assert raw.json() == {"events": [{"event_id": 1, "renamed_field": "x"}]}
