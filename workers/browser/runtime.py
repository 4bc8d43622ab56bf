"""The browser runtime: one thread per worker process owning Playwright.

Playwright objects are bound to the event loop (and thread) that created them, so every
browser of this worker lives on a single dedicated daemon thread running an asyncio loop.
Celery task threads never touch Playwright directly: they hand coroutines to that loop
with :meth:`BrowserRuntime.submit` and wait with a timeout.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import shutil
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from playwright.async_api import Browser, BrowserContext, Playwright, async_playwright

from workers.browser.pool import BrowserPool

log = logging.getLogger(__name__)

T = TypeVar("T")

# Chromium keeps only the last ``--disable-features`` it is given, and Playwright passes its
# own list before ours: ours repeats Playwright's (playwright-core's ``chromiumSwitches``;
# tests/unit/test_chromium_args.py compares it with the installed driver) and adds our own.
PLAYWRIGHT_DISABLED_FEATURES: tuple[str, ...] = (
    "AvoidUnnecessaryBeforeUnloadCheckSync",
    "DestroyProfileOnBrowserClose",
    "HttpsUpgrades",
    "HttpsFirstBalancedModeAutoEnable",
    "LensOverlay",
    "MediaRouter",
    "PaintHolding",
    "ThirdPartyStoragePartitioning",
    "AvoidCorsURLLoaderRestartOnRedirect",
    "TcpPortRandomizationWin",
    "OptimizationHints",
    "NetworkTimeServiceQuerying",
    "AimEnabled",
    "PreconnectToSearch",
    "msForceBrowserSignIn",
    "msEdgeUpdateLaunchServicesPreferredVersion",
)
# Browser UI only, never the page: a headless Chromium has no address bar, yet at every
# launch it preloads the omnibox popup's WebUI (chrome://omnibox-popup.top-chrome) in a
# renderer process of its own, about 0.8 s of CPU (that renderer and the browser
# process's side of it), more than half of what a whole start costs on the simulator.
DISABLED_FEATURES: tuple[str, ...] = ("WebUIOmniboxPopup", "WebUIOmniboxAimPopup")

CHROMIUM_ARGS: tuple[str, ...] = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--disable-features=" + ",".join(PLAYWRIGHT_DISABLED_FEATURES + DISABLED_FEATURES),
)

# Chromium batches localStorage writes and commits them to "Default/Local Storage"
# about 5 s later (StorageAreaImpl's commit delay); a copy of the profile taken sooner
# misses them. Closing the context flushes immediately.
LOCAL_STORAGE_COMMIT_DELAY = 6.0

_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")


class RuntimeTimeout(TimeoutError):
    """A coroutine handed to the browser runtime did not finish in time."""


class RuntimeNotRunning(RuntimeError):
    """The browser runtime is not started (or already stopped)."""


def find_chromium() -> str:
    """Path of the system Chromium: ``CHROMIUM_PATH`` or the first one found on PATH.

    Never downloads a browser; raises ``FileNotFoundError`` if there is none.
    """
    configured = os.environ.get("CHROMIUM_PATH")
    if configured:
        if not os.access(configured, os.X_OK):
            raise FileNotFoundError(f"CHROMIUM_PATH is not executable: {configured}")
        return configured
    for candidate in _CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    raise FileNotFoundError("no Chromium found; set CHROMIUM_PATH")


def browser_processes() -> dict[int, str]:
    """Every running Chromium *browser* process with its ``--user-data-dir`` (pid → folder).

    Renderer, GPU and utility processes carry ``--type=`` and are left out.
    """
    found: dict[int, str] = {}
    for pid, raw in proc_files("cmdline"):
        # Most processes are no Chromium: a byte search skips them before any decoding.
        if USER_DATA_DIR not in raw:
            continue
        args = raw.decode(errors="replace").split("\0")
        if any(a.startswith("--type=") for a in args):
            continue
        for arg in args:
            if arg.startswith("--user-data-dir="):
                found[pid] = arg.split("=", 1)[1]
                break
    # A child the browser forked and has not yet exec'd still shows the browser's command
    # line for a moment: it is the same browser, not a second one.
    return {pid: folder for pid, folder in found.items() if found.get(_parent_pid(pid)) != folder}


def _parent_pid(pid: int) -> int | None:
    """The parent of ``pid`` from ``/proc/<pid>/stat`` (None if it ended meanwhile)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = stat_fields(fh.read())
    except OSError:
        return None
    return int(fields[1]) if len(fields) > 1 else None


