"""``BENCH_ONLY=jobs``: the round trip of a near-no-op job against a bare Celery task.

ZapHub: ``POST /session/cleanup`` through the real gunicorn (gevent) until ``GET /jobs/<id>``
shows ``succeeded``, run by a real ``python -m workers`` (with no session the cleanup
changes nothing: its database half and the worker's own local part). Measured three ways:
the client long-polls (``?wait=``), the client polls plainly every :data:`POLL_INTERVAL`,
and the POST itself waits for the job (``Prefer: wait=N``, one request).

Baseline: a bare Celery task on the same Redis, in a worker process started here with
the same pool (threads): ``apply_async`` and wait for its result (Redis result backend).

Two floors are measured beside them, in the same runs: the two HTTP requests of a
long-polled round trip with no work behind them (``GET /health/live`` twice), and the
three durable commits a job needs (created, claimed, finished) as one-row UPDATEs.

Each of :data:`RUNS` runs takes :data:`SAMPLES` round trips of every variant in turn,
so that the load of the (shared) machine falls on all of them alike; printed: min and median of all
the samples, each run's median, and the ratio of medians to the baseline. Then the
median breakdown of a long-polled round trip from the job rows' own timestamps.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import requests
from celery import Celery

from shared.celery_factory import create_celery
from shared.config import get_settings
from shared.models import Job, aware
from shared.uow import UnitOfWork

NOOP_TASK = "zaphub.bench.noop"
NOOP_QUEUE = "bench-noop"
RUNS = 3
SAMPLES = 60  # per run and per variant
WARMUP = 5
POLL_INTERVAL = 0.01  # the plain-poll client's interval
LONG_POLL_WAIT = 10  # seconds one GET /jobs/<id>?wait= may hold


def with_results(settings) -> Celery:
    """A Celery app on ``settings``' broker whose tasks keep their results in Redis (the
    baseline waits for its result), under the run's key prefix."""
    celery = create_celery(settings, include=[])
    celery.conf.update(
        result_backend=settings.REDIS_URL,
        task_ignore_result=False,
        result_expires=300,
        result_backend_transport_options={"global_keyprefix": settings.BROKER_KEY_PREFIX},
    )
    return celery


app = with_results(get_settings())


@app.task(name=NOOP_TASK)
def noop() -> str:
    """The whole task: nothing."""
    return "ok"


def _bare_worker(settings, root: Path):
    from tests.e2e.stack import ServiceProcess, service_env

    class BareNoopWorker(ServiceProcess):
        ready_marker = "ready."

    return BareNoopWorker(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.bench_jobs",
            "worker",
            f"--hostname=bench-noop-{os.getpid()}@%h",
            f"--queues={NOOP_QUEUE}",
            "--pool=threads",
            "--concurrency=8",
            "--loglevel=INFO",
            "--without-mingle",
            "--without-gossip",
        ],
        service_env(settings),
        root / "bench-noop-worker.log",
    )


def _figure(label: str, runs: list[list[float]], baseline: float | None = None) -> str:
    every = [s for run in runs for s in run]
    low, mid = min(every) * 1000, statistics.median(every) * 1000
    per_run = " ".join(f"{statistics.median(run) * 1000:.1f}" for run in runs)
    ratio = f"  {mid / baseline:4.1f}× bare (median)" if baseline else ""
    return f"  {label:<34} min {low:6.1f} ms  median {mid:6.1f} ms  [run medians {per_run}]{ratio}"


def _floors_sum(floors: list[list[list[float]]], baseline: float) -> str:
    """The floors' medians added up, against the baseline: how near ZapHub could get at best."""
    total = sum(statistics.median([s for run in runs for s in run]) for runs in floors) * 1000
    ratio = total / (baseline * 1000)
    return f"  {'sum of floors (medians)':<34} {total:6.1f} ms = {ratio:.1f}× bare (median)"


