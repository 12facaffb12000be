"""LastfmClient against the loopback Last.fm stand-in: wire format, quirks, errors and retries."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from haunt_fm.clients._http import RetryPolicy
from haunt_fm.clients.lastfm import (
    LastfmAuthError,
    LastfmClient,
    LastfmError,
    LastfmPrivateProfile,
    LastfmUserNotFound,
    Paging,
    TopTag,
    parse_recent_tracks,
    parse_similar,
    parse_tag_top_tracks,
    parse_top_tags,
)
from tests.fakes import FakeLastfm, Fault
from tests.fakes.lastfm import NOISE_TAGS, TAG_FAMILIES, FakeScrobble, error_body, track_json
from tests.fakes.lastfm_world import TagWorld
from tests.support.limiter import StepLimiter

KEY = "SECRET-lastfm-key-0123456789abcdef"
FAST = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, jitter=0)
RECORDED = Path(__file__).parent.parent / "fixtures" / "lastfm"


def recorded(name: str) -> str:
    """A recorded Last.fm body from tests/fixtures/lastfm."""
    return (RECORDED / name).read_text(encoding="utf-8")


async def wire(lastfm: FakeLastfm, method: str, **params: str) -> httpx.Response:
    """What the stand-in puts on the wire for one method call (the client's key, JSON format)."""
    return await raw_get(
        lastfm.api_url, params={"method": method, **params, "api_key": KEY, "format": "json"}
    )


def replay(lastfm: FakeLastfm, name: str, status: int = 200, *, times: int = 1) -> None:
    """Serve a recorded body (with the HTTP status it came with) as the next answer(s)."""
    lastfm.inject(Fault(status, recorded(name), "application/json"), times=times)


async def raw_get(url: str, **kwargs: Any) -> httpx.Response:
    """A plain GET, to look at exactly what the fake puts on the wire."""
    async with httpx.AsyncClient() as http:
        return await http.get(url, **kwargs)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLastfm]:
    with FakeLastfm(api_key=KEY) as fake:
        yield fake


@pytest.fixture
def lastfm(server: FakeLastfm) -> FakeLastfm:
    server.reset()
    return server


@pytest.fixture
async def client(lastfm: FakeLastfm) -> AsyncIterator[LastfmClient]:
    async with LastfmClient(KEY, lastfm.api_url, retry=FAST) as c:
        yield c


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port


# -- the happy path ------------------------------------------------------------------------


async def test_sends_the_documented_query(client: LastfmClient, lastfm: FakeLastfm) -> None:
    await client.get_similar("Radiohead", "Karma Police", limit=7)
    [request] = lastfm.requests
    assert request.method == "GET"
    assert request.path == "/2.0/"
    assert request.query == {
        "method": "track.getsimilar",
        "artist": "Radiohead",
        "track": "Karma Police",
        "api_key": KEY,
        "format": "json",
        "autocorrect": "1",
        "limit": "7",
    }
    assert request.headers["user-agent"].startswith("haunt-fm/")


async def test_parses_the_real_shape(client: LastfmClient, lastfm: FakeLastfm) -> None:
    result = await client.get_similar("Radiohead", "Karma Police", limit=50)
    wire = lastfm.similar_for("Radiohead", "Karma Police", 50)
    assert len(result.tracks) == 50 == len(wire)
    assert result.found and result.artist == "Radiohead" and result.title == "Karma Police"
    best = result.tracks[0]
    assert best.match == 1.0 and isinstance(best.match, float)
    assert [t.match for t in result.tracks] == sorted((t.match for t in result.tracks), reverse=True)
    assert all(0.0 <= t.match <= 1.0 for t in result.tracks)
    for track, raw in zip(result.tracks, wire, strict=True):
        assert (track.name, track.artist) == (raw["name"], raw["artist"]["name"])
        assert track.playcount == raw["playcount"] and isinstance(track.playcount, int)
        assert track.mbid == raw.get("mbid")
        assert track.artist_mbid == raw["artist"].get("mbid")
        assert track.duration_s == (raw["duration"] or None)
        assert track.url == raw["url"]
        # Five sized images; the sixth, sizeless entry repeats "mega".
        assert set(track.images) == {"small", "medium", "large", "extralarge", "mega"}
        assert track.images["small"].endswith("/34s/2a96cbd8b46e442fc41c2b86b821562f.png")
    # The fake leaves mbids out on some tracks and durations at 0 on others: both are covered.
    assert any(t.mbid is None for t in result.tracks) and any(t.mbid for t in result.tracks)
    assert any(t.artist_mbid is None for t in result.tracks)
    assert any(t.duration_s is None for t in result.tracks)


async def test_limit_caps_the_answer(client: LastfmClient) -> None:
    assert len((await client.get_similar("Bjork", "Joga", limit=5)).tracks) == 5


async def test_autocorrected_artist_comes_from_attr(client: LastfmClient, lastfm: FakeLastfm) -> None:
    lastfm.add_correction("radiohed", "Radiohead")
    result = await client.get_similar("radiohed", "Creep")
    assert result.artist == "Radiohead"


