"""The unit of work: the one place where a transaction is committed.

Services open ``with uow:``, do their reads and writes through ``uow.db`` and call
``uow.commit()``; leaving the block without a commit rolls everything back, so an
error half-way (a broker outage, a validation error) leaves nothing half-written.

The API gives each request one :class:`RequestUnitOfWork`: the token lookup and the
handler's service call then run in one database session and one transaction, instead
of two checkouts (each with its pool pre-ping) and two transactions.
"""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.orm import Session as DbSession

from shared.config import Settings, get_settings
from shared.db import read_session_factory, session_factory


class UnitOfWork:
    """A database transaction scoped to one service call."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self._db: DbSession | None = None
        self._depth = 0
        self.read_only = False

    @property
    def db(self) -> DbSession:
        """The SQLAlchemy session of the open unit of work."""
        if self._db is None:
            raise RuntimeError("unit of work is not open; use it as 'with uow:'")
        return self._db

    def __enter__(self) -> UnitOfWork:
        if self._db is None:
            factory = read_session_factory if self.read_only else session_factory
            self._db = factory(self.settings.DATABASE_URL)()
        self._depth += 1
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._db is not None
        self._depth -= 1
        if self._depth == 0 and not self._keep_open(exc_type is None):
            self.close()
        elif exc_type is not None:
            self._db.rollback()

    def _keep_open(self, succeeded: bool) -> bool:
        """Whether the session outlives the block that just ended (never, here)."""
        return False

    def close(self) -> None:
        """End the session: anything uncommitted is rolled back."""
        if self._db is not None:
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


class RequestUnitOfWork(UnitOfWork):
    """The unit of work of one API request: authentication and the handler share it.

    With ``read_only`` (a handler that only reads) the session is in autocommit mode:
    the request's statements go without ``BEGIN``/``ROLLBACK`` round trips.

    The first block (the token lookup) leaves its session and transaction open for the
    next one (the handler's service call), which closes it as usual; the request's end
    closes whatever is still open. Later blocks of the same request (a handler that
    waits between reads) each get a session of their own, so a long request never holds
    a connection idle in a transaction.
    """

    def __init__(self, settings: Settings | None = None, *, read_only: bool = False) -> None:
        super().__init__(settings)
        self._handed_on = False
        self.read_only = read_only

    def _keep_open(self, succeeded: bool) -> bool:
        if succeeded and not self._handed_on:
            self._handed_on = True
            return True
        return False


class AutocommitUnitOfWork(UnitOfWork):
    """A unit of work on the autocommit pool: every statement is a transaction of its own.

    For work that is one statement (a job claimed or closed with ``UPDATE … RETURNING``,
    a single read): it is committed, and durable, when the statement returns, and costs
    no ``BEGIN`` and ``COMMIT`` round trips. Never for several writes that belong together.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(settings)
        self.read_only = True  # the autocommit session factory
