"""One cleanup reaches every live worker: stray folders, leftover Chromium, stale locks.

Two real workers, each with its own SESSIONS_DIR; leftovers are made by hand (folders,
a Chromium launched like the runtime launches it but owned by nobody, a lock symlink
left by a dead Chromium) and one cleanup must clear them on both workers, within its
scope, while the dry run reports the same numbers and removes nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from shared.celery_factory import create_celery
from shared.models import Job, WhatsappSession, Worker, utcnow
from shared.uow import UnitOfWork
from tests.e2e.stack import wait_until
from workers.browser.runtime import CHROMIUM_ARGS, browser_processes, find_chromium

FAST = {"CLEANUP_WORKER_WAIT": "8", "CLEANUP_KILL_GRACE": "1"}
LOCAL = ("profile_folders_removed", "browsers_killed", "stale_locks_removed")


class Zombies:
    """Chromium browsers started by hand on a profile folder, each in its own process group."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen] = []

    def start(self, profile: Path) -> subprocess.Popen:
        process = subprocess.Popen(
            [find_chromium(), "--headless", f"--user-data-dir={profile}", *CHROMIUM_ARGS, "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.processes.append(process)
        # Running, and holding its profile lock, like a browser a crashed worker left behind.
        wait_until(
            lambda: (
                browser_processes().get(process.pid) == str(profile)
                and os.path.lexists(profile / "SingletonLock")
            ),
            20,
            message=f"a Chromium on {profile}",
        )
        return process

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


@pytest.fixture
def zombies() -> Iterator[Zombies]:
    started = Zombies()
    yield started
    started.stop()


def add_session(settings, company_id: str, name: str, worker_id: str | None = None) -> str:
    """An inactive session row (nothing starts it; too recent to be purged): its id."""
    with UnitOfWork(settings) as uow:
        session = WhatsappSession(company_id=company_id, name=name, is_active=False, worker_id=worker_id)
        uow.db.add(session)
        uow.commit()
        return session.id


def profile(root: Path, name: str, lock: bool = False) -> Path:
    """A profile folder; with ``lock`` a SingletonLock symlink to a pid that no longer runs."""
    folder = root / name
    (folder / "Default").mkdir(parents=True)
    if lock:
        os.symlink("deadhost-999999", folder / "SingletonLock")
    return folder


def gone(process: subprocess.Popen) -> bool:
    return process.poll() is not None


def test_one_beat_cleanup_clears_every_workers_leftovers(start_worker, settings, tenant, zombies):
    w1 = start_worker("w1", env=FAST)
    w2 = start_worker("w2", env=FAST)
    # A worker that heartbeats but consumes nothing: the cleanup must not wait for it forever.
    with UnitOfWork(settings) as uow:
        uow.db.add(Worker(id="ghost", queue="worker.ghost", heartbeat_at=utcnow() + timedelta(minutes=5)))
        uow.commit()
    stray1 = profile(w1.sessions_dir, "a" * 32)
    stray2 = profile(w2.sessions_dir, "b" * 32)
    owned = add_session(settings, tenant.company_id, "parked", worker_id="w2")
    kept = profile(w2.sessions_dir, owned, lock=True)  # w2's own session, its Chromium long dead
    zombie = zombies.start(w1.sessions_dir / "zombie")  # a folder of no session at all

    create_celery(settings).send_task("zaphub.beat.cleanup", queue="control")

    def finished() -> Job | None:
        with UnitOfWork(settings) as uow:
            return uow.db.scalar(
                select(Job).where(
                    Job.kind == "cleanup", Job.company_id.is_(None), Job.finished_at.is_not(None)
                )
            )

    job = wait_until(finished, 60, message="the beat cleanup")
    result = job.result_dict
    assert job.status == "succeeded" and job.noop is False, job.error
    assert {k: result[k] for k in LOCAL} == {
        "profile_folders_removed": 3,
        "browsers_killed": 1,
        "stale_locks_removed": 1,
    }
    assert result["workers_unanswered"] == ["ghost"]
    assert sorted(result["workers"]) == ["w1", "w2"]
    one, two = result["workers"]["w1"], result["workers"]["w2"]
    assert one["profile_folders"] == ["a" * 32, "zombie"] and one["browser_pids"] == [zombie.pid]
    assert two["profile_folders"] == ["b" * 32] and two["stale_locks"] == [f"{owned}/SingletonLock"]
    assert all(result[k] == one[k] + two[k] for k in LOCAL)

    wait_until(lambda: gone(zombie), 10, message="the leftover Chromium to exit")
    assert not stray1.exists() and not stray2.exists() and not (w1.sessions_dir / "zombie").exists()
    assert kept.is_dir() and not os.path.lexists(kept / "SingletonLock")  # folder kept, lock gone
    assert w1.browsers() == {} and w2.browsers() == {}


def test_company_cleanup_and_its_dry_run_cover_both_workers_within_the_company(
    api, client, start_worker, settings, tenant, other_tenant, zombies
):
    w1 = start_worker("w1", env=FAST)
    w2 = start_worker("w2", env=FAST)
    ours = {
        # Sessions of the company that no worker owns: their folders are leftovers anywhere.
        "w1": profile(w1.sessions_dir, add_session(settings, tenant.company_id, "old1")),
        "w2": profile(w2.sessions_dir, add_session(settings, tenant.company_id, "old2")),
    }
    crashed = add_session(settings, tenant.company_id, "crashed")
    zombie_folder = w2.sessions_dir / crashed
    zombie = zombies.start(zombie_folder)
    parked = add_session(settings, tenant.company_id, "parked", worker_id="w1")
    locked = profile(w1.sessions_dir, parked, lock=True)
    untouched = [
        profile(w1.sessions_dir, add_session(settings, other_tenant.company_id, "theirs")),
        profile(w2.sessions_dir, "c" * 32),  # no session at all: only a global cleanup removes it
        profile(w2.sessions_dir, add_session(settings, other_tenant.company_id, "p", "w2"), lock=True),
    ]
    expected = {"profile_folders_removed": 3, "browsers_killed": 1, "stale_locks_removed": 1}

    preview = api.call("get", "/session/cleanup", 200).get_json()
    assert preview["dry_run"] is True and preview["workers_unanswered"] == []
    assert {k: preview[k] for k in LOCAL} == expected
    assert preview["workers"]["w1"]["profile_folders"] == [ours["w1"].name]
    assert preview["workers"]["w1"]["stale_locks"] == [f"{parked}/SingletonLock"]
    assert sorted(preview["workers"]["w2"]["profile_folders"]) == sorted([ours["w2"].name, crashed])
    assert preview["workers"]["w2"]["browser_pids"] == [zombie.pid]
    # The dry run removed nothing, killed nothing.
    assert all(folder.is_dir() for folder in ours.values()) and zombie.poll() is None
    assert os.path.lexists(locked / "SingletonLock")
    # An agent sees the same preview (reading is not a write).
    agent = client.get("/session/cleanup", headers=tenant.agent).get_json()
    assert {k: agent[k] for k in LOCAL} == expected

    job = api.call("post", "/session/cleanup", 202).get_json()
    done = api.wait_job(job["id"])
    assert done["status"] == "succeeded", done
    result = done["result"]
    assert {k: result[k] for k in LOCAL} == expected and result["workers_unanswered"] == []
    for worker_id in ("w1", "w2"):
        mine, seen = result["workers"][worker_id], preview["workers"][worker_id]
        assert {k: mine[k] for k in LOCAL} == {k: seen[k] for k in LOCAL}
        assert mine["profile_folders"] == seen["profile_folders"] and mine["dry_run"] is False

    wait_until(lambda: gone(zombie), 10, message="the leftover Chromium to exit")
    assert not any(folder.exists() for folder in ours.values()) and not zombie_folder.exists()
    assert locked.is_dir() and not os.path.lexists(locked / "SingletonLock")
    assert all(folder.is_dir() for folder in untouched)
    assert os.path.lexists(untouched[2] / "SingletonLock")  # another company's lock
    again = api.call("get", "/session/cleanup", 200).get_json()
    assert {k: again[k] for k in LOCAL} == dict.fromkeys(LOCAL, 0)
