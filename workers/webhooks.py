"""``python -m workers.webhooks``: a Celery worker that delivers webhooks, on the ``webhooks`` queue.

Delivery is network waiting, so the pool is threads (``WEBHOOK_CONCURRENCY`` posts at
once). It needs the deployment's keys to open the endpoints' signing secrets, and
refuses to start without them, like the session workers.
"""

from __future__ import annotations

import sys

from shared.config import WEBHOOKS_QUEUE, get_settings
from shared.secrets import SecretKeyError, require_secret_keys
from workers.webhook_app import app


def main(argv: list[str] | None = None) -> None:
    """Run the webhook worker; extra arguments go to ``celery worker``."""
    settings = get_settings()
    try:
        require_secret_keys(settings)
    except SecretKeyError as exc:
        sys.exit(f"zaphub webhook worker: {exc}")
    args = [
        "worker",
        f"--hostname=webhooks-{settings.WORKER_ID}@%h",
        f"--queues={WEBHOOKS_QUEUE}",
        "--pool=threads",
        f"--concurrency={settings.WEBHOOK_CONCURRENCY}",
        "--loglevel=INFO",
        "--without-mingle",
        "--without-gossip",
        *(sys.argv[1:] if argv is None else argv),
    ]
    app.worker_main(args)


if __name__ == "__main__":
    main()
