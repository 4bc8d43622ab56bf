"""``python -m workers.webhooks``: a Celery worker that delivers webhooks, on the ``webhooks`` queue.

Delivery is network waiting, so the pool is threads (``WEBHOOK_CONCURRENCY`` posts at
once). It needs the deployment's keys to open the endpoints' signing secrets, and
refuses to start without them, like the session workers.
"""

from __future__ import annotations

from shared.config import WEBHOOKS_QUEUE, get_settings
from workers.launch import run_worker
from workers.webhook_app import app


def main(argv: list[str] | None = None) -> None:
    """Run the webhook worker; extra arguments go to ``celery worker``."""
    settings = get_settings()
    run_worker(
        app,
        "zaphub webhook worker",
        hostname=f"webhooks-{settings.WORKER_ID}@%h",
        queues=[WEBHOOKS_QUEUE],
        concurrency=settings.WEBHOOK_CONCURRENCY,
        argv=argv,
    )


if __name__ == "__main__":
    main()
