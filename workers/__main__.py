"""``python -m workers``: start a Celery worker on its own queue and ``control``.

Sessions are pinned to a worker by its queue ``worker.<WORKER_ID>``; the pool is
threads because every task of this worker must reach the one browser runtime that
lives in this process. It refuses to start, before Celery does, without a key fit to
encrypt login states (``shared.secrets``).
"""

from __future__ import annotations

import sys

from shared.config import CONTROL_QUEUE, get_settings
from shared.secrets import SecretKeyError, require_secret_keys
from workers.celery_app import app


def main(argv: list[str] | None = None) -> None:
    """Run the worker; extra arguments go to ``celery worker``."""
    settings = get_settings()
    try:
        require_secret_keys(settings)
    except SecretKeyError as exc:
        sys.exit(f"zaphub worker: {exc}")
    args = [
        "worker",
        f"--hostname={settings.WORKER_ID}@%h",
        f"--queues={settings.worker_queue},{CONTROL_QUEUE}",
        "--pool=threads",
        "--concurrency=8",
        "--loglevel=INFO",
        "--without-mingle",
        "--without-gossip",
        *(sys.argv[1:] if argv is None else argv),
    ]
    app.worker_main(args)


if __name__ == "__main__":
    main()