async def test_numbers_as_strings_are_parsed(client: LastfmClient, lastfm: FakeLastfm) -> None:
    lastfm.numbers_as_strings = True
    params = {"method": "track.getsimilar", "artist": "Portishead", "track": "Roads", "api_key": KEY,
              "format": "json", "limit": "10"}  # fmt: skip
    raw = (await raw_get(lastfm.api_url, params=params)).json()["similartracks"]["track"]
    assert all(isinstance(t["match"], str) and isinstance(t["playcount"], str) for t in raw)
    result = await client.get_similar("Portishead", "Roads", limit=10)
    assert [t.match for t in result.tracks] == [float(t["match"]) for t in raw]
    assert result.tracks[0].match == 1.0
    assert all(isinstance(t.playcount, int) and t.playcount > 0 for t in result.tracks)


async def test_single_object_instead_of_a_list(client: LastfmClient, lastfm: FakeLastfm) -> None:
    lastfm.single_object = True
    lastfm.set_similar("Massive Attack", "Teardrop", [("Portishead", "Glory Box", 1)])
    params = {"method": "track.getsimilar", "artist": "Massive Attack", "track": "Teardrop",
              "api_key": KEY, "format": "json"}  # fmt: skip
    raw = (await raw_get(lastfm.api_url, params=params)).json()
    assert isinstance(raw["similartracks"]["track"], dict)  # the quirk is really on the wire
    result = await client.get_similar("Massive Attack", "Teardrop")
    assert [(t.artist, t.name, t.match) for t in result.tracks] == [("Portishead", "Glory Box", 1.0)]


@pytest.mark.parametrize("style", ["empty_list", "missing", "error6"])
async def test_unknown_track_is_an_empty_result(client: LastfmClient, lastfm: FakeLastfm, style: str) -> None:
    lastfm.empty_style = style
    lastfm.mark_unknown("Nobody", "Nothing")
    result = await client.get_similar("Nobody", "Nothing")
    assert result.tracks == [] and not result.found
    assert len(lastfm.requests) == 1  # an empty answer is final, not retried


async def test_blank_artist_or_title_needs_no_request(client: LastfmClient, lastfm: FakeLastfm) -> None:
    assert (await client.get_similar("  ", "Song")).tracks == []
    assert (await client.get_similar("Artist", "")).tracks == []
    assert lastfm.requests == []


def test_parser_tolerates_odd_entries() -> None:
    payload = {
        "similartracks": {
            "track": [
                {"name": "A", "artist": {"name": "X"}, "match": "0.25", "playcount": "10", "duration": "0",
                 "image": {"#text": "http://img/s.png", "size": "small"}},
                {"name": "B", "artist": {"name": "Y", "mbid": ""}, "match": 1.7, "mbid": ""},
                {"name": "", "artist": {"name": "Z"}},
                "garbage",
                {"name": "C"},
            ],
            "@attr": {"artist": "Fixed"},
        }
    }  # fmt: skip
    result = parse_similar(payload, artist="fixd", title="t")
    assert result.artist == "Fixed"
    assert [(t.name, t.match) for t in result.tracks] == [("B", 1.0), ("A", 0.25)]
    b, a = result.tracks
    assert a.images == {"small": "http://img/s.png"} and a.playcount == 10 and a.duration_s is None
    assert b.mbid is None and b.artist_mbid is None and b.images == {}
    assert parse_similar({"similartracks": ""}, artist="a", title="t").tracks == []


# -- errors and retries --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "http_status"), [(29, 429), (16, 503), (11, 503), (8, 500), (29, 200), (16, 200)]
)
async def test_temporary_errors_are_retried(
    client: LastfmClient, lastfm: FakeLastfm, code: int, http_status: int
) -> None:
    lastfm.fail_next(code, http_status=http_status, times=2)
    result = await client.get_similar("Radiohead", "Nude", limit=4)
    assert len(result.tracks) == 4
    assert [r.status for r in lastfm.requests] == [http_status, http_status, 200]


async def test_error_bodies_come_in_either_key_order(client: LastfmClient, lastfm: FakeLastfm) -> None:
    first, second = json.loads(error_body(16)), json.loads(error_body(16))
    assert list(first) != list(second) and first == second
    lastfm.fail_next(16, times=2)
    assert len((await client.get_similar("Air", "La Femme d'Argent", limit=2)).tracks) == 2


@pytest.mark.parametrize("kind", ["html", "malformed", "empty503"])
async def test_unreadable_answers_are_retried(client: LastfmClient, lastfm: FakeLastfm, kind: str) -> None:
    if kind == "html":
        lastfm.html_next(status=502)
    elif kind == "malformed":
        lastfm.malformed_next()
    else:
        lastfm.inject(Fault(503, b""))
    assert len((await client.get_similar("Moby", "Porcelain", limit=3)).tracks) == 3
    assert len(lastfm.requests) == 2


