"""The Celery app factory shared by the API (publisher, broker probe), workers and beat.

It lives in ``shared/`` so that ``api/`` never imports from ``workers/``; the task
modules are named by string in ``include`` and so are imported only by worker
processes (the API never loads Playwright).
"""

from __future__ import annotations

from celery import Celery

from celeryconfig import broker_settings
from shared.config import Settings

WORKER_MODULES = ["workers.tasks", "workers.lifecycle"]


def create_celery(settings: Settings, include: list[str] | None = None) -> Celery:
    """A Celery app with the project's configuration and ``settings``' broker.

    ``include`` names the task modules a worker of this app loads (by default the
    session worker's).
    """
    celery = Celery("zaphub", include=WORKER_MODULES if include is None else include, set_as_current=False)
    celery.config_from_object("celeryconfig")
    celery.conf.update(broker_settings(settings))
    return celery


def broker_ping(celery: Celery) -> None:
    """Raise unless the broker answers within the configured timeout."""
    with celery.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, timeout=celery.conf.broker_connection_timeout)
