"""gunicorn workers (gevent and threaded) answering the errors gunicorn raises itself in JSON.

Requests gunicorn cannot parse (a request line or header too long or malformed, a
bad chunk) never reach the app; gunicorn answers them with an HTML page. This worker
lets gunicorn decide the status, the message and the logging as usual, catches the
page on its way out and sends the API's JSON error shape instead.

:class:`JsonErrorGeventWorker` is the one the ``web`` process runs (see
``api.gunicorn_conf``); :class:`JsonErrorWorker` is the same on ``gthread``. The gevent
one is built on first access: importing gevent's worker module here would make every
user of this module (the gthread worker included) need gevent, and gunicorn's master
imports the worker class before forking.
"""

from __future__ import annotations

import html
import json
import re
import socket
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker

from api.error_shape import error_body

_STATUS_LINE = re.compile(rb"^HTTP/1\.[01] (\d{3}) ")
_MESSAGE = re.compile(rb"</h1>\s*(.*?)\s*</body>", re.DOTALL)


class _ErrorPageCatcher:
    """Stands in for the client socket while gunicorn writes its error page."""

    def __init__(self, client: socket.socket) -> None:
        self._client = client
        self.written = b""

    def gettimeout(self) -> float:
        return 0.0  # "non-blocking already": gunicorn then just calls sendall

    def sendall(self, data: bytes) -> None:
        self.written += data

    def __getattr__(self, name: str) -> Any:  # getsockname() and friends for the access log
        return getattr(self._client, name)


def json_error_page(page: bytes) -> bytes:
    """Turn gunicorn's HTML error response ``page`` into the same error as JSON."""
    status = _STATUS_LINE.match(page)
    code = int(status.group(1)) if status else 500
    found = _MESSAGE.search(page)
    message = html.unescape(found.group(1).decode("latin-1")) if found else ""
    error = error_body(code, message or ("internal error" if code >= 500 else "bad request"))
    body = json.dumps(error)
    head = (
        f"HTTP/1.1 {code} {error['status']}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return (head + body).encode("latin-1")


class JsonErrorMixin:
    """JSON bodies on gunicorn's own error responses, for any gunicorn worker class."""

    log: Any

    def handle_error(self, req: Any, client: socket.socket, addr: Any, exc: BaseException) -> None:
        """Let gunicorn handle ``exc`` as usual, then send its answer as JSON."""
        catcher = _ErrorPageCatcher(client)
        super().handle_error(req, catcher, addr, exc)
        if not catcher.written:
            return
        try:
            util.write_nonblock(client, json_error_page(catcher.written))
        except Exception:  # the client is gone: nothing left to tell it
            self.log.debug("Failed to send error message.")


class JsonErrorWorker(JsonErrorMixin, ThreadWorker):
    """The ``gthread`` worker with JSON bodies on gunicorn's own error responses."""


def _gevent_worker() -> type:
    # Imported here, not at the top: see the module docstring. Importing it patches
    # nothing; GeventWorker.init_process monkey-patches, in the forked worker only.
    from gunicorn.workers.ggevent import GeventWorker

    class JsonErrorGeventWorker(JsonErrorMixin, GeventWorker):
        """The ``gevent`` worker with JSON bodies on gunicorn's own error responses."""

    JsonErrorGeventWorker.__module__ = __name__
    JsonErrorGeventWorker.__qualname__ = "JsonErrorGeventWorker"
    return JsonErrorGeventWorker


def __getattr__(name: str) -> Any:
    """``JsonErrorGeventWorker``, built (and kept) on first access."""
    if name == "JsonErrorGeventWorker":
        worker = globals()[name] = _gevent_worker()
        return worker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
