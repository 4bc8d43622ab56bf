"""Job kinds, their Celery task names, and how a job is published to the broker.

The API records every job in the ``jobs`` table and publishes its id; workers read
the row, so nothing depends on a result backend that expires.
"""

from __future__ import annotations

import enum
import logging
from typing import Protocol

from celery import Celery
from kombu.exceptions import OperationalError as KombuOperationalError

from shared.errors import Unavailable

log = logging.getLogger(__name__)


class JobKind(enum.StrEnum):
    CREATE = "create"
    START = "start"
    RESTART = "restart"
    STOP = "stop"
    REMOVE = "remove"
    CLEANUP = "cleanup"
    # One worker's part of a cleanup (its local folders, browsers, locks), on its own queue.
    WORKER_CLEANUP = "worker_cleanup"
    SYNC = "sync"
    SEND = "send"
    PAIR = "pair"


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


FINISHED_JOB_STATUSES = frozenset({JobStatus.SUCCEEDED.value, JobStatus.FAILED.value})

# Explicit task names: renaming a module never orphans queued messages.
TASK_NAMES: dict[JobKind, str] = {
    JobKind.CREATE: "zaphub.session.assign",
    JobKind.START: "zaphub.session.start",
    JobKind.RESTART: "zaphub.session.restart",
    JobKind.STOP: "zaphub.session.stop",
    JobKind.REMOVE: "zaphub.session.remove",
    JobKind.CLEANUP: "zaphub.maintenance.cleanup",
    JobKind.WORKER_CLEANUP: "zaphub.maintenance.worker_cleanup",
    JobKind.SYNC: "zaphub.maintenance.sync",
    JobKind.SEND: "zaphub.message.send",
    JobKind.PAIR: "zaphub.session.pair",
}


class JobPublisher(Protocol):
    """Something that puts a job id on a queue."""

    def publish(self, kind: JobKind, job_id: str, queue: str) -> None:
        """Publish the job, or raise :class:`Unavailable` if the broker is down."""


class CeleryPublisher:
    """Publishes jobs through a Celery app, by task name (no task import needed)."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def publish(self, kind: JobKind, job_id: str, queue: str) -> None:
        """Send the job's task to ``queue``; broker errors become :class:`Unavailable`."""
        try:
            self.app.send_task(TASK_NAMES[JobKind(kind)], args=[job_id], queue=queue, routing_key=queue)
        except (KombuOperationalError, OSError, ConnectionError) as exc:
            log.warning("broker unavailable while publishing %s job %s: %s", kind, job_id, exc)
            raise Unavailable("message broker is unavailable; nothing was changed, retry later") from exc
