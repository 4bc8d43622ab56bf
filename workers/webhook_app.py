"""The Celery application of webhook workers (``python -m workers.webhooks``).

It shares the broker and configuration of the session workers but loads only the
webhook tasks: a webhook worker never imports Playwright, owns no session and runs
no session lifecycle.
"""

from __future__ import annotations

from shared.celery_factory import create_celery
from shared.config import get_settings

app = create_celery(get_settings(), include=["workers.webhook_tasks"])
