"""The unit of work: the one place where a transaction is committed.

Services open ``with uow:``, do their reads and writes through ``uow.db`` and call
``uow.commit()``; leaving the block without a commit rolls everything back, so an
error half-way (a broker outage, a validation error) leaves nothing half-written.
"""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.orm import Session as DbSession

from shared.config import Settings, get_settings
from shared.db import session_factory


class UnitOfWork:
    """A database transaction scoped to one service call."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self._db: DbSession | None = None

    @property
    def db(self) -> DbSession:
        """The SQLAlchemy session of the open unit of work."""
        if self._db is None:
            raise RuntimeError("unit of work is not open; use it as 'with uow:'")
        return self._db

    def __enter__(self) -> UnitOfWork:
        self._db = session_factory(self.settings.DATABASE_URL)()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._db is not None
        # close() rolls back anything uncommitted but, unlike rollback(), leaves the
        # loaded objects readable, so the caller can serialise what it got back.
        self._db.close()
        self._db = None

    def commit(self) -> None:
        """Commit everything done in this unit of work."""
        self.db.commit()

    def rollback(self) -> None:
        """Discard everything done since the last commit."""
        self.db.rollback()
