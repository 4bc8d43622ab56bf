"""Run the simulator's Flask app in a background thread (for tests) or standalone."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Self

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .app import create_app
from .state import SimState


class _QuietHandler(WSGIRequestHandler):
    """Request handler that does not log every poll to stderr."""

    def log_request(self, *args: object, **kwargs: object) -> None:
        pass


class SimulatorServer:
    """Threaded werkzeug server hosting one simulator; usable as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, clock_scale: float = 1.0) -> None:
        self.host = host
        self.port = port
        self.state = SimState(clock_scale=clock_scale)
        self.app = create_app(self.state)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL of the page, e.g. ``http://127.0.0.1:PORT/``."""
        return f"http://{self.host}:{self.port}/"

    def start(self) -> SimulatorServer:
        """Bind (port 0 picks a free port) and serve in a daemon thread."""
        if self._server is not None:
            return self
        self._server = make_server(
            self.host, self.port, self.app, threaded=True, request_handler=_QuietHandler
        )
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"wa-sim-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Shut the server down and wait for its thread."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
