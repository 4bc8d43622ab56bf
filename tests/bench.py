"""``make bench``: figures for the API and for live sessions, printed, never asserted.

API: latency of listing and stats over many sessions (SQLite file and PostgreSQL).
Sessions: a real worker and Chromium against the simulator — time to QR, to
CONNECTED after a scan, to CONNECTED after a restart, and Chromium memory per session.
Messages: the same, one linked session — inbound throughput and latency (the fake phone
pushes, until the row is stored), send latency (API call until the simulator has it)
and the spacing of a burst of sends at the default per-session rate.
Webhooks: a real webhook worker posting events to a local receiver — events delivered
per second, state change → POST latency, and bare baselines (a sequential POST loop, a
Celery task that only POSTs) on the same receiver. ``BENCH_ONLY=webhooks`` runs only that.
Restore and lazy sessions: memory (PSS) of one worker with 20 lazy sessions against the
same 20 always on, and the restore of 10 sessions one at a time (``RESTORE_CONCURRENCY=1``)
against three at a time. ``BENCH_ONLY=restore`` runs only that.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import re
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path

from sqlalchemy import event as sa_event
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session as DbSession

from api import create_app
from shared.celery_factory import create_celery
from shared.config import Settings
from shared.db import engine_for
from shared.models import Company, Message, WebhookAttempt, WebhookDelivery, WhatsappSession, aware, new_id
from shared.services import accounts, events, session_events, webhook_endpoints
from shared.uow import UnitOfWork
from shared.webhooks import dispatch
from tests.bench_celery import BARE_POST_TASK, BARE_QUEUE, post_fresh
from tests.bench_jobs import bench_jobs
from tests.bench_memory import bench_memory
from tests.bench_reads import SESSIONS as READ_SESSIONS
from tests.bench_reads import bench_reads, bench_settings
from tests.conftest import _admin_execute, _postgres_url_for
from tests.e2e.stack import WORKER_ENV, WorkerProcess, browser_pids, wait_until
from tests.integration.test_messages_store import make_linked
from tests.simulator import SimulatorControl, SimulatorServer
from tests.webhook_stack import Receiver, ServiceProcess, WebhookWorker, webhook_env
from workers.browser.memory import descendants

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
HOOK_EVENTS = 1000  # emitted as fast as possible ...
HOOK_SESSIONS = 10  # ... by one thread per session
HOOK_CHANGES = 200  # status changes one after another, ...
HOOK_PACE = 0.02  # ... this far apart: latency, not a backlog
HOOK_CONCURRENCY = Settings().WEBHOOK_CONCURRENCY  # the webhook worker's default threads


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
    settings = bench_settings(database_url)
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
    return descendants([pid])


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


def live_settings(database_url: str, **overrides) -> Settings:
    """Settings for a live benchmark on a migrated ``database_url`` with its own broker keys."""
    return bench_settings(database_url, WORKER_LEASE=float(WORKER_ENV["WORKER_LEASE"]), **overrides)


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


RESTORE_SESSIONS = 20
RESTORE_TIMED = 10
RESTORE_STEADY_SECONDS = 10.0
RESTORE_TOOK_RE = re.compile(r"session (\w+) of company \w+: restore took ([0-9.]+)s")


class LiveTenant:
    """A company with an admin on a live benchmark's database, driven through the API."""

    def __init__(self, settings: Settings, name: str) -> None:
        accounts.create_company(UnitOfWork(settings), name)
        _, token = accounts.create_user(UnitOfWork(settings), name, f"admin@{name}.io", "admin")
        self.headers = {"Authorization": f"Bearer {token}"}
        self.client = create_app(settings).test_client()

    def row(self, name: str) -> dict:
        """Session ``name`` as ``GET /session/<name>`` shows it."""
        return self.client.get(f"/session/{name}", headers=self.headers).get_json()

    def set_lazy(self, chosen: list[str], lazy: bool) -> None:
        """Make the ``chosen`` sessions lazy (or always on)."""
        for name in chosen:
            response = self.client.patch(
                f"/session/{name}", json={"config": {"lazy": lazy}}, headers=self.headers
            )
            assert response.status_code == 200, response.get_data(as_text=True)

    def link_all(self, names: list[str], sim: SimulatorControl, phones: str) -> None:
        """Create ``names`` and scan each QR (phone ``phones`` + 5 digits), until each has its login state."""
        for batch in range(0, len(names), 5):  # five at a time: every QR gets scanned in time
            for name in names[batch : batch + 5]:
                self.client.post("/session", json={"name": name}, headers=self.headers)
            for index, name in enumerate(names[batch : batch + 5], start=batch):
                wait_until(partial(status_is, self.row, name, "QRCODE"), 120)
                qr = self.client.get(f"/session/{name}/qr", headers=self.headers).get_json()["qr_code"]
                sim.scan(qr, phone=f"{phones}{index:05d}")
            for name in names[batch : batch + 5]:
                wait_until(partial(status_is, self.row, name, "CONNECTED"), 120)
                wait_until(partial(lambda n: self.row(n)["has_login_state"], name), 120)


