"""``BENCH_ONLY=reads``: API read throughput under gunicorn as the Procfile runs it.

gunicorn with ``api.gunicorn_conf`` (its worker class and worker count), 100 sessions of
one company in PostgreSQL, a few keep-alive clients. Each figure is requests per second
over a fixed number of requests, run 3 times (the routes take turns within a run), and
is printed as min / median beside the baseline of the same run - ``GET /health/live``,
a trivial endpoint of the same app in the same gunicorn - with the ratio ZapHub ÷
baseline.
"""

from __future__ import annotations

import http.client
import statistics
import threading
import time
import uuid
from pathlib import Path

from api import gunicorn_conf
from shared.config import Settings, set_settings
from shared.migrate import upgrade
from shared.services import accounts
from shared.uow import UnitOfWork
from tests.conftest import REDIS_URL
from tests.gunicorn_stack import gunicorn_serving
from tests.integration.test_sql_counts import add_sessions

SESSIONS = 100
CLIENTS = 4
RUNS = 3
WARM_UP = 50
# (label, path, requests per run): fewer requests where each one is slower.
ROUTES = (
    ("trivial endpoint (baseline)", "/health/live", 3000),
    ("one session", "/session/s42", 1500),
    (f"list of {SESSIONS}", f"/session?per_page={SESSIONS}", 600),
)
LIVE_PROBE = b"GET /health/live HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"


def throughput(port: int, path: str, headers: dict[str, str], requests: int) -> float:
    """Requests per second of ``requests`` GETs of ``path`` shared by :data:`CLIENTS` clients."""
    share = [requests // CLIENTS + (1 if i < requests % CLIENTS else 0) for i in range(CLIENTS)]
    failures: list[str] = []

    def client(count: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            for _ in range(count):
                connection.request("GET", path, headers=headers)
                response = connection.getresponse()
                body = response.read()
                if response.status != 200:
                    failures.append(f"{response.status} {body[:200]!r}")
                    return
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(count,)) for count in share]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    assert not failures, failures[:3]
    return requests / elapsed


def bench_settings(database_url: str, **overrides) -> Settings:
    """Settings for a benchmark on ``database_url`` (migrated here) with broker keys of its own."""
    settings = Settings.from_env(
        {},
        DATABASE_URL=database_url,
        REDIS_URL=REDIS_URL,
        BROKER_KEY_PREFIX=f"zaphub-bench-{uuid.uuid4().hex[:6]}:",
        SECRET_KEY="bench",
        **overrides,
    )
    set_settings(settings)
    upgrade(database_url)
    return settings


def bench_reads(database_url: str, root: Path) -> None:
    settings = bench_settings(database_url)
    company = accounts.create_company(UnitOfWork(settings), "bench")
    _, token = accounts.create_user(UnitOfWork(settings), "bench", "b@bench.io", "agent")
    add_sessions(settings, company.id, SESSIONS)
    headers = {"Authorization": f"Bearer {token}"}
    workers = gunicorn_conf.workers
    print(f"  gunicorn: {workers} workers of {gunicorn_conf.worker_class}, {CLIENTS} keep-alive clients")
    rates: dict[str, list[float]] = {label: [] for label, _, _ in ROUTES}
    with gunicorn_serving(settings, root / "reads-gunicorn.log", workers=workers, probe=LIVE_PROBE) as port:
        for _, path, _ in ROUTES:
            throughput(port, path, headers, WARM_UP)
        for _ in range(RUNS):
            for label, path, requests in ROUTES:
                rates[label].append(throughput(port, path, headers, requests))
    base_label = ROUTES[0][0]
    base_min, base_median = min(rates[base_label]), statistics.median(rates[base_label])
    for label, path, requests in ROUTES:
        low, median = min(rates[label]), statistics.median(rates[label])
        line = f"  GET {path:24s} {label:28s} {low:5.0f} / {median:5.0f} req/s (min / median, {requests} req)"
        if label != base_label:
            ratios = f"{low / base_min:.2f}× / {median / base_median:.2f}×"
            line += f"   vs baseline {base_min:.0f} / {base_median:.0f}: {ratios}"
        print(line)
