"""``make bench``: figures for the API and for live sessions, printed, never asserted.

API: latency of listing and stats over many sessions (SQLite file and PostgreSQL).
Sessions: a real worker and Chromium against the simulator — time to QR, to
CONNECTED after a scan, to CONNECTED after a restart, and Chromium memory per session.
Messages: the same, one linked session — inbound throughput and latency (the fake phone
pushes, until the row is stored), send latency (API call until the simulator has it)
and the spacing of a burst of sends at the default per-session rate.
"""

from __future__ import annotations

import math
import random
import statistics
import tempfile
import threading
import time
import uuid
from functools import partial
from pathlib import Path

from sqlalchemy import func, insert, select

from api import create_app
from shared.config import Settings, set_settings
from shared.db import engine_for
from shared.migrate import upgrade
from shared.models import Company, Message, WhatsappSession, new_id
from shared.services import accounts
from shared.services.send_queue import aware
from shared.uow import UnitOfWork
from tests.conftest import REDIS_URL, _admin_execute, _postgres_url_for
from tests.e2e.stack import WORKER_ENV, WorkerProcess, browser_pids, wait_until
from tests.simulator import SimulatorControl, SimulatorServer

ROWS = 20_000
REQUESTS = 200
LIVE_SESSIONS = 3
MESSAGES_IN = 300  # pushed by the fake phone ...
PUSH_THREADS = 3  # ... from this many threads at once ...
CONTACTS = 6  # ... on behalf of this many contacts
SINGLE_PUSHES = 10  # the baseline: one at a time, each waited for
SENDS = 50  # sent one after another, each waited for at the simulator
PACED_SENDS = 5  # a burst at the default rate
# The send latency is measured with a pace that does not dominate it: one each 10 ms.
FAST_SENDS = {"SEND_RATE_PER_MINUTE": "6000", "SEND_JITTER_SECONDS": "0"}


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


def live_settings(database_url: str) -> Settings:
    """Settings for a live benchmark on a migrated ``database_url`` with its own broker keys."""
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
    return settings


def bench_sessions(database_url: str, root: Path) -> None:
    settings = live_settings(database_url)
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