def bench_restore(database_url: str, root: Path) -> None:
    """PSS of 20 lazy vs 20 always-on sessions on one worker; restore of 10 with K=1 vs K=3."""
    settings = live_settings(database_url)
    tenant = LiveTenant(settings, "lazy")
    row, set_lazy = tenant.row, tenant.set_lazy
    names = [f"r{index}" for index in range(RESTORE_SESSIONS)]

    def worker_pss(worker: WorkerProcess) -> tuple[float, int]:
        """PSS of the worker and every process under it (browsers included); browser count."""
        return pss_mib(process_tree(worker.process.pid)), len(worker.browsers())

    def start(slots: int) -> tuple[WorkerProcess, float]:
        worker = WorkerProcess(
            "restore", settings, simulator.url, root, env={"RESTORE_CONCURRENCY": str(slots)}
        )
        began = time.perf_counter()
        worker.start()
        return worker, began

    def restore_run(slots: int, expected: list[str]) -> tuple[float, list[float]]:
        log_path = root / "worker-restore.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        worker, began = start(slots)
        try:
            for name in expected:
                wait_until(partial(status_is, row, name, "CONNECTED"), 300)
            took = time.perf_counter() - began
            wait_until(lambda: "ready on" in log_path.read_text(errors="replace")[offset:], 60)
            durations = [float(d) for _, d in RESTORE_TOOK_RE.findall(log_path.read_text()[offset:])]
        finally:
            worker.terminate()
            worker.kill()
        return took, durations

    with SimulatorServer() as simulator:
        sim = SimulatorControl(simulator.url)
        worker, _ = start(3)
        try:
            tenant.link_all(names, sim, "55118000")
        finally:
            worker.terminate()
            worker.kill()

        # Always on: every session restored, then left to settle.
        worker, _ = start(3)
        try:
            for name in names:
                wait_until(partial(status_is, row, name, "CONNECTED"), 300)
            time.sleep(RESTORE_STEADY_SECONDS)
            always_on, always_on_browsers = worker_pss(worker)
        finally:
            worker.terminate()
            worker.kill()
        # Lazy: the same sessions, none opened at start.
        set_lazy(names, True)
        worker, _ = start(3)
        try:
            wait_until(lambda: "ready on" in worker.log_path.read_text(errors="replace"), 60)
            time.sleep(RESTORE_STEADY_SECONDS)
            lazy, lazy_browsers = worker_pss(worker)
        finally:
            worker.terminate()
            worker.kill()
        print(
            f"  {RESTORE_SESSIONS} always-on sessions   {always_on:7.1f} MiB PSS "
            f"(worker + {always_on_browsers} Chromiums, steady after restore)"
        )
        print(
            f"  {RESTORE_SESSIONS} lazy sessions        {lazy:7.1f} MiB PSS "
            f"(worker + {lazy_browsers} Chromiums)   ratio always-on/lazy {always_on / lazy:5.1f}x"
        )
        # Restore time: 10 always-on sessions (the other 10 stay lazy), one then three at once.
        timed = names[:RESTORE_TIMED]
        set_lazy(timed, False)
        for slots in (1, 3):
            took, durations = restore_run(slots, timed)
            each = " ".join(f"{d:.1f}" for d in durations)
            print(
                f"  restore {len(timed)} sessions K={slots}   total {took:6.1f} s "
                f"(worker start → all CONNECTED); each restore (s): {each}"
            )


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


