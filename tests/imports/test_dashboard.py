"""The dashboard shows a running import's progress, then how it ended (real Chromium)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.fakes import FakeLastfm
from tests.imports.support import BASE_UTS, lastfm_settings, listen_json, wait_import
from tests.web.test_dashboard_browser import CHROMIUM, PageWatch, browser

__all__ = ["browser"]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Chromium is not installed at /usr/bin/chromium"
)
HOSTILE_FILE = "<img src=x onerror=alert(1)>.jsonl"


async def test_running_import_shows_its_progress_then_the_last_one_its_end(
    serve: Callable[..., str], db: Any, browser: Any, lastfm: FakeLastfm
) -> None:
    from playwright.async_api import expect

    lastfm.add_user("rj", lastfm.generate_scrobbles(3000, newest_uts=BASE_UTS))
    url = serve(start_background=True, **lastfm_settings(lastfm, lastfm_rate_per_second=1.0))
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        page = await (await browser.new_context()).new_page()
        page.set_default_timeout(15_000)
        watch = PageWatch(page)
        # An export whose file name is markup: shown as text.
        body = "".join(json.dumps(listen_json(BASE_UTS - 60 * i, "A", f"S{i}")) + "\n" for i in range(3))
        files = {"file": (HOSTILE_FILE, body.encode(), "application/x-ndjson")}
        first = (await http.post("/api/admin/import/listenbrainz", files=files)).json()
        await wait_import(http, first["import_id"])
        await page.goto(url + "/?refresh=1")
        done = page.locator(f'.import[data-import-id="{first["import_id"]}"]')
        await expect(done).to_contain_text(f"ListenBrainz {HOSTILE_FILE} → default: done")
        await expect(done).to_contain_text("3 imported, 0 duplicates, 0 skipped")
        await expect(page.locator(".facts")).to_contain_text("Last import")

        started = (await http.post("/api/admin/import/lastfm", json={"user": "rj"})).json()
        running = page.locator(f'.import[data-import-id="{started["import_id"]}"]')
        await expect(running).to_contain_text("Last.fm rj → default: running")
        await expect(running).to_contain_text("200 imported, 0 duplicates, 0 skipped")
        await expect(page.locator(".facts")).to_contain_text("Importing")

        lastfm.users["rj"].private = True  # the Last.fm import fails on its next page
        failed = await wait_import(http, started["import_id"])
        assert failed["status"] == "failed"
        await expect(running).to_contain_text("failed")
        await expect(running.locator(".error-text").last).to_contain_text(
            "keeps their listening history private"
        )
        await expect(page.locator(".facts")).to_contain_text("Last import")
        assert watch.errors == [] and watch.dialogs == []
        assert await page.locator(".facts img").count() == 0
