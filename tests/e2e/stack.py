"""The real stack for end-to-end tests: Celery worker processes, the simulator, the API.

Workers are started as ``python -m workers`` subprocesses against the run's PostgreSQL
database and Redis key prefix; they drive the system Chromium against the simulator.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from shared.config import Settings
from shared.models import Worker
from shared.services.workers import is_alive
from shared.uow import UnitOfWork
from workers.browser.runtime import browser_processes

T = TypeVar("T")

# Fast clocks so the tests need not wait for real heartbeats and leases.
WORKER_ENV = {
    "HEARTBEAT_INTERVAL": "0.5",
    "WORKER_LEASE": "4",
    "SYNC_INTERVAL": "2",
    "LOGIN_STATE_SAVE_INTERVAL": "60",
    "QR_MAX_ROTATIONS": "3",
    "BROWSER_TIMEOUT": "40",
}


def wait_until(
    probe: Callable[[], T], timeout: float = 30.0, interval: float = 0.2, message: str = "condition"
) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}; last value: {last!r}")


def browser_pids(profile_root: Path) -> dict[int, str]:
    """Chromium browser processes (not renderers) running a profile under ``profile_root``."""
    return {
        pid: folder for pid, folder in browser_processes().items() if folder.startswith(str(profile_root))
    }


class WorkerProcess:
    """One real ZapHub Celery worker (``python -m workers``)."""

    def __init__(
        self,
        worker_id: str,
        settings: Settings,
        wa_url: str,
        root: Path,
        capacity: int = 20,
        env: dict[str, str] | None = None,
    ) -> None:
        self.worker_id = worker_id
        self.settings = settings
        self.sessions_dir = root / f"sessions-{worker_id}"
        self.log_path = root / f"worker-{worker_id}.log"
        self.env = service_env(
            settings,
            {
                **WORKER_ENV,
                "WORKER_ID": worker_id,
                "WORKER_CAPACITY": str(capacity),
                "SESSIONS_DIR": str(self.sessions_dir),
                "WA_WEB_URL": wa_url,
                **(env or {}),  # a test's own settings, e.g. a short republish threshold
            },
        )
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> WorkerProcess:
        """Start the worker and wait until it heartbeats."""
        started_at = time.time()
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "workers", "--loglevel=INFO"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

        def registered() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"worker {self.worker_id} exited:\n{self.log_tail()}")
            with UnitOfWork(self.settings) as uow:
                worker = uow.db.get(Worker, self.worker_id)
                return bool(
                    worker and worker.started_at.timestamp() >= started_at - 1 and is_alive(worker, 4)
                )

        wait_until(registered, timeout, message=f"worker {self.worker_id} to register")
        return self

    def terminate(self, timeout: float = 60) -> None:
        """Graceful stop (SIGTERM): login states saved, browsers closed."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """Sudden death (SIGKILL of the worker and its browsers): nothing is saved."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        for pid in browser_pids(self.sessions_dir):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def browsers(self) -> dict[int, str]:
        """This worker's live Chromium browser processes (pid → profile folder)."""
        return browser_pids(self.sessions_dir)

    def log_tail(self, lines: int = 60) -> str:
        """The end of the worker's log, for failure messages."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def service_env(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a project process on ``settings``' database and broker."""
    return {
        **os.environ,
        "DATABASE_URL": settings.DATABASE_URL,
        "REDIS_URL": settings.REDIS_URL,
        "BROKER_KEY_PREFIX": settings.BROKER_KEY_PREFIX,
        "SECRET_KEY": settings.SECRET_KEY,
        **(extra or {}),
    }


class ServiceProcess:
    """A project process in its own process group, logging to a file."""

    ready_marker = ""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.args, self.env, self.log_path = args, env, log_path
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> ServiceProcess:
        """Start it and wait for its ready line in the log."""
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.args} exited:\n{self.log_tail()}")
            return self.ready_marker in self.log_path.read_text(errors="replace")[offset:]

        wait_until(ready, timeout, message=f"{self.args[2]} to be ready")
        return self

    def kill(self) -> None:
        """SIGKILL the whole process group: nothing is finished or acknowledged."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class Beat(ServiceProcess):
    """The project's ``celery beat``; sync and cleanup tick rarely unless ``env`` says otherwise."""

    ready_marker = "beat: Starting"

    def __init__(self, settings: Settings, root: Path, env: dict[str, str] | None = None) -> None:
        super().__init__(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "workers.celery_app",
                "beat",
                f"--schedule={root / 'beat-schedule'}",
                "--loglevel=INFO",
            ],
            service_env(settings, {"SYNC_INTERVAL": "3600", "CLEANUP_INTERVAL": "3600", **(env or {})}),
            root / "beat.log",
        )
