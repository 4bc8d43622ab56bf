"""Thread pools made on first use, not at import."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor


class LazyExecutor:
    """A small :class:`ThreadPoolExecutor`, made the first time it is asked for.

    Not at import: gunicorn's master imports modules before the gevent worker
    monkey-patches, and an executor made then has a real queue its (by then green)
    threads would block the whole worker on. Two racing first uses make one executor
    too many, which is harmless.
    """

    def __init__(self, max_workers: int, thread_name_prefix: str) -> None:
        self._max_workers, self._prefix = max_workers, thread_name_prefix
        self._executor: ThreadPoolExecutor | None = None

    def get(self) -> ThreadPoolExecutor:
        """The executor, made now if this is its first use."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self._max_workers, thread_name_prefix=self._prefix)
        return self._executor