class BareWorker(ServiceProcess):
    """A Celery worker that only runs ``tests.bench_celery``'s one-POST task (the baseline)."""

    ready_marker = "ready."

    def __init__(self, settings: Settings, root: Path) -> None:
        super().__init__(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "tests.bench_celery",
                "worker",
                f"--hostname=bench-bare-{os.getpid()}@%h",
                f"--queues={BARE_QUEUE}",
                "--pool=threads",
                f"--concurrency={HOOK_CONCURRENCY}",
                "--loglevel=INFO",
                "--without-mingle",
                "--without-gossip",
            ],
            webhook_env(settings),
            root / "bench-bare-worker.log",
        )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def message_id(request) -> str | None:
    return next((v for k, v in request.headers.items() if k.lower() == "webhook-id"), None)


def arrivals(receiver: Receiver, ids: set[str]) -> dict[str, float]:
    """First arrival time of each of ``ids`` the receiver got."""
    first: dict[str, float] = {}
    for request in list(receiver.requests):
        key = message_id(request)
        if key in ids and key not in first:
            first[key] = request.at
    return first


def wait_for(receiver: Receiver, ids: set[str], timeout: float) -> dict[str, float]:
    """Wait (up to ``timeout``) until every one of ``ids`` arrived; what arrived."""
    try:
        wait_until(lambda: len(arrivals(receiver, ids)) >= len(ids), timeout, interval=0.05)
    except AssertionError:
        pass  # figures only: report what arrived
    return arrivals(receiver, ids)


