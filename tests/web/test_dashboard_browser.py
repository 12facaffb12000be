"""The dashboard in a real Chromium (Playwright), against the real app and database."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.radio.support import build_world as build_radio_world

CHROMIUM = Path("/usr/bin/chromium")
# CI runs as root (--no-sandbox); the networking flags stop Chromium calling out of the closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
XSS_TITLE = "<img src=x onerror=alert(1)>"
XSS_ARTIST = '"><script>alert(2)</script>'
XSS_SPEAKER = "<svg onload=alert(3)>"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Chromium is not installed at /usr/bin/chromium (scripts/ensure-chromium.sh)",
)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


class PageWatch:
    """Collects what must never happen on the page: dialogs (alert) and script errors."""

    def __init__(self, page: Any) -> None:
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    async def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        await dialog.dismiss()


async def listen(http: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await http.post("/api/history/webhook", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def require_feedback_api(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/feedback", params={"profile": "default"})
    if response.status_code == 404 and response.json().get("detail") == "Not Found":
        pytest.fail("GET /api/feedback is not served: the feedback API (API.md) has not landed")


async def test_dashboard_end_to_end(serve: Callable[..., str], browser: Any, tmp_path: Path) -> None:
    from playwright.async_api import expect

    url = serve()
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        await require_feedback_api(http)
        created = await http.post("/api/profiles", json={"name": "antialias", "display_name": "Antialias"})
        assert created.status_code == 201, created.text
        mine = await listen(
            http,
            title="Paranoid Android",
            artist="Radiohead",
            album="OK Computer",
            speaker_name="Study speaker",
            profile="antialias",
        )
        assert mine["profile"] == "antialias"
        await listen(http, title=XSS_TITLE, artist=XSS_ARTIST, album="<b>bold</b>", speaker_name=XSS_SPEAKER)

        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        page.set_default_timeout(15_000)
        watch = PageWatch(page)
        await page.goto(url + "/?refresh=1")

        # The listen shows up with its listener's profile badge.
        row = page.locator("#listens li", has_text="Paranoid Android")
        await expect(row).to_be_visible()
        await expect(row.locator(".badge")).to_have_text("antialias")
        await expect(row.locator(".track-id")).to_have_text(f"#{mine['track_id']}")
        await expect(row.locator(".speaker")).to_have_text("Study speaker")
        await expect(page.locator('[data-stat="listens"] .stat-value')).to_have_text("2")
        await expect(page.locator("#vibe")).to_have_value("general")

        # Thumbs down under a vibe: stored for the listener's profile, whatever the page filter says.
        await page.locator("#vibe").fill("late night")
        await row.get_by_role("button", name=re.compile("^Thumbs down")).click()
        await expect(page.locator("#toast")).to_contain_text("saved for antialias")
        await expect(row.get_by_role("button", name=re.compile("^Thumbs down"))).to_have_attribute(
            "aria-pressed", "true"
        )
        stored = (await http.get("/api/feedback", params={"profile": "antialias"})).json()["feedback"]
        assert [(f["track_id"], f["rating"], f["vibe"], f["profile"]) for f in stored] == [
            (mine["track_id"], "down", "late night", "antialias")
        ]
        others = (await http.get("/api/feedback", params={"profile": "default"})).json()["feedback"]
        assert all(f["track_id"] != mine["track_id"] for f in others)
        await expect(page.locator('[data-stat="feedback"] .stat-value')).to_have_text("1")

        # A right-to-left override in a title stays inside it: every element isolates its text, and
        # composed labels wrap listener text in FIRST STRONG ISOLATE ... POP DIRECTIONAL ISOLATE.
        await listen(http, title="\u202eevol ni", artist="Bidi Band", profile="antialias")
        bidi = page.locator("#listens li", has_text="Bidi Band")
        await expect(bidi).to_be_visible()
        assert await bidi.evaluate("n => getComputedStyle(n).unicodeBidi") == "isolate"
        label = await bidi.get_by_role("group").get_attribute("aria-label")
        assert label == "Rate \u2068\u202eevol ni\u2069 by \u2068Bidi Band\u2069"

        # A new listen appears without a full reload.
        await page.evaluate("window.__stillHere = true")
        await listen(http, title="Karma Police", artist="Radiohead", profile="antialias")
        await expect(page.locator("#listens li", has_text="Karma Police")).to_be_visible()
        assert await page.evaluate("window.__stillHere") is True

        # The vibe survives a reload.
        await page.reload()
        await expect(page.locator("#vibe")).to_have_value("late night")

        # Listener data is text, never markup: no dialog, no injected element, the literal text shows.
        hostile = page.locator("#listens li", has_text=XSS_TITLE)
        await expect(hostile).to_be_visible()
        await expect(hostile.locator(".title")).to_have_text(XSS_TITLE)
        await expect(hostile.locator(".artist")).to_have_text(XSS_ARTIST)
        await expect(hostile.locator(".speaker")).to_have_text(XSS_SPEAKER)
        await expect(hostile.locator(".album")).to_have_text("<b>bold</b>")
        await page.wait_for_timeout(300)  # time for an injected onerror/onload to fire, if any
        assert await page.locator("img, b, #listens script, #listens svg:not(.icon)").count() == 0
        assert await page.evaluate("document.querySelectorAll('[onerror], [onload]').length") == 0
        assert watch.dialogs == []

        # No taste profile yet: a friendly note, not an error.
        await expect(page.locator("#recs-note")).to_contain_text("No taste profile yet for default")
        await expect(page.locator("#recs-error")).to_be_hidden()

        # The manual form: an API error is shown, a good one is saved.
        await page.locator("#fb-track").fill("999999")
        await page.locator("#fb-profile").select_option("antialias")
        await page.locator("#feedback-form button[type=submit]").click()
        await expect(page.locator("#feedback-result.error")).to_contain_text("Feedback not saved")
        await expect(page.locator("#feedback-result.error")).to_contain_text("HTTP 404")
        await page.locator("#fb-track").fill(str(mine["track_id"]))
        await page.locator("#feedback-form").get_by_label("Thumbs up", exact=True).check()
        await page.locator("#feedback-form button[type=submit]").click()
        await expect(page.locator("#feedback-result.ok")).to_contain_text("profile antialias")
        stored = (await http.get("/api/feedback", params={"profile": "antialias"})).json()["feedback"]
        assert ("up", "late night") in {(f["rating"], f["vibe"]) for f in stored}

        # The profile filter narrows the listens and the recommendations.
        await page.locator("#profile-filter").select_option("antialias")
        await expect(page.locator("#listens li", has_text=XSS_TITLE)).to_have_count(0)
        await expect(page.locator("#listens li", has_text="Paranoid Android")).to_be_visible()
        await expect(page.locator("#recs-scope")).to_have_text("for antialias")
        await expect(page.locator("#recs-note")).to_contain_text("No taste profile yet for antialias")
        await page.locator("#profile-filter").select_option("")
        await expect(page.locator("#listens li", has_text=XSS_TITLE)).to_be_visible()

        shot = tmp_path / "dashboard.png"
        await page.screenshot(path=str(shot), full_page=True)
        shutil.copyfile(shot, "/tmp/dashboard.png")
        assert watch.errors == []
        assert watch.dialogs == []
        await context.close()


async def test_token_is_asked_for_and_remembered(serve: Callable[..., str], browser: Any) -> None:
    from playwright.async_api import expect

    url = serve(api_token="open-sesame")
    context = await browser.new_context()
    page = await context.new_page()
    page.set_default_timeout(15_000)
    watch = PageWatch(page)
    await page.goto(url + "/")

    await expect(page.locator("#token-panel")).to_be_visible()
    await expect(page.locator("#banner")).to_contain_text("API token")
    await page.locator("#token-input").fill("wrong")
    await page.locator("#token-form button").click()
    await expect(page.locator("#token-message")).to_contain_text("refused")

    await page.locator("#token-input").fill("open-sesame")
    await page.locator("#token-form button").click()
    await expect(page.locator("#token-panel")).to_be_hidden()
    await expect(page.locator('[data-stat="listens"] .stat-value')).to_have_text("0")
    await expect(page.locator("#banner")).to_be_hidden()

    await page.reload()
    await expect(page.locator('[data-stat="listens"] .stat-value')).to_have_text("0")
    await expect(page.locator("#token-panel")).to_be_hidden()
    assert await page.evaluate("localStorage.getItem('hauntfm.token')") == "open-sesame"
    assert watch.errors == []
    await context.close()


async def test_phone_layout_and_network_errors(
    serve: Callable[..., str], browser: Any, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    url = serve()
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        await listen(
            http,
            title="An Extremely Long Title That Goes On And On Without Any Mercy For Small Screens",
            artist="Somebody With A Long Name",
            speaker_name="media_player.a_very_long_speaker_entity_name_in_the_kitchen",
        )
    context = await browser.new_context(
        viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True
    )
    page = await context.new_page()
    page.set_default_timeout(15_000)
    watch = PageWatch(page)
    await page.goto(url + "/?refresh=1")
    await expect(page.locator("#listens li")).to_have_count(1)
    # Nothing sticks out sideways on a phone.
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await page.screenshot(path=str(tmp_path / "dashboard-phone.png"), full_page=True)

    # The server becomes unreachable: the page says so instead of going quiet.
    await page.route("**/api/**", lambda route: route.abort("connectionrefused"))
    await expect(page.locator("#banner")).to_contain_text("Cannot reach haunt-fm")
    await expect(page.locator("#pipeline-error")).to_contain_text("Status unavailable")
    await expect(page.locator("#updated")).to_contain_text("problem")
    await page.unroute("**/api/**")
    await expect(page.locator("#banner")).to_be_hidden()
    await expect(page.locator("#pipeline-error")).to_be_hidden()

    # A server error's {"detail"} is shown in the panel it broke.
    await page.route(
        "**/api/status",
        lambda route: route.fulfill(status=503, json={"detail": "The database is restarting."}),
    )
    await expect(page.locator("#pipeline-error")).to_contain_text("The database is restarting. (HTTP 503)")
    await expect(page.locator("#listens li")).to_have_count(1)
    assert watch.errors == []
    await context.close()


async def test_radio_per_speaker_start_now_next_stop(
    serve: Callable[..., str], browser: Any, db: Any
) -> None:
    """A radio button per speaker; the active radio's now/next; stopping it (and the player)."""
    from tests.fakes import FakeHomeAssistant
    from tests.playlists.support import HA_TOKEN, SPEAKERS

    await build_radio_world(db)
    with FakeHomeAssistant(token=HA_TOKEN) as ha:
        for entity_id, name in SPEAKERS.items():
            ha.add_player(entity_id, friendly_name=name)
        url = serve(start_background=True, ha_url=ha.url, ha_token=HA_TOKEN)
        await _drive_radio(url, browser, ha)


