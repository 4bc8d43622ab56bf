"""``DEV_MODE`` is the explicit way to run a real worker without a private key."""

from __future__ import annotations

from tests.e2e.stack import WorkerProcess


def test_worker_starts_in_dev_mode_without_a_key(settings, simulator_server, tmp_path):
    worker = WorkerProcess("devmode", settings.with_overrides(SECRET_KEY=""), simulator_server.url, tmp_path)
    for name in ("SECRET_KEY", "SECRET_KEYS"):
        worker.env.pop(name, None)
    worker.env["DEV_MODE"] = "1"
    try:
        worker.start()  # waits until it registers and heartbeats
        assert worker.process.poll() is None
    finally:
        worker.terminate(timeout=30)
        worker.kill()
