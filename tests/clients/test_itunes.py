"""ItunesClient against the loopback iTunes stand-in, and best_match on its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from haunt_fm.clients._http import RetryPolicy
from haunt_fm.clients.itunes import ItunesClient, ItunesError, ItunesRateLimited, ItunesTrack
from haunt_fm.pipeline.previews.matching import best_match
from tests.fakes import FakeItunes, Fault
from tests.fakes.itunes import CONTENT_TYPE, PLACEHOLDER_PREVIEW
from tests.support.limiter import StepLimiter

RECORDED = Path(__file__).parent.parent / "fixtures" / "itunes"

FAST = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, jitter=0)


async def raw_get(url: str, **kwargs: Any) -> httpx.Response:
    """A plain GET, to look at exactly what the fake puts on the wire."""
    async with httpx.AsyncClient() as http:
        return await http.get(url, **kwargs)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeItunes]:
    with FakeItunes() as fake:
        yield fake


@pytest.fixture
def itunes(server: FakeItunes) -> FakeItunes:
    server.reset()
    return server


@pytest.fixture
async def client(itunes: FakeItunes) -> AsyncIterator[ItunesClient]:
    async with ItunesClient(itunes.url, retry=FAST) as c:
        yield c


class FakeClock:
    """Time that passes only when slept through: long backoffs cost nothing in tests."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.delays: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.now += seconds


def clocked_client(itunes: FakeItunes, clock: FakeClock, policy: RetryPolicy) -> ItunesClient:
    # The limiter shares the fake clock, so the pause a throttle causes is also virtual.
    limiter = StepLimiter.per_minute(60_000, clock=clock, sleep=clock.sleep)
    return ItunesClient(itunes.url, retry=policy, limiter=limiter, sleep=clock.sleep)


# -- search over HTTP ----------------------------------------------------------------------


async def test_search_sends_the_documented_query(client: ItunesClient, itunes: FakeItunes) -> None:
    await client.search("Daft Punk Get Lucky", limit=10)
    [request] = itunes.requests
    assert request.path == "/search"
    assert request.query == {
        "term": "Daft Punk Get Lucky",
        "media": "music",
        "entity": "song",
        "limit": "10",
        "country": "US",
    }


async def test_blank_line_text_javascript_body_is_parsed(client: ItunesClient, itunes: FakeItunes) -> None:
    track_id = itunes.add_track("Daft Punk", "Get Lucky", album="Random Access Memories", genre="Dance")
    raw = await raw_get(f"{itunes.url}/search", params={"term": "daft punk get lucky", "entity": "song"})
    assert raw.headers["content-type"] == "text/javascript; charset=utf-8"
    assert raw.text.startswith("\n\n\n{")
    results = await client.search("daft punk get lucky")
    real = next(t for t in results if t.track_id == track_id)
    assert real == ItunesTrack(
        track_id=track_id,
        artist_name="Daft Punk",
        track_name="Get Lucky",
        collection_name="Random Access Memories",
        preview_url=f"{itunes.url}/previews/{track_id}.m4a",
        track_time_millis=215_000,
        primary_genre_name="Dance",
        artwork_url=f"https://is1-ssl.mzstatic.com/image/thumb/Music/{track_id}/100x100bb.jpg",
        track_view_url=real.track_view_url,
        kind="song",
        wrapper_type="track",
    )
    assert real.track_view_url and real.track_view_url.startswith("https://music.apple.com/")


async def test_decoys_come_first_but_are_never_chosen(client: ItunesClient, itunes: FakeItunes) -> None:
    track_id = itunes.add_track("Daft Punk", "Get Lucky")
    results = await client.search("Daft Punk Get Lucky")
    assert len(results) == 5
    assert results[-1].track_id == track_id  # karaoke, "Made Famous By", tribute and a cover first
    assert "Karaoke" in results[0].track_name
    chosen = best_match("Daft Punk", "Get Lucky", results)
    assert chosen is not None and chosen.track_id == track_id


async def test_a_track_absent_from_the_store_is_not_found(client: ItunesClient, itunes: FakeItunes) -> None:
    itunes.add_track("Obscure Band", "Basement Tape", in_store=False)
    results = await client.search("Obscure Band Basement Tape")
    assert len(results) == 4  # only the covers and karaoke versions are on sale
    assert best_match("Obscure Band", "Basement Tape", results) is None


