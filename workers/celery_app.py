"""The process's Celery application, for ``celery -A workers.celery_app`` (worker, beat, Flower).

Importing this module never imports Playwright: the tasks (and the browser runtime)
are loaded only by worker processes, through the factory's ``include``.
"""

from __future__ import annotations

from shared.celery_factory import broker_ping, create_celery
from shared.config import get_settings

__all__ = ["app", "broker_ping", "create_celery"]

app = create_celery(get_settings())
