"""One gunicorn worker serves many event streams and ordinary requests at once.

The real ``gunicorn -c python:api.gunicorn_conf --workers 1`` (the fixture of
``test_gunicorn_errors``) on this run's private PostgreSQL: 50 clients hold
``/events/stream`` open on raw sockets while ``GET /session`` and ``GET /health``
are asked, then events are committed and every stream must carry them. On a
threaded worker with a few threads, the streams alone would take every thread.
"""

from __future__ import annotations

import selectors
import socket
import time

import pytest

from shared.services import events
from shared.uow import UnitOfWork
from tests.faults.test_gunicorn_errors import gunicorn_url  # noqa: F401 - the fixture
from tests.gunicorn_stack import exchange
from tests.integration.test_messages_store import make_linked

STREAMS = 50


@pytest.fixture
def stream_env(monkeypatch):
    """What the gunicorn process reads: streams that poll often and outlast the test.

    Frequent heartbeats so that the streams of the closed sockets end soon after the
    test (a stream learns its client left when it writes): gunicorn's graceful stop
    waits for open streams, up to its 30 s graceful timeout.
    """
    monkeypatch.setenv("EVENTS_STREAM_POLL_SECONDS", "0.2")
    monkeypatch.setenv("EVENTS_STREAM_HEARTBEAT_SECONDS", "0.5")
    monkeypatch.setenv("EVENTS_STREAM_MAX_SECONDS", "120")


@pytest.fixture
def server(stream_env, gunicorn_url):  # noqa: F811 - stream_env first: the env is read at launch
    return gunicorn_url


class Streams:
    """Many open ``/events/stream`` connections, read together without blocking."""

    def __init__(self, port: int, token: str, count: int) -> None:
        self.selector = selectors.DefaultSelector()
        self.received: dict[socket.socket, bytes] = {}
        request = (
            f"GET /events/stream HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n"
            "Accept: text/event-stream\r\n\r\n"
        ).encode()
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(request)
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ)
            self.received[sock] = b""

    def read_until(self, done, timeout: float) -> None:
        """Read whatever arrives until ``done(bytes)`` holds for every connection."""
        give_up = time.monotonic() + timeout
        while not all(done(data) for data in self.received.values()):
            remaining = give_up - time.monotonic()
            missing = sum(not done(data) for data in self.received.values())
            assert remaining > 0, f"{missing} of {len(self.received)} streams still waiting"
            for key, _ in self.selector.select(min(remaining, 0.5)):
                data = key.fileobj.recv(65536)
                assert data, "the server closed a stream"
                self.received[key.fileobj] += data

    def close(self) -> None:
        for sock in self.received:
            self.selector.unregister(sock)
            sock.close()
        self.selector.close()


def timed(port: int, raw: bytes) -> tuple[int, float]:
    started = time.monotonic()
    status, _, _ = exchange(port, raw)
    return status, time.monotonic() - started


def test_one_worker_serves_50_streams_and_ordinary_requests(server, settings, tenant):
    session = make_linked(settings, tenant.company_id, "vendas")
    streams = Streams(server, tenant.admin_token, STREAMS)
    try:
        # Every stream is answered and sent its preamble: none waits for a free thread.
        streams.read_until(lambda data: b": connected" in data, timeout=20)
        for data in streams.received.values():
            assert data.startswith(b"HTTP/1.1 200 "), data[:200]
            assert b"text/event-stream" in data and b"retry: " in data

        auth = f"Authorization: Bearer {tenant.admin_token}\r\n".encode()
        for path in (b"/session", b"/health", b"/session"):
            status, took = timed(server, b"GET " + path + b" HTTP/1.1\r\nHost: t\r\n" + auth + b"\r\n")
            print(f"GET {path.decode()} with {STREAMS} streams open: {status} in {took * 1000:.0f} ms")
            assert status == 200 and took < 10

        ids = []
        for n in range(3):
            with UnitOfWork(settings) as uow:
                ids.append(events.emit(uow.db, session.id, events.SESSION_STATUS, {"n": n}).id)
                uow.commit()
        started = time.monotonic()
        wanted = [f"id: {event_id}\n".encode() for event_id in ids]
        streams.read_until(lambda data: all(line in data for line in wanted), timeout=20)
        print(f"{len(ids)} events reached all {STREAMS} streams in {time.monotonic() - started:.2f} s")
        for data in streams.received.values():
            positions = [data.index(line) for line in wanted]
            assert positions == sorted(positions)  # in commit order
            assert all(data.count(line) == 1 for line in wanted)  # once each
    finally:
        streams.close()
