"""Cleanup on the workers: the database half once, and each worker's local half on that worker.

The cleanup job runs on the shared ``control`` queue, so whichever worker picks it up
applies the database cleanup (see :mod:`shared.services.maintenance`) and then fans out
one ``worker_cleanup`` job per live worker on that worker's own queue ``worker.<id>``.
Only the worker itself can see its ``SESSIONS_DIR`` and its processes, so each child
job plans and applies, on its own worker:

- **profile folders** of sessions it neither runs nor owns (``profile_folders_removed``);
- **leftover Chromium** browser processes under its ``SESSIONS_DIR`` whose profile is
  not a live context of its browser runtime (zombies from a crash): SIGTERM, then
  SIGKILL after ``CLEANUP_KILL_GRACE`` seconds (``browsers_killed``);
- **stale locks** (``SingletonLock``/``SingletonSocket``/``SingletonCookie``) in the
  profile folders it keeps whose Chromium is not running: a lock left by a dead
  Chromium makes the next launch on that folder fail (``stale_locks_removed``);
- **scratch folders** no Chromium uses any more (a global cleanup only: they belong to no
  company): the temporary profiles of shared browsers (``BROWSER_MODE=shared``) and of
  profile → shared conversions, left behind when a worker was killed (counted with the
  profile folders).

Scoping is the same for all three: a company's cleanup only touches leftovers of that
company's sessions (a folder of another company's session, or of no session at all, is
left alone); only a global cleanup (beat's) touches folders of no session. A dry run
computes the very same plan and changes nothing.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.jobs import JobPublisher
from shared.lazy_executor import LazyExecutor
from shared.services import maintenance as maintenance_services
from workers.browser.runtime import browser_processes, proc_files, stat_fields
from workers.context import SHARED_BROWSERS_DIR, WorkerContext
from workers.whatsapp.modes import CONVERSIONS_DIR
from workers.whatsapp.sessions import SESSION_ID_RE

log = logging.getLogger(__name__)

# The files a Chromium keeps in its profile folder while it runs (symlinks, often dangling).
LOCK_FILES: tuple[str, ...] = ("SingletonLock", "SingletonSocket", "SingletonCookie")
# Under SESSIONS_DIR: temporary profiles of shared browsers and of conversions.
SCRATCH_DIRS: tuple[str, ...] = (SHARED_BROWSERS_DIR, CONVERSIONS_DIR)
# A scratch folder younger than this may belong to a Chromium that is only starting.
SCRATCH_MIN_AGE = 60.0


def cleanup(
    ctx: WorkerContext, publisher: JobPublisher, company_id: str | None, parent_id: str | None = None
) -> dict[str, Any]:
    """The cleanup job (``control`` queue): the database cleanup, then every live worker's part.

    Waits up to ``CLEANUP_WORKER_WAIT`` for the workers' ``worker_cleanup`` jobs; the
    result sums their counts, keeps each one's detail under ``workers`` and names the
    live workers that did not answer in ``workers_unanswered``. This worker does its own
    part here, while the others do theirs: a child job to itself would only add a
    round trip through the broker and the jobs table.
    """
    # This worker's browsers are looked for (a /proc scan) while the first read is on the wire.
    scan = _scanner.get().submit(browser_processes)
    # One read tells both whether the database half has work and whom to fan out to.
    survey = maintenance_services.survey_cleanup(ctx.uow(), company_id)
    metrics = maintenance_services.apply_cleanup(ctx.uow(), company_id, due=survey.due)
    children = maintenance_services.fan_out_worker_cleanups(
        ctx.uow(),
        publisher,
        company_id,
        dry_run=False,
        parent_id=parent_id,
        exclude=ctx.worker_id,
        live=survey.live_workers,
    )
    try:
        # A database half with work may take long: its scan would be stale, so the plan makes its own.
        own = local_cleanup(ctx, company_id, dry_run=False, browsers=None if survey.due else scan.result())
    except Exception as exc:
        log.exception("worker %s: its own part of the cleanup failed", ctx.worker_id)
        own = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    return metrics | maintenance_services.gather_worker_cleanups(
        ctx.uow(), children, ctx.settings.CLEANUP_WORKER_WAIT, done_here={ctx.worker_id: own}
    )


# The thread that scans /proc for a cleanup beside its database work (one per process).
_scanner = LazyExecutor(max_workers=1, thread_name_prefix="cleanup-scan")


@dataclass
class LocalPlan:
    """What this worker's part of a cleanup would remove."""

    stray_folders: list[Path] = field(default_factory=list)
    zombies: dict[int, str] = field(default_factory=dict)  # browser pid → its profile folder
    stale_locks: list[Path] = field(default_factory=list)

    def metrics(self) -> dict[str, Any]:
        """Counts (the names of :data:`maintenance_services.LOCAL_METRICS`) and what they count."""
        return {
            "profile_folders_removed": len(self.stray_folders),
            "browsers_killed": len(self.zombies),
            "stale_locks_removed": len(self.stale_locks),
            "profile_folders": sorted(folder.name for folder in self.stray_folders),
            "browser_pids": sorted(self.zombies),
            "stale_locks": sorted(f"{lock.parent.name}/{lock.name}" for lock in self.stale_locks),
        }