async def _drive_radio(url: str, browser: Any, ha: Any) -> None:
    from playwright.async_api import expect

    from tests.playlists.support import LIVING, STUDY
    from tests.radio.support import radio_on

    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        # Speakers are known from listens (and mappings).
        await listen(
            http, title="Warm Up", artist="Someone", speaker_name="Living Room speaker", speaker_entity=LIVING
        )
        await http.put("/api/profiles/default/speakers", json={"speakers": [STUDY]})

        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        page.set_default_timeout(15_000)
        watch = PageWatch(page)
        await page.goto(url + "/?refresh=1")
        living = page.locator(f'#speakers li[data-speaker="{LIVING}"]')
        study = page.locator(f'#speakers li[data-speaker="{STUDY}"]')
        await expect(living.locator(".speaker-name")).to_have_text("Living Room speaker")
        await expect(study.get_by_role("button", name=f"Start radio on {STUDY}")).to_be_visible()

        await living.get_by_role("button", name="Start radio on Living Room speaker").click()
        await expect(page.locator("#toast")).to_contain_text("Radio on for default")
        radio = await radio_on(http, LIVING)
        assert radio is not None and radio["vibe"] is None
        first, second = radio["upcoming"][0], radio["upcoming"][1]
        await expect(living.locator(".pill", has_text="radio on")).to_be_visible()
        await expect(living.locator('[data-line="Next"] .title')).to_have_text(first["title"])

        # The speaker starts the first track: now/next move on.
        await listen(
            http, title=first["title"], artist=first["artist"], speaker_entity=LIVING, duration_s=200
        )
        await expect(living.locator('[data-line="Now"] .title')).to_have_text(first["title"])
        await expect(living.locator('[data-line="Next"] .title')).to_have_text(second["title"])
        await expect(living.get_by_role("button", name=re.compile("^Thumbs down"))).to_be_visible()

        await living.get_by_role("button", name="Stop radio and player").click()
        await expect(page.locator("#toast")).to_contain_text(f"Radio stopped on {LIVING}")
        await expect(living.locator(".radio-ended")).to_contain_text("Last radio ended (stopped)")
        await expect(living.get_by_role("button", name="Start radio on Living Room speaker")).to_be_visible()
        stops = [c.data for c in ha.service_calls if c.service == "media_stop"]
        assert stops == [{"entity_id": LIVING}]
        assert watch.errors == [] and watch.dialogs == []
        await context.close()