async def test_gives_up_after_the_last_attempt(client: LastfmClient, lastfm: FakeLastfm) -> None:
    lastfm.fail_next(29, times=10)
    with pytest.raises(LastfmError) as caught:
        await client.get_similar("Radiohead", "Airbag")
    error = caught.value
    assert error.transient and error.code == 29 and error.status == 429
    assert "error 29" in str(error) and "Rate Limit Exceeded" in str(error)
    assert len(lastfm.requests) == FAST.max_attempts


@pytest.mark.parametrize(("code", "setup"), [(10, "wrong_key"), (26, "suspended")])
async def test_auth_errors_stop_at_once(lastfm: FakeLastfm, code: int, setup: str) -> None:
    if setup == "suspended":
        lastfm.suspended_keys.add(KEY)
    key = KEY if setup == "suspended" else "SECRET-not-the-right-key"
    async with LastfmClient(key, lastfm.api_url, retry=FAST) as client:
        with pytest.raises(LastfmAuthError) as caught:
            await client.get_similar("Radiohead", "Lucky")
    error = caught.value
    assert not error.transient and error.code == code and error.status == 403
    assert "HAUNTFM_LASTFM_API_KEY" in str(error)
    assert key not in str(error) and key not in repr(error)
    assert len(lastfm.requests) == 1


async def test_invalid_key_body_is_the_real_one(lastfm: FakeLastfm) -> None:
    response = await raw_get(
        lastfm.api_url, params={"method": "track.getsimilar", "api_key": "nope", "format": "json"}
    )
    assert response.status_code == 403
    assert response.json() == {
        "message": "Invalid API key - You must be granted a valid key by last.fm",
        "error": 10,
        "links": [],
    }


async def test_other_error_codes_are_permanent(client: LastfmClient, lastfm: FakeLastfm) -> None:
    lastfm.fail_next(3)
    with pytest.raises(LastfmError) as caught:
        await client.get_similar("Radiohead", "Reckoner")
    assert not caught.value.transient and caught.value.code == 3
    assert not isinstance(caught.value, LastfmAuthError)
    assert len(lastfm.requests) == 1


async def test_timeouts_are_retried(lastfm: FakeLastfm) -> None:
    lastfm.inject(Fault(200, "{}", "application/json", delay=0.5))
    async with httpx.AsyncClient(timeout=0.15) as http:
        client = LastfmClient(KEY, lastfm.api_url, retry=FAST, http=http)
        result = await client.get_similar("Radiohead", "Videotape", limit=2)
    assert len(result.tracks) == 2
    assert len(lastfm.requests) == 2


