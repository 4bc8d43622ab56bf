"""End-to-end fixtures: PostgreSQL only, the simulator, real worker processes, the API."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shared.config import set_settings
from tests.conftest import _truncate
from tests.e2e.stack import WORKER_ENV, WorkerProcess, wait_until
from tests.simulator import SimulatorControl, SimulatorServer

CLOCK_SCALE = 10.0  # first QR ref lives 6 s, later ones 2 s


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """End-to-end tests share the run's PostgreSQL database, emptied before each test."""
    _truncate(postgres_url)
    return postgres_url


@pytest.fixture
def settings(settings):
    """The API side uses the same fast heartbeat lease as the workers."""
    fast = settings.with_overrides(**{k: type(getattr(settings, k))(v) for k, v in WORKER_ENV.items()})
    set_settings(fast)
    return fast


@pytest.fixture(scope="session")
def simulator_server() -> Iterator[SimulatorServer]:
    with SimulatorServer() as server:
        yield server


@pytest.fixture
def sim(simulator_server) -> SimulatorControl:
    control = SimulatorControl(simulator_server.url)
    control.reset()
    control.clock(CLOCK_SCALE)
    return control


@pytest.fixture
def start_worker(settings, simulator_server, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start real workers; every one is stopped (and its browsers killed) afterwards."""
    started: list[WorkerProcess] = []

    def start(worker_id: str = "w1", **kwargs) -> WorkerProcess:
        worker = WorkerProcess(worker_id, settings, simulator_server.url, tmp_path, **kwargs)
        started.append(worker)
        return worker.start()

    yield start
    for worker in started:
        worker.terminate(timeout=30)
        worker.kill()


class Api:
    """The API's test client with one tenant's admin headers, plus waiting helpers."""

    def __init__(self, client, tenant) -> None:
        self.client = client
        self.headers = tenant.admin

    def call(self, method: str, path: str, expected: int | None = None, **kwargs):
        response = getattr(self.client, method)(path, headers=self.headers, **kwargs)
        if expected is not None:
            assert response.status_code == expected, response.get_data(as_text=True)
        return response

    def session(self, name: str) -> dict:
        return self.call("get", f"/session/{name}", 200).get_json()

    def wait_status(self, name: str, status: str, timeout: float = 45, **fields) -> dict:
        def probe():
            current = self.session(name)
            if current["status"] == status and all(current.get(k) == v for k, v in fields.items()):
                return current
            return None

        return wait_until(probe, timeout, message=f"session {name} to be {status} {fields}")

    def wait_job(self, job_id: str, timeout: float = 60) -> dict:
        def probe():
            job = self.call("get", f"/jobs/{job_id}", 200).get_json()
            return job if job["status"] in ("succeeded", "failed") else None

        return wait_until(probe, timeout, message=f"job {job_id} to finish")


@pytest.fixture
def api(client, tenant) -> Api:
    return Api(client, tenant)
