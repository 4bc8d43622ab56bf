"""The web console at /console in headless Chromium, against the real stack and the simulator.

The page is served by a real threaded HTTP server (the event stream is a long response),
workers are real processes, and the fake phone scans the QR read from the page itself.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import pytest
import zxingcpp
from PIL import Image
from playwright.sync_api import Browser, Page, expect, sync_playwright

from api import create_app
from tests.e2e.stack import wait_until
from tests.live_server import LiveServer
from tests.simulator import ControlError
from workers.browser.runtime import CHROMIUM_ARGS, find_chromium

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

PHONE = "5511999990077"
CONTACT = "5511977776666"
# The simulator offers six codes per pairing; the worker may show them all, so that the
# page has time to be read (the first code lives 6 s and the others 2 s at the test clock).
WORKER = {"env": {"QR_MAX_ROTATIONS": "6"}}


@pytest.fixture
def server(settings) -> Iterator[LiveServer]:
    # The stream polls the outbox often, so that the page reacts within a fraction of a second.
    app = create_app(settings.with_overrides(EVENTS_STREAM_POLL_SECONDS=0.2))
    with LiveServer(app) as live:
        yield live


@pytest.fixture
def dropping_server(settings) -> Iterator[LiveServer]:
    """A server whose streams end every 3 s: the page must resume each with Last-Event-ID."""
    app = create_app(settings.with_overrides(EVENTS_STREAM_POLL_SECONDS=0.2, EVENTS_STREAM_MAX_SECONDS=3))
    with LiveServer(app) as live:
        yield live


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=find_chromium(), headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            yield launched
        finally:
            launched.close()


def open_console(browser: Browser, server: LiveServer, token: str, locale: str = "en-US") -> Page:
    """A fresh browser context (its own sessionStorage) signed in with ``token``."""
    context = browser.new_context(locale=locale, viewport={"width": 1200, "height": 1000})
    page = context.new_page()
    page.goto(f"{server.url}/console")
    page.fill("#token", token)
    page.click("#login-submit")
    expect(page.locator("#whoami")).to_be_visible()
    expect(page.locator("#stream-state")).to_have_class("stream stream-live", timeout=10000)
    return page


def qr_on_page(page: Page) -> str:
    """The text of the QR the page shows, read from a screenshot of it."""
    page.locator("#qr-image svg").wait_for(timeout=45000)
    results = zxingcpp.read_barcodes(Image.open(io.BytesIO(page.locator("#qr-image").screenshot())))
    assert len(results) == 1
    return results[0].text


def scan_from_page(page: Page, sim) -> None:
    """The fake phone scans the code the page shows; a code that rotated meanwhile is read again."""
    for _ in range(3):
        text = qr_on_page(page)
        try:
            sim.scan(text, phone=PHONE, push_name="Loja")
            return
        except ControlError:
            page.wait_for_timeout(300)
    pytest.fail("the page never showed a code the phone could scan")


def test_admin_creates_and_links_a_session_from_the_page(
    dropping_server, browser, api, sim, start_worker, tenant
):
    start_worker("w1", **WORKER)
    page = open_console(browser, dropping_server, tenant.admin_token)
    requests: list[str] = []
    resumed: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on(
        "request",
        lambda request: (
            request.url.endswith("/events/stream")
            and "last-event-id" in request.headers
            and resumed.append(request.headers["last-event-id"])
        ),
    )
    page.evaluate("window.__noReload = true")

    page.fill("#new-session-name", "vendas")
    page.get_by_role("button", name="Create").click()
    page.wait_for_url("**/console#/session/vendas")
    expect(page.locator("#session-status")).to_have_attribute("data-status", "QRCODE", timeout=45000)
    expect(page.locator("#qr-countdown")).to_contain_text("New code in")
    assert page.evaluate("sessionStorage.getItem('zaphub.token')") == tenant.admin_token
    assert page.evaluate("localStorage.length") == 0 and page.context.cookies() == []
    scan_from_page(page, sim)
    expect(page.locator("#session-status")).to_have_attribute("data-status", "CONNECTED", timeout=30000)
    expect(page.locator("#session-status")).to_have_text("Connected")
    expect(page.locator("#session-phone")).to_have_text(PHONE)
    expect(page.locator("#link-connected")).to_contain_text(PHONE)
    expect(page.locator("#qr-image")).to_have_count(0)
    expect(page.locator("#timeline li").first).to_contain_text("Connected")
    expect(page.locator("#session-owner")).to_have_attribute("data-alive", "true")
    expect(page.locator("#announcer")).not_to_be_empty()

    # A contact writes: the chat and its message appear without a reload.
    sim.message(PHONE, CONTACT, "Oi, meu pedido chegou?", push_name="João")
    page.locator(f"button.chat[data-chat='{CONTACT}@c.us']").click(timeout=30000)
    expect(page.locator("#messages")).to_contain_text("Oi, meu pedido chegou?")
    # The reply goes from the send box; its ack moves live.
    page.fill("#send-text", "Chegou sim!")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#messages .message.out")).to_contain_text("Chegou sim!")
    wait_until(
        lambda: any(m["body"] == "Chegou sim!" for m in sim.messages(PHONE)), 30, message="the reply sent"
    )
    expect(page.locator("#messages .message.out .meta")).not_to_contain_text("PENDING", timeout=30000)

    assert page.evaluate("window.__noReload") is True
    assert resumed, "no stream was resumed with Last-Event-ID"
    # Live updates came from the stream alone: no polling of the feed, no page load.
    assert not any("/events?" in url for url in requests if "session=" not in url)
    assert not any(url.endswith("/console") for url in requests)


def test_the_qr_on_the_page_follows_the_rotation(server, browser, api, sim, start_worker, tenant):
    start_worker("w1", **WORKER)
    api.call("post", "/session", 202, json={"name": "vendas"})
    page = open_console(browser, server, tenant.admin_token)
    page.locator("a[href='#/session/vendas']").click()
    first = qr_on_page(page)
    # The next code replaces the first one within its 6 s life (plus a little).
    second = wait_until(lambda: (text := qr_on_page(page)) != first and text, 15, message="a new QR")
    assert second == sim.current_ref()
    assert first.split(",", 1)[0] != second.split(",", 1)[0]

    # Nobody scans: when the codes run out the page says so, and "start again" brings a new one.
    expect(page.locator("#link-expired")).to_contain_text("expired", timeout=30000)
    expect(page.locator("#qr-image")).to_have_count(0)
    page.get_by_role("button", name="Start again").click()
    third = qr_on_page(page)
    assert third not in (first, second) and third == sim.current_ref()


def test_an_agent_sees_no_admin_controls_and_the_api_refuses_them(
    server, browser, api, client, sim, start_worker, tenant
):
    start_worker("w1", **WORKER)
    api.call("post", "/session", 202, json={"name": "vendas"})
    api.wait_status("vendas", "QRCODE")
    page = open_console(browser, server, tenant.agent_token)
    expect(page.locator("#whoami")).to_contain_text("agent")
    expect(page.locator("tr[data-session='vendas']")).to_contain_text("Waiting for scan")
    expect(page.locator("#create-session")).to_have_count(0)
    expect(page.locator("[data-action]")).to_have_count(0)

    page.locator("a[href='#/session/vendas']").click()
    expect(page.locator("#session-status")).to_have_attribute("data-status", "QRCODE")
    expect(page.locator("#send-form")).to_be_visible()
    for hidden in ("#qr-image", "#link-mode", "#pairing-form", "#start-again", "[data-action]"):
        expect(page.locator(hidden)).to_have_count(0)

    agent = tenant.agent
    assert client.post("/session", headers=agent, json={"name": "outra"}).status_code == 403
    assert client.post("/session/vendas/restart", headers=agent).status_code == 403
    assert client.patch("/session/vendas", headers=agent, json={"is_active": False}).status_code == 403
    assert client.delete("/session/vendas", headers=agent).status_code == 403
    assert client.get("/session/vendas/qr", headers=agent).status_code == 403
    assert client.get("/me", headers=agent).get_json()["role"] == "agent"


def test_the_language_follows_the_browser_and_the_switch(server, browser, api, tenant):
    api.call("post", "/session", 202, json={"name": "vendas"})
    context = browser.new_context(locale="pt-BR")
    page = context.new_page()
    page.goto(f"{server.url}/console")
    expect(page.get_by_label("Token da API")).to_be_visible()
    assert page.evaluate("document.documentElement.lang") == "pt-BR"
    page.fill("#token", tenant.admin_token)
    page.get_by_role("button", name="Abrir console").click()
    expect(page.get_by_role("heading", name="Sessões")).to_be_visible()
    expect(page.get_by_role("button", name="Criar")).to_be_visible()
    expect(page.locator("tr[data-session='vendas']")).to_contain_text("Desconectada")

    page.get_by_label("Idioma").select_option("en")
    expect(page.get_by_role("heading", name="Sessions")).to_be_visible()
    expect(page.locator("tr[data-session='vendas']")).to_contain_text("Disconnected")
    assert page.evaluate("document.documentElement.lang") == "en"

    english = open_console(browser, server, tenant.admin_token)
    expect(english.get_by_role("heading", name="Sessions")).to_be_visible()
    english.get_by_label("Language").select_option("pt-BR")
    expect(english.get_by_role("button", name="Remover")).to_be_visible()
    english.reload()  # the choice stays for the tab (sessionStorage), and so does the token
    expect(english.get_by_role("heading", name="Sessões")).to_be_visible()


def test_admin_links_a_session_by_phone_number_from_the_page(server, browser, api, sim, start_worker, tenant):
    start_worker("w1", **WORKER)
    api.call("post", "/session", 202, json={"name": "vendas"})
    api.wait_status("vendas", "QRCODE")
    page = open_console(browser, server, tenant.admin_token)
    page.locator("a[href='#/session/vendas']").click()
    page.locator("#link-mode").click()
    page.fill("#pairing-phone", PHONE)
    page.get_by_role("button", name="Get code").click()
    shown = page.locator("#pairing-code-text")
    expect(shown).to_have_text(re.compile(r"^[A-Z0-9]{4}-[A-Z0-9]{4}$"), timeout=30000)
    expect(page.locator("#pairing-countdown")).to_contain_text("Expires in")
    # The fake phone types the code it reads on the page.
    sim.pair(PHONE, shown.inner_text(), push_name="Loja")
    expect(page.locator("#session-status")).to_have_attribute("data-status", "CONNECTED", timeout=30000)
    expect(page.locator("#session-phone")).to_have_text(PHONE)
    expect(page.locator("#pairing-code-text")).to_have_count(0)
    assert [d["phone"] for d in sim.state()["devices"]] == [PHONE]