async def test_unreachable_service_is_transient_and_hides_the_key(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"http://127.0.0.1:{_closed_port()}/2.0/"
    async with LastfmClient(KEY, url, retry=FAST) as client:
        with pytest.raises(LastfmError) as caught:
            await client.get_similar("Radiohead", "Creep")
    assert caught.value.transient and caught.value.status is None
    assert "could not be reached" in str(caught.value)
    assert KEY not in str(caught.value) and KEY not in caplog.text
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


async def test_the_key_never_reaches_logs_or_errors(
    client: LastfmClient, lastfm: FakeLastfm, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    lastfm.fail_next(16, message=f"backend choked on {KEY}")
    lastfm.fail_next(8, message=f"backend choked on {KEY}", times=5)
    with pytest.raises(LastfmError) as caught:
        await client.get_similar("Radiohead", "Creep")
    assert KEY not in str(caught.value)
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("haunt_fm")]
    assert len(ours) == FAST.max_attempts - 1  # one line per retry
    # httpx logs every request URL (query string included) at INFO: redacted there too.
    from_httpx = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert len(from_httpx) == FAST.max_attempts and all("api_key=***" in line for line in from_httpx)
    assert KEY not in caplog.text


async def test_rate_limit_answer_slows_every_caller(lastfm: FakeLastfm) -> None:
    policy = RetryPolicy(max_attempts=3, base_delay=0.3, jitter=0)
    lastfm.fail_next(29)
    async with LastfmClient(KEY, lastfm.api_url, retry=policy, limiter=StepLimiter(1000)) as client:
        first = asyncio.create_task(client.get_similar("Radiohead", "Creep", limit=1))
        await asyncio.sleep(0.1)  # the first call has been told to slow down by now
        second = await client.get_similar("Blur", "Tender", limit=1)
        await first
    assert second.tracks
    by_artist = {r.query["artist"]: r.at for r in lastfm.requests}
    assert by_artist["Blur"] - lastfm.requests[0].at >= 0.25


def test_missing_key_is_refused_up_front() -> None:
    with pytest.raises(LastfmAuthError, match="HAUNTFM_LASTFM_API_KEY"):
        LastfmClient("  ", "http://127.0.0.1:9/2.0/")


def test_track_json_helper_matches_the_documented_shape() -> None:
    track = track_json("Song", "Band", match=0.5, mbid=None, artist_mbid="abc")
    assert "mbid" not in track and track["artist"]["mbid"] == "abc"
    assert [i["size"] for i in track["image"]] == ["small", "medium", "large", "extralarge", "mega", ""]
    assert track["streamable"] == {"#text": "0", "fulltrack": "0"}


# -- recorded bodies (tests/fixtures/lastfm) -----------------------------------------------


def test_recorded_similar_tracks_parse() -> None:
    result = parse_similar(json.loads(recorded("track.getsimilar.json")), artist="radiohead", title="Creep")
    assert result.artist == "Radiohead"  # @attr carries Last.fm's spelling
    assert [(t.artist, t.name) for t in result.tracks] == [
        ("Radiohead", "Exit Music (For a Film)"),
        ("Massive Attack", "Teardrop"),
        ("Portishead", "Glory Box"),
        ("Björk", "Hyperballad"),
    ]
    exit_music, teardrop, glory_box, _ = result.tracks
    assert exit_music.match == 1.0 and exit_music.playcount == 1562381 and exit_music.duration_s == 264
    assert exit_music.artist_mbid == "a74b1b7f-71a5-4011-9441-d0b5e4122711"
    assert teardrop.mbid is None  # absent in the body
    assert (
        glory_box.mbid is None and glory_box.artist_mbid is None and glory_box.duration_s is None
    )  # "" and 0
    assert set(glory_box.images) == {"small", "medium", "large", "extralarge", "mega"}


def test_recorded_similar_unknown_and_single_object() -> None:
    unknown = parse_similar(json.loads(recorded("track.getsimilar.unknown.json")), artist="a", title="t")
    assert unknown.tracks == [] and not unknown.found
    single = parse_similar(json.loads(recorded("track.getsimilar.single.json")), artist="a", title="t")
    assert [(t.artist, t.name, t.match) for t in single.tracks] == [("Massive Attack", "Teardrop", 0.873214)]
    assert single.artist == "Portishead"


def test_recorded_top_tags_parse() -> None:
    tags = parse_top_tags(json.loads(recorded("track.gettoptags.json")))
    assert [(t.name, t.count) for t in tags] == [
        ("trip-hop", 100), ("Trip Hop", 61), ("electronic", 48), ("chillout", 35), ("Lo-Fi", 27),
        ("seen live", 12), ("favourites", 9), ("albums i own", 6), ("1998", 4), ("Bristol", 0),
    ]  # fmt: skip
    assert tags[0].url == "https://www.last.fm/tag/trip-hop"
    assert parse_top_tags(json.loads(recorded("track.gettoptags.unknown.json"))) == []
    # One tag as a bare object, its count a string.
    assert parse_top_tags(json.loads(recorded("track.gettoptags.single.json"))) == [
        TopTag(name="Ambient", count=100, url="https://www.last.fm/tag/ambient")
    ]


def test_top_tags_parser_tolerates_odd_entries() -> None:
    payload = {"toptags": {"tag": [{"name": "x", "count": "250"}, {"name": "", "count": 5}, "junk",
                                   {"name": "y", "count": "-3"}, {"name": "z"}]}}  # fmt: skip
    assert [(t.name, t.count) for t in parse_top_tags(payload)] == [("x", 100), ("y", 0), ("z", 0)]
    assert parse_top_tags({"toptags": ""}) == parse_top_tags(None) == []


def test_recorded_tag_top_tracks_parse() -> None:
    page = parse_tag_top_tracks(json.loads(recorded("tag.gettoptracks.json")), tag="Trip-Hop", limit=5)
    assert page.tag == "trip-hop"
    assert page.paging == Paging(page=1, per_page=5, total_pages=2000, total=10000) and page.paging.has_next
    assert [(t.rank, t.artist, t.name) for t in page.tracks] == [
        (1, "Massive Attack", "Teardrop"),
        (2, "Portishead", "Glory Box"),
        (3, "Massive Attack", "Angel"),
        (4, "Portishead", "Sour Times"),
        (5, "Tricky", "Hell Is Round the Corner"),
    ]
    teardrop, glory_box, angel, sour_times, tricky = page.tracks
    assert teardrop.duration_s == 330 and teardrop.mbid == "3c0d4d2e-2d1b-4a8e-9c1e-1f0c43e7a0a2"
    assert glory_box.mbid is None and angel.mbid is None  # "" and absent
    assert sour_times.duration_s is None and sour_times.artist_mbid is None  # "0" and ""
    assert (
        tricky.artist_mbid is None
        and tricky.url == "https://www.last.fm/music/Tricky/_/Hell+Is+Round+the+Corner"
    )
    assert set(teardrop.images) == {"small", "medium", "large", "extralarge"}


def test_recorded_tag_top_tracks_unknown_and_single() -> None:
    unknown = parse_tag_top_tracks(
        json.loads(recorded("tag.gettoptracks.unknown.json")), tag="xyzzy-no-such-tag"
    )
    assert unknown.tracks == [] and unknown.paging == Paging(1, 50, 0, 0) and not unknown.paging.has_next
    single = parse_tag_top_tracks(json.loads(recorded("tag.gettoptracks.single.json")), tag="drone ambient")
    assert [(t.rank, t.name, t.duration_s) for t in single.tracks] == [
        (1, "Requiem for Dying Mothers, Part 1", 487)
    ]
    assert single.paging.total == 1 and not single.paging.has_next


def test_recorded_recent_tracks_page_one_skips_now_playing() -> None:
    page = parse_recent_tracks(json.loads(recorded("user.getrecenttracks.page1.json")), user="RJ", limit=3)
    assert page.user == "rj" and page.now_playing and page.malformed == 0
    assert page.paging == Paging(page=1, per_page=3, total_pages=2, total=5) and page.paging.has_next
    assert [(s.artist, s.name, s.played_at) for s in page.scrobbles] == [
        ("Massive Attack", "Teardrop", datetime(2025, 12, 31, 23, 30, tzinfo=UTC)),
        ("Portishead", "Glory Box", datetime(2025, 12, 31, 23, 24, 54, tzinfo=UTC)),
        ("Björk", "Jóga", datetime(2025, 12, 31, 23, 20, tzinfo=UTC)),
    ]
    teardrop, glory_box, joga = page.scrobbles
    assert teardrop.album == "Mezzanine" and teardrop.album_mbid == "d2d2f8e5-7a9c-4d6f-8a3b-2c1e0f9a8b7c"
    assert teardrop.mbid == "3c0d4d2e-2d1b-4a8e-9c1e-1f0c43e7a0a2"
    assert glory_box.mbid is None and glory_box.album_mbid is None  # "" on the wire
    assert joga.album is None and joga.artist_mbid == "87c5dedd-371d-4a53-9f7f-80522fb7f3cb"
    assert all(s.played_at.tzinfo is UTC for s in page.scrobbles)


def test_recorded_recent_tracks_later_page() -> None:
    page = parse_recent_tracks(
        json.loads(recorded("user.getrecenttracks.page2.json")), user="rj", limit=3, page=2
    )
    assert not page.now_playing and not page.paging.has_next
    assert page.paging == Paging(page=2, per_page=3, total_pages=2, total=5)
    # The same song played twice is two scrobbles.
    assert [(s.name, int(s.played_at.timestamp())) for s in page.scrobbles] == [
        ("Karma Police", 1767136800),
        ("Karma Police", 1767136500),
    ]


def test_recent_tracks_parser_counts_malformed_rows() -> None:
    payload = {"recenttracks": {"track": [
        {"artist": {"#text": "A"}, "name": "x", "date": {"uts": "1700000000"}},
        {"artist": {"#text": "A"}, "name": "no date"},
        {"artist": {"#text": ""}, "name": "no artist", "date": {"uts": "1700000000"}},
        {"artist": {"#text": "A"}, "name": "bad date", "date": {"uts": "soon"}},
        "junk",
        {"artist": {"#text": "A"}, "name": "np", "@attr": {"nowplaying": "true"}},
    ]}}  # fmt: skip
    page = parse_recent_tracks(payload, user="u", limit=50)
    assert [s.name for s in page.scrobbles] == ["x"] and page.malformed == 4 and page.now_playing
    # No @attr: paging falls back to what was asked and received.
    assert page.paging == Paging(page=1, per_page=50, total_pages=1, total=1)


async def test_recorded_bodies_over_http(client: LastfmClient, lastfm: FakeLastfm) -> None:
    replay(lastfm, "track.gettoptags.json")
    tags = await client.get_top_tags("Massive Attack", "Teardrop")
    assert [t.name for t in tags][:3] == ["trip-hop", "Trip Hop", "electronic"]
    replay(lastfm, "tag.gettoptracks.single.json")
    chart = await client.get_tag_top_tracks("drone ambient")
    assert [t.name for t in chart.tracks] == ["Requiem for Dying Mothers, Part 1"]
    replay(lastfm, "user.getrecenttracks.page1.json")
    page = await client.get_recent_tracks("rj", limit=3)
    assert page.now_playing and len(page.scrobbles) == 3
    replay(lastfm, "track.getsimilar.single.json")
    assert len((await client.get_similar("Portishead", "Roads")).tracks) == 1


@pytest.mark.parametrize(
    ("name", "status"),
    [("error.29.http429.json", 429), ("error.11.http503.json", 503), ("error.16.http200.json", 200)],
)
async def test_recorded_temporary_errors_are_retried(
    client: LastfmClient, lastfm: FakeLastfm, name: str, status: int
) -> None:
    replay(lastfm, name, status, times=2)
    assert len(await client.get_top_tags("Radiohead", "Creep")) > 0
    assert [r.status for r in lastfm.requests] == [status, status, 200]


async def test_recorded_permanent_errors(client: LastfmClient, lastfm: FakeLastfm) -> None:
    replay(lastfm, "error.6.http200.json")
    assert await client.get_top_tags("Nobody", "Nothing") == []
    replay(lastfm, "error.6.http200.json")
    assert (await client.get_tag_top_tracks("nothing")).tracks == []
    replay(lastfm, "error.10.http403.json")
    with pytest.raises(LastfmAuthError):
        await client.get_tag_top_tracks("jazz")
    replay(lastfm, "error.6.http404.user.json", 404)
    with pytest.raises(LastfmUserNotFound) as missing:
        await client.get_recent_tracks("nobody-at-all")
    assert missing.value.status == 404 and missing.value.code == 6 and not missing.value.transient
    replay(lastfm, "error.17.http403.json", 403)
    with pytest.raises(LastfmPrivateProfile) as private:
        await client.get_recent_tracks("hidden")
    assert private.value.status == 403 and private.value.code == 17 and not private.value.transient
    assert len(lastfm.requests) == 5  # none of them was retried


# -- track.getTopTags against the stand-in --------------------------------------------------


async def test_top_tags_sends_the_documented_query(client: LastfmClient, lastfm: FakeLastfm) -> None:
    await client.get_top_tags(" Massive Attack ", "Teardrop")
    [request] = lastfm.requests
    assert request.query == {
        "method": "track.gettoptags",
        "artist": "Massive Attack",
        "track": "Teardrop",
        "autocorrect": "1",
        "api_key": KEY,
        "format": "json",
    }


async def test_top_tags_of_a_set_track(client: LastfmClient, lastfm: FakeLastfm) -> None:
    lastfm.set_tags("Massive Attack", "Teardrop", [("seen live", 12), ("trip-hop", 100), ("Lo Fi", 30)])
    raw = (await wire(lastfm, "track.getTopTags", artist="massive attack", track="teardrop")).json()
    assert raw["toptags"]["tag"][0] == {
        "count": 12,
        "name": "seen live",
        "url": "https://www.last.fm/tag/seen+live",
    }
    assert raw["toptags"]["@attr"] == {"artist": "massive attack", "track": "teardrop"}
    tags = await client.get_top_tags("Massive Attack", "Teardrop")
    assert [(t.name, t.count) for t in tags] == [("trip-hop", 100), ("Lo Fi", 30), ("seen live", 12)]


async def test_default_tags_are_crowd_like_and_deterministic(
    client: LastfmClient, lastfm: FakeLastfm
) -> None:
    by_artist: dict[str, list[str]] = {}
    for a, t in lastfm.pool:
        by_artist.setdefault(a, []).append(t)
    artist, (title, other_title, *_) = next((a, ts) for a, ts in by_artist.items() if len(ts) > 1)
    first = await client.get_top_tags(artist, title)
    assert first == await client.get_top_tags(artist, title)
    names = [t.name for t in first]
    family = next(f for f in TAG_FAMILIES.values() if f[0] == names[0])  # the genre leads at 100
    assert first[0].count == 100
    assert any(n in family for n in names[1:]) and any(n in NOISE_TAGS for n in names)
    # An artist's tracks share one genre family.
    assert (await client.get_top_tags(artist, other_title))[0].name == names[0]
    lastfm.default_tags = False
    assert await client.get_top_tags(artist, title) == []


@pytest.mark.parametrize("style", ["empty_list", "missing", "error6"])
async def test_top_tags_of_an_unknown_track_are_empty(
    client: LastfmClient, lastfm: FakeLastfm, style: str
) -> None:
    lastfm.empty_style = style
    lastfm.mark_unknown("Nobody", "Nothing")
    assert await client.get_top_tags("Nobody", "Nothing") == []
    assert await client.get_top_tags("Anyone", "an unknown song") == []  # unknown_marker
    assert await client.get_top_tags("", "Nothing") == []
    assert len(lastfm.requests) == 2


async def test_top_tags_quirks_single_object_and_string_counts(
    client: LastfmClient, lastfm: FakeLastfm
) -> None:
    lastfm.single_object = lastfm.numbers_as_strings = True
    lastfm.set_tags("Stars of the Lid", "Requiem", [("Ambient", 100)])
    raw = (await wire(lastfm, "track.gettoptags", artist="Stars of the Lid", track="Requiem")).json()
    assert raw["toptags"]["tag"] == {
        "count": "100",
        "name": "Ambient",
        "url": "https://www.last.fm/tag/ambient",
    }
    assert await client.get_top_tags("Stars of the Lid", "Requiem") == [
        TopTag("Ambient", 100, "https://www.last.fm/tag/ambient")
    ]


# -- tag.getTopTracks against the stand-in --------------------------------------------------


async def test_tag_chart_follows_the_tags(client: LastfmClient, lastfm: FakeLastfm) -> None:
    lastfm.default_tags = False
    lastfm.set_tags("A", "One", [("lo-fi", 40), ("chill", 100)])
    lastfm.set_tags("B", "Two", [("Lo-Fi", 90)])
    lastfm.set_tags("C", "Three", [("lofi", 100)])  # another spelling is another tag on Last.fm
    chart = await client.get_tag_top_tracks("LO-FI", limit=10)
    assert [(t.rank, t.artist, t.name) for t in chart.tracks] == [(1, "B", "Two"), (2, "A", "One")]
    assert chart.paging == Paging(page=1, per_page=10, total_pages=1, total=2)
    assert lastfm.requests[-1].query == {
        "method": "tag.gettoptracks", "tag": "LO-FI", "limit": "10", "page": "1",
        "api_key": KEY, "format": "json",
    }  # fmt: skip
    assert [t.name for t in (await client.get_tag_top_tracks("lofi")).tracks] == ["Three"]


async def test_tag_chart_pages_with_numbers_as_strings(client: LastfmClient, lastfm: FakeLastfm) -> None:
    lastfm.set_tag_tracks("jazz", [(f"Artist {i}", f"Song {i}") for i in range(12)])
    raw = (await wire(lastfm, "tag.getTopTracks", tag="jazz", limit="5", page="3")).json()
    assert raw["tracks"]["@attr"] == {
        "tag": "jazz",
        "page": "3",
        "perPage": "5",
        "totalPages": "3",
        "total": "12",
    }
    assert all(
        isinstance(t["duration"], str) and isinstance(t["@attr"]["rank"], str) for t in raw["tracks"]["track"]
    )
    pages = [await client.get_tag_top_tracks("jazz", limit=5, page=p) for p in (1, 2, 3, 4)]
    assert [[t.rank for t in p.tracks] for p in pages] == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [11, 12], []]
    assert [p.paging.has_next for p in pages] == [True, True, False, False]
    assert [t.name for p in pages for t in p.tracks] == [f"Song {i}" for i in range(12)]


