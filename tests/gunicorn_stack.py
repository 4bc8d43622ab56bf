"""The API under the real gunicorn of the Procfile, for tests that need a real server.

``gunicorn -c python:api.gunicorn_conf`` (gevent workers, JSON error pages, the
metrics hooks) on 127.0.0.1 and a free port, against the test's database and broker;
:func:`exchange` talks raw HTTP to it, so malformed requests can be sent as they are.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from shared.config import Settings
from tests.e2e.stack import service_env, wait_until
from tests.faults.services import free_port

OPENAPI = b"GET /openapi.json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"


def exchange(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw`` as is and read the whole answer: status, headers, body."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        try:
            sock.sendall(raw)
        except BrokenPipeError:  # the server answered and closed before reading it all
            pass
        answer = b""
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            answer += data
            head, sep, body = answer.partition(b"\r\n\r\n")
            length = [line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
            if sep and length and len(body) >= int(length[0].split(b":")[1]):
                break
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


@contextlib.contextmanager
def gunicorn_serving(
    settings: Settings,
    log_path: Path,
    *,
    workers: int = 1,
    env: dict[str, str] | None = None,
    unset: tuple[str, ...] = (),
    probe: bytes = OPENAPI,
) -> Iterator[int]:
    """Run the API under gunicorn until the block ends; yields its port once ``probe`` gets 200."""
    port = free_port()
    environment = service_env(settings, env)
    for name in unset:
        environment.pop(name, None)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:api.gunicorn_conf", "--workers", str(workers)]
            + ["--bind", f"127.0.0.1:{port}", "api:create_app()"],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def answers() -> bool:
            assert process.poll() is None, log_path.read_text()
            try:
                return exchange(port, probe)[0] == 200
            except OSError:
                return False

        wait_until(answers, timeout=60, message="gunicorn to serve")
        yield port
    finally:
        process.terminate()
        process.wait(30)
