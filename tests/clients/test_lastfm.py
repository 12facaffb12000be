"""LastfmClient against the loopback Last.fm stand-in: wire format, quirks, errors and retries."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from haunt_fm.clients._http import RetryPolicy
from haunt_fm.clients.lastfm import LastfmAuthError, LastfmClient, LastfmError, parse_similar
from tests.fakes import FakeLastfm, Fault
from tests.fakes.lastfm import error_body, track_json
from tests.support.limiter import StepLimiter

KEY = "SECRET-lastfm-key-0123456789abcdef"
FAST = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, jitter=0)


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