def local_cleanup(
    ctx: WorkerContext, company_id: str | None, dry_run: bool, browsers: dict[int, str] | None = None
) -> dict[str, Any]:
    """This worker's part of a cleanup (a ``worker_cleanup`` job): plan, and apply unless ``dry_run``.

    ``browsers`` is a :func:`browser_processes` scan made a moment ago (scanned here when not given).
    """
    plan = plan_local(ctx, company_id, browsers)
    if not dry_run:
        apply_local(ctx, plan, company_id)
    return {"worker_id": ctx.worker_id, "dry_run": dry_run, **plan.metrics()}


def _busy_ids(ctx: WorkerContext) -> set[str]:
    """Sessions whose profile this worker's runtime is using or about to use."""
    return ctx.manager.busy_ids()


def plan_local(
    ctx: WorkerContext, company_id: str | None, browsers: dict[int, str] | None = None
) -> LocalPlan:
    """Compute this worker's part of a cleanup (changes nothing).

    A folder is kept when its session runs here, is tracked here, or is owned by this
    worker in the database (a stopped session reuses its folder). Locks are looked for
    only in kept folders (a stray folder goes as a whole). ``browsers``: as in
    :func:`local_cleanup`; whatever it holds is checked again before any kill.
    """
    root = Path(os.path.abspath(ctx.settings.SESSIONS_DIR))
    if not root.is_dir():
        return LocalPlan()
    busy = _busy_ids(ctx)
    # Browsers of this worker's folders only: another worker's SESSIONS_DIR may be on this host.
    # Each keeps its --user-data-dir exactly as given, so that the kill can check it again.
    raw = dict(browser_processes() if browsers is None else browsers)
    browsers = {
        pid: Path(os.path.abspath(f)) for pid, f in raw.items() if Path(os.path.abspath(f)).parent == root
    }
    folders = sorted(f for f in root.iterdir() if f.is_dir() and SESSION_ID_RE.match(f.name))
    names = sorted({f.name for f in folders} | {folder.name for folder in browsers.values()})
    owners = maintenance_services.session_owners(ctx.uow(), [n for n in names if SESSION_ID_RE.match(n)])

    def in_scope(name: str) -> bool:
        if company_id is None:
            return True
        owner = owners.get(name)
        return owner is not None and owner[0] == company_id

    keep = busy | set(ctx.tracked()) | {sid for sid, (_, worker) in owners.items() if worker == ctx.worker_id}
    plan = LocalPlan()
    plan.zombies = {
        pid: raw[pid]
        for pid, folder in sorted(browsers.items())
        if folder.name not in busy and in_scope(folder.name)
    }
    running = {folder.name for pid, folder in browsers.items() if pid not in plan.zombies}
    for folder in folders:
        if not in_scope(folder.name):
            continue
        if folder.name not in keep:
            plan.stray_folders.append(folder)
        elif folder.name not in busy and folder.name not in running:
            # os.path.lexists: the lock files are symlinks, usually to nothing.
            plan.stale_locks += [folder / n for n in LOCK_FILES if os.path.lexists(folder / n)]
    if company_id is None:
        plan.stray_folders += _unused_scratch(root, {os.path.abspath(f) for f in raw.values()})
    return plan


