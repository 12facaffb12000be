"""What the tools say about several tastes, tag-grounded vibes, skips, imported histories and the status."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx

from tests.imports.support import listen_json, wait_import
from tests.mcp_server.support import STUDY, document, error_text, http_client
from tests.recommendations.support import Factory, GenreSpace, add_track, listen
from tests.tags.support import tag


async def test_recommend_names_the_taste_behind_each_track_and_how_the_vibe_was_understood(
    serve: Callable[..., str], db: Factory
) -> None:
    space = GenreSpace(seed=5)
    genre_of: dict[int, str] = {}
    for genre in ("ambient", "metal"):
        for i in range(15):
            tid = await add_track(db, f"{genre} {i}", space.track(genre), artist=f"{genre} Artist {i % 5}")
            await listen(db, tid, times=2)
            if genre == "metal":
                await tag(db, tid, {"Metal": 100})
        for i in range(20):
            new = await add_track(db, f"New {genre} {i}", space.track(genre), artist=f"New {genre} {i}")
            genre_of[new] = genre
    url = serve()
    async with http_client(url) as client:
        recs = document(await client.call_tool("recommend", {"limit": 10}))
        assert recs["basis"] == "taste" and recs["vibe_basis"] is None
        tastes = recs["tastes"]
        assert len(tastes) == 2 and [t["index"] for t in tastes] == [0, 1]
        assert "metal" in {t["label"] for t in tastes}
        by_label: dict[str, set[str]] = {}
        for track in recs["tracks"]:
            by_label.setdefault(track["taste"], set()).add(genre_of[track["track_id"]])
        # Each taste found its own genre, and both are in the list.
        assert sorted(by_label) == sorted(t["label"] for t in tastes)
        assert by_label["metal"] == {"metal"}

        metal = document(await client.call_tool("recommend", {"vibe": "metal", "alpha": 0.2, "limit": 5}))
        basis = {"text": False, "tags": ["metal"], "tag_tracks": 15, "discovering": False}
        assert metal["vibe_basis"] == basis
        assert {genre_of[t["track_id"]] for t in metal["tracks"]} == {"metal"}

        polka = error_text(await client.call_tool("recommend", {"vibe": "polka"}))
        assert polka.startswith("The vibe 'polka' matched no Last.fm tag of an embedded track in the library")
        assert polka.endswith("Suggestions: metal.")


async def test_listens_say_skipped_and_where_they_came_from_and_the_status_shows_the_import(
    serve: Callable[..., str], db: Factory
) -> None:
    url = serve(start_background=True)
    start = int(datetime(2020, 5, 1, tzinfo=UTC).timestamp())
    history = [listen_json(start + 600 * i, "Elbow", f"Old Song {i}") for i in range(3)]
    started = datetime.now(UTC) - timedelta(minutes=10)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        body = "".join(json.dumps(e) + "\n" for e in history).encode()
        r = await http.post(
            "/api/admin/import/listenbrainz", content=body, headers={"content-type": "application/jsonl"}
        )
        assert r.status_code == 202, r.text
        assert (await wait_import(http, r.json()["import_id"]))["status"] == "done"
        # The first song is cut short: the next one starts 10 s into its 200 s.
        for title, offset in (("Cut Short", 0), ("Played Through", 10)):
            listened = {
                "title": title,
                "artist": "Someone",
                "speaker_name": "Study speaker",
                "speaker_entity": STUDY,
                "duration_s": 200,
                "played_at": (started + timedelta(seconds=offset)).isoformat(),
            }
            assert (await http.post("/api/history/webhook", json=listened)).status_code == 201
    async with http_client(url) as client:
        study = document(await client.call_tool("recent_listens", {"speaker": "study"}))
        assert [(e["title"], e["skipped"], e["source"]) for e in study["events"]] == [
            ("Played Through", False, "webhook"),
            ("Cut Short", True, "webhook"),
        ]
        assert study["events"][0]["speaker"] == "Study speaker"
        everyone = document(await client.call_tool("recent_listens", {"limit": 5}))
        assert [(e["title"], e["source"], e["speaker"]) for e in everyone["events"][2:]] == [
            ("Old Song 2", "listenbrainz", None),
            ("Old Song 1", "listenbrainz", None),
            ("Old Song 0", "listenbrainz", None),
        ]
        assert set(everyone["events"][0]) == {
            "track_id", "title", "artist", "album", "profile", "speaker", "played_at", "skipped", "source",
        }  # fmt: skip

        status = document(await client.call_tool("pipeline_status", {}))
        assert status["pipeline"]["listens"] == 5 and status["pipeline"]["listened_tracks"] == 5
        assert status["home_assistant"]["configured"] is False
        assert status["imports"]["running"] == []
        last = status["imports"]["last_finished"]
        assert (last["source"], last["status"], last["imported"], last["profile"]) == (
            "listenbrainz", "done", 3, "default",
        )  # fmt: skip
        assert "problems" not in last
        assert status["pipeline"]["embedding"]["outdated"] == 0 and "tags" in status["pipeline"]
        assert [p["name"] for p in status["profiles"]] == ["default"]
        # The resource keeps the whole /api/status document.
        [content] = (await client.read_resource("haunt-fm://status")).contents
        full = json.loads(content.text)  # type: ignore[union-attr]
        assert full["imports"]["last_finished"]["problems"] == [] and "workers" in full["worker"]
