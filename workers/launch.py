"""Starting a Celery worker of the project: the key check first, then the common arguments."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from celery import Celery

from shared.config import get_settings
from shared.secrets import SecretKeyError, require_secret_keys


def run_worker(
    app: Celery,
    label: str,
    *,
    hostname: str,
    queues: Sequence[str],
    concurrency: int,
    argv: list[str] | None = None,
) -> None:
    """Run ``celery worker`` for ``app`` on ``queues`` with a thread pool; ``argv`` adds arguments.

    It refuses to start, before Celery does, without a key fit to encrypt with: both
    kinds of worker open what is stored encrypted (login states, webhook secrets).
    """
    try:
        require_secret_keys(get_settings())
    except SecretKeyError as exc:
        sys.exit(f"{label}: {exc}")
    app.worker_main(
        [
            "worker",
            f"--hostname={hostname}",
            f"--queues={','.join(queues)}",
            "--pool=threads",
            f"--concurrency={concurrency}",
            "--loglevel=INFO",
            "--without-mingle",
            "--without-gossip",
            *(sys.argv[1:] if argv is None else argv),
        ]
    )
