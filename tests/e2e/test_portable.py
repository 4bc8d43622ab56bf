"""The portable login state against the simulator, with real headless Chromium.

A session linked in a non-persistent context is dumped as data and restored into a
fresh browser; the restored context can itself be dumped again. The key material is
what carries the login (a wrong key comes back at the QR), a key the capture never saw
(simulator key mode "generate") makes the dump refuse, and the material never reaches
the page's globals or another context of the same browser.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Awaitable, Callable, Iterator

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.simulator import SimulatorControl, SimulatorServer
from workers.browser.runtime import CHROMIUM_ARGS, find_chromium
from workers.whatsapp.portable import KeyRecorder, NotPortable, dump, install_capture, restore

pytestmark = pytest.mark.timeout(120)

CHROMIUM = find_chromium()
QR = "div[data-ref] canvas"
MAIN = "#pane-side div[aria-label='Chat list'][role='grid']"
PHONE = "5511999990001"
OTHER_PHONE = "5511999990002"
WAIT_MS = 15_000


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorServer]:
    with SimulatorServer() as srv:
        yield srv


@pytest.fixture()
def control(server: SimulatorServer) -> SimulatorControl:
    ctl = SimulatorControl(server.url)
    ctl.reset()
    ctl.clock(5.0)
    return ctl


def run(scenario: Callable[[Callable[[], Awaitable[Browser]]], Awaitable[None]]) -> None:
    """Run ``scenario(launch)`` in its own Playwright; every browser launched is closed after."""

    async def main() -> None:
        async with async_playwright() as pw:
            launched: list[Browser] = []

            async def launch() -> Browser:
                browser = await pw.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_ARGS)
                )
                launched.append(browser)
                return browser

            try:
                await scenario(launch)
            finally:
                for browser in launched:
                    await browser.close()

    asyncio.run(main())


async def captured_context(browser: Browser, recorder: KeyRecorder) -> BrowserContext:
    ctx = await browser.new_context()
    await install_capture(ctx, recorder)
    return ctx


async def link(page: Page, control: SimulatorControl, url: str, phone: str = PHONE) -> None:
    """Open the page, scan its QR with the fake phone, wait for the chat list."""
    await page.goto(url)
    await page.wait_for_selector(QR, timeout=WAIT_MS)
    ref = await page.get_attribute("div[data-ref]", "data-ref")
    await asyncio.to_thread(control.scan, ref, phone, "Alice")
    await page.wait_for_selector(MAIN, timeout=WAIT_MS)


async def recorded(recorder: KeyRecorder, count: int = 1) -> None:
    """Wait until the binding delivered ``count`` records (binding calls are asynchronous)."""
    for _ in range(100):
        if len(recorder) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the capture recorded {len(recorder)} keys, expected {count}")


async def wid_of(page: Page) -> str:
    return json.loads(await page.evaluate("() => localStorage.getItem('last-wid-md')"))


async def linked_state(launch, control: SimulatorControl, url: str) -> tuple[dict, str]:
    """Link ``PHONE`` in a captured non-persistent context, dump it, close its browser."""
    browser = await launch()
    recorder = KeyRecorder()
    ctx = await captured_context(browser, recorder)
    page = await ctx.new_page()
    await link(page, control, url)
    await recorded(recorder)
    wid = await wid_of(page)
    state = await dump(page, recorder)
    await browser.close()
    return state, wid


def test_restore_in_a_fresh_browser_twice_without_a_scan(server, control: SimulatorControl) -> None:
    async def scenario(launch) -> None:
        state, wid = await linked_state(launch, control, server.url)
        assert json.loads(json.dumps(state)) == state  # JSON-able as it is
        assert [db["name"] for db in state["indexedDB"]] == ["wawc", "wawc_db_enc"]
        assert len(state["keys"]) == 1 and state["keys"][0]["algorithm"] == "HKDF"
        pairings = len(control.state()["pairings"])

        browser = await launch()
        for generation in (1, 2):
            recorder = KeyRecorder()  # the restore's own re-imports fill it again
            ctx = await captured_context(browser, recorder)
            page = await restore(ctx, state, server.url)
            await page.wait_for_selector(MAIN, timeout=WAIT_MS)
            assert await page.locator(QR).count() == 0
            assert await wid_of(page) == wid
            await recorded(recorder)
            state = await dump(page, recorder)
            await ctx.close()
            assert len(control.state()["pairings"]) == pairings, f"generation {generation} paired again"
        assert control.device(PHONE)["linked"] is True

    run(scenario)


def test_the_key_material_is_what_carries_the_login(server, control: SimulatorControl) -> None:
    async def scenario(launch) -> None:
        state, _ = await linked_state(launch, control, server.url)
        browser = await launch()

        # Without the key record the state is refused before anything is written.
        no_keys = dict(state, keys=[])
        ctx = await captured_context(browser, KeyRecorder())
        with pytest.raises(NotPortable, match="missing key 0"):
            await restore(ctx, no_keys, server.url)
        await ctx.close()

        # Same state, other material for the key: the site cannot decrypt, wipes, shows the QR.
        other = dict(state["keys"][0], keyData=base64.b64encode(os.urandom(32)).decode())
        ctx = await captured_context(browser, KeyRecorder())
        page = await restore(ctx, dict(state, keys=[other]), server.url)
        await page.wait_for_selector(QR, timeout=WAIT_MS)
        assert await page.locator(MAIN).count() == 0
        await ctx.close()

        # A recorder that never saw the import cannot vouch for the stored key.
        ctx = await captured_context(browser, KeyRecorder())
        page = await restore(ctx, state, server.url)
        await page.wait_for_selector(MAIN, timeout=WAIT_MS)
        with pytest.raises(NotPortable, match="wawc_db_enc/keys holds a HKDF CryptoKey with no recorded"):
            await dump(page, KeyRecorder())
        await ctx.close()

    run(scenario)


def test_generated_key_is_refused(server, control: SimulatorControl) -> None:
    control.key_mode("generate")

    async def scenario(launch) -> None:
        browser = await launch()
        recorder = KeyRecorder()
        ctx = await captured_context(browser, recorder)
        page = await ctx.new_page()
        await link(page, control, server.url)  # the variant links and works like the default
        with pytest.raises(NotPortable) as exc:
            await dump(page, recorder)
        assert str(exc.value).startswith(
            "IndexedDB wawc_db_enc/keys holds a AES-GCM CryptoKey with no recorded material"
        )
        assert "generateKey" in str(exc.value)
        assert recorder.records() == []

    run(scenario)


SCAN_GLOBALS = """
(needles) => {
  // Every string reachable from window's own properties (two levels deep), and any hit.
  const hits = [];
  const seen = new Set();
  const visit = (value, path, depth) => {
    if (typeof value === "string") {
      for (const n of needles) if (value.includes(n)) hits.push(path);
      return;
    }
    const isRef = value !== null && (typeof value === "object" || typeof value === "function");
    if (!isRef || seen.has(value)) return;
    seen.add(value);
    if (depth > 2) return;
    let names = [];
    try { names = Object.getOwnPropertyNames(value); } catch (e) { return; }
    for (const name of names) {
      let v;
      try { v = value[name]; } catch (e) { continue; }
      visit(v, path + "." + name, depth + 1);
    }
  };
  visit(window, "window", 0);
  return { hits, visited: seen.size };
}
"""


def test_material_stays_out_of_the_page_and_other_contexts(server, control: SimulatorControl) -> None:
    async def scenario(launch) -> None:
        browser = await launch()
        first, second = KeyRecorder(), KeyRecorder()
        ctx1 = await captured_context(browser, first)
        ctx2 = await captured_context(browser, second)
        page1, page2 = await ctx1.new_page(), await ctx2.new_page()
        await link(page1, control, server.url)
        await recorded(first)
        await page2.goto(server.url)
        await page2.wait_for_selector(QR, timeout=WAIT_MS)
        assert second.records() == []  # the first context's import never reached it

        material = base64.b64decode(first.records()[0]["keyData"])
        needles = [base64.b64encode(material).decode(), material.hex(), material.decode("latin-1")]
        scan = await page1.evaluate(SCAN_GLOBALS, needles)
        assert scan["visited"] > 100  # the scan did walk the globals
        assert scan["hits"] == []
        # The scan itself would have found it: plant the material and look again.
        await page1.evaluate("(s) => { window.__planted = { deep: s }; }", needles[0])
        assert (await page1.evaluate(SCAN_GLOBALS, needles))["hits"] == ["window.__planted.deep"]

        await link(page2, control, server.url, OTHER_PHONE)
        await recorded(second)
        assert len(first.records()) == 1 and len(second.records()) == 1
        assert first.records() != second.records()

    run(scenario)
