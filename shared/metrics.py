"""Prometheus figures of the whole deployment, produced at scrape time.

Everything shared (sessions, jobs, workers, messages, webhook deliveries) is read from
the database, and what only workers know (Chromium memory, restores, failovers,
login-state saves) from Redis (``shared.worker_stats``), by one :class:`ZapHubCollector`
per scrape. Nothing is kept in the API process, so every gunicorn worker answers the
same figures. Each figure is one aggregate query; the whole scrape runs under one
database deadline, and a database that does not answer gives
``zaphub_database_up 0`` instead of an error.

The job-duration histogram is computed from every finished job in the table, not from a
recent window: it then behaves like a Prometheus histogram (counts only grow, so
``rate()`` and ``histogram_quantile()`` work). Its counts fall only when cleanup purges
old rows, which Prometheus reads as a counter reset. Database figures are gauges
because purges can lower them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import Float, and_, case, cast, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from shared import worker_stats
from shared.config import Settings
from shared.db import deadline
from shared.jobs import FINISHED_JOB_STATUSES, JobStatus
from shared.models import (
    Job,
    Message,
    WebhookAttempt,
    WebhookDelivery,
    WhatsappSession,
    Worker,
    aware,
    utcnow,
)
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Jobs run from under a second (stop, send) to a few minutes (a create waiting for a scan).
JOB_DURATION_BUCKETS: tuple[float, ...] = (
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    math.inf,
)

# Deliveries still to be made (the backlog) are in these states.
BACKLOG_STATES = ("pending", "retrying")


def _job_seconds(dialect: str) -> ColumnElement[float]:
    """``finished_at - started_at`` in seconds, in the database's own date arithmetic."""
    if dialect == "sqlite":
        return (func.julianday(Job.finished_at) - func.julianday(Job.started_at)) * 86400.0
    return cast(func.extract("epoch", Job.finished_at - Job.started_at), Float)


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


