"""``python -m workers.flower``: a real Flower process on a free port.

Whatever it binds, the tests only ever connect to 127.0.0.1.
"""

from __future__ import annotations

import base64
import http.client
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import REDIS_URL
from tests.e2e.stack import wait_until

LAUNCHER = [sys.executable, "-m", "workers.flower"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _env(broker_prefix: str, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWER_")}
    env.update(REDIS_URL=REDIS_URL, BROKER_KEY_PREFIX=broker_prefix, **settings)
    return env


def _get(port: int, host: str | None = None, auth: str | None = None) -> int:
    headers = {"Host": host or f"127.0.0.1:{port}"}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/", headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.fixture
def flower(broker_prefix: str, tmp_path: Path) -> Iterator[Callable[..., int]]:
    """Start the launcher with some settings; returns the port it answers on."""
    started: list[subprocess.Popen] = []

    def start(**settings: str) -> int:
        port = _free_port()
        log = open(tmp_path / f"flower-{port}.log", "wb")
        process = subprocess.Popen(
            [*LAUNCHER, f"--port={port}"], env=_env(broker_prefix, **settings), stdout=log, stderr=log
        )
        log.close()
        started.append(process)

        def answering() -> bool:
            assert process.poll() is None, (tmp_path / f"flower-{port}.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False

        wait_until(answering, 30, message="Flower to listen")
        return port

    yield start
    for process in started:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def test_loopback_flower_refuses_a_foreign_host_header(flower):
    port = flower()  # FLOWER_ADDRESS defaults to 127.0.0.1
    for rebound in ("attacker.example", f"attacker.example:{port}", "127.0.0.1.attacker.example"):
        assert _get(port, host=rebound) == 403


def test_loopback_flower_answers_loopback_host_names(flower):
    port = flower()
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}"):
        assert _get(port, host=host) == 200


def test_flower_bound_elsewhere_refuses_to_start_without_basic_auth(broker_prefix):
    done = subprocess.run(
        [*LAUNCHER, f"--port={_free_port()}"],
        env=_env(broker_prefix, FLOWER_ADDRESS="0.0.0.0"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert done.stderr.strip() == (
        "zaphub flower: Flower bound to 0.0.0.0 needs FLOWER_BASIC_AUTH "
        "(user:password, comma-separated pairs), or FLOWER_ADDRESS=127.0.0.1"
    )


def test_flower_bound_elsewhere_asks_for_basic_auth(flower):
    port = flower(FLOWER_ADDRESS="0.0.0.0", FLOWER_BASIC_AUTH="ops:correct-horse,viewer:battery")
    assert _get(port) == 401
    assert _get(port, auth="ops:wrong") == 401
    assert _get(port, auth="ops:correct-horse") == 200
    assert _get(port, host="flower.example.com", auth="viewer:battery") == 200


def test_the_address_cannot_be_overridden_on_the_command_line(broker_prefix):
    done = subprocess.run(
        [*LAUNCHER, "--address=0.0.0.0"], env=_env(broker_prefix), capture_output=True, text=True, timeout=30
    )
    assert done.returncode != 0 and "FLOWER_ADDRESS" in done.stderr


def test_flower_never_imports_playwright(broker_prefix):
    probe = (
        "import sys; from shared.config import get_settings; from workers.flower import monitoring_celery; "
        "monitoring_celery(get_settings()).loader.import_default_modules(); "
        "print('playwright' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=_env(broker_prefix), capture_output=True, text=True, timeout=30
    )
    assert done.stdout.strip() == "False", done.stderr
