"""The ``zaphub`` console script, run as a real subprocess against a fresh database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from api import create_app
from shared.config import Settings

ZAPHUB = [sys.executable, "-m", "shared.cli"]


def run(args: list[str], database_url: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(ZAPHUB + args, env=env, capture_output=True, text=True, timeout=60, check=check)


@pytest.fixture
def fresh_sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


CACHE_SECONDS = 1.0


def test_the_readme_flow(fresh_sqlite, broker_prefix):
    assert "database at head" in run(["db", "upgrade"], fresh_sqlite).stdout
    company_id = run(["company", "create", "acme"], fresh_sqlite).stdout.strip()
    assert len(company_id) == 32
    out = run(
        ["user", "create", "--company", "acme", "--email", "Boss@Acme.io", "--role", "admin"], fresh_sqlite
    ).stdout
    token = out.strip().splitlines()[-1]
    assert token.startswith("zh_") and len(token) > 30

    app = create_app(
        Settings.from_env(
            {},
            DATABASE_URL=fresh_sqlite,
            BROKER_KEY_PREFIX=broker_prefix,
            SECRET_KEY="cli-test",
            TOKEN_CACHE_SECONDS=CACHE_SECONDS,
        )
    )
    client = app.test_client()
    assert client.get("/session", headers={"Authorization": f"Bearer {token}"}).status_code == 200

    assert "revoked" in run(["token", "revoke", "--email", "boss@acme.io"], fresh_sqlite).stdout
    # The CLI is another process: the API's cached entry lasts at most TOKEN_CACHE_SECONDS.
    time.sleep(CACHE_SECONDS)
    assert client.get("/session", headers={"Authorization": f"Bearer {token}"}).status_code == 401

    rotated = run(["token", "rotate", "--email", "boss@acme.io"], fresh_sqlite).stdout
    assert (
        client.get(
            "/session", headers={"Authorization": f"Bearer {rotated.strip().splitlines()[-1]}"}
        ).status_code
        == 200
    )


def test_errors_are_one_line_and_exit_1(fresh_sqlite):
    run(["db", "upgrade"], fresh_sqlite)
    run(["company", "create", "acme"], fresh_sqlite)
    duplicate = run(["company", "create", "acme"], fresh_sqlite, check=False)
    assert duplicate.returncode == 1 and duplicate.stderr.strip() == "error: company 'acme' already exists"
    orphan = run(["user", "create", "--company", "nope", "--email", "a@b.c"], fresh_sqlite, check=False)
    assert orphan.returncode == 1 and "company 'nope' not found" in orphan.stderr
    bad_role = run(
        ["user", "create", "--company", "acme", "--email", "a@b.c", "--role", "root"],
        fresh_sqlite,
        check=False,
    )
    assert bad_role.returncode == 2
    unknown = run(["token", "revoke", "--email", "ghost@x.y"], fresh_sqlite, check=False)
    assert unknown.returncode == 1 and "not found" in unknown.stderr