async def test_no_term_answers_zero_results(client: ItunesClient, itunes: FakeItunes) -> None:
    raw = await raw_get(f"{itunes.url}/search", params={"media": "music"})
    assert raw.status_code == 200 and raw.text.strip() == '{"resultCount": 0, "results": []}'
    assert await client.search("   ") == []
    assert len(itunes.requests) == 1  # the client didn't spend a request on a blank term


async def test_preview_url_serves_registered_bytes(client: ItunesClient, itunes: FakeItunes) -> None:
    audio = b"\x00\x00\x00\x20ftypM4A " + b"registered-by-the-test"
    track_id = itunes.add_track("Massive Attack", "Teardrop", preview=audio, decoys=False)
    other = itunes.add_track("Massive Attack", "Angel", decoys=False)
    found = best_match("Massive Attack", "Teardrop", await client.search("Massive Attack Teardrop"))
    assert found is not None and found.preview_url
    async with httpx.AsyncClient() as http:
        response = await http.get(found.preview_url)
        assert response.status_code == 200
        assert response.headers["content-type"] == "audio/x-m4p"
        assert response.content == audio
        assert (await http.get(itunes.preview_url(other))).content == PLACEHOLDER_PREVIEW
        assert (await http.get(f"{itunes.url}/previews/999.m4a")).status_code == 404
    assert track_id == found.track_id


# -- throttling and errors -----------------------------------------------------------------


@pytest.mark.parametrize("status", [403, 429])
async def test_throttle_is_retried_with_backoff(itunes: FakeItunes, status: int) -> None:
    itunes.add_track("Radiohead", "Nude")
    itunes.throttle(times=2, status=status)
    clock = FakeClock()
    policy = RetryPolicy(max_attempts=4, base_delay=10.0, multiplier=2.0, jitter=0)
    async with clocked_client(itunes, clock, policy) as client:
        found = best_match("Radiohead", "Nude", await client.search("Radiohead Nude"))
    assert found is not None and found.artist_name == "Radiohead"
    assert [r.status for r in itunes.requests] == [status, status, 200]
    assert clock.delays == [10.0, 20.0]


async def test_persistent_throttle_raises_rather_than_not_found(itunes: FakeItunes) -> None:
    itunes.add_track("Radiohead", "Nude")
    itunes.throttle_all = True
    raw = await raw_get(f"{itunes.url}/search", params={"term": "radiohead"})
    assert raw.status_code == 403 and raw.content == b""
    clock = FakeClock()
    policy = RetryPolicy(max_attempts=4, base_delay=10.0, jitter=0)
    async with clocked_client(itunes, clock, policy) as client:
        with pytest.raises(ItunesRateLimited) as caught:
            await client.search("Radiohead Nude")
    error = caught.value
    assert error.transient and error.status == 403
    assert "throttling" in str(error) and str(error).endswith(".")
    assert len(itunes.requests) == 1 + 4
    assert clock.delays == [10.0, 20.0, 40.0]


async def test_throttle_pauses_concurrent_searches_too(itunes: FakeItunes) -> None:
    itunes.throttle()
    policy = RetryPolicy(max_attempts=3, base_delay=0.3, jitter=0)
    async with ItunesClient(itunes.url, retry=policy, limiter=StepLimiter.per_minute(60_000)) as client:
        first = asyncio.create_task(client.search("one"))
        await asyncio.sleep(0.1)
        await client.search("two")
        await first
    by_term = {r.query["term"]: r.at for r in itunes.requests if r.status == 200}
    assert by_term["two"] - itunes.requests[0].at >= 0.25


@pytest.mark.parametrize(
    "fault",
    [
        Fault(500, b""),
        Fault(503, "<html>Service Unavailable</html>", "text/html"),
        Fault(200, '\n\n{"resultCount":'),
    ],
)
async def test_server_errors_and_garbage_are_retried(
    client: ItunesClient, itunes: FakeItunes, fault: Fault
) -> None:
    itunes.add_track("Air", "Sexy Boy", decoys=False)
    itunes.inject(fault)
    results = await client.search("Air Sexy Boy")
    assert [t.track_name for t in results] == ["Sexy Boy"]
    assert len(itunes.requests) == 2


