"""``zaphub keys rotate`` against a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from shared import login_state
from shared.config import Settings
from shared.login_state import LoginStateError, pack, verify
from shared.models import WhatsappSession, utcnow
from shared.services import key_rotation, session_events
from shared.services import workers as worker_services
from shared.uow import UnitOfWork

OLD, NEW = "rotation-old-key", "rotation-new-key"


def _archive(tmp_path: Path, keys: list[str]) -> bytes:
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    (profile / "Default" / "Local Storage").mkdir(parents=True)
    (profile / "Default" / "Local Storage" / "000005.ldb").write_bytes(os.urandom(64))
    return pack(profile, keys)


def _sessions(settings: Settings, tenant, archives: dict[str, bytes | None]) -> dict[str, str]:
    """Create one session per name with the given stored archive; returns name → id."""
    ids = {}
    with UnitOfWork(settings) as uow:
        for name, archive in archives.items():
            row = WhatsappSession(company_id=tenant.company_id, name=name, worker_id="w1", epoch=1)
            if archive is not None:
                row.auth_state, row.auth_state_updated_at = archive, utcnow()
            uow.db.add(row)
            uow.db.flush()
            ids[name] = row.id
        uow.commit()
    return ids


def _stored(settings: Settings) -> dict[str, tuple[bytes | None, object, object]]:
    with UnitOfWork(settings) as uow:
        rows = uow.db.execute(
            select(
                WhatsappSession.id,
                WhatsappSession.auth_state,
                WhatsappSession.auth_state_updated_at,
                WhatsappSession.updated_at,
            )
        ).all()
    return {row.id: (row.auth_state, row.auth_state_updated_at, row.updated_at) for row in rows}


def _zaphub(args: list[str], settings: Settings, secret_keys: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "SECRET_KEYS", "DEV_MODE")}
    env.update(DATABASE_URL=settings.DATABASE_URL, SECRET_KEYS=secret_keys)
    return subprocess.run(
        [sys.executable, "-m", "shared.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_rotate_reencrypts_every_row_with_the_first_key(settings, tenant, tmp_path):
    ids = _sessions(
        settings,
        tenant,
        {
            "a": _archive(tmp_path, [OLD]),
            "b": _archive(tmp_path, [OLD]),
            "c": _archive(tmp_path, [NEW]),
            "lost": _archive(tmp_path, ["a-key-nobody-has"]),
            "none": None,
        },
    )
    before = _stored(settings)

    dry = _zaphub(["keys", "rotate", "--dry-run"], settings, f"{NEW},{OLD}")
    assert "would be re-encrypted: 2" in dry.stdout
    assert _stored(settings) == before

    done = _zaphub(["keys", "rotate", "--batch-size", "2"], settings, f"{NEW},{OLD}")
    assert done.returncode == 1, done.stderr
    assert "re-encrypted: 2\nalready current: 1\n" in done.stdout
    assert "failed (no key decrypts them): 1" in done.stdout
    assert done.stderr.strip() == f"error: login states no key decrypts: {ids['lost']}"

    after = _stored(settings)
    for name in ("a", "b", "c"):
        archive, saved_at, updated_at = after[ids[name]]
        verify(archive, [NEW])
        with pytest.raises(LoginStateError):
            verify(archive, [OLD])
        # Re-encrypting is not a new save nor a change of the session.
        assert (saved_at, updated_at) == before[ids[name]][1:]
    assert after[ids["lost"]] == before[ids["lost"]]
    assert after[ids["none"]][0] is None

    again = _zaphub(["keys", "rotate"], settings, f"{NEW},{OLD},a-key-nobody-has")
    assert again.returncode == 0, again.stderr
    assert "re-encrypted: 1\nalready current: 3\n" in again.stdout


def test_rotate_leaves_a_row_saved_meanwhile_alone(settings, tenant, tmp_path, monkeypatch):
    ids = _sessions(settings, tenant, {"busy": _archive(tmp_path, [OLD]), "idle": _archive(tmp_path, [OLD])})
    fresher = _archive(tmp_path, [OLD])
    lease = worker_services.register_worker(
        UnitOfWork(settings), "w1", hostname="elsewhere", pid=1, capacity=5, lease_seconds=30
    )
    real_reencrypt = login_state.reencrypt

    def worker_saves_busy_while_rotating(blob: bytes, keys):
        # The worker (still on the old key) saves a fresher state between read and write.
        if blob == _stored(settings)[ids["busy"]][0]:
            assert session_events.save_login_state(
                UnitOfWork(settings), ids["busy"], "w1", 1, fresher, lease_token=lease
            )
        return real_reencrypt(blob, keys)

    monkeypatch.setattr(key_rotation, "reencrypt", worker_saves_busy_while_rotating)
    report = key_rotation.rotate_login_states(settings, [NEW, OLD], batch_size=10)

    assert (report.reencrypted, report.changed_meanwhile, report.failed) == (1, 1, [])
    after = _stored(settings)
    assert after[ids["busy"]][0] == fresher
    verify(after[ids["idle"]][0], [NEW])


def test_rotate_refuses_without_a_key(settings):
    refused = _zaphub(["keys", "rotate"], settings, "")
    assert refused.returncode == 1 and "SECRET_KEYS" in refused.stderr


def test_generate_prints_a_fresh_key(settings):
    first, second = (_zaphub(["keys", "generate"], settings, "").stdout.strip() for _ in range(2))
    assert len(first) >= 40 and first != second


def test_rotate_reencrypts_webhook_secrets_which_go_on_signing(settings, tenant):
    from shared.models import WebhookEndpoint
    from shared.sealing import unseal
    from shared.services import webhook_endpoints

    old = settings.with_overrides(SECRET_KEYS=OLD, SECRET_KEY="", WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8")
    created = webhook_endpoints.create_endpoint(UnitOfWork(old), tenant.company_id, url="http://127.0.0.1:9/")
    rotated = webhook_endpoints.rotate_secret(UnitOfWork(old), tenant.company_id, created.id, 600)
    done = _zaphub(["keys", "rotate"], settings, f"{NEW},{OLD}")
    assert done.returncode == 0, done.stderr
    assert "webhook secrets re-encrypted: 1, already current: 0" in done.stdout
    new_only = settings.with_overrides(SECRET_KEYS=NEW, SECRET_KEY="")
    with UnitOfWork(settings) as uow:
        endpoint = uow.db.get(WebhookEndpoint, created.id)
        assert unseal(new_only, endpoint.secret) == rotated.secret
        assert unseal(new_only, endpoint.previous_secret) == created.secret
    again = _zaphub(["keys", "rotate"], settings, f"{NEW},{OLD}")
    assert "webhook secrets re-encrypted: 0, already current: 1" in again.stdout
