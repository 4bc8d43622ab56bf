"""Real parts for webhook tests and benchmarks: a local receiver, a webhook worker, beat.

The receiver is an HTTP server on 127.0.0.1 that records every request (headers, body,
arrival time) and answers with scripted status codes. The webhook worker and beat are
the project's own processes (``python -m workers.webhooks``, ``celery beat``) on the
run's database and Redis key prefix.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from shared.config import Settings
from tests.e2e.stack import ServiceProcess, service_env

# Fast clocks for webhook processes: a sweep every half second, lost messages re-sent after 2 s.
WEBHOOK_ENV = {
    "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
    "WEBHOOK_SWEEP_INTERVAL": "0.5",
    "WEBHOOK_REQUEUE_SECONDS": "2",
    "WEBHOOK_CONNECT_TIMEOUT": "1",
    "WEBHOOK_READ_TIMEOUT": "2",
    "WEBHOOK_CONCURRENCY": "8",
}


class _Server(ThreadingHTTPServer):
    # socketserver's default listen backlog of 5 overflows under a webhook worker's 16 parallel
    # posts: the dropped SYNs come back as connect timeouts (WEBHOOK_CONNECT_TIMEOUT=1 here).
    request_queue_size = 128


@dataclass
class Received:
    """One request the receiver got."""

    headers: dict[str, str]
    body: bytes
    at: float  # time.time() on arrival
    status: int

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A local webhook receiver: records requests, answers ``script`` codes in turn, then ``default``."""

    default: int = 200
    script: deque[int] = field(default_factory=deque)
    delay: float = 0.0
    port: int = 0  # 0: a free one; a former receiver's port to come back where it was
    requests: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if receiver.delay:
                    time.sleep(receiver.delay)
                with receiver._lock:
                    status = receiver.script.popleft() if receiver.script else receiver.default
                    receiver.requests.append(Received(dict(self.headers), body, time.time(), status))
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(f"answered {status}".encode())

            def log_message(self, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def ids(self, status: int = 200) -> set[str]:
        """The distinct ``webhook-id`` values answered with ``status``."""
        return {r.headers["webhook-id"] for r in self.answered(status)}

    def answered(self, status: int = 200) -> list[Received]:
        """The requests answered with ``status``."""
        with self._lock:
            return [r for r in self.requests if r.status == status]

    def close(self) -> None:
        """Stop listening: the port refuses connections from now on."""
        self._server.shutdown()
        self._server.server_close()


def webhook_env(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a webhook process on ``settings``' database and broker."""
    return service_env(settings, {**WEBHOOK_ENV, **(extra or {})})


class WebhookWorker(ServiceProcess):
    """``python -m workers.webhooks``."""

    ready_marker = "ready."

    def __init__(
        self, settings: Settings, root: Path, env: dict[str, str] | None = None, name: str = "w"
    ) -> None:
        super().__init__(
            [sys.executable, "-m", "workers.webhooks", f"--hostname=webhooks-{name}-{os.getpid()}@%h"],
            webhook_env(settings, env),
            root / f"webhook-worker-{name}.log",
        )
