"""End-to-end tests of the WhatsApp Web simulator with real headless Chromium.

They drive the page exactly like a driver would (DOM markers only) and use the
control API as the fake phone.  The clock is sped up so the file runs in well
under a minute.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests.simulator import ControlError, SimulatorControl, SimulatorServer
from workers.browser.runtime import CHROMIUM_ARGS, find_chromium

pytestmark = pytest.mark.timeout(90)

CHROMIUM = find_chromium()
ARGS = list(CHROMIUM_ARGS)
QR = "div[data-ref] canvas"
MAIN = "#pane-side div[aria-label='Chat list'][role='grid']"
IDLE_BUTTON = "div[data-ref] > span > button"
PHONE = "5511999990001"
FAST = 5.0  # default clock speed-up for these tests


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorServer]:
    with SimulatorServer() as srv:
        yield srv


@pytest.fixture()
def control(server: SimulatorServer) -> SimulatorControl:
    ctl = SimulatorControl(server.url)
    ctl.reset()
    ctl.clock(FAST)
    return ctl


@pytest.fixture(scope="module")
def pw() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(pw: Playwright) -> Iterator[Browser]:
    b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
    yield b
    b.close()


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    ctx = browser.new_context()
    yield ctx.new_page()
    ctx.close()


def open_profile(pw: Playwright, profile: Path) -> BrowserContext:
    return pw.chromium.launch_persistent_context(
        user_data_dir=str(profile), executable_path=CHROMIUM, headless=True, args=ARGS
    )


def copy_login(src: Path, dst: Path, parts: tuple[str, ...] = ("IndexedDB", "Local Storage")) -> None:
    """Copy only the given storage folders of a closed profile into a fresh one."""
    for part in parts:
        shutil.copytree(src / "Default" / part, dst / "Default" / part)


def link(page: Page, control: SimulatorControl, url: str, phone: str = PHONE) -> dict:
    """Open the page, scan its QR with the fake phone, wait for the chat list."""
    page.goto(url)
    page.wait_for_selector(QR, timeout=10_000)
    ref = page.get_attribute("div[data-ref]", "data-ref")
    device = control.scan(ref, phone=phone, push_name="Alice")
    page.wait_for_selector(MAIN, timeout=10_000)
    return device


def local_storage(page: Page) -> dict[str, str]:
    return page.evaluate("() => ({...localStorage})")


def decode_canvas(page: Page) -> list[str]:
    png = page.locator(QR).screenshot()
    return [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))]


# --------------------------------------------------------------------- tests
def test_boot_then_qr_decodes_to_data_ref(page: Page, control: SimulatorControl, server) -> None:
    control.clock(1)
    page.goto(server.url)
    page.wait_for_selector("#initial_startup progress", timeout=5_000)
    page.wait_for_selector(QR, timeout=10_000)
    assert page.locator("#initial_startup").count() == 0
    assert page.get_by_text("Use WhatsApp on your computer").is_visible()
    canvas = page.locator(QR)
    assert canvas.get_attribute("aria-label") == "Scan this QR code to link a device!"
    assert canvas.get_attribute("role") == "img"
    assert (canvas.get_attribute("width"), canvas.get_attribute("height")) == ("264", "264")

    ref = page.get_attribute("div[data-ref]", "data-ref")
    parts = ref.split(",")
    assert ref.startswith("2@") and len(parts) == 4
    assert decode_canvas(page) == [ref]
    assert control.current_ref() == ref


def test_refs_rotate_then_idle_and_reload(page: Page, control: SimulatorControl, server) -> None:
    control.clock(40)  # first ref 1.5 s, later ones 0.5 s
    page.goto(server.url)
    page.wait_for_selector(QR, timeout=5_000)
    seen: list[str] = []
    for _ in range(200):
        if page.locator(IDLE_BUTTON).count():
            break
        ref = page.get_attribute("div[data-ref]", "data-ref")
        if ref and (not seen or seen[-1] != ref):
            seen.append(ref)
        page.wait_for_timeout(40)
    page.wait_for_selector(IDLE_BUTTON, timeout=5_000)
    assert page.locator("div[data-ref] canvas").count() == 0
    assert page.locator(f"{IDLE_BUTTON} span[data-icon='refresh-large']").count() == 1
    assert "Click to reload QR code" in page.inner_text(IDLE_BUTTON)
    assert len(set(seen)) >= 4, seen  # the page followed the server's rotation

    pairing = control.state()["pairings"][-1]
    assert pairing["state"] == "expired" and pairing["refs_issued"] == 6
    assert control.current_ref() is None
    for old in (seen[0], seen[-1]):
        with pytest.raises(ControlError) as err:
            control.scan(old)
        assert err.value.status == 410
    with pytest.raises(ControlError) as err:
        control.scan("2@doesnotexist,a,b,c")
    assert err.value.status == 404

    control.clock(FAST)
    page.click(IDLE_BUTTON)
    page.wait_for_selector(QR, timeout=5_000)
    fresh = page.get_attribute("div[data-ref]", "data-ref")
    assert fresh not in seen
    assert control.current_ref() == fresh
    assert decode_canvas(page) == [fresh]
    # the short form (first comma part) is accepted too
    assert control.scan(fresh.split(",")[0], phone=PHONE)["phone"] == PHONE
    page.wait_for_selector(MAIN, timeout=5_000)


def test_scan_links_and_stores_login(page: Page, control: SimulatorControl, server) -> None:
    device = link(page, control, server.url)
    assert page.locator("#app #side #pane-side").count() == 1
    assert (
        page.locator(
            "div[data-testid='intro-md-beta-logo-dark'] span[data-icon='intro-md-beta-logo-dark']"
        ).count()
        == 1
    )
    ls = local_storage(page)
    assert json.loads(ls["last-wid-md"]) == f"{PHONE}:1@c.us"
    assert json.loads(ls["me-display-name"]) == "Alice"
    assert "wa-secrets" in ls and device["device_id"] not in ls["wa-secrets"]  # encrypted
    stored = page.evaluate(
        """async () => {
            const get = (db, store, key) => new Promise((ok, ko) => {
                const r = indexedDB.open(db);
                r.onerror = () => ko(r.error);
                r.onsuccess = () => {
                    const g = r.result.transaction(store).objectStore(store).get(key);
                    g.onsuccess = () => { r.result.close(); ok(g.result); };
                };
            });
            const key = await get("wawc_db_enc", "keys", "enc");
            return {device: await get("wawc", "user", "device"),
                    isKey: key instanceof CryptoKey, extractable: key.extractable,
                    alg: key.algorithm.name};
        }"""
    )
    assert stored == {
        "device": device["device_id"],
        "isKey": True,
        "extractable": False,
        "alg": "HKDF",
    }
    dev = control.wait_for(lambda: control.device(PHONE)["online_pages"] >= 1, timeout=5)
    assert dev
    assert control.device(PHONE)["linked"] is True
    page.reload()  # a plain reload keeps the session
    page.wait_for_selector(MAIN, timeout=10_000)
    assert page.locator(QR).count() == 0


def test_class_names_are_randomised(page: Page, control: SimulatorControl, server) -> None:
    link(page, control, server.url)
    first = page.get_attribute("#side", "class")
    page.reload()
    page.wait_for_selector(MAIN, timeout=10_000)
    assert first and page.get_attribute("#side", "class") != first


def test_profile_copy_restores_but_storage_state_does_not(
    pw: Playwright, browser: Browser, control: SimulatorControl, server, tmp_path: Path
) -> None:
    original = tmp_path / "original"
    ctx = open_profile(pw, original)
    link(ctx.pages[0] if ctx.pages else ctx.new_page(), control, server.url)
    state = ctx.storage_state(indexed_db=True)
    ctx.close()

    # (a) copying the IndexedDB + Local Storage folders carries the login over
    clone = tmp_path / "clone"
    copy_login(original, clone)
    ctx = open_profile(pw, clone)
    page = ctx.pages[0] if ctx.pages else ctx.new_page()
    page.goto(server.url)
    page.wait_for_selector(MAIN, timeout=10_000)
    assert page.locator(QR).count() == 0
    assert json.loads(local_storage(page)["last-wid-md"]).startswith(PHONE)
    ctx.close()

    # without the IndexedDB folder the key is gone: back to the QR
    no_idb = tmp_path / "no_idb"
    copy_login(original, no_idb, parts=("Local Storage",))
    ctx = open_profile(pw, no_idb)
    page = ctx.pages[0] if ctx.pages else ctx.new_page()
    page.goto(server.url)
    page.wait_for_selector(QR, timeout=10_000)
    assert "last-wid-md" not in local_storage(page)
    ctx.close()

    # (b) Playwright storage_state loses the CryptoKey: QR again, storage wiped
    ctx = browser.new_context(storage_state=state)
    page = ctx.new_page()
    page.goto(server.url)
    page.wait_for_selector(QR, timeout=10_000)
    assert page.locator(MAIN).count() == 0
    assert local_storage(page) == {}
    ctx.close()
    assert control.device(PHONE)["linked"] is True  # the failure was purely client-side


def test_logout_from_phone(pw: Playwright, control: SimulatorControl, server, tmp_path: Path) -> None:
    profile = tmp_path / "profile"
    ctx = open_profile(pw, profile)
    link(ctx.pages[0] if ctx.pages else ctx.new_page(), control, server.url)
    ctx.close()
    backup = tmp_path / "backup"
    copy_login(profile, backup)

    ctx = open_profile(pw, profile)
    page = ctx.pages[0] if ctx.pages else ctx.new_page()
    page.goto(server.url)
    page.wait_for_selector(MAIN, timeout=10_000)
    assert control.logout(PHONE)["unlinked"] == 1
    page.wait_for_selector(QR, timeout=10_000)
    assert "last-wid-md" not in local_storage(page)
    dbs = page.evaluate("async () => (await indexedDB.databases()).map(d => d.name)")
    assert "wawc" not in dbs and "wawc_db_enc" not in dbs
    ctx.close()
    assert control.device(PHONE)["linked"] is False

    ctx = open_profile(pw, backup)  # storage copied before the logout
    page = ctx.pages[0] if ctx.pages else ctx.new_page()
    page.goto(server.url)
    page.wait_for_selector(QR, timeout=10_000)
    assert page.locator(MAIN).count() == 0
    ctx.close()


def test_messages_in_and_out(page: Page, control: SimulatorControl, server) -> None:
    link(page, control, server.url)
    control.message(PHONE, "5511988887777", "hi there")
    control.message(PHONE, "5511977776666", "from bob", name="Bob")
    page.wait_for_selector("div[role='row'] span[title='5511988887777']", timeout=5_000)
    page.wait_for_selector("div[role='row'] span[title='Bob']", timeout=5_000)
    page.click("div[role='row']:has(span[title='5511988887777'])")
    page.wait_for_selector("#main div.message-in span.selectable-text", timeout=5_000)
    texts = page.locator("#main div.message-in span.selectable-text").all_inner_texts()
    assert texts == ["hi there"]

    box = page.locator('#main footer div[contenteditable="true"][role="textbox"]')
    box.click()
    page.keyboard.type("hello back")
    page.keyboard.press("Enter")
    page.wait_for_selector("#main div.message-out span.selectable-text", timeout=5_000)
    sent = [m for m in control.messages(PHONE) if m["from_me"]]
    assert [(m["chat"], m["body"]) for m in sent] == [("5511988887777", "hello back")]


def test_conflict_modal_and_use_here(page: Page, control: SimulatorControl, server) -> None:
    link(page, control, server.url)
    dialog = page.locator('div[data-animate-modal-popup="true"][role="dialog"]')
    control.conflict(PHONE)
    dialog.wait_for(timeout=5_000)
    assert "WhatsApp is open on another computer or browser" in dialog.inner_text()
    assert dialog.get_by_role("button", name="Close").count() == 1
    assert control.device(PHONE)["conflict"] is True

    control.message(PHONE, "5511955554444", "while in conflict")
    page.wait_for_timeout(600)
    assert page.locator("span[title='5511955554444']").count() == 0  # not delivered

    dialog.get_by_role("button", name="Use here").click()
    dialog.wait_for(state="detached", timeout=5_000)
    assert page.locator(MAIN).is_visible()
    assert control.device(PHONE)["conflict"] is False
    page.wait_for_selector("span[title='5511955554444']", timeout=5_000)


def test_offline_banner(page: Page, control: SimulatorControl, server) -> None:
    link(page, control, server.url)
    banner = page.locator("#side span[data-icon='alert-computer']")
    assert banner.count() == 0
    control.offline(True)
    banner.wait_for(timeout=5_000)
    assert "Computer not connected" in page.inner_text("#side")
    control.offline(False)
    banner.wait_for(state="detached", timeout=5_000)
    assert page.locator(MAIN).is_visible()


def test_boot_while_offline_waits_on_loading_screen(page: Page, control: SimulatorControl, server) -> None:
    control.offline(True)
    page.goto(server.url)
    page.wait_for_selector("#initial_startup progress", timeout=5_000)
    page.wait_for_timeout(1_500)  # several scaled boot durations
    assert page.locator("#initial_startup").count() == 1
    assert page.locator("div[data-ref]").count() == 0
    assert control.state()["offline"] is True
    control.offline(False)
    page.wait_for_selector(QR, timeout=10_000)
