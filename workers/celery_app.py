"""The Celery application shared by workers, beat and the API's publisher.

Importing this module never imports Playwright: the tasks (and the browser runtime)
are loaded only by worker processes, through ``include``.
"""

from __future__ import annotations

from celery import Celery

from celeryconfig import broker_settings
from shared.config import Settings, get_settings


def create_celery(settings: Settings) -> Celery:
    """A Celery app with the project's configuration and ``settings``' broker."""
    celery = Celery("zaphub", include=["workers.tasks", "workers.lifecycle"], set_as_current=False)
    celery.config_from_object("celeryconfig")
    celery.conf.update(broker_settings(settings))
    return celery


def broker_ping(celery: Celery) -> None:
    """Raise unless the broker answers within the configured timeout."""
    with celery.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, timeout=celery.conf.broker_connection_timeout)


app = create_celery(get_settings())
