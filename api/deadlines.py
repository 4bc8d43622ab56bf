"""A time budget for the database work of each request.

Every PostgreSQL round trip of a request (pool pre-ping, connect, queries) draws on
one budget, so a database that stops answering turns into a 503 within about the
statement timeout instead of holding the client and a server thread for as long as
the outage lasts.
"""

from __future__ import annotations

import contextlib

from flask import Flask, g

from shared.db import deadline


def register_request_deadline(app: Flask, seconds: float) -> None:
    """Give the database work of each request of ``app`` at most ``seconds`` in total."""

    @app.before_request
    def start_budget() -> None:
        budget = contextlib.ExitStack()
        budget.enter_context(deadline(seconds))
        g.database_budget = budget

    @app.teardown_request
    def end_budget(_exc: BaseException | None) -> None:
        budget = g.pop("database_budget", None)
        if budget is not None:
            budget.close()