def bench_jobs(database_url: str, root: Path) -> None:
    """Print the bare Celery round trip and ZapHub's cleanup-job round trip, min / median."""
    from shared.services import accounts
    from tests.bench import live_settings
    from tests.e2e.stack import WorkerProcess
    from tests.gunicorn_stack import gunicorn_serving

    # Coalescing would hand back the previous cleanup; every sample must be a new job.
    settings = live_settings(database_url, MAINTENANCE_COALESCE_SECONDS=0.0)
    accounts.create_company(UnitOfWork(settings), "jobs")
    _, token = accounts.create_user(UnitOfWork(settings), "jobs", "j@jobs.io", "admin")
    env = {"MAINTENANCE_COALESCE_SECONDS": "0"}
    bare = _bare_worker(settings, root).start()
    worker = WorkerProcess("benchjobs", settings, "http://127.0.0.1:9/", root, env=env).start()
    celery = with_results(settings)
    try:
        with gunicorn_serving(settings, root / "bench-jobs-gunicorn.log", env=env) as port:
            http = requests.Session()
            http.headers["Authorization"] = f"Bearer {token}"
            base = f"http://127.0.0.1:{port}"

            def bare_once() -> float:
                started = time.perf_counter()
                celery.send_task(NOOP_TASK, queue=NOOP_QUEUE, routing_key=NOOP_QUEUE).get(timeout=30)
                return time.perf_counter() - started

            def zaphub_once(long_poll: bool, marks: list[tuple[float, ...]] | None = None) -> float:
                started = time.perf_counter()
                wall = time.time()
                answer = http.post(f"{base}/session/cleanup")
                assert answer.status_code == 202, answer.text
                posted = time.perf_counter()
                job_id = answer.json()["id"]
                params = {"wait": LONG_POLL_WAIT} if long_poll else None
                job = _follow(job_id, params)
                done = time.perf_counter()
                assert job["status"] == "succeeded", job
                if marks is not None:
                    marks.append((wall, posted - started, done - started, job_id))
                return done - started

            def _follow(job_id: str, params: dict | None) -> dict:
                while True:
                    job = http.get(f"{base}/jobs/{job_id}", params=params).json()
                    if job["status"] in ("succeeded", "failed"):
                        return job
                    if params is None:
                        time.sleep(POLL_INTERVAL)

            def prefer_once() -> float:
                # One request: the POST itself waits for the job (RFC 7240 Prefer: wait=N).
                started = time.perf_counter()
                answer = http.post(f"{base}/session/cleanup", headers={"Prefer": f"wait={LONG_POLL_WAIT}"})
                assert answer.status_code in (200, 202), answer.text
                job = answer.json()
                if answer.status_code == 202:  # not finished within the wait: follow it
                    job = _follow(job["id"], {"wait": LONG_POLL_WAIT})
                assert job["status"] == "succeeded", job
                return time.perf_counter() - started

            def http_floor_once() -> float:
                # The two requests a long-polled round trip makes, with no work behind them.
                started = time.perf_counter()
                for _ in range(2):
                    assert http.get(f"{base}/health/live").status_code == 200
                return time.perf_counter() - started

            variants = (
                ("bare Celery task (apply_async+get)", bare_once),
                ("floor: 2 HTTP requests (/health/live)", http_floor_once),
                ("floor: 3 durable commits (1-row UPDATE)", lambda: _commits_once(settings, 3)),
                ("ZapHub cleanup job, long-poll", lambda: zaphub_once(True)),
                (f"ZapHub cleanup job, poll {POLL_INTERVAL * 1000:.0f} ms", lambda: zaphub_once(False)),
                ("ZapHub cleanup job, Prefer: wait", prefer_once),
            )
            for _, once in variants:
                for _ in range(WARMUP):
                    once()
            results: dict[str, list[list[float]]] = {label: [] for label, _ in variants}
            for _ in range(RUNS):
                for label, once in variants:
                    results[label].append([once() for _ in range(SAMPLES)])
            baseline = statistics.median([s for run in results[variants[0][0]] for s in run])
            for index, (label, _) in enumerate(variants):
                print(_figure(label, results[label], baseline * 1000 if index else None))
                if index == 2:  # after the floors
                    print(_floors_sum([results[label] for label, _ in variants[1:3]], baseline))
            marks: list[tuple[float, ...]] = []
            for _ in range(SAMPLES):
                zaphub_once(True, marks)
            _breakdown(settings, marks)
    finally:
        worker.terminate()
        worker.kill()
        bare.stop()


def _commits_once(settings, commits: int) -> float:
    """``commits`` one-row autocommitted UPDATEs on the bench database (a job's INSERT, claim and
    finish each wait for one WAL flush): the time of their round trips and flushes."""
    from sqlalchemy import text

    from shared.db import read_engine_for

    with read_engine_for(settings.DATABASE_URL).connect() as connection:
        started = time.perf_counter()
        for _ in range(commits):
            connection.execute(text("UPDATE companies SET name = name WHERE name = 'jobs'"))
        return time.perf_counter() - started


def _breakdown(settings, marks: list[tuple[float, ...]]) -> None:
    """Where a long-polled round trip goes, from the job rows' own timestamps (medians)."""
    with UnitOfWork(settings) as uow:
        rows = {job.id: job for job in uow.db.query(Job).filter(Job.id.in_([m[3] for m in marks]))}
    names = ("POST answered", "row created → started", "started → finished", "finished → client has it")
    parts: dict[str, list[float]] = {name: [] for name in names}
    for wall, posted, done, job_id in marks:
        job = rows[job_id]
        created = aware(job.created_at).timestamp()
        started = aware(job.started_at).timestamp()
        finished = aware(job.finished_at).timestamp()
        parts["POST answered"].append(posted)
        parts["row created → started"].append(started - created)
        parts["started → finished"].append(finished - started)
        parts["finished → client has it"].append(wall + done - finished)
    print("  breakdown of the long-poll round trip (medians):")
    for name, values in parts.items():
        print(f"    {name:<28} {statistics.median(values) * 1000:6.1f} ms")
