"""Vibes as a household meets them, in one run of `haunt-fm serve` with the real background stages:

listens -> Last.fm discovery -> iTunes previews -> CLAP embeddings (a model whose TEXT TOWER IS
COLLAPSED, as `laion/larger_clap_music`'s is) -> Last.fm tags -> vibes grounded in the tags.

The library is the stand-in Last.fm's tag world: four genres whose synthetic audio sounds like
their tags. With the text tower useless, a vibe can only steer through the tags, so
`vibe=chill` must find the tracks that sound like the ones tagged chill.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import reachable
from tests.fakes.itunes import FakeItunes
from tests.fakes.lastfm import FakeLastfm
from tests.fakes.lastfm_world import TagWorld
from tests.support.serve_process import serve_process
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow

PER_GENRE = 4


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The tag world on the Last.fm stand-in; every track in the iTunes stand-in with its preview.

    The listener heard two jazz tracks; Last.fm says every other track of the world is similar.
    """
    tags = TagWorld(per_genre=PER_GENRE)
    folder = tmp_path_factory.mktemp("previews")
    with FakeLastfm(api_key="lfm-key") as lastfm, FakeItunes() as itunes:
        tags.install(lastfm)
        for track in tags.tracks:
            preview = tags.write_preview(track, folder / f"{track.slug}.m4a").read_bytes()
            itunes.add_track(track.artist, track.title, preview=preview)
        heard = tags.by_genre("jazz")[:2]
        others = [t for t in tags.tracks if t not in heard]
        for seed in heard:
            lastfm.set_similar(seed.artist, seed.title, [(t.artist, t.title) for t in others])
        yield {"tags": tags, "lastfm": lastfm, "itunes": itunes, "heard": heard}


