"""``BENCH_ONLY=idle``: CPU of connected, idle sessions, and the restore of 10 of them.

Idle: 20 linked sessions on one real ZapHub worker (production heartbeat and sync
periods), the CPU of the worker's whole process tree (Celery, the Playwright driver, the
Chromiums) over steady windows, beside the plain design measured in the same run: 20
``launch_persistent_context`` on the same simulator, each page loaded and linked, nothing
polling (``python -m tests.bench_idle plain …``, a process of its own, measured the same
way). The same worker with the safety probe at the old poll interval (0.4 s) shows what
the page watcher saves.

Restore: the worker restarts with 10 of those sessions active (the others lazy): one
session's restore alone, then all 10 with ``RESTORE_CONCURRENCY`` = K, against the
bound one start × ceil(10 / K), with the CPU of the tree and of the machine meanwhile,
which tells whether the CPU or the K slots limit it. ``BENCH_IDLE_RESTORE_ONLY=1`` skips the
idle part.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

from shared.config import Settings, set_settings
from tests.bench import RESTORE_TOOK_RE, LiveTenant, cpu_seconds, live_settings, process_tree, status_is
from tests.e2e.stack import WorkerProcess, wait_until
from tests.simulator import SimulatorControl, SimulatorServer

IDLE_SESSIONS = 20
IDLE_RUNS = 3
IDLE_WINDOW = 20.0  # seconds per measured window
IDLE_SETTLE = 10.0  # seconds after the last session is connected, before measuring
RESTORED = 10
# The worker as deployed: heartbeat and sync at their defaults (the tests' fast ones cost CPU).
PRODUCTION_PERIODS = {
    "HEARTBEAT_INTERVAL": "5",
    "WORKER_LEASE": "30",
    "SYNC_INTERVAL": "30",
    "LOGIN_STATE_SAVE_INTERVAL": "300",
}
PLAIN_READY = "plain contexts ready"
# BENCH_IDLE_RESTORE_ONLY=1: the restore figures alone (the idle windows take minutes).
RESTORE_ONLY = os.environ.get("BENCH_IDLE_RESTORE_ONLY", "") not in ("", "0")
PLAIN_PHONES = "55117000"  # + 5 digits: the baseline's own fake phones


def tree_cpu(pid: int) -> dict[int, float]:
    """CPU seconds so far of ``pid`` and each of its descendants (vanished ones left out)."""
    seconds = {}
    for member in process_tree(pid):
        try:
            seconds[member] = cpu_seconds(member)
        except (OSError, IndexError):
            pass
    return seconds


def kind(pid: int) -> str:
    """What a member of the tree is: Chromium, or the rest (Python and the Playwright driver)."""
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "gone"
    return "chromium" if name.startswith("chrom") else "python+driver"


def tree_percent(pid: int, window: float) -> tuple[float, dict[str, float]]:
    """CPU of ``pid``'s tree over the next ``window`` seconds, in % of one core; and by :func:`kind`."""
    before = tree_cpu(pid)
    began = time.monotonic()
    time.sleep(window)
    after = tree_cpu(pid)
    elapsed = time.monotonic() - began
    by_kind: dict[str, float] = {}
    for member, spent in after.items():
        share = (spent - before.get(member, 0.0)) / elapsed * 100
        by_kind[kind(member)] = by_kind.get(kind(member), 0.0) + share
    return sum(by_kind.values()), by_kind