async def test_unknown_tag_and_single_entry_chart(client: LastfmClient, lastfm: FakeLastfm) -> None:
    unknown = await client.get_tag_top_tracks("no such tag anywhere")
    assert unknown.tracks == [] and unknown.paging.total == 0 and unknown.paging.total_pages == 0
    lastfm.single_object = True
    lastfm.set_tag_tracks("drone", [("Stars of the Lid", "Requiem")])
    raw = (await wire(lastfm, "tag.gettoptracks", tag="drone")).json()
    assert isinstance(raw["tracks"]["track"], dict)
    assert [(t.artist, t.name) for t in (await client.get_tag_top_tracks("drone")).tracks] == [
        ("Stars of the Lid", "Requiem")
    ]
    assert (await client.get_tag_top_tracks("   ")).tracks == []
    assert len(lastfm.requests) == 3  # a blank tag costs no request


async def test_default_tags_fill_the_default_charts(client: LastfmClient, lastfm: FakeLastfm) -> None:
    chart = await client.get_tag_top_tracks("heavy metal", limit=200)
    assert chart.tracks, "some pool artists play heavy metal"
    for track in chart.tracks[:5]:
        names = {t.name.casefold() for t in await client.get_top_tags(track.artist, track.name)}
        assert "heavy metal" in names