def stat_fields(stat: bytes) -> list[bytes]:
    """The fields of a ``/proc/<pid>/stat`` after the command name: state, ppid, pgrp, ...

    The line is "pid (comm) state ppid ...", and comm may hold spaces and parentheses,
    so the split starts after the last ")".
    """
    return stat[stat.rfind(b")") + 2 :].split()


USER_DATA_DIR = b"--user-data-dir="
PROC_READ_SIZE = 65536


def proc_files(name: str) -> Iterator[tuple[int, bytes]]:
    """``(pid, contents of /proc/<pid>/<name>)`` of every process that can be read now."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        raw = _read_whole(f"/proc/{entry}/{name}")
        if raw is not None:
            yield int(entry), raw


def _read_whole(path: str) -> bytes | None:
    """A /proc file's contents, or ``None`` when it cannot be read (ended meanwhile, not ours).

    Plain ``os`` calls: a scan reads one small file per process, and ``open()``'s buffered
    file object costs about as much as the read itself.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        # procfs fills a read as far as the file goes: a short read is the end (one call,
        # not a second one that returns nothing).
        chunks = [os.read(fd, PROC_READ_SIZE)]
        while len(chunks[-1]) == PROC_READ_SIZE:
            chunks.append(os.read(fd, PROC_READ_SIZE))
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


