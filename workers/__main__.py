"""``python -m workers``: start a Celery worker on its own queue and ``control``.

Sessions are pinned to a worker by its queue ``worker.<WORKER_ID>``; the pool is
threads because every task of this worker must reach the one browser runtime that
lives in this process.
"""

from __future__ import annotations

import sys

from shared.config import CONTROL_QUEUE, get_settings
from workers.celery_app import app


def main(argv: list[str] | None = None) -> None:
    """Run the worker; extra arguments go to ``celery worker``."""
    settings = get_settings()
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