async def test_the_vibe_field_suggests_the_librarys_tags(
    serve: Callable[..., str], browser: Any, db: Any
) -> None:
    from playwright.async_api import expect

    from tests.recommendations.support import add_track, axis, listen
    from tests.tags.support import tag

    chill = await add_track(db, "Drift", axis(1), artist="Slow Gardens")
    metal = await add_track(db, "Forge", axis(2), artist="Iron Wolves")
    await tag(db, chill, {"Chill": 100, "Lo-Fi": 60, "seen live": 90})
    await tag(db, metal, {"Heavy Metal": 100})
    await listen(db, metal, profile="bob")
    url = serve()
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(15_000)
    watch = PageWatch(page)
    await page.goto(url + "/?refresh=1")
    options = page.locator("#vibe-tags option")
    await expect(options).to_have_count(3)
    assert await options.evaluate_all("os => os.map(o => o.value)") == ["chill", "heavy metal", "lo fi"]
    assert await page.locator("#vibe").get_attribute("list") == "vibe-tags"
    # How vibes work right now: grounded in tags (no Last.fm key here), the text tower unchecked.
    vibes = page.locator(".facts dd", has_text="CLAP text")
    await expect(vibes).to_contain_text("no Last.fm key")
    await expect(vibes).to_contain_text("CLAP text unchecked")
    await expect(page.locator(".stage h3", has_text="Tags")).to_be_visible()
    # A profile's suggestions are the tags of what it listened to.
    await page.locator("#profile-filter").select_option("bob")
    await expect(options).to_have_count(1)
    assert await options.evaluate_all("os => os.map(o => o.value)") == ["heavy metal"]
    assert watch.dialogs == [] and watch.errors == []
    await context.close()


