"""The dashboard on a first start, in a real Chromium: the model download as a progress bar, then the
runtime that runs the audio tower and why; after a failed load, when the next attempt comes."""

from __future__ import annotations

import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.hf_hub import FakeHub
from tests.support.hub_worker import REPO, HubProcess, downloading, hub_env, hub_model, wait_for_status
from tests.web import test_dashboard_browser as dashboard_page
from tests.web.test_dashboard_browser import CHROMIUM, PageWatch

# The one Chromium of the dashboard tests (a module-scoped fixture).
browser = dashboard_page.browser

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Chromium is not installed at /usr/bin/chromium (scripts/ensure-chromium.sh)",
)


@pytest.fixture
def hub(tiny_clap_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeHub]:
    """The hub stand-in serving the tiny model as `REPO`, holding its weights two thirds of the way."""
    fake = FakeHub()
    fake.add_repo(REPO, hub_model(tiny_clap_dir, tmp_path_factory.mktemp("hub") / "tiny-clap"))
    fake.hold_after = fake.lfs_size(REPO) * 2 // 3
    with fake:
        yield fake


async def test_the_model_download_shows_as_a_progress_bar_then_the_runtime(
    serve: Callable[..., str], db: Any, browser: Any, hub: FakeHub, tmp_path: Path, pg_url: str
) -> None:
    from playwright.async_api import expect

    url = serve(clap_model=REPO)
    root = tmp_path / "worker"
    worker = HubProcess("worker", hub_env(hub, root, database_url=pg_url), root).start()
    try:
        status = await wait_for_status(url, downloading, process=worker)
        done, total = status["worker"]["download"]["done"], status["worker"]["download"]["total"]

        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        page.set_default_timeout(15_000)
        watch = PageWatch(page)
        await page.goto(url + "/?refresh=1")

        await expect(page.locator("#pipeline-body .pill", has_text="loading")).to_be_visible()
        bar = page.get_by_role("progressbar", name="Model download")
        await expect(bar).to_be_visible()
        await expect(bar).to_have_attribute("aria-valuemax", str(total))
        await expect(bar).to_have_attribute("aria-valuenow", str(done))  # held: it doesn't move
        pct = 100 * done // total
        text = f"{done // 1_000_000} of {total // 1_000_000} MB ({pct} %)"
        await expect(page.locator(".download-text")).to_have_text(text)
        filled = await bar.locator(".seg").evaluate("n => n.getBoundingClientRect().width")
        width = await bar.evaluate("n => n.getBoundingClientRect().width")
        assert abs(filled / width - pct / 100) < 0.02
        runtime = page.locator("dt", has_text="Embedding runtime").locator("xpath=following-sibling::dd[1]")
        await expect(runtime).to_have_text("not loaded yet")

        hub.release()
        await expect(bar).to_have_count(0)
        await expect(page.locator("#pipeline-body .pill", has_text="idle")).to_be_visible()
        await expect(runtime.locator(".pill")).to_have_text("torch")
        await expect(runtime).to_contain_text("HAUNTFM_EMBEDDING_RUNTIME=torch")
        assert watch.errors == [] and watch.dialogs == []
        await context.close()
    finally:
        worker.stop(signal.SIGKILL)


async def test_a_failed_load_shows_when_the_next_attempt_comes(
    serve: Callable[..., str], browser: Any, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    url = serve(
        start_background=True,
        embedding_worker_enabled=True,
        clap_model=str(tmp_path / "no-such-model"),
        embedding_interval_seconds=0.1,
    )
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(60_000)  # a liveness bound: the worker fails its first load
    watch = PageWatch(page)
    await page.goto(url + "/?refresh=1")
    await expect(page.locator("#pipeline-body .pill", has_text="error")).to_be_visible()
    attempt = page.locator("dt", has_text="Next attempt").locator("xpath=following-sibling::dd[1]")
    await expect(attempt).to_have_text(re.compile(r"^loads the model again in \d+ s$"))
    await expect(page.locator("#pipeline-body .error-text").first).to_contain_text("HAUNTFM_CLAP_MODEL")
    assert watch.errors == [] and watch.dialogs == []
    await context.close()
