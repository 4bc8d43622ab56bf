"""``GET /metrics`` through the real gunicorn of the Procfile, two workers, multiprocess mode.

Whichever worker answers, a scrape shows the same database figures (they are read at
scrape time), and the API's own request counter is merged from every worker's files
in ``PROMETHEUS_MULTIPROC_DIR``, so it only grows from one scrape to the next.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.models import Job, WhatsappSession, utcnow
from shared.uow import UnitOfWork
from tests.gunicorn_stack import exchange, gunicorn_serving

SCRAPE = b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"


@pytest.fixture
def multiproc_dir(tmp_path) -> Path:
    folder = tmp_path / "prometheus"
    folder.mkdir()
    (folder / "counter_999999.db").write_bytes(b"stale")  # a previous run's: on_starting empties it
    return folder


@pytest.fixture
def gunicorn_port(settings, tmp_path, multiproc_dir) -> Iterator[int]:
    """The API under gunicorn with the project's config, 2 workers, metrics in multiprocess mode."""
    with gunicorn_serving(
        settings,
        tmp_path / "gunicorn.log",
        workers=2,
        env={"PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir)},
        unset=("METRICS_TOKEN",),
        probe=SCRAPE,
    ) as port:
        yield port


def parse(body: bytes) -> dict[str, dict[tuple, float]]:
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def database_figures(samples) -> dict[str, dict[tuple, float]]:
    # Figures that move with time (ages) are left out: they differ by the time between scrapes.
    names = ("zaphub_sessions", "zaphub_jobs", "zaphub_job_duration_seconds_count", "zaphub_webhook_backlog")
    return {name: samples.get(name, {}) for name in names}


def test_two_workers_scrape_the_same_figures(gunicorn_port, settings, tenant, multiproc_dir):
    assert not (multiproc_dir / "counter_999999.db").exists()
    now = utcnow()
    with UnitOfWork(settings) as uow:
        for index, status in enumerate(("CONNECTED", "CONNECTED", "ERROR")):
            uow.db.add(WhatsappSession(company_id=tenant.company_id, name=f"s{index}", status=status))
        uow.db.add(Job(company_id=tenant.company_id, kind="create", status="queued", created_at=now))
        uow.db.add(
            Job(
                company_id=tenant.company_id,
                kind="send",
                status="succeeded",
                started_at=now,
                finished_at=now,
            )
        )
        uow.commit()

    scrapes = []
    for _ in range(16):
        status, headers, body = exchange(gunicorn_port, SCRAPE)
        assert status == 200, body
        assert headers["content-type"].startswith("text/plain")
        scrapes.append(parse(body))

    first = database_figures(scrapes[0])
    assert first["zaphub_sessions"] == {
        (("status", "CONNECTED"), ("worker", "")): 2.0,
        (("status", "ERROR"), ("worker", "")): 1.0,
    }
    assert first["zaphub_jobs"][(("kind", "create"), ("status", "queued"))] == 1
    assert first["zaphub_job_duration_seconds_count"] == {(("kind", "send"),): 1.0}
    for samples in scrapes[1:]:
        assert database_figures(samples) == first

    # Each worker counts its own requests in its own file; every scrape merges them all,
    # so the total never goes back whichever worker answered.
    totals = [sum(s.get("zaphub_api_requests_total", {}).values()) for s in scrapes]
    assert totals == sorted(totals) and totals[-1] > totals[0]
    served_by = {name.rsplit("_", 1)[-1] for name in os.listdir(multiproc_dir) if name.startswith("counter_")}
    # Usually both workers answered (one counter file each, made on a worker's first request).
    assert len(served_by) >= 1


def test_remote_clients_are_refused_without_a_token(gunicorn_port):
    # Through a real socket from 127.0.0.1 the scrape is served; X-Forwarded-For changes nothing.
    status, _, _ = exchange(
        gunicorn_port,
        b"GET /metrics HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 10.0.0.5\r\nConnection: close\r\n\r\n",
    )
    assert status == 200