def bench_webhooks(database_url: str, root: Path) -> None:
    """Events → webhook POSTs to a local receiver: throughput, latency, and bare baselines."""
    settings = live_settings(database_url, WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8")
    accounts.create_company(UnitOfWork(settings), "hooks")
    with UnitOfWork(settings) as uow:
        company_id = uow.db.scalar(select(Company.id).where(Company.name == "hooks"))
    token = make_linked(settings, company_id, "hook0").token
    sessions = [make_linked(settings, company_id, f"hook{n}", token).id for n in range(1, HOOK_SESSIONS + 1)]
    changing = make_linked(settings, company_id, "changes", token)
    receiver = Receiver()
    webhook_endpoints.create_endpoint(
        UnitOfWork(settings),
        company_id,
        url=receiver.url,
        event_types=[events.SESSION_QR, events.SESSION_STATUS],
    )
    # The bench process publishes each delivery after its commit, as the API and workers do.
    celery = create_celery(settings)
    dispatch.install(dispatch.celery_publisher(celery))
    extra = {"WEBHOOK_CONCURRENCY": str(HOOK_CONCURRENCY)}
    worker = WebhookWorker(settings, root, env=extra, name="bench")
    bare = BareWorker(settings, root)
    gate = threading.Event()  # holds the dispatcher back while a backlog is made
    try:
        worker.start()
        bare.start()
        # 1. Throughput: HOOK_EVENTS events from one thread per session, each in its own commit.
        emitted: list[str] = []
        guard = threading.Lock()

        def emit_many(session_id: str) -> None:
            for n in range(HOOK_EVENTS // HOOK_SESSIONS):
                with UnitOfWork(settings) as uow:
                    event_id = events.emit(uow.db, session_id, events.SESSION_QR, {"qr": f"2@bench{n}"}).id
                    uow.commit()
                with guard:
                    emitted.append(event_id)

        threads = [threading.Thread(target=emit_many, args=(sid,)) for sid in sessions]
        first_emit = time.time()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        emitted_by = time.time()
        got = wait_for(receiver, set(emitted), 60)
        span = (max(got.values()) - first_emit) if got else float("nan")
        hook_rate = len(got) / span
        posts = sum(1 for r in list(receiver.requests) if message_id(r) in got)
        print(
            f"  webhooks: {len(emitted)} events from {HOOK_SESSIONS} threads in "
            f"{emitted_by - first_emit:4.2f} s ({len(emitted) / (emitted_by - first_emit):5.0f}/s "
            "committed); "
            f"{len(got)}/{len(emitted)} delivered ({posts} POSTs)"
        )
        print(
            f"  webhooks delivered        {hook_rate:6.1f} events/s (first emit → last POST; one webhook "
            f"worker, {HOOK_CONCURRENCY} threads)"
        )
        body = next(r.body for r in list(receiver.requests) if message_id(r) in got).decode()
        # The worker's own pace: the same number of events emitted while the publisher holds
        # their tasks back, then released at once (so emitting is not what is measured).
        publish = dispatch.celery_publisher(celery)

        def held(delivery_id: str) -> None:
            gate.wait()
            publish(delivery_id)

        dispatch.install(held)
        emitted.clear()
        threads = [threading.Thread(target=emit_many, args=(sid,)) for sid in sessions]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        cpu_before = cpu_seconds(worker.process.pid)
        released = time.time()
        gate.set()
        dispatch.install(publish)
        drained = wait_for(receiver, set(emitted), 60)
        drain_rate = len(drained) / (max(drained.values()) - released) if drained else float("nan")
        cpu_each = (cpu_seconds(worker.process.pid) - cpu_before) / max(1, len(drained))
        print(
            f"  webhooks drain a backlog  {drain_rate:6.1f} events/s ({len(drained)}/{len(emitted)} already "
            f"committed, published at once → last POST; worker CPU {cpu_each * 1000:.1f} ms each)"
        )

        # 2. Latency: paced status changes; from just before each commit to the receiver.
        committing: dict[str, float] = {}  # delivery id → time just before its commit

        def stamp(db) -> None:
            for delivery_id in db.info.get(events.PENDING_DELIVERIES, ()):
                committing[delivery_id] = time.time()

        sa_event.listen(DbSession, "before_commit", stamp)
        try:
            for n in range(HOOK_CHANGES):
                kind, payload = (
                    ("disconnected", {"reason": "restart"}) if n % 2 == 0 else ("authenticated", {})
                )
                session_events.apply_event(
                    UnitOfWork(settings),
                    changing.id,
                    changing.worker_id,
                    changing.epoch,
                    kind,
                    payload,
                    lease_token=changing.token,
                )
                time.sleep(HOOK_PACE)
        finally:
            sa_event.remove(DbSession, "before_commit", stamp)
        with UnitOfWork(settings) as uow:
            rows = uow.db.execute(
                select(WebhookDelivery.id, WebhookDelivery.event_id).where(
                    WebhookDelivery.id.in_(list(committing))
                )
            ).all()
        committed = {event_id: committing[delivery_id] for delivery_id, event_id in rows}
        got = wait_for(receiver, set(committed), 30)
        latencies = [got[e] - committed[e] for e in got]
        print(
            f"  change → webhook POST     {p50_p99(latencies)}   ({len(got)}/{len(committed)} status "
            f"changes, {HOOK_PACE * 1000:.0f} ms apart; from just before the commit)"
        )

        # 3. Baselines on the same receiver: a sequential POST loop, and a bare Celery task that POSTs.
        loop_ids = [f"loop-{n}" for n in range(len(emitted))]
        started = time.time()
        for key in loop_ids:
            post_fresh(receiver.url, body, key)
        loop_rate = len(loop_ids) / (time.time() - started)
        print(
            f"  baseline: POST loop       {loop_rate:6.1f} POSTs/s "
            "(one thread of the bench, a connection each, same body)"
        )
        bare_ids = [f"bare-{n}" for n in range(len(emitted))]
        bench_celery = create_celery(settings, include=[])
        started = time.time()
        for key in bare_ids:
            bench_celery.send_task(BARE_POST_TASK, args=[receiver.url, body, key], queue=BARE_QUEUE)
        bare_got = wait_for(receiver, set(bare_ids), 60)
        bare_rate = len(bare_got) / (max(bare_got.values()) - started) if bare_got else float("nan")
        print(
            f"  baseline: bare task       {bare_rate:6.1f} POSTs/s (publish → a Celery task that only POSTs, "
            f"{HOOK_CONCURRENCY} threads; {len(bare_got)}/{len(bare_ids)})"
        )
        published: dict[str, float] = {}
        for n in range(HOOK_CHANGES):
            key = f"bare-paced-{n}"
            published[key] = time.time()
            bench_celery.send_task(BARE_POST_TASK, args=[receiver.url, body, key], queue=BARE_QUEUE)
            time.sleep(HOOK_PACE)
        bare_got = wait_for(receiver, set(published), 30)
        bare_latencies = [bare_got[k] - published[k] for k in bare_got]
        print(f"  baseline: publish → POST  {p50_p99(bare_latencies)}   (the bare task, paced the same)")
        with UnitOfWork(settings) as uow:
            failed = uow.db.scalar(
                select(func.count()).where(
                    (WebhookAttempt.status_code.is_(None)) | (WebhookAttempt.status_code != 200)
                )
            )
            open_deliveries = uow.db.scalar(select(func.count()).where(WebhookDelivery.state != "delivered"))
        print(f"  failed attempts: {failed}; deliveries not delivered: {open_deliveries} (no beat: no sweep)")
        if latencies and bare_latencies:
            hook_p50, bare_p50 = quantile(latencies, 0.5), quantile(bare_latencies, 0.5)
            print(
                f"  ratios: webhooks deliver at {hook_rate / loop_rate:.2f}× a sequential POST loop and "
                f"{hook_rate / bare_rate:.2f}× bare tasks "
                f"(a backlog drains at {drain_rate / bare_rate:.2f}×); "
                f"p50 latency {hook_p50 * 1000:.1f} ms vs bare publish → POST {bare_p50 * 1000:.1f} ms "
                f"({hook_p50 / bare_p50:.1f}×)"
            )
    finally:
        dispatch.install(lambda delivery_id: None)
        gate.set()  # nothing more to publish to this run's broker
        bare.stop()
        worker.stop()
        receiver.close()


@contextlib.contextmanager
def _database(name: str) -> Iterator[str]:
    """A new PostgreSQL database for one section, dropped afterwards; its URL."""
    _admin_execute(f'CREATE DATABASE "{name}"')
    try:
        yield _postgres_url_for(name)
    finally:
        from shared.db import dispose_all

        dispose_all()
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# The sections on PostgreSQL after the API figures: (BENCH_ONLY name, heading, bench);
# each gets a database of its own.
def _bench_idle(database_url: str, root: Path) -> None:
    """The ``idle`` section, imported when run: ``tests.bench_idle`` builds on this module's helpers."""
    from tests.bench_idle import bench_idle

    bench_idle(database_url, root)


LIVE_SECTIONS = (
    (
        "sessions",
        f"Live sessions (worker + Chromium + simulator, {LIVE_SESSIONS} sessions):",
        bench_sessions,
    ),
    ("messages", "Messages (worker + Chromium + simulator, one linked session, PostgreSQL):", bench_messages),
    (
        "webhooks",
        "Webhooks (a webhook worker process, a local receiver, PostgreSQL):",
        bench_webhooks,
    ),
    ("restore", "Restore and lazy sessions (worker + Chromium + simulator, PostgreSQL):", bench_restore),
    ("reads", f"API reads (gunicorn as in the Procfile, {READ_SESSIONS} sessions, PostgreSQL):", bench_reads),
    ("jobs", "Job round trip (gunicorn + a worker, PostgreSQL, against a bare Celery task):", bench_jobs),
    (
        "idle",
        "Idle CPU of connected sessions, and their restore (worker + Chromium + simulator, PostgreSQL):",
        _bench_idle,
    ),
    ("memory", "Memory per session by browser mode (workers + Chromium + simulator):", bench_memory),
)


def main() -> None:
    run = uuid.uuid4().hex[:8]
    only = os.environ.get("BENCH_ONLY", "")  # one section alone: sessions, messages, webhooks or restore
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if not only:
            print(f"API latency, {ROWS} sessions in one company, {REQUESTS} requests per route:")
            bench_api("sqlite", f"sqlite:///{root / 'bench.db'}")
            with _database(f"zaphub_bench_{run}") as url:
                bench_api("postgresql", url)
        for name, heading, bench in LIVE_SECTIONS:
            if only in ("", name):
                print(heading)
                with _database(f"zaphub_bench_{run}_{name}") as url:
                    bench(url, root)


if __name__ == "__main__":
    main()
