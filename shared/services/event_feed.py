"""Reading the events outbox: the paginated feed and the follow loop behind the live stream.

Ids of a company's events sort in commit order (``shared.services.events``), so
"every event after id X" is complete: a reader that resumes from the last id it saw
misses nothing and sees nothing twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from sqlalchemy import select

from shared.config import Settings
from shared.db import deadline
from shared.models import Company, Event
from shared.services.events import events_after
from shared.uow import UnitOfWork

# How many events one poll of the stream reads at most (it polls again at once if full).
STREAM_BATCH = 500


@dataclass
class EventPage:
    """Events after a cursor, oldest first; ``next_after`` continues (``None``: nothing more yet)."""

    items: list[Event]
    next_after: str | None


def list_events(
    uow: UnitOfWork,
    company_id: str,
    *,
    after: str | None = None,
    session: str | None = None,
    type: Iterable[str] | None = None,  # noqa: A002 - the query parameter's name
    limit: int = 100,
) -> EventPage:
    """The company's events after ``after`` (from the oldest kept), optionally filtered."""
    with uow:
        items = events_after(uow.db, company_id, after, session_name=session, types=type, limit=limit)
    return EventPage(items, items[-1].id if len(items) == limit else None)


def latest_event_id(uow: UnitOfWork, company_id: str) -> str | None:
    """The id of the company's newest event (where a stream with no resume point starts)."""
    with uow:
        return uow.db.scalar(select(Company.last_event_id).where(Company.id == company_id))


def follow(
    settings: Settings,
    company_id: str,
    after: str | None,
    *,
    session: str | None = None,
    types: Iterable[str] | None = None,
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[Event | None]:
    """Yield the company's events after ``after`` as they commit, for ``EVENTS_STREAM_MAX_SECONDS``.

    ``None`` is yielded when ``EVENTS_STREAM_HEARTBEAT_SECONDS`` passed with no event,
    so the caller can keep the connection alive (and learn that the client left).
    A poll that fails (the database is away) is retried at the next interval.
    """
    # time.sleep looked up now, not bound as a default at import: gunicorn's master
    # imports this module before the gevent worker monkey-patches, and the unpatched
    # sleep would stop every other stream and request of the worker while it waits.
    sleep = sleep or time.sleep
    types = list(types or [])
    started = last_sent = clock()
    while clock() - started < settings.EVENTS_STREAM_MAX_SECONDS:
        batch: list[Event] = []
        try:
            with deadline(settings.DB_STATEMENT_TIMEOUT):
                with UnitOfWork(settings) as uow:
                    batch = events_after(
                        uow.db, company_id, after, session_name=session, types=types, limit=STREAM_BATCH
                    )
        except Exception:  # noqa: BLE001 - a stream outlives a database outage
            batch = []
        for event in batch:
            yield event
            after = event.id
        if batch:
            last_sent = clock()
            if len(batch) == STREAM_BATCH:
                continue
        elif clock() - last_sent >= settings.EVENTS_STREAM_HEARTBEAT_SECONDS:
            last_sent = clock()
            yield None
        sleep(settings.EVENTS_STREAM_POLL_SECONDS)
