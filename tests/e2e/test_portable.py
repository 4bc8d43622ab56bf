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
from collections.abc import Awaitable, Callable

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from shared import login_state
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
SECRETS = ["portable-e2e-secret"]


@pytest.fixture()
def server(simulator_server: SimulatorServer) -> SimulatorServer:
    return simulator_server


@pytest.fixture()
def control(sim: SimulatorControl) -> SimulatorControl:
    """The fake phone of a freshly reset simulator (``tests/e2e/conftest.py``)."""
    return sim


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
        # Stored the way a worker stores it: encrypted, checksummed, then read back.
        blob = login_state.pack_portable(state, SECRETS)
        assert base64.b64decode(state["keys"][0]["keyData"]) not in blob
        state = login_state.unpack_portable(blob, SECRETS)
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
        assert (
            await page1.evaluate(
                "() => Object.getOwnPropertyNames(window).filter((k) => k.startsWith('__zh'))"
            )
            == []
        )
        # The scan itself would have found it: plant the material and look again.
        await page1.evaluate("(s) => { window.__planted = { deep: s }; }", needles[0])
        assert (await page1.evaluate(SCAN_GLOBALS, needles))["hits"] == ["window.__planted.deep"]

        await link(page2, control, server.url, OTHER_PHONE)
        await recorded(second)
        assert len(first.records()) == 1 and len(second.records()) == 1
        assert first.records() != second.records()

    run(scenario)


SITE = "http://localhost:9/"  # routed, never fetched; localhost is a secure context (crypto.subtle)

SEED = """
async () => {
  const open = (name, version, upgrade) => new Promise((resolve, reject) => {
    const r = indexedDB.open(name, version);
    r.onupgradeneeded = () => upgrade(r.result);
    r.onsuccess = () => { r.result.close(); resolve(); };
    r.onerror = () => reject(r.error);
  });
  const key = await crypto.subtle.importKey(
    "raw", new Uint8Array(16).fill(7), { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
  const mac = await crypto.subtle.importKey(
    "raw", new Uint8Array(32).fill(9), { name: "HMAC", hash: "SHA-256" }, true, ["sign"]);
  await open("typed", 3, (db) => {
    const inline = db.createObjectStore("inline", { keyPath: "id", autoIncrement: true });
    inline.createIndex("by_tag", "tags", { unique: false, multiEntry: true });
    inline.createIndex("by_name", "name", { unique: true });
    inline.add({ name: "a", tags: ["x", "y"], when: new Date(86400000), n: NaN, neg: -0, big: 10n,
                 u: undefined, buf: new Uint8Array([1, 2, 255]).buffer, view: new Int16Array([-1, 300]),
                 map: new Map([["k", { deep: [1, { "$zh": "not a tag" }] }]]), set: new Set([1, "two"]),
                 key, mac, nothing: null, yes: true });
    inline.add({ name: "b", tags: [] });
    const outOfLine = db.createObjectStore("out");
    outOfLine.put("by date", new Date(5));
    outOfLine.put("by array", [1, "a"]);
    outOfLine.put("by binary", new Uint8Array([0, 1]));
    outOfLine.put(42, "by string");
  });
  await open("empty", 5, () => {});
  localStorage.setItem("plain", "value");
}
"""

DESCRIBE = """
async () => {
  const req = (r) => new Promise((ok, ko) => {
    r.onsuccess = () => ok(r.result);
    r.onerror = () => ko(r.error);
  });
  const show = async (v) => {
    if (v instanceof CryptoKey) {
      const out = { alg: v.algorithm.name, extractable: v.extractable, usages: v.usages };
      if (v.algorithm.name === "AES-GCM") {
        const iv = new Uint8Array(12);
        const ct = await crypto.subtle.encrypt({ name: "AES-GCM", iv }, v, new Uint8Array(4));
        out.ct = Array.from(new Uint8Array(ct));
      } else out.raw = Array.from(new Uint8Array(await crypto.subtle.exportKey("raw", v)));
      return out;
    }
    if (v === undefined) return "<undefined>";
    if (typeof v === "number" && !Number.isFinite(v)) return "<" + v + ">";
    if (Object.is(v, -0)) return "<-0>";
    if (typeof v === "bigint") return "<" + v + "n>";
    if (v instanceof Date) return "<date " + v.getTime() + ">";
    if (v instanceof ArrayBuffer) return "<buffer " + Array.from(new Uint8Array(v)) + ">";
    if (ArrayBuffer.isView(v)) return "<" + v.constructor.name + " " + Array.from(v) + ">";
    if (v instanceof Map) return { "<map>": await show([...v]) };
    if (v instanceof Set) return { "<set>": await show([...v]) };
    if (Array.isArray(v)) return Promise.all(v.map(show));
    if (v && typeof v === "object") {
      const out = {};
      for (const k of Object.keys(v)) out[k] = await show(v[k]);
      return out;
    }
    return v;
  };
  const dbs = [];
  for (const { name } of (await indexedDB.databases()).sort((a, b) => a.name < b.name ? -1 : 1)) {
    const db = await req(indexedDB.open(name));
    const stores = [];
    for (const sname of [...db.objectStoreNames]) {
      const s = db.transaction(sname).objectStore(sname);
      const indexes = [...s.indexNames].map((i) => {
        const ix = s.index(i);
        return [i, ix.keyPath, ix.unique, ix.multiEntry];
      });
      const keys = await req(s.getAllKeys());
      const values = await req(s.getAll());
      const tagged = s.indexNames.contains("by_tag") ? await req(s.index("by_tag").getAllKeys("y")) : null;
      stores.push({ sname, keyPath: s.keyPath, auto: s.autoIncrement, indexes, keys: await show(keys),
                    values: await show(values), tagged });
    }
    db.close();
    dbs.push({ name, version: db.version, stores });
  }
  return { dbs, ls: { ...localStorage } };
}
"""


