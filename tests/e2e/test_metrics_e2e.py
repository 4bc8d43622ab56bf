"""Worker figures in ``GET /metrics`` from a real worker: Chromium memory, login-state saves.

The worker measures its Chromium tree in its heartbeat loop and counts saves into
Redis; the API reads them there (it never looks at the worker process).
"""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.stack import wait_until
from tests.e2e.test_session_life import link_session


@pytest.fixture(autouse=True)
def clean_worker_stats(redis_client, broker_prefix):
    """Worker counters live under the run's key prefix: each test starts with none."""
    for key in redis_client.scan_iter(match=f"{broker_prefix}zaphub:metrics:*"):
        redis_client.delete(key)


def scrape(api) -> dict[str, dict[tuple, float]]:
    response = api.client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert response.status_code == 200, response.get_data(as_text=True)
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


def test_worker_memory_and_login_state_saves(api, sim, start_worker):
    start_worker("w1")
    link_session(api, sim, "vendas")

    def figures():
        samples = scrape(api)
        rss = value(samples, "zaphub_chromium_rss_bytes", worker="w1")
        saves = value(samples, "zaphub_login_state_saves_total", worker="w1", outcome="ok")
        return samples if rss > 0 and saves >= 1 else None

    samples = wait_until(figures, 20, message="w1's Chromium memory and a counted save")
    # A linked Chromium (browser, renderer, utility processes) takes tens of megabytes at least.
    assert value(samples, "zaphub_chromium_rss_bytes", worker="w1") > 20 * 1024 * 1024
    assert value(samples, "zaphub_chromium_browsers", worker="w1") == 1
    assert value(samples, "zaphub_sessions", status="CONNECTED", worker="w1") == 1
    assert value(samples, "zaphub_workers_live") == 1
    assert value(samples, "zaphub_jobs", kind="create", status="succeeded") == 1


def test_failover_counts_a_restore_and_a_failover_on_the_new_worker(api, sim, start_worker):
    first = start_worker("w1")
    link_session(api, sim, "vendas")
    first.kill()  # no goodbye: its heartbeat stops, its sessions are orphans once the lease runs out

    start_worker("w2")  # a fresh machine: the session comes back from its stored login state
    wait_until(
        lambda: api.call("get", "/health").get_json()["workers"] == ["w2"], 20, message="w1's lease to expire"
    )
    stale = scrape(api)
    assert value(stale, "zaphub_worker_heartbeat_age_seconds", worker="w1") > value(
        stale, "zaphub_worker_lease_seconds"
    )
    sync = api.call("post", "/session/sync", 202).get_json()
    assert api.wait_job(sync["id"])["result"]["orphans_requeued"] == 1
    api.wait_status("vendas", "CONNECTED", worker_id="w2")

    def counted():
        samples = scrape(api)
        return samples if value(samples, "zaphub_failovers_total", worker="w2", outcome="ok") else None

    samples = wait_until(counted, 10, message="the failover to be counted")
    assert value(samples, "zaphub_restores_total", worker="w2", outcome="ok") == 1
    assert value(samples, "zaphub_restore_duration_seconds_count") == 1
    assert value(samples, "zaphub_failover_duration_seconds_count") == 1
    # From the sync finding the orphan to ready on w2: seconds, not minutes.
    assert 0 < value(samples, "zaphub_failover_duration_seconds_sum") < 60
    assert value(samples, "zaphub_sessions", status="CONNECTED", worker="w2") == 1