def quantile(samples: list[float], q: float) -> float:
    """Nearest-rank quantile (``q`` = 0.99 of 50 samples is the largest)."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def p50_p99(samples: list[float]) -> str:
    if not samples:
        return "no samples"
    return f"p50 {quantile(samples, 0.5) * 1000:7.1f} ms   p99 {quantile(samples, 0.99) * 1000:7.1f} ms"


def epoch_seconds(moment) -> float:
    """A stored time as seconds since the epoch (SQLite gives it back without its UTC zone)."""
    return aware(moment).timestamp()


def bench_messages(database_url: str, root: Path) -> None:
    settings = live_settings(database_url)
    accounts.create_company(UnitOfWork(settings), "talk")
    _, token = accounts.create_user(UnitOfWork(settings), "talk", "t@talk.io", "agent")
    _, admin = accounts.create_user(UnitOfWork(settings), "talk", "a@talk.io", "admin")
    headers = {"Authorization": f"Bearer {token}"}
    admin_headers = {"Authorization": f"Bearer {admin}"}
    client = create_app(settings).test_client()
    phone, name = "5511900077777", "talk"

    def row() -> dict:
        return client.get(f"/session/{name}", headers=headers).get_json()

    def connected() -> bool:
        return status_is(lambda _: row(), name, "CONNECTED")

    with SimulatorServer() as simulator:
        sim = SimulatorControl(simulator.url)
        worker = WorkerProcess("bench-msg", settings, simulator.url, root, env=FAST_SENDS).start()
        try:
            client.post("/session", json={"name": name}, headers=admin_headers)
            wait_until(partial(status_is, lambda _: row(), name, "QRCODE"), 60)
            qr = client.get(f"/session/{name}/qr", headers=admin_headers).get_json()["qr_code"]
            sim.scan(qr, phone=phone)
            wait_until(connected, 60)
            with UnitOfWork(settings) as uow:
                session_id = uow.db.scalar(select(WhatsappSession.id).where(WhatsappSession.name == name))
            inbound(settings, sim, phone, session_id)
            sends(client, headers, settings, sim, name, phone, "5511955550000")
            # The same worker again, with the default pace: the session comes back from its
            # profile, and a burst of sends leaves one by one.
            worker.terminate()
            worker = WorkerProcess("bench-msg", settings, simulator.url, root).start()
            wait_until(connected, 90)
            paced(client, headers, sim, name, phone, "5511955551111")
        finally:
            worker.terminate()
            worker.kill()


def stored_at(settings: Settings, session_id: str, wa_id: str) -> float | None:
    """When the message ``wa_id`` of the session was stored (``None``: not yet)."""
    with UnitOfWork(settings) as uow:
        at = uow.db.scalar(
            select(Message.created_at).where(Message.session_id == session_id, Message.wa_message_id == wa_id)
        )
    return epoch_seconds(at) if at is not None else None


def inbound(settings: Settings, sim: SimulatorControl, phone: str, session_id: str) -> None:
    """``MESSAGES_IN`` pushes from several threads; phone → stored row per message.

    The baseline: ``SINGLE_PUSHES`` messages one at a time, each waited for, measured the
    same way — the pipeline's own latency, with no queue in front of it. They are pushed
    at random moments: the page polls every 0.4 s, so that alone adds 0–0.4 s.
    """
    singles = []
    for index in range(SINGLE_PUSHES):
        contact = "5511980000999"
        time.sleep(random.uniform(0, 0.4))  # not in step with the page's poll
        started = time.time()
        sent = sim.message(phone, contact, f"single {index}", name="Alone")
        wa_id = f"false_{contact}@c.us_{sent['id']}"
        try:
            at = wait_until(partial(stored_at, settings, session_id, wa_id), 30, interval=0.02)
        except AssertionError:
            continue
        singles.append(at - started)
    pushed: dict[str, float] = {}  # wa_message_id → push time
    push_calls: list[float] = []
    guard = threading.Lock()

    def push(thread: int) -> None:
        for index in range(thread, MESSAGES_IN, PUSH_THREADS):
            contact = f"5511980000{index % CONTACTS:03d}"
            started = time.time()
            sent = sim.message(phone, contact, f"burst {index}", name=f"Contact {index % CONTACTS}")
            took = time.time() - started
            with guard:
                pushed[f"false_{contact}@c.us_{sent['id']}"] = started
                push_calls.append(took)

    threads = [threading.Thread(target=push, args=(t,)) for t in range(PUSH_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pushed_by = time.time()

    def stored_count() -> int:
        with UnitOfWork(settings) as uow:
            return uow.db.scalar(
                select(func.count()).where(Message.session_id == session_id, Message.body.like("burst %"))
            )

    try:
        wait_until(lambda: stored_count() >= len(pushed), 90, interval=0.1)
    except AssertionError:
        pass  # figures only: report what arrived
    with UnitOfWork(settings) as uow:
        rows = uow.db.execute(
            select(Message.wa_message_id, Message.created_at).where(
                Message.session_id == session_id, Message.direction == "in"
            )
        ).all()
    stored = {wa_id: epoch_seconds(at) for wa_id, at in rows if wa_id in pushed}
    others = len(rows) - len(stored) - len(singles)
    latencies = [stored[wa_id] - pushed[wa_id] for wa_id in stored]
    first = min(pushed.values())
    span = max(stored.values()) - first if stored else float("nan")
    print(
        f"  inbound: {len(pushed)} pushed by {PUSH_THREADS} threads from {CONTACTS} contacts in "
        f"{pushed_by - first:4.2f} s; {len(stored)} stored ({others} other rows)"
    )
    print(f"  inbound throughput        {len(stored) / span:6.1f} messages/s (first push → last row stored)")
    print(f"  inbound phone → row       {p50_p99(latencies)}   (the burst: mostly its queue)")
    print(
        f"  baseline: one at a time   {p50_p99(singles)}   "
        f"({len(singles)} pushes, each stored before the next; the page polls every 0.4 s)"
    )
    print(f"  baseline: one push call   {p50_p99(push_calls)}   (the fake phone's own HTTP round trip)")


def received(sim: SimulatorControl, phone: str, seen: int, text: str) -> dict | None:
    """The message with ``text`` among what the page of ``phone`` sent after the first ``seen``."""
    return next((m for m in sim.sent(phone)[seen:] if m["body"] == text), None)


def sends(
    client, headers: dict, settings: Settings, sim: SimulatorControl, name: str, phone: str, to: str
) -> None:
    """``SENDS`` sends one after another: API call → the simulator received it."""
    total, api_call, to_worker, in_page = [], [], [], []
    for index in range(SENDS):
        text = f"bench send {index}"
        seen = len(sim.sent(phone))
        started = time.time()
        response = client.post(f"/session/{name}/messages", json={"to": to, "text": text}, headers=headers)
        api_call.append(time.time() - started)
        if response.status_code != 202:
            print(f"  send {index}: {response.status_code} {response.get_data(as_text=True)[:200]}")
            continue
        message_id = response.get_json()["message"]["id"]
        try:
            record = wait_until(partial(received, sim, phone, seen, text), 30, interval=0.01)
        except AssertionError:
            print(f"  send {index}: not received by the simulator within 30 s")
            continue
        total.append(record["ts"] - started)
        with UnitOfWork(settings) as uow:
            sent_at = uow.db.scalar(select(Message.sent_at).where(Message.id == message_id))
        if sent_at is not None:
            to_worker.append(epoch_seconds(sent_at) - started)
            in_page.append(record["ts"] - epoch_seconds(sent_at))
    rate = FAST_SENDS["SEND_RATE_PER_MINUTE"]
    print(
        f"  send: {len(total)}/{SENDS} received, one after another (SEND_RATE_PER_MINUTE={rate}, no jitter)"
    )
    print(f"  send API call → received  {p50_p99(total)}")
    print(f"    of which the API call   {p50_p99(api_call)}   (202, message stored and job published)")
    print(f"    call → worker sends     {p50_p99(to_worker)}   (broker, job, the session's pace)")
    print(f"    page → simulator        {p50_p99(in_page)}   (the page's send action)")


def paced(client, headers: dict, sim: SimulatorControl, name: str, phone: str, to: str) -> None:
    """A burst of ``PACED_SENDS`` at the default rate: what spaces them is the pace."""
    defaults = Settings()
    seen = len(sim.sent(phone))
    started = time.time()
    for index in range(PACED_SENDS):
        client.post(f"/session/{name}/messages", json={"to": to, "text": f"paced {index}"}, headers=headers)
    try:
        wait_until(lambda: len(sim.sent(phone)) >= seen + PACED_SENDS, 60, interval=0.05)
    except AssertionError:
        pass
    arrivals = [m["ts"] for m in sim.sent(phone)[seen:]]
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    interval = 60.0 / defaults.SEND_RATE_PER_MINUTE
    print(
        f"  paced burst: {PACED_SENDS} sends at once, SEND_RATE_PER_MINUTE={defaults.SEND_RATE_PER_MINUTE:g} "
        f"(one each {interval:.2f} s) + up to {defaults.SEND_JITTER_SECONDS:g} s jitter"
    )
    if gaps:
        print(
            f"  gaps between sends        min {min(gaps):5.2f} s  mean {statistics.mean(gaps):5.2f} s  "
            f"max {max(gaps):5.2f} s; first sent after {arrivals[0] - started:4.2f} s, "
            f"{len(arrivals)}/{PACED_SENDS} sent"
        )
    else:
        print(f"  {len(arrivals)}/{PACED_SENDS} sent")


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
            print("Messages (worker + Chromium + simulator, one linked session, PostgreSQL, real clock):")
            _admin_execute(f'CREATE DATABASE "{pg_name}_msg"')
            bench_messages(_postgres_url_for(f"{pg_name}_msg"), root)
        finally:
            from shared.db import dispose_all

            dispose_all()
            _admin_execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
            _admin_execute(f'DROP DATABASE IF EXISTS "{pg_name}_live" WITH (FORCE)')
            _admin_execute(f'DROP DATABASE IF EXISTS "{pg_name}_msg" WITH (FORCE)')


if __name__ == "__main__":
    main()