def windows(pid: int) -> tuple[list[float], str]:
    """``IDLE_RUNS`` steady windows of ``pid``'s tree (% of one core each); the median one by kind."""
    time.sleep(IDLE_SETTLE)
    runs = sorted((tree_percent(pid, IDLE_WINDOW) for _ in range(IDLE_RUNS)), key=lambda run: run[0])
    middle = runs[len(runs) // 2][1]
    return [total for total, _ in runs], "  ".join(f"{k} {v:.1f}" for k, v in sorted(middle.items()))


def min_median(samples: list[float]) -> str:
    return f"{min(samples):5.1f} / {statistics.median(samples):5.1f} %"


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine so far (/proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


class TreeSampler(threading.Thread):
    """Samples a process tree while it changes (browsers start): the CPU its members used.

    Members already there when it starts count from then; later ones from their start.
    This process (the simulator's server threads and the bench's polling) is measured too.
    """

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.seen, self.kinds = pid, {}, {}
        self.first = tree_cpu(pid)
        self.done = threading.Event()
        self.machine = machine_busy()
        self.own = _own_cpu()

    def run(self) -> None:
        while not self.done.is_set():
            self.sample()
            self.done.wait(0.1)

    def sample(self) -> None:
        for member, spent in tree_cpu(self.pid).items():
            self.seen[member] = spent
            self.kinds[member] = kind(member)  # again each time: a fresh child is its parent until exec
        for member in self.first:
            self.first[member] = min(self.first[member], self.seen.get(member, self.first[member]))

    def stop(self) -> tuple[float, float, dict[str, float]]:
        """(CPU seconds the tree used, the machine's busy share of all its cores, CPU seconds by kind).

        By kind: ``chromium``, ``python+driver`` (the worker and Playwright's driver) and
        ``simulator+bench`` (this process).
        """
        self.done.set()
        self.join()
        self.sample()
        busy, total = machine_busy()
        share = (busy - self.machine[0]) / max(1, total - self.machine[1])
        by_kind: dict[str, float] = {"simulator+bench": _own_cpu() - self.own}
        for member, spent in self.seen.items():
            what = self.kinds.get(member, "gone")
            by_kind[what] = by_kind.get(what, 0.0) + spent - self.first.get(member, 0.0)
        return sum(v for k, v in by_kind.items() if k != "simulator+bench"), share, by_kind


def _own_cpu() -> float:
    """CPU seconds this process used so far (all its threads)."""
    times = os.times()
    return times.user + times.system


def bench_idle(database_url: str, root: Path) -> None:
    """Idle CPU of 20 connected sessions vs the plain design; the restore of 10 of them."""
    settings = live_settings(database_url).with_overrides(WORKER_LEASE=30.0)
    set_settings(settings)
    tenant = LiveTenant(settings, "idle")
    names = [f"idle{index}" for index in range(IDLE_SESSIONS)]

    def worker(**env: str) -> WorkerProcess:
        return WorkerProcess("idle", settings, simulator.url, root, env={**PRODUCTION_PERIODS, **env})

    def connected(chosen: list[str], timeout: float = 300) -> None:
        for name in chosen:
            wait_until(partial(status_is, tenant.row, name, "CONNECTED"), timeout)

    with SimulatorServer() as simulator:
        sim = SimulatorControl(simulator.url)
        live = worker().start()
        try:
            tenant.link_all(names, sim, "55116000")
            if RESTORE_ONLY:
                live.terminate()
                restore(settings, tenant.set_lazy, worker, connected, root, names)
                return
            zaphub, zaphub_kinds = windows(live.process.pid)
        finally:
            live.terminate()
            live.kill()
        # The same sessions, the connected pages probed every 0.4 s (the design before the watcher).
        live = worker(WATCH_SAFETY_PROBE_SECONDS="0.4").start()
        try:
            connected(names)
            polled, polled_kinds = windows(live.process.pid)
        finally:
            live.terminate()
            live.kill()
        plain = subprocess.Popen(
            [sys.executable, "-m", "tests.bench_idle", "plain", str(IDLE_SESSIONS), simulator.url, str(root)],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            line = plain.stdout.readline()
            assert line.strip() == PLAIN_READY, f"plain contexts failed: {line!r}"
            baseline, baseline_kinds = windows(plain.pid)
        finally:
            os.killpg(plain.pid, 9)
            plain.wait(10)
        print(
            f"  idle CPU, {IDLE_SESSIONS} connected sessions, whole process tree, % of one core "
            f"(min / median of {IDLE_RUNS} windows of {IDLE_WINDOW:g} s):"
        )
        print(f"    ZapHub worker (page watcher)          {min_median(zaphub)}   ({zaphub_kinds})")
        print(f"    baseline: plain persistent contexts   {min_median(baseline)}   ({baseline_kinds})")
        print(
            f"    ratio ZapHub / plain                  {min(zaphub) / min(baseline):5.2f}× (min)  "
            f"{statistics.median(zaphub) / statistics.median(baseline):5.2f}× (median)"
        )
        print(
            f"    ZapHub, connected pages probed 0.4 s  {min_median(polled)}  "
            f"({statistics.median(polled) / statistics.median(baseline):5.2f}× plain, median; {polled_kinds})"
        )
        restore(settings, tenant.set_lazy, worker, connected, root, names)


# A restore this much slower among K than alone means the cores, not the slots, set the pace.
SLOWER_IN_PARALLEL = 1.15
ONE_RUNS = 3  # restarts with one session, for the bound's single start
SLOTS_RE = re.compile(r"restored in [0-9.]+s, at most (\d+) at once")


def restore(settings: Settings, set_lazy, worker, connected, root: Path, names: list[str]) -> None:
    """A worker restarting with one, then ``RESTORED`` connected sessions; the bound and the limit."""
    log_path = root / "worker-idle.log"

    def run(chosen: list[str]) -> tuple[float, list[float], float, float, dict[str, float]]:
        offset = log_path.stat().st_size
        live = worker()
        began = time.perf_counter()
        live.start()
        sampler = TreeSampler(live.process.pid)
        sampler.start()
        try:
            connected(chosen)
            took = time.perf_counter() - began
            cpu, machine, by_kind = sampler.stop()
            wait_until(lambda: "ready on" in log_path.read_text(errors="replace")[offset:], 60)
            durations = [float(d) for _, d in RESTORE_TOOK_RE.findall(log_path.read_text()[offset:])]
        finally:
            live.terminate()
            live.kill()
        return took, durations, cpu / took * 100, machine, by_kind

    set_lazy(names[1:], True)
    # One start alone sets the bound: its median over a few restarts, not one draw.
    ones = [run(names[:1]) for _ in range(ONE_RUNS)]
    one_totals = [total for total, *_ in ones]
    start_ones = [durations[0] if durations else total for total, durations, *_ in ones]
    one_total, start_one = statistics.median(one_totals), statistics.median(start_ones)
    one_cpu = {
        what: statistics.median(by_kind.get(what, 0.0) for *_, by_kind in ones)
        for what in ("chromium", "python+driver", "simulator+bench")
    }
    set_lazy(names[1:RESTORED], False)
    total, each, tree, machine, _ = run(names[:RESTORED])
    # The worker's own K (RESTORE_CONCURRENCY in the environment reaches it, not the bench's settings).
    found = SLOTS_RE.findall(log_path.read_text(errors="replace"))
    slots = int(found[-1]) if found else settings.RESTORE_CONCURRENCY
    bound = start_one * math.ceil(RESTORED / slots)
    boot = one_total - start_one  # worker start → its first restore begins (the same in both runs)
    cores = os.cpu_count() or 1
    # K starts at once share the cores: each one taking longer than a start alone is the CPU's doing.
    slowdown = statistics.median(each) / start_one if each else 1.0
    limit = (
        f"CPU (each restore {slowdown:.2f}× as long as alone; machine {machine * 100:.0f} % busy)"
        if machine >= 0.9 or tree >= 90 * cores or slowdown >= SLOWER_IN_PARALLEL
        else f"concurrency (K={slots} slots; CPU left over)"
    )
    print(
        f"  restore after a worker restart, RESTORE_CONCURRENCY K={slots}, {cores} cores:"
        f"\n    one session                 {start_one:6.1f} s restore ({one_total:.1f} s from worker start; "
        f"median of {ONE_RUNS}: {' '.join(f'{d:.1f}' for d in start_ones)})"
        f"\n    CPU of one, worker start → CONNECTED (s): "
        + "  ".join(f"{what} {seconds:.2f}" for what, seconds in one_cpu.items())
        + f"\n    {RESTORED} sessions                 {total - boot:6.1f} s restores "
        f"({total:.1f} s from worker start); each (s): {' '.join(f'{d:.1f}' for d in each)}"
        f"\n    bound one × ceil({RESTORED}/K)     {bound:6.1f} s   → {(total - boot) / bound:4.2f}× it"
        f"\n    CPU meanwhile               tree {tree:5.1f} % of a core, machine {machine * 100:5.1f} % busy"
        f"\n    limit                       {limit}"
    )


async def plain(count: int, url: str, root: Path) -> None:
    """The baseline: ``count`` persistent contexts on the simulator, linked, then nothing at all."""
    from playwright.async_api import async_playwright

    from workers.browser.runtime import CHROMIUM_ARGS, find_chromium
    from workers.whatsapp import page as wa

    control = SimulatorControl(url)
    async with async_playwright() as playwright:
        for index in range(count):
            ctx = await playwright.chromium.launch_persistent_context(
                str(root / f"plain-{index}"),
                executable_path=find_chromium(),
                headless=True,
                args=list(CHROMIUM_ARGS),
            )
            page = ctx.pages[0] if ctx.pages else await ctx.new_page()
            await page.goto(url, wait_until="domcontentloaded")
            await page.wait_for_selector(wa.SEL_QR_CANVAS, timeout=60_000)
            ref = await page.get_attribute(wa.SEL_QR, "data-ref")
            await asyncio.to_thread(control.scan, ref, f"{PLAIN_PHONES}{index:05d}")
            await page.wait_for_selector(wa.SEL_MAIN[0], timeout=60_000)
        print(PLAIN_READY, flush=True)
        await asyncio.Event().wait()  # killed by the bench


if __name__ == "__main__" and sys.argv[1:2] == ["plain"]:
    asyncio.run(plain(int(sys.argv[2]), sys.argv[3], Path(sys.argv[4])))