class ZapHubCollector:
    """One scrape's figures: a few aggregate queries and a few Redis reads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def describe(self) -> list[Metric]:
        # Registering must not run the queries (prometheus_client would call collect()).
        return []

    def collect(self) -> Iterator[Metric]:
        database_up = GaugeMetricFamily(
            "zaphub_database_up", "1 when the database answered this scrape's queries, else 0."
        )
        try:
            figures = list(self._database_figures())
        except Exception as exc:  # any driver error: report it, keep the worker figures
            log.warning("metrics: database figures unavailable: %s", type(exc).__name__)
            figures = []
            database_up.add_metric([], 0)
        else:
            database_up.add_metric([], 1)
        yield database_up
        yield from figures
        yield from self._worker_figures()

    def _database_figures(self) -> Iterator[Metric]:
        settings = self.settings
        uow = UnitOfWork(settings)
        now = utcnow()
        with deadline(settings.HEALTH_TIMEOUT), uow:
            db = uow.db
            dialect = db.get_bind().dialect.name

            sessions = GaugeMetricFamily(
                "zaphub_sessions",
                "Sessions by status and owner worker (worker is empty for unplaced sessions).",
                labels=["status", "worker"],
            )
            rows = db.execute(
                select(WhatsappSession.status, WhatsappSession.worker_id, func.count()).group_by(
                    WhatsappSession.status, WhatsappSession.worker_id
                )
            )
            for status, worker_id, count in rows:
                sessions.add_metric([status, worker_id or ""], count)

            jobs = GaugeMetricFamily(
                "zaphub_jobs",
                "Jobs in the jobs table by kind and status (queued, running, succeeded, failed).",
                labels=["kind", "status"],
            )
            for kind, status, count in db.execute(
                select(Job.kind, Job.status, func.count()).group_by(Job.kind, Job.status)
            ):
                jobs.add_metric([kind, status], count)

            seconds = _job_seconds(dialect)
            finished = and_(
                Job.status.in_(FINISHED_JOB_STATUSES),
                Job.started_at.is_not(None),
                Job.finished_at.is_not(None),
            )
            bucket_columns = [
                func.sum(case((seconds <= bound, 1), else_=0)) for bound in JOB_DURATION_BUCKETS[:-1]
            ]
            durations = HistogramMetricFamily(
                "zaphub_job_duration_seconds",
                "Run time of finished jobs (started_at to finished_at), by kind.",
                labels=["kind"],
            )
            for kind, total, count, *cumulative in db.execute(
                select(Job.kind, func.coalesce(func.sum(seconds), 0.0), func.count(), *bucket_columns)
                .where(finished)
                .group_by(Job.kind)
            ):
                buckets = [
                    (_le(bound), int(n or 0))
                    for bound, n in zip(JOB_DURATION_BUCKETS, [*cumulative, count], strict=True)
                ]
                durations.add_metric([kind], buckets, max(0.0, float(total)))

            oldest = db.scalar(select(func.min(Job.created_at)).where(Job.status == JobStatus.QUEUED.value))
            oldest_age = GaugeMetricFamily(
                "zaphub_oldest_queued_job_age_seconds",
                "Age of the oldest job still queued (0 when none is).",
            )
            oldest_age.add_metric([], max(0.0, (now - aware(oldest)).total_seconds()) if oldest else 0.0)

            live = GaugeMetricFamily(
                "zaphub_workers_live", "Workers whose heartbeat is within the lease (WORKER_LEASE)."
            )
            heartbeat_age = GaugeMetricFamily(
                "zaphub_worker_heartbeat_age_seconds",
                "Seconds since each registered, not cleanly stopped worker last beat.",
                labels=["worker"],
            )
            alive = 0
            for worker_id, beat in db.execute(
                select(Worker.id, Worker.heartbeat_at).where(Worker.stopped_at.is_(None)).order_by(Worker.id)
            ):
                if beat is None:
                    continue
                age = max(0.0, (now - aware(beat)).total_seconds())
                heartbeat_age.add_metric([worker_id], age)
                alive += age <= settings.WORKER_LEASE
            live.add_metric([], alive)
            lease = GaugeMetricFamily(
                "zaphub_worker_lease_seconds", "The lease: a worker silent longer than this is dead."
            )
            lease.add_metric([], settings.WORKER_LEASE)

            messages = GaugeMetricFamily(
                "zaphub_messages", "Stored messages by direction (in, out).", labels=["direction"]
            )
            for direction, count in db.execute(
                select(Message.direction, func.count()).group_by(Message.direction)
            ):
                messages.add_metric([direction], count)

            deliveries = GaugeMetricFamily(
                "zaphub_webhook_deliveries",
                "Webhook deliveries by state (pending, retrying, delivered, dead).",
                labels=["state"],
            )
            backlog = 0
            for state, count in db.execute(
                select(WebhookDelivery.state, func.count()).group_by(WebhookDelivery.state)
            ):
                deliveries.add_metric([state], count)
                backlog += count if state in BACKLOG_STATES else 0
            backlog_metric = GaugeMetricFamily(
                "zaphub_webhook_backlog", "Webhook deliveries still to be made (pending or retrying)."
            )
            backlog_metric.add_metric([], backlog)

            failed_attempts = db.scalar(
                select(func.count())
                .select_from(WebhookAttempt)
                .where(
                    or_(
                        WebhookAttempt.status_code.is_(None),
                        WebhookAttempt.status_code < 200,
                        WebhookAttempt.status_code >= 300,
                    )
                )
            )
            failures = GaugeMetricFamily(
                "zaphub_webhook_attempt_failures",
                "Webhook POST attempts that got no 2xx answer (error, timeout or non-2xx status).",
            )
            failures.add_metric([], failed_attempts or 0)

        # Yielded only once every query answered: a scrape never shows half the figures.
        yield from (sessions, jobs, durations, oldest_age, live, heartbeat_age, lease)
        yield from (messages, deliveries, backlog_metric, failures)

    def _worker_figures(self) -> Iterator[Metric]:
        settings = self.settings
        rss = GaugeMetricFamily(
            "zaphub_chromium_rss_bytes",
            "Resident memory of each live worker's Chromium processes (browsers and their children).",
            labels=["worker"],
        )
        browsers = GaugeMetricFamily(
            "zaphub_chromium_browsers",
            "Chromium browser processes (one per open session) of each worker.",
            labels=["worker"],
        )
        for worker_id, stats in worker_stats.read_worker_stats(settings).items():
            rss.add_metric([worker_id], stats.get("rss_bytes", 0))
            browsers.add_metric([worker_id], stats.get("browsers", 0))
        yield rss
        yield browsers

        counters = worker_stats.read_counters(settings)
        families = {
            worker_stats.RESTORE: CounterMetricFamily(
                "zaphub_restores",
                "Session starts from stored login state, by worker and outcome (ok: came back linked).",
                labels=["worker", "outcome"],
            ),
            worker_stats.FAILOVER: CounterMetricFamily(
                "zaphub_failovers",
                "Sessions brought back on another worker after their owner died, by worker and outcome.",
                labels=["worker", "outcome"],
            ),
            worker_stats.LOGIN_STATE_SAVE: CounterMetricFamily(
                "zaphub_login_state_saves",
                "Login-state saves by worker and outcome (failed: not taken or not stored).",
                labels=["worker", "outcome"],
            ),
        }
        for (what, worker_id, outcome), value in sorted(counters.values.items()):
            if what in families:
                families[what].add_metric([worker_id, outcome], value)
        yield from families.values()
        for name, help_text in (
            (worker_stats.RESTORE, "Time from the start of a restore to the session being ready."),
            (
                worker_stats.FAILOVER,
                "Time from the sync finding the owner dead to the session ready elsewhere.",
            ),
        ):
            histogram = counters.histograms[name]
            family = HistogramMetricFamily(f"zaphub_{name}_duration_seconds", help_text)
            family.add_metric([], [(_le(bound), n) for bound, n in histogram.buckets], histogram.sum)
            yield family


def render(settings: Settings, process_registry: CollectorRegistry | None = None) -> bytes:
    """The Prometheus text of one scrape.

    With ``PROMETHEUS_MULTIPROC_DIR`` set (gunicorn), the API's own per-process metrics are
    merged from every worker's files; otherwise ``process_registry`` (this process's)
    is used as is.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ZapHubCollector(settings))
    if settings.PROMETHEUS_MULTIPROC_DIR:
        MultiProcessCollector(registry, path=settings.PROMETHEUS_MULTIPROC_DIR)
    elif process_registry is not None:
        registry.register(process_registry)
    return generate_latest(registry)
