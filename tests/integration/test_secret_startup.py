"""The API and the workers refuse to start without a private login-state key.

Real processes: gunicorn with the Procfile's app factory, ``python -m workers`` and
``celery worker``; each must exit quickly with a one-line message, before any
browser is launched.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from api import create_app
from shared.secrets import DEVELOPMENT_KEY, SecretKeyError
from tests.conftest import REDIS_URL

KEY_VARIABLES = ("SECRET_KEY", "SECRET_KEYS", "DEV_MODE")


def _env(tmp_path: Path, broker_prefix: str, **extra: str) -> dict[str, str]:
    """The environment of a fresh deployment that set no key (plus ``extra``)."""
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARIABLES}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'zaphub.db'}",
        REDIS_URL=REDIS_URL,
        BROKER_KEY_PREFIX=broker_prefix,
        SESSIONS_DIR=str(tmp_path / "sessions"),
        WORKER_ID="keyless",
        **extra,
    )
    return env


def _run(command: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    return done, time.monotonic() - started


@pytest.mark.parametrize("key", ["", DEVELOPMENT_KEY], ids=["no-key", "public-default"])
def test_api_refuses_without_a_private_key(settings, key):
    with pytest.raises(SecretKeyError, match="SECRET_KEYS"):
        create_app(settings.with_overrides(SECRET_KEY=key, SECRET_KEYS=""))


def test_api_starts_in_dev_mode_without_a_key(settings):
    app = create_app(settings.with_overrides(SECRET_KEY="", SECRET_KEYS="", DEV_MODE=True))
    assert app.test_client().get("/openapi.json").status_code == 200


def test_gunicorn_fails_to_boot_without_a_key(tmp_path, broker_prefix):
    command = [sys.executable, "-m", "gunicorn", "--workers=1", "--bind=127.0.0.1:0", "api:create_app()"]
    done, _ = _run(command, _env(tmp_path, broker_prefix, SECRET_KEY=DEVELOPMENT_KEY))
    assert done.returncode != 0
    assert "public development key would encrypt login states" in done.stderr
    assert "SECRET_KEYS" in done.stderr


@pytest.mark.parametrize(
    "key", [{}, {"SECRET_KEY": ""}, {"SECRET_KEYS": " , "}], ids=["unset", "empty", "blank"]
)
def test_worker_refuses_without_a_key_before_celery_starts(tmp_path, broker_prefix, key):
    done, took = _run([sys.executable, "-m", "workers"], _env(tmp_path, broker_prefix, **key))
    assert done.returncode != 0
    message = done.stderr.strip()
    assert message.startswith("zaphub worker: no key to encrypt login states") and "\n" not in message
    assert "SECRET_KEYS" in message and "DEV_MODE" in message
    assert took < 15
    assert not (tmp_path / "sessions").exists()  # no browser runtime, no profile


def test_celery_worker_command_refuses_without_a_key(tmp_path, broker_prefix):
    # `celery -A workers.celery_app worker` skips workers/__main__: the worker_init check stops it.
    command = [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "--pool=threads"]
    done, took = _run(command, _env(tmp_path, broker_prefix))
    assert done.returncode != 0
    assert "no key to encrypt login states" in done.stdout + done.stderr
    assert took < 30
    assert not (tmp_path / "sessions").exists()