async def test_tastes_and_skipped_listens_are_shown(
    serve: Callable[..., str], browser: Any, db: Any, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    from tests.recommendations.support import GenreSpace, add_track
    from tests.recommendations.support import listen as stored_listen

    url = serve()
    space = GenreSpace(seed=41)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        assert (await http.post("/api/profiles", json={"name": "antialias"})).status_code == 201
        for genre, band in (("ambient", "Lunar Tides"), ("heavy metal", "Iron Wolves")):
            for i in range(6):
                tid = await add_track(db, f"{genre} {i}", space.track(genre), artist=f"{band} {i % 2}")
                await stored_listen(db, tid, profile="antialias")
            for i in range(4):
                await add_track(db, f"new {genre} {i}", space.track(genre), artist=f"New {band} {i}")
        built = await http.post("/api/admin/build-taste-profile", params={"profile": "antialias"})
        assert built.status_code == 200 and len(built.json()["tastes"]) == 2
        # Cut short after 6 s by the next track on the same speaker.
        speaker = {"speaker_entity": "media_player.study_speaker_2", "profile": "antialias"}
        await listen(http, title="Too Loud", artist="Noise", played_at="2026-01-01T20:00:00+00:00", **speaker)
        await listen(
            http, title="Calm Again", artist="Quiet", played_at="2026-01-01T20:00:06+00:00", **speaker
        )

    context = await browser.new_context(viewport={"width": 1280, "height": 1000})
    page = await context.new_page()
    page.set_default_timeout(15_000)
    watch = PageWatch(page)
    await page.goto(url + "/?refresh=1")

    tastes = page.locator('#tastes .taste-profile[data-profile="antialias"] .taste')
    await expect(tastes).to_have_count(2)
    for index, band in enumerate(sorted(("Lunar Tides", "Iron Wolves"))):
        taste = page.locator("#tastes .taste", has_text=band).first
        await expect(taste.locator(".taste-weight")).to_have_text("50% · 6 tracks")
        await expect(taste.locator(".taste-artists")).to_contain_text(f"{band} 0")
        assert index in (0, 1)
    skipped = page.locator("#listens li", has_text="Too Loud")
    await expect(skipped).to_have_class(re.compile(r"\bskipped\b"))
    await expect(skipped.locator(".skip-flag")).to_have_text("skipped")
    await expect(page.locator("#listens li", has_text="Calm Again").locator(".skip-flag")).to_have_count(0)

    # The profile's picks say which taste found them; the filter narrows the tastes to it.
    await page.locator("#profile-filter").select_option("antialias")
    await expect(page.locator("#tastes-scope")).to_have_text("profile antialias")
    await expect(page.locator("#recommendations li").first.locator(".taste-ref")).to_have_count(1)
    labels = await page.locator("#recommendations .taste-ref").all_text_contents()
    assert len(set(labels)) == 2, labels
    await page.screenshot(path=str(tmp_path / "tastes.png"), full_page=True)
    shutil.copyfile(tmp_path / "tastes.png", "/tmp/tastes-dashboard.png")
    await page.locator("#profile-filter").select_option("default")
    await expect(page.locator("#tastes-empty")).to_be_visible()
    assert watch.errors == [] and watch.dialogs == []
    await context.close()