class BrowserRuntime:
    """Owns the asyncio loop thread, Playwright, and every browser context of the worker."""

    def __init__(
        self,
        executable_path: str | None = None,
        headless: bool = True,
        sessions_per_browser: int = 20,
        shared_dir: Path | None = None,
    ) -> None:
        self._executable_path = executable_path or None  # "" (unset setting) = auto
        self._headless = headless
        # Shared browsers keep their temporary profiles here (under the sessions folder),
        # so memory accounting and the worker's own process lists find them like the others.
        self._shared_dir = Path(shared_dir) if shared_dir is not None else None
        self.pool = BrowserPool(self._launch_shared, sessions_per_browser)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._playwright: Playwright | None = None
        self._contexts: set[BrowserContext] = set()
        self._lock = threading.Lock()
        # True while stop() closes contexts, so owners don't mistake it for a crash.
        self.stopping = False

    # -- lifecycle -----------------------------------------------------------------
    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The runtime's event loop (only valid while running)."""
        if self._loop is None:
            raise RuntimeNotRunning("browser runtime is not running")
        return self._loop

    def is_running(self) -> bool:
        """True while the loop thread is alive and Playwright is started."""
        return self._thread is not None and self._thread.is_alive() and self._playwright is not None

    def on_loop_thread(self) -> bool:
        """True when called from the runtime's own thread."""
        return self._thread is not None and threading.current_thread() is self._thread

    def start(self, timeout: float = 30.0) -> None:
        """Start the loop thread and Playwright (idempotent)."""
        with self._lock:
            if self.is_running():
                return
            if self._executable_path is None:
                self._executable_path = find_chromium()
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()
                loop.close()

            self._loop = loop
            self._thread = threading.Thread(target=run, name="browser-runtime", daemon=True)
            self._thread.start()
            ready.wait(timeout)
            try:
                with _driver_tmpdir(self._shared_dir):
                    fut = asyncio.run_coroutine_threadsafe(async_playwright().start(), loop)
                    self._playwright = fut.result(timeout)
            except BaseException:
                loop.call_soon_threadsafe(loop.stop)
                self._loop = self._thread = None
                raise
            log.info("browser runtime started (chromium=%s)", self._executable_path)

    def stop(self, timeout: float = 30.0) -> None:
        """Close every context, then Playwright, then the loop thread (idempotent)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            if loop is None or thread is None:
                return
            self.stopping = True
            try:
                fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
                fut.result(timeout)
            except Exception:  # stop must always finish; the thread is a daemon anyway
                log.exception("browser runtime did not shut down cleanly")
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            self._loop = self._thread = None
            self._playwright = None
            self.stopping = False
            log.info("browser runtime stopped")

    async def _shutdown(self) -> None:
        for ctx in list(self._contexts):
            try:
                await asyncio.wait_for(ctx.close(), 10)
            except Exception:
                log.warning("a browser context did not close cleanly", exc_info=True)
        self._contexts.clear()
        await self.pool.close()
        if self._playwright is not None:
            await self._playwright.stop()
        # Cancel watcher tasks so the loop stops without "Task was destroyed" noise.
        current = asyncio.current_task()
        for task in asyncio.all_tasks():
            if task is not current:
                task.cancel()

    # -- work ----------------------------------------------------------------------
    def submit(self, coro: Coroutine[Any, Any, T], timeout: float | None = 60.0) -> T:
        """Run ``coro`` on the runtime loop and wait for its result.

        Raises ``RuntimeTimeout`` (and cancels the coroutine) if it does not finish in
        ``timeout`` seconds. Must not be called from the loop thread (it would deadlock).
        """
        if self.on_loop_thread():
            coro.close()
            raise RuntimeError("submit() called from the browser runtime thread")
        if not self.is_running():
            coro.close()
            raise RuntimeNotRunning("browser runtime is not running")
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise RuntimeTimeout(f"browser runtime task did not finish in {timeout}s") from None

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future:
        """Schedule ``coro`` on the loop without waiting (fire and forget)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    async def launch_profile(self, profile_dir: Path) -> BrowserContext:
        """Launch headless Chromium on a persistent profile folder (loop thread only)."""
        if self._playwright is None:
            raise RuntimeNotRunning("browser runtime is not running")
        profile_dir = Path(profile_dir)
        profile_dir.mkdir(parents=True, exist_ok=True)
        ctx = await self._playwright.chromium.launch_persistent_context(
            str(profile_dir), **self._launch_options()
        )
        self._track(ctx)
        return ctx

    async def new_context(self) -> BrowserContext:
        """A non-persistent context in a shared browser with room (loop thread only)."""
        if self._playwright is None:
            raise RuntimeNotRunning("browser runtime is not running")
        ctx = await self.pool.new_context()
        self._track(ctx)
        return ctx

    async def _launch_shared(self) -> Browser:
        if self._playwright is None:
            raise RuntimeNotRunning("browser runtime is not running")
        return await self._playwright.chromium.launch(**self._launch_options())

    def _launch_options(self) -> dict[str, Any]:
        """Options of every Chromium this runtime launches, persistent or shared."""
        return {
            "executable_path": self._executable_path,
            "headless": self._headless,
            "args": list(CHROMIUM_ARGS),
            # The worker process handles signals itself; Chromium must not die with
            # Ctrl-C before we had a chance to close profiles cleanly.
            "handle_sigint": False,
            "handle_sigterm": False,
            "handle_sighup": False,
            # The worker's own environment, not the driver's (whose TMPDIR may point into the
            # sessions folder, see _driver_tmpdir): Chromium's sockets live in TMPDIR, and a
            # deep path is too long for them.
            "env": dict(os.environ),
        }

    def _track(self, ctx: BrowserContext) -> None:
        self._contexts.add(ctx)
        ctx.on("close", lambda _ctx: self._contexts.discard(ctx))

    def context_count(self) -> int:
        """How many browser contexts this runtime currently holds open."""
        return len(self._contexts)


@contextmanager
def _driver_tmpdir(folder: Path | None) -> Iterator[None]:
    """Start Playwright's driver with ``TMPDIR=folder`` (when given).

    The driver makes each shared browser's temporary ``--user-data-dir`` under its own
    temp folder, and takes its environment once, when it starts: pointing it into the
    sessions folder makes shared browsers show up wherever this worker's browsers are
    looked for (memory, tests), while cleanup leaves them alone (not a session folder).
    """
    if folder is None:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    before = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(folder)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = before