@pytest.fixture(scope="module")
def service(
    world: dict[str, Any], tiny_clap_collapsed_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    lastfm, itunes = world["lastfm"], world["itunes"]
    tmp_path = reachable(tmp_path_factory.mktemp("serve"))
    with serve_process(
        tmp_path / "serve.log",
        data_dir=str(tmp_path / "data"),
        lastfm_api_key="lfm-key",
        lastfm_api_url=lastfm.api_url,
        lastfm_rate_per_second="50",
        itunes_api_url=itunes.url,
        itunes_rate_per_minute="1200",
        clap_model=str(tiny_clap_collapsed_dir),
        embedding_worker_enabled="true",
        embedding_interval_seconds="0.2",
        torch_threads="1",
    ) as url:
        yield url


def _wait(client: httpx.Client, what: str, done: Any, timeout: float = 240) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        status: dict[str, Any] = client.get("/api/status").json()
        return status if done(status) else None

    return eventually(reached, what=what, seconds=timeout, every=0.3)


def _recommend(client: httpx.Client, **params: Any) -> httpx.Response:
    return client.get("/api/recommendations", params={"limit": 16, **params})


@pytest.fixture(scope="module")
def library(service: str, world: dict[str, Any]) -> dict[str, Any]:
    """Listen, discover, and wait until every track is embedded and tagged; track ids by genre."""
    tags: TagWorld = world["tags"]
    with httpx.Client(base_url=service, timeout=60) as c:
        assert c.post("/api/profiles", json={"name": "antialias"}).status_code == 201
        for track in world["heard"]:
            r = c.post(
                "/api/history/webhook",
                json={"title": track.title, "artist": track.artist, "profile": "antialias"},
            )
            assert r.status_code == 201, r.text
        found = c.post("/api/admin/discover", json={"limit": 50})
        assert found.status_code == 200 and found.json()["candidates_new"] == len(tags.tracks) - 2, found.text
        total = len(tags.tracks)
        status = _wait(
            c,
            "embeddings and tags",
            lambda s: s["pipeline"]["embedding"]["done"] == total and s["pipeline"]["tags"]["done"] == total,
        )
        # Track ids by genre: `default` heard nothing, so its page lists the whole library.
        ids: dict[str, list[int]] = {}
        page = c.get("/api/recommendations", params={"limit": 50, "vibe": "chill", "alpha": 0}).json()
        known = {(r["artist"], r["title"]): r["track_id"] for r in page["recommendations"]}
        for track in tags.tracks:
            ids.setdefault(track.genre, []).append(known[(track.artist, track.title)])
        heard = {e["track_id"] for e in c.get("/api/history/recent").json()["events"]}
    return {"status": status, "ids": ids, "heard": heard, "url": service}


def _genre_ids(library: dict[str, Any], genre: str) -> set[int]:
    return set(library["ids"][genre])


def test_the_collapsed_text_tower_is_known_and_vibes_rest_on_the_tags(library: dict[str, Any]) -> None:
    worker = library["status"]["worker"]
    assert worker["text_tower_ok"] is False and "Last.fm tags" in worker["text_tower_note"]
    assert library["status"]["pipeline"]["embedding"]["outdated"] == 0
    assert {g: len(v) for g, v in library["ids"].items()} == {g: PER_GENRE for g in library["ids"]}
    assert len(library["ids"]) == 4 and library["heard"] <= _genre_ids(library, "jazz")


@pytest.mark.parametrize(
    ("words", "genre"), [("chill", "chill"), ("heavy metal", "heavy metal"), ("Ambient", "ambient")]
)
def test_a_vibe_recommends_the_tracks_that_sound_like_those_tagged_with_it(
    library: dict[str, Any], words: str, genre: str
) -> None:
    with httpx.Client(base_url=library["url"], timeout=60) as c:
        r = _recommend(c, vibe=words, alpha=0)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["basis"] == "vibe"
        basis = body["vibe_basis"]
        assert basis["text"] is False  # the collapsed tower never joins
        assert basis["tags"] == [genre] and basis["tag_tracks"] == PER_GENRE
        top = [row["track_id"] for row in body["recommendations"][:PER_GENRE]]
        assert set(top) == _genre_ids(library, genre)


def test_blends_with_taste_behave_by_alpha(library: dict[str, Any]) -> None:
    chill, jazz = _genre_ids(library, "chill"), _genre_ids(library, "jazz") - library["heard"]

    def ranks(alpha: float) -> tuple[float, float]:
        with httpx.Client(base_url=library["url"], timeout=60) as c:
            body = _recommend(c, vibe="chill", alpha=alpha, profile="antialias").json()
        order = [row["track_id"] for row in body["recommendations"]]
        assert len(order) == 14  # everything but the profile's two listens
        return (
            sum(order.index(t) for t in chill) / len(chill),
            sum(order.index(t) for t in jazz) / len(jazz),
        )

    vibe_only, half, taste_only = ranks(0.0), ranks(0.5), ranks(1.0)
    # alpha 0: the four chill tracks first; alpha 1: the profile's taste (jazz) first.
    assert vibe_only[0] == pytest.approx(1.5) and taste_only[1] == pytest.approx(0.5)
    # In between, each side moves steadily toward its end of the scale.
    assert vibe_only[0] <= half[0] <= taste_only[0] and vibe_only[0] < taste_only[0]
    assert vibe_only[1] >= half[1] >= taste_only[1] and vibe_only[1] > taste_only[1]


def test_an_unknown_vibe_answers_409_with_suggestions_and_starts_discovery(library: dict[str, Any]) -> None:
    with httpx.Client(base_url=library["url"], timeout=60) as c:
        r = _recommend(c, vibe="polka", alpha=0)
        assert r.status_code == 409, r.text
        body = r.json()
        assert body["error"] == "vibe_not_understood"
        assert {"chill", "heavy metal", "jazz", "ambient"} <= set(body["suggestions"])
        assert "matched no Last.fm tag" in body["detail"] and "failed its self-test" in body["detail"]
        assert "Discovery for 'polka' has started" in body["detail"]
        # The stand-in's charts know no polka: the lookup runs in serve and finds nothing.
        eventually(
            lambda: "within the last day" in _recommend(c, vibe="polka", alpha=0).json()["detail"],
            what="the tag lookup to run",
            every=0.3,
        )
        played = c.post("/api/playlists/generate", json={"total_tracks": 4, "vibe": "polka"})
        assert played.status_code == 409


def test_playlists_tags_docs_and_dashboard_explain_vibes(library: dict[str, Any]) -> None:
    with httpx.Client(base_url=library["url"], timeout=60) as c:
        played = c.post(
            "/api/playlists/generate",
            json={
                "total_tracks": 4,
                "known_pct": 0,
                "vibe": "heavy metal",
                "alpha": 0,
                "profile": "antialias",
            },
        )
        assert played.status_code == 200, played.text
        body = played.json()
        assert body["vibe_basis"]["tags"] == ["heavy metal"] and body["vibe_basis"]["text"] is False
        assert {t["track_id"] for t in body["tracks"]} == _genre_ids(library, "heavy metal")

        tags = {t["tag"]: t for t in c.get("/api/tags").json()["tags"]}
        for genre in ("chill", "ambient", "heavy metal", "jazz"):
            assert tags[genre]["tracks"] == PER_GENRE and tags[genre]["embedded"] == PER_GENRE
        assert "seen live" not in tags and "favourites" not in tags
        mine = [t["tag"] for t in c.get("/api/tags", params={"profile": "antialias"}).json()["tags"]]
        assert mine[0] == "jazz" and "chill" not in mine

        spec = c.get("/openapi.json").json()
        described = spec["paths"]["/api/recommendations"]["get"]["description"]
        assert "Last.fm tags" in described and "text tower" in described
        assert "/api/tags" in spec["paths"]
        page = c.get("/").text
        assert 'list="vibe-tags"' in page and "Last.fm tags" in page
