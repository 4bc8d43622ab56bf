"""The driver's connected mode: no polling, woken by the page watcher's reports.

The page is a scripted stand-in (what ``PROBE_JS`` would return); the state machine,
the wake-up event and the pauses are the driver's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from workers.whatsapp import page as wa
from workers.whatsapp.driver import PageDriver

PHONE = "5511999990001"
MAIN = {"screen": "main", "wid": f'"{PHONE}:3@c.us"', "pushName": '"Loja"', "storageSig": "4:1"}
QR = {"screen": "qr", "ref": "2@again", "storageSig": "0:0"}


class ScriptedPage:
    """Answers each probe with ``state``; counts probes; fires close like a page."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self.probes = 0
        self.closed = False
        self.handlers: dict[str, list[Callable[[Any], None]]] = {}
        self.probed = asyncio.Event()

    async def evaluate(self, script: str) -> dict[str, Any]:
        assert script == wa.PROBE_JS
        self.probes += 1
        self.probed.set()
        return dict(self.state)

    def is_closed(self) -> bool:
        return self.closed

    def on(self, name: str, handler: Callable[[Any], None]) -> None:
        self.handlers.setdefault(name, []).append(handler)

    def close(self) -> None:
        self.closed = True
        for handler in self.handlers.get("close", []):
            handler(self)


def make(state: dict[str, Any], **kwargs: Any) -> tuple[PageDriver, ScriptedPage, list]:
    events: list = []
    page = ScriptedPage(state)
    driver = PageDriver(
        "s1",
        page,  # type: ignore[arg-type]
        lambda n, p: events.append((n, p)),
        poll_interval=0.001,
        hook_messages=False,
        safety_probe=3600,
        **kwargs,
    )
    return driver, page, events


async def until(predicate: Callable[[], bool], timeout: float = 10) -> None:
    async def spin() -> None:
        while not predicate():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(spin(), timeout)


async def connected(driver: PageDriver, page: ScriptedPage, events: list) -> asyncio.Task:
    """Run the driver until it is ready and waiting for the page's reports."""
    task = asyncio.create_task(driver.run())
    await until(lambda: ("ready", {"phone_number": PHONE, "push_name": "Loja"}) in events)
    await until(lambda: driver.watching(driver._seen))
    return task


def test_a_ready_page_is_not_polled_and_a_report_wakes_the_state_machine():
    async def scenario() -> None:
        driver, page, events = make(MAIN)
        task = await connected(driver, page, events)
        probes = page.probes
        await asyncio.sleep(0.3)  # at the 1 ms poll interval this would be hundreds of probes
        assert page.probes == probes
        page.state = QR  # the phone logged out: the page shows a QR again and reports it
        driver.page_changed({"probe": QR, "storage": True})
        assert await asyncio.wait_for(task, 10) == "logout"
        assert events[-1] == ("disconnected", {"reason": "logout"})

    asyncio.run(scenario())


def test_the_safety_probe_looks_again_without_any_report():
    async def scenario() -> None:
        driver, page, events = make(MAIN)
        driver.safety_probe = 0.05
        task = await connected(driver, page, events)
        page.state = {**MAIN, "screen": "conflict"}  # no report: only the safety probe sees it
        assert await asyncio.wait_for(task, 10) == "conflict"

    asyncio.run(scenario())


def test_a_closing_page_ends_the_wait():
    async def scenario() -> None:
        driver, page, events = make(MAIN)
        task = await connected(driver, page, events)
        page.close()
        assert await asyncio.wait_for(task, 10) is None

    asyncio.run(scenario())


def test_a_report_of_the_screen_already_seen_does_not_wake_but_a_storage_write_is_passed_on():
    async def scenario() -> None:
        writes: list[float] = []
        driver, page, events = make(MAIN, on_storage_write=lambda: writes.append(driver.storage_changed_at))
        task = await connected(driver, page, events)
        before, probes = driver.storage_changed_at, page.probes
        driver.page_changed({"probe": MAIN, "storage": True})  # an IndexedDB write: same screen
        assert not driver._wake.is_set()
        assert writes == [driver.storage_changed_at] and driver.storage_changed_at >= before
        driver.page_changed({"probe": {**MAIN, "offline": True}, "storage": False})
        assert driver._wake.is_set()
        page.state = {**MAIN, "offline": True}
        await until(lambda: page.probes > probes)
        assert len(writes) == 1
        page.close()
        await asyncio.wait_for(task, 10)

    asyncio.run(scenario())


def test_a_failing_storage_listener_does_not_stop_the_reports():
    def broken() -> None:
        raise RuntimeError("listener bug")

    driver, _, _ = make(MAIN, on_storage_write=broken)
    driver.page_changed({"probe": None, "storage": True})  # logged, not raised
    assert driver._wake.is_set()  # a malformed report wakes: the driver looks for itself


@pytest.mark.parametrize(
    ("screen", "ready", "hook_messages", "watching"),
    [
        (wa.Screen(wa.QR, ref="2@a"), False, True, False),  # linking: polled
        (wa.Screen(wa.LOADING), True, True, False),  # a reload: polled until main again
        (wa.Screen(wa.MAIN), False, True, False),  # main, identity not yet known
        (wa.Screen(wa.MAIN), True, True, False),  # ready, message events not yet subscribed
        (wa.Screen(wa.MAIN, hooked=True), True, True, True),
        (wa.Screen(wa.MAIN), True, False, True),  # no messages to hook
    ],
)
def test_only_a_ready_hooked_main_screen_is_left_to_the_watcher(screen, ready, hook_messages, watching):
    driver = PageDriver("s1", None, lambda n, p: None, hook_messages=hook_messages)  # type: ignore[arg-type]
    driver.ready_sent = ready
    assert driver.watching(screen) is watching


def test_the_watcher_runs_the_probe_itself_and_reports_through_its_binding():
    assert wa.PROBE_JS.strip() in wa.WATCH_JS  # one probe, not a second copy of the selectors
    assert wa.WATCH_BINDING in wa.WATCH_JS and wa.WATCH_FLAG in wa.WATCH_JS
    screen, wrote = wa.parse_watch({"probe": MAIN, "storage": True})
    assert screen == wa.parse_probe(MAIN) and wrote is True
    assert wa.parse_watch("nonsense") == (None, False)


def test_while_linking_a_report_cuts_the_poll_short():
    async def scenario() -> None:
        driver, page, events = make({"screen": "qr", "ref": "2@first"})
        driver.poll_interval = 3600  # only a report can make it look again
        task = asyncio.create_task(driver.run())
        await until(lambda: events == [("qr", {"qr": "2@first", "rotation": 1})])
        page.state = {"screen": "qr", "ref": "2@second"}  # the QR rotated
        driver.page_changed({"probe": page.state, "storage": False})
        await until(lambda: len(events) == 2)
        assert events[1] == ("qr", {"qr": "2@second", "rotation": 2})
        page.close()
        assert await asyncio.wait_for(task, 10) is None

    asyncio.run(scenario())