async def test_tag_world_answers_tags_and_charts(client: LastfmClient, lastfm: FakeLastfm) -> None:
    world = TagWorld(genres=("chill", "heavy metal", "jazz"), per_genre=3)
    world.install(lastfm)
    metal = {(t.artist, t.title) for t in world.by_genre("heavy metal")}
    chart = await client.get_tag_top_tracks("Heavy Metal")
    assert {(t.artist, t.name) for t in chart.tracks} == metal
    track = world.by_genre("chill")[0]
    tags = await client.get_top_tags(track.artist, track.title)
    assert tags[0] == TopTag("chill", 100, "https://www.last.fm/tag/chill")
    assert {t.name for t in tags} >= {"Chillout", "Lo-Fi"}
    assert (await client.get_tag_top_tracks("ambient")).tracks == []  # not in this world


# -- user.getRecentTracks against the stand-in ----------------------------------------------


async def test_recent_tracks_page_through_the_history(client: LastfmClient, lastfm: FakeLastfm) -> None:
    history = lastfm.generate_scrobbles(450, newest_uts=1_767_225_600, spacing=240)
    lastfm.add_user(
        "RJ", history, now_playing=("Boards of Canada", "Roygbiv", "Music Has the Right to Children")
    )
    pages = []
    page_no = 1
    while True:
        page = await client.get_recent_tracks("rj", page=page_no)
        pages.append(page)
        if not page.paging.has_next:
            break
        page_no += 1
    assert [len(p.scrobbles) for p in pages] == [200, 200, 50]
    assert [p.now_playing for p in pages] == [True, False, False]
    assert pages[0].paging == Paging(page=1, per_page=200, total_pages=3, total=450) and pages[0].user == "RJ"
    got = [(s.artist, s.name, int(s.played_at.timestamp())) for p in pages for s in p.scrobbles]
    assert got == [(s.artist, s.title, s.uts) for s in history]  # newest first, nothing lost
    assert lastfm.requests[0].query == {
        "method": "user.getrecenttracks", "user": "rj", "limit": "200", "page": "1",
        "api_key": KEY, "format": "json",
    }  # fmt: skip
    # On the wire page 1 carries the now-playing row on top of a full page, without a date.
    raw = (await raw_get(lastfm.api_url, params={**lastfm.requests[0].query})).json()["recenttracks"]
    assert len(raw["track"]) == 201 and raw["track"][0]["@attr"] == {"nowplaying": "true"}
    assert "date" not in raw["track"][0] and raw["track"][1]["date"]["uts"] == str(history[0].uts)


