"""``GET /metrics`` against real databases (SQLite and PostgreSQL) and real Redis.

Rows are written directly, then the scrape must parse as Prometheus text and show
exactly those figures; worker figures go through ``shared.worker_stats`` in Redis.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared import worker_stats
from shared.models import (
    Event,
    Job,
    Message,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WhatsappSession,
    Worker,
    new_id,
    utcnow,
)
from shared.uow import UnitOfWork

LOCAL = {"REMOTE_ADDR": "127.0.0.1"}
REMOTE = {"REMOTE_ADDR": "10.0.0.5"}


def scrape(client, headers=None, environ=LOCAL) -> dict[str, dict[tuple, float]]:
    """Scrape ``/metrics``: sample name → {sorted labels → value}; the text must parse."""
    response = client.get("/metrics", headers=headers or {}, environ_base=environ)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain")
    return parse(response.get_data(as_text=True))


def parse(text: str) -> dict[str, dict[tuple, float]]:
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        assert family.documentation, f"{family.name} has no HELP text"
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float | None:
    return samples.get(name, {}).get(tuple(sorted(labels.items())))


@pytest.fixture(autouse=True)
def clean_worker_stats(redis_client, broker_prefix):
    """Worker figures are per run (key prefix), not per test: start each test with none."""

    def wipe():
        for key in redis_client.scan_iter(match=f"{broker_prefix}zaphub:metrics:*"):
            redis_client.delete(key)

    wipe()
    yield
    wipe()


def add_session(db, company_id, name, status, worker_id=None):
    session = WhatsappSession(company_id=company_id, name=name, status=status, worker_id=worker_id)
    db.add(session)
    db.flush()
    return session


def add_job(db, company_id, kind, status, *, age=0.0, ran=None):
    now = utcnow()
    job = Job(company_id=company_id, kind=kind, status=status, created_at=now - timedelta(seconds=age))
    if ran is not None:
        job.started_at = now - timedelta(seconds=ran + 1)
        job.finished_at = job.started_at + timedelta(seconds=ran)
    db.add(job)


def test_figures_match_the_rows(client, settings, tenant):
    now = utcnow()
    with UnitOfWork(settings) as uow:
        db = uow.db
        db.add(Worker(id="w1", queue="worker.w1", heartbeat_at=now - timedelta(seconds=2)))
        db.add(Worker(id="w2", queue="worker.w2", heartbeat_at=now - timedelta(seconds=120)))
        db.add(Worker(id="w3", queue="worker.w3", heartbeat_at=now, stopped_at=now))
        linked = add_session(db, tenant.company_id, "a", "CONNECTED", "w1")
        add_session(db, tenant.company_id, "b", "CONNECTED", "w1")
        add_session(db, tenant.company_id, "c", "QRCODE", "w2")
        add_session(db, tenant.company_id, "d", "ERROR", "w1")
        add_session(db, tenant.company_id, "e", "DISCONNECTED")
        add_job(db, tenant.company_id, "create", "succeeded", ran=0.3)
        add_job(db, tenant.company_id, "create", "succeeded", ran=7.0)
        add_job(db, tenant.company_id, "create", "failed", ran=40.0)
        add_job(db, tenant.company_id, "send", "succeeded", ran=0.2)
        add_job(db, tenant.company_id, "send", "queued", age=90)
        add_job(db, tenant.company_id, "stop", "queued", age=30)
        add_job(db, tenant.company_id, "stop", "running", age=5)
        for direction in ("in", "in", "in", "out"):
            db.add(Message(company_id=tenant.company_id, session_id=linked.id, direction=direction))
        event = Event(
            id=new_id()[:26],
            company_id=tenant.company_id,
            session_id=linked.id,
            session_name="a",
            seq=1,
            type="session.status",
        )
        endpoint = WebhookEndpoint(company_id=tenant.company_id, url="http://127.0.0.1/x", secret="s")
        db.add_all([event, endpoint])
        db.flush()
        deliveries = {}
        for state in ("pending", "pending", "retrying", "delivered", "dead"):
            delivery = WebhookDelivery(
                company_id=tenant.company_id, endpoint_id=endpoint.id, event_id=event.id, state=state
            )
            db.add(delivery)
            deliveries.setdefault(state, delivery)
        db.flush()
        for code in (200, 204, 500, 302, None):
            db.add(WebhookAttempt(delivery_id=deliveries["retrying"].id, status_code=code))
        uow.commit()

    samples = scrape(client)

    assert value(samples, "zaphub_database_up") == 1
    assert value(samples, "zaphub_sessions", status="CONNECTED", worker="w1") == 2
    assert value(samples, "zaphub_sessions", status="ERROR", worker="w1") == 1
    assert value(samples, "zaphub_sessions", status="QRCODE", worker="w2") == 1
    assert value(samples, "zaphub_sessions", status="DISCONNECTED", worker="") == 1
    assert sum(samples["zaphub_sessions"].values()) == 5

    assert value(samples, "zaphub_jobs", kind="create", status="succeeded") == 2
    assert value(samples, "zaphub_jobs", kind="create", status="failed") == 1
    assert value(samples, "zaphub_jobs", kind="send", status="queued") == 1
    assert value(samples, "zaphub_jobs", kind="stop", status="running") == 1
    assert sum(samples["zaphub_jobs"].values()) == 7
    # Only finished jobs are timed: 3 creates, 1 send; buckets are cumulative.
    assert value(samples, "zaphub_job_duration_seconds_count", kind="create") == 3
    assert value(samples, "zaphub_job_duration_seconds_count", kind="send") == 1
    assert value(samples, "zaphub_job_duration_seconds_bucket", kind="create", le="0.5") == 1
    assert value(samples, "zaphub_job_duration_seconds_bucket", kind="create", le="10.0") == 2
    assert value(samples, "zaphub_job_duration_seconds_bucket", kind="create", le="30.0") == 2
    assert value(samples, "zaphub_job_duration_seconds_bucket", kind="create", le="60.0") == 3
    assert value(samples, "zaphub_job_duration_seconds_bucket", kind="create", le="+Inf") == 3
    assert value(samples, "zaphub_job_duration_seconds_sum", kind="create") == pytest.approx(47.3, abs=0.01)
    assert value(samples, "zaphub_job_duration_seconds_count", kind="stop") is None

    assert value(samples, "zaphub_oldest_queued_job_age_seconds") == pytest.approx(90, abs=5)

    assert value(samples, "zaphub_workers_live") == 1
    assert value(samples, "zaphub_worker_heartbeat_age_seconds", worker="w1") == pytest.approx(2, abs=5)
    assert value(samples, "zaphub_worker_heartbeat_age_seconds", worker="w2") == pytest.approx(120, abs=5)
    assert value(samples, "zaphub_worker_heartbeat_age_seconds", worker="w3") is None  # stopped cleanly
    assert value(samples, "zaphub_worker_lease_seconds") == settings.WORKER_LEASE

    assert value(samples, "zaphub_messages", direction="in") == 3
    assert value(samples, "zaphub_messages", direction="out") == 1
    assert value(samples, "zaphub_webhook_deliveries", state="pending") == 2
    assert value(samples, "zaphub_webhook_deliveries", state="dead") == 1
    assert value(samples, "zaphub_webhook_backlog") == 3
    assert value(samples, "zaphub_webhook_attempt_failures") == 3


def test_empty_deployment_parses_with_zeroes(client):
    samples = scrape(client)
    assert value(samples, "zaphub_oldest_queued_job_age_seconds") == 0
    assert value(samples, "zaphub_workers_live") == 0
    assert value(samples, "zaphub_webhook_backlog") == 0
    assert value(samples, "zaphub_restore_duration_seconds_count") == 0


def test_worker_stats_come_from_redis_and_expire(client, settings):
    worker_stats.publish_worker_stats(settings, "w1", rss_bytes=123_456_789, browsers=3)
    worker_stats.publish_worker_stats(settings, "w2", rss_bytes=1000, browsers=1, ttl=0.5)
    worker_stats.record_restore(settings, "w1", 3.0, ok=True)
    worker_stats.record_restore(settings, "w1", 45.0, ok=True)
    worker_stats.record_restore(settings, "w2", 1.0, ok=False)
    worker_stats.record_login_state_save(settings, "w1", ok=True)
    worker_stats.record_login_state_save(settings, "w1", ok=True)
    worker_stats.record_login_state_save(settings, "w1", ok=False)
    worker_stats.mark_failover_pending(settings, "s1")
    since = worker_stats.take_failover_pending(settings, "s1")
    assert since is not None and since < 5
    assert worker_stats.take_failover_pending(settings, "s1") is None  # taken once
    worker_stats.record_failover(settings, "w1", since, ok=True)

    samples = scrape(client)
    assert value(samples, "zaphub_chromium_rss_bytes", worker="w1") == 123_456_789
    assert value(samples, "zaphub_chromium_browsers", worker="w1") == 3
    assert value(samples, "zaphub_chromium_rss_bytes", worker="w2") == 1000
    assert value(samples, "zaphub_restores_total", worker="w1", outcome="ok") == 2
    assert value(samples, "zaphub_restores_total", worker="w2", outcome="failed") == 1
    # Failed restores have no meaningful duration: only the two that came back are timed.
    assert value(samples, "zaphub_restore_duration_seconds_count") == 2
    assert value(samples, "zaphub_restore_duration_seconds_sum") == pytest.approx(48.0)
    assert value(samples, "zaphub_restore_duration_seconds_bucket", le="5.0") == 1
    assert value(samples, "zaphub_restore_duration_seconds_bucket", le="60.0") == 2
    assert value(samples, "zaphub_login_state_saves_total", worker="w1", outcome="ok") == 2
    assert value(samples, "zaphub_login_state_saves_total", worker="w1", outcome="failed") == 1
    assert value(samples, "zaphub_failovers_total", worker="w1", outcome="ok") == 1
    assert value(samples, "zaphub_failover_duration_seconds_count") == 1

    time.sleep(0.8)  # w2's figure outlives its TTL: a dead worker's memory disappears
    samples = scrape(client)
    assert value(samples, "zaphub_chromium_rss_bytes", worker="w2") is None
    assert value(samples, "zaphub_chromium_rss_bytes", worker="w1") == 123_456_789


def test_worker_stats_ttl_defaults_to_a_few_leases(settings, redis_client, broker_prefix):
    worker_stats.publish_worker_stats(settings, "w9", rss_bytes=1, browsers=1)
    ttl = redis_client.pttl(f"{broker_prefix}zaphub:metrics:worker:w9") / 1000
    assert settings.WORKER_LEASE * 2 < ttl <= settings.WORKER_LEASE * 3


def test_without_token_only_loopback(client, tenant):
    assert client.get("/metrics", environ_base=LOCAL).status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    remote = client.get("/metrics", environ_base=REMOTE)
    assert remote.status_code == 403
    assert "loopback" in remote.get_json()["message"]
    # A forwarded-for header is anyone's to write: it opens nothing.
    spoofed = client.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"}, environ_base=REMOTE)
    assert spoofed.status_code == 403
    # Nor does an API user's token.
    assert client.get("/metrics", headers=tenant.admin, environ_base=REMOTE).status_code == 403


@pytest.fixture
def token_client(settings):
    from api import create_app

    return create_app(settings.with_overrides(METRICS_TOKEN="scrape-me-" + "x" * 20)).test_client()


def test_with_token_required_even_from_loopback(token_client, tenant):
    good = {"Authorization": "Bearer scrape-me-" + "x" * 20}
    bare = {"Authorization": good["Authorization"].removeprefix("Bearer ")}  # no scheme
    for headers in ({}, {"Authorization": "Bearer wrong"}, tenant.admin, bare):
        answer = token_client.get("/metrics", headers=headers, environ_base=LOCAL)
        assert answer.status_code == 401, headers
        assert answer.get_json()["code"] == 401
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    samples = scrape(token_client, headers=good, environ=REMOTE)
    assert value(samples, "zaphub_database_up") == 1


def test_api_requests_are_counted(client, tenant):
    client.get("/me", headers=tenant.admin)
    client.get("/jobs/nope", headers=tenant.admin)
    samples = scrape(client)
    assert value(samples, "zaphub_api_requests_total", method="GET", code="404") >= 1


def test_not_in_the_openapi_document(client, tenant):
    assert "/metrics" not in client.get("/openapi.json").get_json()["paths"]
