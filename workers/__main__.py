"""``python -m workers``: start a Celery worker on its own queue and ``control``.

Sessions are pinned to a worker by its queue ``worker.<WORKER_ID>``; the pool is
threads because every task of this worker must reach the one browser runtime that
lives in this process. It refuses to start, before Celery does, without a key fit to
encrypt login states (``shared.secrets``).
"""

from __future__ import annotations

from shared.config import CONTROL_QUEUE, get_settings
from workers.celery_app import app
from workers.launch import run_worker


def main(argv: list[str] | None = None) -> None:
    """Run the worker; extra arguments go to ``celery worker``."""
    settings = get_settings()
    run_worker(
        app,
        "zaphub worker",
        hostname=f"{settings.WORKER_ID}@%h",
        queues=[settings.worker_queue, CONTROL_QUEUE],
        concurrency=8,
        argv=argv,
    )


if __name__ == "__main__":
    main()
