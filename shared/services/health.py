"""Liveness and readiness: can we reach the database and the broker, who is alive.

A health check must answer quickly *especially* when a dependency hangs, so both
probes run at once and each gets ``HEALTH_TIMEOUT``: the database through a
:func:`shared.db.deadline`, the broker in a helper thread that is waited for no
longer than that.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import text

from shared.db import deadline
from shared.lazy_executor import LazyExecutor
from shared.services.workers import live_workers
from shared.uow import UnitOfWork

# Few threads on purpose: while the broker hangs, probes queue up behind the stuck
# ones and are reported as timed out, instead of piling up threads.
_probes = LazyExecutor(max_workers=2, thread_name_prefix="health-broker")


def check_health(uow: UnitOfWork, broker_ping: Callable[[], None]) -> dict[str, Any]:
    """Probe each dependency; ``ok`` is true when the database and broker both answer."""
    timeout = uow.settings.HEALTH_TIMEOUT
    give_up = time.monotonic() + timeout
    broker_probe = _probes.get().submit(broker_ping)
    report: dict[str, Any] = {"database": "ok", "broker": "ok", "workers": []}
    try:
        with deadline(timeout), uow:
            uow.db.execute(text("SELECT 1"))
            report["workers"] = [w.id for w in live_workers(uow.db, uow.settings.WORKER_LEASE)]
    except Exception as exc:  # any driver error means "not ready"
        report["database"] = f"unavailable: {type(exc).__name__}"
    try:
        broker_probe.result(timeout=max(0.0, give_up - time.monotonic()))
    except Exception as exc:  # a timeout included
        broker_probe.cancel()
        report["broker"] = f"unavailable: {type(exc).__name__}"
    report["ok"] = report["database"] == "ok" and report["broker"] == "ok"
    report["status"] = "ok" if report["ok"] else "unavailable"
    return report
