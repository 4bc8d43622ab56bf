"""``BENCH_ONLY=memory``: extra memory per connected session, shared mode against profile mode.

For each design, 10 then 20 sessions are linked on the simulator and left to settle; the
figure is the slope (PSS at 20 − PSS at 10) / 10, PSS from ``smaps_rollup`` of the whole
process tree (so what every process shares is split, not counted twice, and whatever
does not grow with sessions cancels out):

* ZapHub, ``BROWSER_MODE=shared`` (a real worker process, 10 sessions per Chromium);
* ZapHub, ``BROWSER_MODE=profile`` (a real worker process, one Chromium per session);
* the plain baseline: one ``launch_persistent_context`` per session (what whatsapp-web.js
  does), driven by plain Playwright in this process.

``BENCH_MEMORY_RUNS`` (default 1) repeats each design; figures are min / median.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from functools import partial
from pathlib import Path

from playwright.async_api import async_playwright
from sqlalchemy import update

from api import create_app
from shared.models import WhatsappSession
from shared.services import accounts
from shared.uow import UnitOfWork
from tests.e2e.stack import WorkerProcess, browser_pids, wait_until
from tests.simulator import SimulatorControl, SimulatorServer
from workers.browser.memory import descendants
from workers.browser.runtime import CHROMIUM_ARGS, find_chromium

LOW, HIGH = 10, 20
BATCH = 5  # sessions linked at once: every QR gets scanned in time
SETTLE_SECONDS = 10.0


def _pss_mib(pids: set[int]) -> float:
    # tests.bench imports this module's section through LIVE_SECTIONS: import lazily.
    from tests.bench import pss_mib

    return pss_mib(pids)


# ZapHub designs: name → the worker's settings. With the default 20 sessions per shared
# Chromium the 10→20 slope is one browser throughout; with 10 it includes launching the
# second browser (what a smaller crash group costs).
DESIGNS: dict[str, dict[str, str]] = {
    "shared": {"BROWSER_MODE": "shared"},
    "shared10": {"BROWSER_MODE": "shared", "BROWSER_SESSIONS_PER_PROCESS": str(LOW)},
    "profile": {"BROWSER_MODE": "profile"},
}
LABELS = {
    "baseline": "one persistent context per session (plain Playwright)",
    "shared": "ZapHub BROWSER_MODE=shared (20 per Chromium, default)",
    "shared10": "ZapHub BROWSER_MODE=shared (10 per Chromium)",
    "profile": "ZapHub BROWSER_MODE=profile",
}


def _worker_slope(database_url: str, root: Path, design: str, run: int, simulator_url: str) -> float:
    """Slope of one real ZapHub worker of ``design``, sessions linked through the API."""
    from tests.bench import live_settings, status_is

    settings = live_settings(database_url)
    company = f"mem{design}{run}"
    accounts.create_company(UnitOfWork(settings), company)
    _, token = accounts.create_user(UnitOfWork(settings), company, f"m@{company}.io", "admin")
    headers = {"Authorization": f"Bearer {token}"}
    client = create_app(settings).test_client()
    sim = SimulatorControl(simulator_url)
    env = {**DESIGNS[design], "WORKER_CAPACITY": str(HIGH + 5)}
    worker = WorkerProcess(f"mem-{design}-{run}", settings, simulator_url, root, capacity=HIGH + 5, env=env)
    worker.start()

    def row(name: str) -> dict:
        return client.get(f"/session/{name}", headers=headers).get_json()

    def link(names: list[str], first: int) -> None:
        for batch in range(0, len(names), BATCH):
            chosen = names[batch : batch + BATCH]
            for name in chosen:
                client.post("/session", json={"name": name}, headers=headers)
            for index, name in enumerate(chosen, start=first + batch):
                wait_until(partial(status_is, row, name, "QRCODE"), 120)
                qr = client.get(f"/session/{name}/qr", headers=headers).get_json()["qr_code"]
                sim.scan(qr, phone=f"5511{run}{list(DESIGNS).index(design)}{index:06d}")
            for name in chosen:
                wait_until(partial(status_is, row, name, "CONNECTED"), 120)

    def pss() -> float:
        time.sleep(SETTLE_SECONDS)
        return _pss_mib(descendants([worker.process.pid]))

    try:
        names = [f"m{run}{index}" for index in range(HIGH)]
        link(names[:LOW], 0)
        low = pss()
        link(names[LOW:], LOW)
        high = pss()
    finally:
        worker.terminate()
        worker.kill()
        # The next design's worker must start empty: nothing of this run is restored there.
        with UnitOfWork(settings) as uow:
            uow.db.execute(update(WhatsappSession).values(is_active=False))
            uow.commit()
    return (high - low) / (HIGH - LOW)


async def _baseline_slope(root: Path, run: int, simulator_url: str) -> float:
    """Slope of plain Playwright: one persistent context per session, linked on the simulator."""
    sim = SimulatorControl(simulator_url)
    folder = root / f"baseline-{run}"
    contexts = []

    async def link_one(index: int) -> None:
        ctx = await pw.chromium.launch_persistent_context(
            str(folder / str(index)), executable_path=find_chromium(), headless=True, args=list(CHROMIUM_ARGS)
        )
        contexts.append(ctx)
        page = ctx.pages[0] if ctx.pages else await ctx.new_page()
        await page.goto(simulator_url)
        ref = await (await page.wait_for_selector("div[data-ref]", timeout=60_000)).get_attribute("data-ref")
        await asyncio.to_thread(sim.scan, ref, f"5511{run}9{index:06d}")
        await page.wait_for_function("() => localStorage.getItem('last-wid-md')", timeout=60_000)

    async def pss() -> float:
        await asyncio.sleep(SETTLE_SECONDS)
        return _pss_mib(descendants(browser_pids(folder)))

    async with async_playwright() as pw:
        try:
            for batch in range(0, HIGH, BATCH):
                await asyncio.gather(*(link_one(i) for i in range(batch, batch + BATCH)))
                if batch + BATCH == LOW:
                    low = await pss()
            high = await pss()
        finally:
            for ctx in contexts:
                await ctx.close()
    return (high - low) / (HIGH - LOW)


def bench_memory(database_url: str, root: Path) -> None:
    """Print the 10→20 slope of each design (min / median over the runs) with its ratio to the baseline.

    ``BENCH_MEMORY_DESIGNS`` (comma-separated, default all) picks the ZapHub designs.
    """
    runs = int(os.environ.get("BENCH_MEMORY_RUNS", "3"))
    chosen = [d for d in os.environ.get("BENCH_MEMORY_DESIGNS", ",".join(DESIGNS)).split(",") if d]
    slopes: dict[str, list[float]] = {"baseline": [], **{design: [] for design in chosen}}
    with SimulatorServer() as simulator:
        for run in range(runs):
            slopes["baseline"].append(asyncio.run(_baseline_slope(root, run, simulator.url)))
            for design in chosen:
                slopes[design].append(_worker_slope(database_url, root, design, run, simulator.url))
            each = ", ".join(f"{name} {values[-1]:.1f}" for name, values in slopes.items())
            print(f"  run {run + 1}: {each} MiB per session", flush=True)
    base = statistics.median(slopes["baseline"])
    print(f"  extra memory per connected session, {LOW}→{HIGH} slope, PSS, {runs} run(s): min / median")
    for name, values in slopes.items():
        median = statistics.median(values)
        print(
            f"  {LABELS[name]:<55} {min(values):6.1f} / {median:6.1f} MiB   "
            f"ratio to baseline {median / base:4.2f}x"
        )
