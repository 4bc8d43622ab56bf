"""Liveness and readiness: can we reach the database and the broker, who is alive."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import text

from shared.services.workers import live_workers
from shared.uow import UnitOfWork


def check_health(uow: UnitOfWork, broker_ping: Callable[[], None]) -> dict[str, Any]:
    """Probe each dependency; ``ok`` is true when the database and broker both answer."""
    report: dict[str, Any] = {"database": "ok", "broker": "ok", "workers": []}
    try:
        with uow:
            uow.db.execute(text("SELECT 1"))
            report["workers"] = [w.id for w in live_workers(uow.db, uow.settings.WORKER_LEASE)]
    except Exception as exc:  # any driver error means "not ready"
        report["database"] = f"unavailable: {type(exc).__name__}"
    try:
        broker_ping()
    except Exception as exc:
        report["broker"] = f"unavailable: {type(exc).__name__}"
    report["ok"] = report["database"] == "ok" and report["broker"] == "ok"
    report["status"] = "ok" if report["ok"] else "unavailable"
    return report