async def blank_site(ctx: BrowserContext) -> None:
    """Serve an empty page for every URL of ``SITE`` (no site script wipes anything)."""

    async def serve(route) -> None:
        await route.fulfill(status=200, content_type="text/html", body="<!doctype html><title>site</title>")

    await ctx.route(SITE + "**", serve)


def test_every_value_type_and_store_shape_round_trips() -> None:
    async def scenario(launch) -> None:
        browser = await launch()
        recorder = KeyRecorder()
        ctx = await captured_context(browser, recorder)
        await blank_site(ctx)
        page = await ctx.new_page()
        await page.goto(SITE)
        await page.evaluate(SEED)
        await recorded(recorder)
        before = await page.evaluate(DESCRIBE)
        state = await dump(page, recorder)
        assert [k.get("extractable") for k in state["keys"]] == [None, True]  # recorded, then exported
        await ctx.close()

        ctx = await captured_context(browser, KeyRecorder())
        await blank_site(ctx)
        page = await restore(ctx, state, SITE + "later")
        assert page.url == SITE + "later"
        after = await page.evaluate(DESCRIBE)
        assert after == before
        assert [db["version"] for db in after["dbs"]] == [5, 3]
        assert after["dbs"][1]["stores"][0]["tagged"] == [1]  # the multiEntry index was rebuilt
        # Nothing of the restore is left in the page's globals.
        assert await page.evaluate("() => Object.keys(window).filter((k) => k.includes('zh'))") == []

        # A Blob cannot be carried: the dump refuses and says where it is.
        await page.evaluate(
            """() => new Promise((resolve) => {
                 const r = indexedDB.open("typed");
                 r.onsuccess = () => {
                   const tx = r.result.transaction("out", "readwrite");
                   tx.objectStore("out").put(new Blob(["x"]), "blob");
                   tx.oncomplete = () => { r.result.close(); resolve(); };
                 };
               })"""
        )
        with pytest.raises(
            NotPortable, match="IndexedDB typed/out holds a Blob value that cannot be carried"
        ):
            await dump(page, KeyRecorder.from_records(state["keys"]))

    run(scenario)


def test_profile_to_context_to_profile_with_no_scan(server, control: SimulatorControl, tmp_path) -> None:
    """A session linked in profile mode with the capture moves to a shared context and back."""

    async def scenario(launch) -> None:
        async with async_playwright() as pw:

            async def profile(name: str, recorder: KeyRecorder) -> BrowserContext:
                ctx = await pw.chromium.launch_persistent_context(
                    str(tmp_path / name), executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_ARGS)
                )
                await install_capture(ctx, recorder)  # its first page is still about:blank
                return ctx

            # Linked in profile mode; the profile archive carries the recorded key.
            recorder = KeyRecorder()
            ctx = await profile("linked", recorder)
            await link(ctx.pages[0], control, server.url)
            await recorded(recorder)
            wid = await wid_of(ctx.pages[0])
            await ctx.close()
            blob = login_state.pack(tmp_path / "linked", SECRETS, keys=recorder.records())
            pairings = len(control.state()["pairings"])

            # Later, on another machine: the archive opens as a profile and dumps as data.
            _, keys = login_state.unpack_with_keys(blob, tmp_path / "unpacked", SECRETS)
            recorder = KeyRecorder.from_records(keys)
            ctx = await profile("unpacked", recorder)
            page = ctx.pages[0]
            await page.goto(server.url)
            await page.wait_for_selector(MAIN, timeout=WAIT_MS)
            state = await dump(page, recorder)
            await ctx.close()

            # profile -> shared context
            browser = await launch()
            recorder = KeyRecorder()
            ctx = await captured_context(browser, recorder)
            page = await restore(ctx, state, server.url)
            await page.wait_for_selector(MAIN, timeout=WAIT_MS)
            await recorded(recorder)
            state = await dump(page, recorder)
            await ctx.close()

            # shared context -> profile: restored once, then it opens from its own folder.
            ctx = await profile("back", KeyRecorder())
            page = await restore(ctx, state, server.url)
            await page.wait_for_selector(MAIN, timeout=WAIT_MS)
            await ctx.close()
            ctx = await profile("back", KeyRecorder())
            await ctx.pages[0].goto(server.url)
            await ctx.pages[0].wait_for_selector(MAIN, timeout=WAIT_MS)
            assert await wid_of(ctx.pages[0]) == wid
            await ctx.close()
            assert len(control.state()["pairings"]) == pairings  # never scanned again

    run(scenario)