async def test_bad_request_is_not_retried(client: ItunesClient, itunes: FakeItunes) -> None:
    itunes.inject(Fault(400, '{"errorMessage":"Invalid value(s) for key(s): [limit]"}', "text/javascript"))
    with pytest.raises(ItunesError) as caught:
        await client.search("anything")
    assert not caught.value.transient and not isinstance(caught.value, ItunesRateLimited)
    assert caught.value.status == 400
    assert len(itunes.requests) == 1


async def test_timeouts_are_retried(itunes: FakeItunes) -> None:
    itunes.add_track("Moby", "Porcelain", decoys=False)
    itunes.inject(Fault(200, "\n\n\n{}", delay=0.5))
    async with httpx.AsyncClient(timeout=0.15) as http:
        client = ItunesClient(itunes.url, retry=FAST, http=http)
        assert len(await client.search("Moby Porcelain")) == 1
    assert len(itunes.requests) == 2


async def test_unreachable_service_is_transient() -> None:
    async with ItunesClient("http://127.0.0.1:9", retry=FAST) as client:
        with pytest.raises(ItunesError) as caught:
            await client.search("anything")
    assert caught.value.transient and not isinstance(caught.value, ItunesRateLimited)
    assert "could not be reached" in str(caught.value)


def test_parse_results_skips_non_songs() -> None:
    from haunt_fm.clients.itunes import parse_results

    payload: dict[str, Any] = {
        "resultCount": 3,
        "results": [
            {"wrapperType": "collection", "collectionId": 1, "artistName": "A", "collectionName": "B"},
            {
                "wrapperType": "track",
                "kind": "music-video",
                "trackId": 2,
                "artistName": "A",
                "trackName": "V",
            },
            {"wrapperType": "track", "kind": "song", "trackId": 3, "artistName": "A", "trackName": "S"},
        ],
    }
    assert [t.track_id for t in parse_results(payload)] == [3]


# -- recorded bodies (tests/fixtures/itunes) -------------------------------------------------


def replay(itunes: FakeItunes, name: str) -> str:
    """Serve a recorded search body as Apple does (text/javascript) for the next request."""
    body = (RECORDED / name).read_text(encoding="utf-8")
    itunes.inject(Fault(200, body, CONTENT_TYPE))
    return body


async def test_recorded_search_with_blank_lines_and_decoys(client: ItunesClient, itunes: FakeItunes) -> None:
    body = replay(itunes, "search.get-lucky.txt")
    assert body.startswith("\n\n\n{") and '"resultCount":7' in body
    results = await client.search("daft punk get lucky")
    raw = await raw_get(f"{itunes.url}/search", params={"term": "x"})  # the stand-in answers the same way
    assert raw.headers["content-type"] == CONTENT_TYPE
    # Seven results: the music video is not a song; the decoys keep Apple's order, first.
    assert [(t.track_id, t.artist_name) for t in results] == [
        (1440931201, "Party Tyme Karaoke"),
        (1440931202, "Done Again"),
        (1440931203, "The Daft Tribute Band"),
        (1440931204, "Acoustic Covers Collective"),
        (617154366, "Daft Punk"),
        (617154367, "Daft Punk"),
    ]
    real, radio_edit = results[-2:]
    assert real == ItunesTrack(
        track_id=617154366,
        artist_name="Daft Punk",
        track_name="Get Lucky (feat. Pharrell Williams & Nile Rodgers)",
        collection_name="Random Access Memories",
        preview_url="https://audio-ssl.itunes.apple.com/itunes-assets/AudioPreview115/v4/aa/bb/cc/"
        "mzaf_617154366.plus.aac.p.m4a",
        track_time_millis=369629,
        primary_genre_name="Dance",
        artwork_url="https://is1-ssl.mzstatic.com/image/thumb/Music/617154241/100x100bb.jpg",
        track_view_url="https://music.apple.com/us/album/x/617154241?i=617154366&uo=4",
        kind="song",
        wrapper_type="track",
    )
    assert radio_edit.preview_url is None  # no previewUrl key in the body
    assert "Karaoke" in results[0].track_name


async def test_recorded_zero_results(client: ItunesClient, itunes: FakeItunes) -> None:
    body = replay(itunes, "search.zero-results.txt")
    assert body.startswith("\n\n\n")
    assert await client.search("zzzz no such song anywhere") == []
    assert [r.status for r in itunes.requests] == [200]