async def test_recent_tracks_window_and_limit(client: LastfmClient, lastfm: FakeLastfm) -> None:
    lastfm.add_user("win", [FakeScrobble(1000 + 60 * i, "Artist", f"Song {i}", "Album") for i in range(10)])
    page = await client.get_recent_tracks("win", limit=500, from_uts=1120, to_uts=1360)
    assert [s.name for s in page.scrobbles] == ["Song 6", "Song 5", "Song 4", "Song 3", "Song 2"]
    assert page.paging.total == 5 and not page.now_playing
    assert lastfm.requests[-1].query["limit"] == "200"  # the client keeps to Last.fm's maximum
    assert lastfm.requests[-1].query["from"] == "1120" and lastfm.requests[-1].query["to"] == "1360"
    assert page.scrobbles[0].album == "Album"


async def test_unknown_user_is_a_sentence(client: LastfmClient, lastfm: FakeLastfm) -> None:
    response = await wire(lastfm, "user.getrecenttracks", user="nobody-here")
    assert response.status_code == 404 and response.json()["error"] == 6
    with pytest.raises(LastfmUserNotFound) as caught:
        await client.get_recent_tracks("nobody-here")
    error = caught.value
    assert (
        str(error) == "Last.fm has no user called 'nobody-here'; check the spelling of the Last.fm username."
    )
    assert not error.transient and error.status == 404 and error.user == "nobody-here"
    assert KEY not in str(error) and KEY not in repr(error)
    assert len(lastfm.requests) == 2  # one raw, one from the client: not retried


