"""``make bench``: figures for the API and for live sessions, printed, never asserted.

API: latency of listing and stats over many sessions (SQLite file and PostgreSQL).
Sessions: a real worker and Chromium against the simulator — time to QR, to
CONNECTED after a scan, to CONNECTED after a restart, and Chromium memory per session.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from functools import partial
from pathlib import Path

from sqlalchemy import insert

from api import create_app
from shared.config import Settings, set_settings
from shared.db import engine_for
from shared.migrate import upgrade
from shared.models import Company, WhatsappSession, new_id
from shared.services import accounts
from shared.uow import UnitOfWork
from tests.conftest import REDIS_URL, _admin_execute, _postgres_url_for
from tests.e2e.stack import WORKER_ENV, WorkerProcess, browser_pids, wait_until
from tests.simulator import SimulatorControl, SimulatorServer

ROWS = 20_000
REQUESTS = 200
LIVE_SESSIONS = 3


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    return f"p50 {statistics.median(ordered) * 1000:6.2f} ms   p95 {p95 * 1000:6.2f} ms"


def seed(settings: Settings) -> dict[str, str]:
    accounts.create_company(UnitOfWork(settings), "bench")
    _, token = accounts.create_user(UnitOfWork(settings), "bench", "b@bench.io", "admin")
    with UnitOfWork(settings) as uow:
        cid = uow.db.query(Company.id).scalar()
    statuses = ["CONNECTED", "QRCODE", "DISCONNECTED", "ERROR", "CONNECTING"]
    rows = [
        {
            "id": new_id(),
            "company_id": cid,
            "name": f"s{i}",
            "status": statuses[i % 5],
            "is_active": i % 7 != 0,
            "worker_id": f"w{i % 4}",
            "config": "{}",
            "epoch": 0,
        }
        for i in range(ROWS)
    ]
    with engine_for(settings.DATABASE_URL).begin() as connection:
        connection.execute(insert(WhatsappSession), rows)
    return {"Authorization": f"Bearer {token}"}


def bench_api(label: str, database_url: str) -> None:
    settings = Settings.from_env(
        {},
        DATABASE_URL=database_url,
        REDIS_URL=REDIS_URL,
        BROKER_KEY_PREFIX=f"zaphub-bench-{uuid.uuid4().hex[:6]}:",
        SECRET_KEY="bench",
    )
    set_settings(settings)
    upgrade(database_url)
    headers = seed(settings)
    client = create_app(settings).test_client()
    for path in (
        "/session?per_page=20",
        "/session?status=connected&is_active=true&page=50",
        "/session/stats",
        "/session/s123",
        "/session/cleanup",
    ):
        samples = []
        for _ in range(REQUESTS):
            started = time.perf_counter()
            response = client.get(path, headers=headers)
            samples.append(time.perf_counter() - started)
            assert response.status_code == 200, response.data
        print(f"  {label:10s} GET {path:48s} {percentiles(samples)}")


def status_is(row, name: str, status: str) -> bool:
    """Whether session ``name`` has ``status`` (and, once connected, a phone number)."""
    current = row(name)
    return current["status"] == status and (status != "CONNECTED" or bool(current["phone_number"]))


def process_tree(pid: int) -> set[int]:
    """``pid`` and all its descendants."""
    tree = {pid}
    changed = True
    while changed:
        changed = False
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in tree:
                continue
            try:
                ppid = int((entry / "stat").read_text().rsplit(") ", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid in tree:
                tree.add(int(entry.name))
                changed = True
    return tree


def pss_mib(pids: set[int]) -> float:
    """Proportional set size of ``pids`` in MiB: shared pages are split, not counted twice."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def bench_sessions(database_url: str, root: Path) -> None:
    settings = Settings.from_env(
        {},
        DATABASE_URL=database_url,
        REDIS_URL=REDIS_URL,
        BROKER_KEY_PREFIX=f"zaphub-bench-{uuid.uuid4().hex[:6]}:",
        SECRET_KEY="bench",
        WORKER_LEASE=float(WORKER_ENV["WORKER_LEASE"]),
    )
    set_settings(settings)
    upgrade(database_url)
    accounts.create_company(UnitOfWork(settings), "live")
    _, token = accounts.create_user(UnitOfWork(settings), "live", "l@live.io", "admin")
    headers = {"Authorization": f"Bearer {token}"}
    client = create_app(settings).test_client()
    with SimulatorServer() as simulator:
        sim = SimulatorControl(simulator.url)
        worker = WorkerProcess("bench", settings, simulator.url, root).start()
        try:
            to_qr, to_connected, to_restarted = [], [], []

            def row(name: str) -> dict:
                return client.get(f"/session/{name}", headers=headers).get_json()

            def job_done(job_id: str) -> bool:
                return client.get(f"/jobs/{job_id}", headers=headers).get_json()["status"] == "succeeded"

            for index in range(LIVE_SESSIONS):
                name = f"live{index}"
                started = time.perf_counter()
                client.post("/session", json={"name": name}, headers=headers)
                wait_until(partial(status_is, row, name, "QRCODE"), 60)
                to_qr.append(time.perf_counter() - started)
                qr = client.get(f"/session/{name}/qr", headers=headers).get_json()["qr_code"]
                started = time.perf_counter()
                sim.scan(qr, phone=f"55119000{index:05d}")
                wait_until(partial(status_is, row, name, "CONNECTED"), 60)
                to_connected.append(time.perf_counter() - started)
                wait_until(partial(lambda n: row(n)["has_login_state"], name), 60)
            for index in range(LIVE_SESSIONS):
                name = f"live{index}"
                started = time.perf_counter()
                job = client.post(f"/session/{name}/restart", headers=headers).get_json()["job"]["id"]
                wait_until(partial(job_done, job), 90)
                wait_until(partial(status_is, row, name, "CONNECTED"), 60)
                to_restarted.append(time.perf_counter() - started)
            browser_trees = [process_tree(pid) for pid in browser_pids(worker.sessions_dir)]
            memory = [pss_mib(tree) for tree in browser_trees]
            worker_only = process_tree(worker.process.pid) - set().union(*browser_trees)
            print(f"  create → QRCODE           mean {statistics.mean(to_qr):5.2f} s  (n={len(to_qr)})")
            print(f"  scan → CONNECTED          mean {statistics.mean(to_connected):5.2f} s")
            print(f"  restart → CONNECTED       mean {statistics.mean(to_restarted):5.2f} s (no scan)")
            print(
                f"  Chromium per session      mean {statistics.mean(memory):6.1f} MiB PSS "
                f"(browser + its renderers, {len(memory)} sessions)"
            )
            print(
                f"  worker process            {pss_mib(worker_only):6.1f} MiB PSS "
                "(Celery + Playwright driver, without browsers)"
            )
        finally:
            worker.terminate()
            worker.kill()


def main() -> None:
    run = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        print(f"API latency, {ROWS} sessions in one company, {REQUESTS} requests per route:")
        bench_api("sqlite", f"sqlite:///{root / 'bench.db'}")
        pg_name = f"zaphub_bench_{run}"
        _admin_execute(f'CREATE DATABASE "{pg_name}"')
        try:
            bench_api("postgresql", _postgres_url_for(pg_name))
            print(f"Live sessions (worker + Chromium + simulator, {LIVE_SESSIONS} sessions, real clock):")
            _admin_execute(f'CREATE DATABASE "{pg_name}_live"')
            bench_sessions(_postgres_url_for(f"{pg_name}_live"), root)
        finally:
            from shared.db import dispose_all

            dispose_all()
            _admin_execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
            _admin_execute(f'DROP DATABASE IF EXISTS "{pg_name}_live" WITH (FORCE)')


if __name__ == "__main__":
    main()