def _unused_scratch(root: Path, in_use: set[str]) -> list[Path]:
    """Scratch folders (:data:`SCRATCH_DIRS`) that no running Chromium uses, a minute old at least."""
    found = []
    now = time.time()
    for scratch in SCRATCH_DIRS:
        base = root / scratch
        if not base.is_dir():
            continue
        for folder in base.iterdir():
            try:
                old = now - folder.stat().st_mtime >= SCRATCH_MIN_AGE
            except OSError:  # gone meanwhile
                continue
            if folder.is_dir() and old and os.path.abspath(folder) not in in_use:
                found.append(folder)
    return sorted(found)


def apply_local(ctx: WorkerContext, plan: LocalPlan, company_id: str | None) -> None:
    """Carry out a local plan: leftover browsers first (they hold folders and locks), then the rest."""
    grace = ctx.settings.CLEANUP_KILL_GRACE
    # The plan is a moment old: a session may have been started on one of its folders since.
    # Whatever became busy is dropped from the plan (and so from the counts), never touched.
    busy = _busy_ids(ctx)
    plan.zombies = {pid: f for pid, f in plan.zombies.items() if Path(f).name not in busy}
    for pid, folder in plan.zombies.items():
        log.warning(
            "worker %s cleanup (company %s): killing leftover Chromium %d on %s",
            ctx.worker_id,
            company_id or "*",
            pid,
            folder,
        )
        kill_browser(pid, folder, grace)
    busy = _busy_ids(ctx)
    # Looking at the processes again is only needed when there are locks to check against them.
    running = {os.path.abspath(f) for f in browser_processes().values()} if plan.stale_locks else set()
    plan.stale_locks = [
        lock
        for lock in plan.stale_locks
        if lock.parent.name not in busy and os.path.abspath(lock.parent) not in running
    ]
    plan.stray_folders = [folder for folder in plan.stray_folders if folder.name not in busy]
    for lock in plan.stale_locks:
        try:
            lock.unlink()
        except FileNotFoundError:
            pass  # a Chromium that got SIGTERM removes its own lock on the way out
    for folder in plan.stray_folders:
        shutil.rmtree(folder, ignore_errors=True)
    if plan.zombies or plan.stale_locks or plan.stray_folders:
        log.info(
            "worker %s cleanup (company %s): %d folders removed, %d browsers killed, %d stale locks removed",
            ctx.worker_id,
            company_id or "*",
            len(plan.stray_folders),
            len(plan.zombies),
            len(plan.stale_locks),
        )


def _runs_on(pid: int, folder: str) -> bool:
    """Whether ``pid`` is still a Chromium browser on ``folder`` (not exited, not reused)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            args = fh.read().decode(errors="replace").split("\0")
    except OSError:
        return False
    return f"--user-data-dir={folder}" in args


def kill_browser(pid: int, folder: str, grace: float) -> bool:
    """SIGTERM a Chromium browser (its process group when it leads one), SIGKILL it after ``grace``.

    The process is checked to still run on ``folder`` before each signal (or, for a group,
    that one of the group still runs: a group's id is not reused while it has members), so a
    pid reused meanwhile is never hit. Returns whether it is gone, its whole group with it.
    """
    if not _runs_on(pid, folder):
        return True
    try:
        # Chromium launched by Playwright (or by hand with setsid) leads its own group:
        # signalling the group takes its renderers and zygotes with it.
        group = os.getpgid(pid) == pid
    except ProcessLookupError:
        return True
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        if not _alive(pid, folder, group):
            return True
        try:
            if group:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _alive(pid, folder, group):
            time.sleep(0.05)
    return not _alive(pid, folder, group)


def _alive(pid: int, folder: str, group: bool) -> bool:
    """Whether the browser runs, or (``group``) any process of its group does: a renderer or
    utility process that outlives the browser for a moment may still write into ``folder``,
    which would come back after the cleanup removed it."""
    return _runs_on(pid, folder) or (group and _group_runs(pid))


def _group_runs(pgid: int) -> bool:
    """Whether a process of group ``pgid`` is still running (exited, unreaped ones do not count)."""
    for _pid, raw in proc_files("stat"):
        fields = stat_fields(raw)
        if len(fields) > 2 and fields[2] == str(pgid).encode() and fields[0] not in (b"Z", b"X"):
            return True
    return False


def remove_stray_profiles(ctx: WorkerContext, company_id: str | None = None) -> int:
    """Delete profile folders of sessions this worker neither runs nor owns (within the scope)."""
    plan = plan_local(ctx, company_id)
    for folder in plan.stray_folders:
        shutil.rmtree(folder, ignore_errors=True)
    return len(plan.stray_folders)