async def test_private_profile_is_a_sentence(client: LastfmClient, lastfm: FakeLastfm) -> None:
    lastfm.add_user("hidden", lastfm.generate_scrobbles(3), private=True)
    response = await wire(lastfm, "user.getrecenttracks", user="hidden")
    assert response.status_code == 403
    assert response.json() == {"message": "Login: User required to be logged in", "error": 17}
    with pytest.raises(LastfmPrivateProfile) as caught:
        await client.get_recent_tracks("hidden")
    error = caught.value
    assert "'hidden'" in str(error) and "Hide recent listening information" in str(error)
    assert "https://www.last.fm/settings/privacy" in str(error)
    assert not error.transient and error.status == 403 and error.code == 17
    assert not isinstance(error, LastfmAuthError)  # 403 here is not a bad key


async def test_recent_tracks_of_an_empty_history(client: LastfmClient, lastfm: FakeLastfm) -> None:
    lastfm.add_user("new", [])
    page = await client.get_recent_tracks("new")
    assert page.scrobbles == [] and page.paging.total == 0 and not page.paging.has_next


async def test_single_scrobble_as_a_bare_object(client: LastfmClient, lastfm: FakeLastfm) -> None:
    lastfm.single_object = True
    lastfm.add_user("one", [(1_700_000_000, "Air", "La Femme d'Argent", "Moon Safari")])
    page = await client.get_recent_tracks("one")
    assert [(s.artist, s.name, s.album) for s in page.scrobbles] == [
        ("Air", "La Femme d'Argent", "Moon Safari")
    ]


@pytest.mark.parametrize("method", ["tags", "chart", "recent"])
async def test_faults_and_retries_apply_to_every_method(
    client: LastfmClient, lastfm: FakeLastfm, method: str
) -> None:
    lastfm.add_user("rj", lastfm.generate_scrobbles(5))
    lastfm.fail_next(29)
    lastfm.html_next()
    if method == "tags":
        assert await client.get_top_tags(*lastfm.pool[1])
    elif method == "chart":
        assert (await client.get_tag_top_tracks("jazz")).tracks
    else:
        assert len((await client.get_recent_tracks("rj")).scrobbles) == 5
    assert [r.status for r in lastfm.requests] == [429, 502, 200]


async def test_server_side_rate_limit_covers_the_new_methods(lastfm: FakeLastfm) -> None:
    lastfm.max_per_second = 1
    lastfm.add_user("rj", lastfm.generate_scrobbles(5))
    async with LastfmClient(KEY, lastfm.api_url, retry=FAST) as client:
        await client.get_recent_tracks("rj")
        with pytest.raises(LastfmError) as caught:
            await client.get_recent_tracks("rj")
    assert caught.value.code == 29 and caught.value.transient
    assert [r.status for r in lastfm.requests] == [200] + [429] * FAST.max_attempts
