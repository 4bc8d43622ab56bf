"""``zaphub import-legacy`` against a real database (SQLite and PostgreSQL).

The fixture is ``sessions.json`` as the old NestJS service wrote it; profiles are made
as small fake Chromium profiles here (the end-to-end test makes a real one).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select, update

from shared.config import Settings
from shared.login_state import verify
from shared.models import Company, Event, LegacyImport, WhatsappSession
from shared.secrets import secret_keys
from shared.services import legacy_import
from shared.services.legacy_import import LegacyImportError, map_id
from shared.statuses import SessionStatus, from_legacy
from shared.uow import UnitOfWork

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "legacy" / "sessions.json"
VENDAS = "3f0c1a9e-6b2d-4c7e-9a41-2d5e8f7b1c03"
COMPANY_A = "8d6f2b7a-1c4e-4f3a-b5d9-0e7c6a2f9b14"
COMPANY_B = "c0e9a7d5-3b1f-4a26-9e8c-7d4b2f1a6e50"


def _entries() -> list[dict]:
    return json.loads(FIXTURE.read_text())


def _write(tmp_path: Path, entries, name: str = "sessions.json") -> Path:
    path = tmp_path / name
    path.write_text(entries if isinstance(entries, str) else json.dumps(entries))
    return path


def _leveldb(folder: Path, corrupt: bool = False) -> None:
    folder.mkdir(parents=True)
    (folder / "CURRENT").write_text("garbage\n" if corrupt else "MANIFEST-000001\n")
    (folder / "MANIFEST-000001").write_bytes(os.urandom(32))
    (folder / "000003.log").write_bytes(os.urandom(256))


def make_profile(profiles: Path, legacy_id: str, settings: Settings, corrupt: bool = False) -> Path:
    """A fake LocalAuth profile with the WhatsApp origin's IndexedDB and Local Storage."""
    profile = profiles / f"session-{legacy_id}"
    origin = legacy_import._origin_folder(settings.WA_WEB_URL)
    _leveldb(profile / "Default" / "IndexedDB" / origin, corrupt=corrupt)
    _leveldb(profile / "Default" / "Local Storage" / "leveldb")
    return profile


def _rows(settings: Settings) -> dict[str, dict]:
    with UnitOfWork(settings) as uow:
        sessions = uow.db.scalars(select(WhatsappSession).order_by(WhatsappSession.id)).all()
        return {
            s.name: {
                "id": s.id,
                "company_id": s.company_id,
                "status": s.status,
                "last_error": s.last_error,
                "is_active": s.is_active,
                "phone_number": s.phone_number,
                "config": s.config_dict,
                "updated_at": s.updated_at,
                "auth_state": s.auth_state,
                "worker_id": s.worker_id,
                "epoch": s.epoch,
            }
            for s in sessions
        }


def _counts(settings: Settings) -> tuple[int, int, int, int]:
    with UnitOfWork(settings) as uow:
        return tuple(
            len(uow.db.scalars(select(model)).all())
            for model in (Company, WhatsappSession, LegacyImport, Event)
        )


def _import(settings: Settings, path: Path, profiles: Path | None = None, dry_run: bool = False):
    return legacy_import.import_file(
        UnitOfWork(settings), path, profiles, secret_keys(settings), dry_run=dry_run
    )


def test_statuses_of_the_old_service_map_through_the_one_table():
    assert from_legacy("connected") is SessionStatus.CONNECTED
    assert from_legacy("qrcode") is SessionStatus.QRCODE
    assert from_legacy("disconnected") is SessionStatus.DISCONNECTED
    with pytest.raises(KeyError):
        from_legacy("CONNECTED")


def test_good_file_imports_sessions_companies_and_logins(settings, tmp_path):
    profiles = tmp_path / ".wwebjs_auth"
    make_profile(profiles, VENDAS, settings)
    report = _import(settings, FIXTURE, profiles)
    assert report.summary() == {
        "created": 4,
        "updated": 0,
        "skipped": 0,
        "companies_created": 2,
        "profiles_imported": 1,
        "profiles_unusable": 0,
    }
    rows = _rows(settings)
    assert set(rows) == {"vendas", "suporte", "financeiro", "cobranca"}
    vendas = rows["vendas"]
    # A UUID keeps its value: the same id without dashes.
    assert vendas["id"] == VENDAS.replace("-", "")
    assert vendas["company_id"] == map_id(COMPANY_A) == COMPANY_A.replace("-", "")
    # Comes back on its own: active, quietly closed, with a login, no owner yet.
    assert (vendas["status"], vendas["last_error"], vendas["is_active"]) == ("DISCONNECTED", None, True)
    assert vendas["phone_number"] == "5511999990001"
    assert vendas["config"]["webhookUrl"] == "https://crm.example.com/hooks/whatsapp"
    verify(vendas["auth_state"], secret_keys(settings))
    # No profile: imported without a login, with the reason (so no QR opens by itself).
    assert rows["suporte"]["auth_state"] is None and "no profile" in rows["suporte"]["last_error"]
    assert rows["financeiro"]["is_active"] is False
    assert rows["cobranca"]["status"] == "ERROR" and "'error'" in rows["cobranca"]["last_error"]
    with UnitOfWork(settings) as uow:
        companies = {c.id: c.name for c in uow.db.scalars(select(Company))}
    # Companies created by id, named by the id.
    assert companies == {map_id(COMPANY_A): COMPANY_A, map_id(COMPANY_B): COMPANY_B}


def test_company_name_is_used_when_present_and_existing_companies_are_kept(settings, tmp_path):
    entries = _entries()[:2]
    entries[0]["companyName"] = "Loja Azul"
    entries[1]["companyName"] = "Loja Azul"
    _import(settings, _write(tmp_path, entries))
    with UnitOfWork(settings) as uow:
        assert [(c.id, c.name) for c in uow.db.scalars(select(Company))] == [(map_id(COMPANY_A), "Loja Azul")]


def test_ids_that_do_not_fit_map_deterministically(settings, tmp_path):
    entries = _entries()[:1]
    entries[0]["id"], entries[0]["companyId"] = "client_7", 42
    _import(settings, _write(tmp_path, entries))
    row = _rows(settings)["vendas"]
    assert row["id"] == map_id("client_7") and len(row["id"]) == 32
    assert row["company_id"] == map_id("42")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: "[{not json", "not valid JSON"),
        (lambda e: {"sessions": e}, "JSON array"),
        (lambda e: e[:2] + [{k: v for k, v in e[2].items() if k != "status"}], "entry 2 (id 'e41a9c3b"),
        (lambda e: e[:1] + [{**e[1], "status": "zombie"}], "entry 1 (id 'b72e4d10"),
        (lambda e: e + [dict(e[0])], "entry 4 (id '3f0c1a9e"),
        (lambda e: e + [{**e[0], "id": "other-id"}], "name 'vendas' twice"),
        (lambda e: [{**e[0], "name": "Vendas Loja"}], "entry 0 (id '3f0c1a9e"),
        (lambda e: [{**e[0], "updatedAt": "yesterday"}], "updatedAt"),
    ],
    ids=["malformed", "not-array", "missing", "unknown-status", "duplicate", "dup-name", "name", "time"],
)
def test_bad_file_names_the_entry_and_writes_nothing(settings, tmp_path, change, message):
    path = _write(tmp_path, change(_entries()))
    with pytest.raises(LegacyImportError) as caught:
        _import(settings, path)
    assert message in caught.value.message
    assert _counts(settings) == (0, 0, 0, 0)


def test_error_messages_say_what_is_wrong(settings, tmp_path):
    entries = _entries()
    del entries[2]["status"]
    with pytest.raises(LegacyImportError, match=r"entry 2 .*missing field 'status'"):
        _import(settings, _write(tmp_path, entries))
    entries = _entries()
    entries[1]["status"] = "zombie"
    with pytest.raises(LegacyImportError, match=r"unknown status 'zombie'"):
        _import(settings, _write(tmp_path, entries))
    entries = _entries() + [_entries()[0]]
    with pytest.raises(LegacyImportError, match=r"entry 4 .*duplicate of entry 0"):
        _import(settings, _write(tmp_path, entries))


def test_a_late_error_rolls_back_the_whole_file(settings, tmp_path, tenant):
    # The conflict is only seen in the database, after earlier entries were written.
    entries = _entries()
    entries[3]["companyName"] = "acme"  # the tenant's name, under another id
    with pytest.raises(LegacyImportError, match=r"entry 2 .*company 'acme' exists"):
        _import(settings, _write(tmp_path, [entries[0], entries[1], {**entries[2], "companyName": "acme"}]))
    assert _counts(settings)[1:] == (0, 0, 0)


def test_rerun_changes_nothing(settings, tmp_path):
    profiles = tmp_path / ".wwebjs_auth"
    make_profile(profiles, VENDAS, settings)
    _import(settings, FIXTURE, profiles)
    before, counts = _rows(settings), _counts(settings)
    report = _import(settings, FIXTURE, profiles)
    assert report.count("skipped") == 4 and not report.companies_created
    assert {o.reason for o in report.sessions} == {"unchanged since its import"}
    assert _rows(settings) == before and _counts(settings) == counts


def test_rerun_without_profiles_keeps_the_imported_login(settings, tmp_path):
    profiles = tmp_path / ".wwebjs_auth"
    make_profile(profiles, VENDAS, settings)
    _import(settings, FIXTURE, profiles)
    login = _rows(settings)["vendas"]["auth_state"]
    assert _import(settings, FIXTURE).count("skipped") == 4
    entries = _entries()
    entries[0]["updatedAt"] = "2026-11-28T09:00:00.000Z"
    shutil.rmtree(profiles / f"session-{VENDAS}")
    report = _import(settings, _write(tmp_path, entries), profiles)
    assert report.sessions[0].action == "updated"
    vendas = _rows(settings)["vendas"]
    assert vendas["auth_state"] == login and (vendas["status"], vendas["last_error"]) == (
        "DISCONNECTED",
        None,
    )


def test_a_newer_legacy_entry_updates_an_untouched_import(settings, tmp_path):
    _import(settings, FIXTURE)
    entries = _entries()
    entries[1].update(updatedAt="2026-11-28T09:00:00.000Z", phoneNumber="5511988880000")
    report = _import(settings, _write(tmp_path, entries))
    assert [o.action for o in report.sessions] == ["skipped", "updated", "skipped", "skipped"]
    assert _rows(settings)["suporte"]["phone_number"] == "5511988880000"


def test_a_session_changed_in_zaphub_is_not_overwritten(settings, tmp_path):
    _import(settings, FIXTURE)
    with UnitOfWork(settings) as uow:
        uow.db.execute(
            update(WhatsappSession).where(WhatsappSession.name == "suporte").values(config='{"mine": 1}')
        )
        uow.commit()
    entries = _entries()
    entries[1].update(updatedAt="2026-11-28T09:00:00.000Z", config={"theirs": 1})
    report = _import(settings, _write(tmp_path, entries))
    suporte = next(o for o in report.sessions if o.name == "suporte")
    assert (suporte.action, suporte.reason) == ("skipped", "changed in ZapHub since its import")
    assert _rows(settings)["suporte"]["config"] == {"mine": 1}


def test_a_session_removed_in_zaphub_is_not_brought_back(settings, tmp_path):
    _import(settings, FIXTURE)
    with UnitOfWork(settings) as uow:
        uow.db.delete(uow.db.scalar(select(WhatsappSession).where(WhatsappSession.name == "suporte")))
        uow.commit()
    report = _import(settings, FIXTURE)
    assert "suporte" not in _rows(settings)
    suporte = next(o for o in report.sessions if o.name == "suporte")
    assert suporte.reason == "removed in ZapHub since its import"


def test_dry_run_reports_and_writes_nothing(settings, tmp_path):
    profiles = tmp_path / ".wwebjs_auth"
    make_profile(profiles, VENDAS, settings)
    make_profile(profiles, "b72e4d10-9f3a-4e6b-8c21-5a0d3f6e7b98", settings, corrupt=True)
    report = _import(settings, FIXTURE, profiles, dry_run=True)
    assert report.dry_run and report.count("created") == 4 and len(report.companies_created) == 2
    assert {o.name: o.profile for o in report.sessions} == {
        "vendas": "imported",
        "suporte": "unusable",
        "financeiro": "not found",
        "cobranca": "not found",
    }
    assert _counts(settings) == (0, 0, 0, 0)


def test_corrupt_or_empty_profile_imports_disconnected_and_is_reported(settings, tmp_path):
    profiles = tmp_path / ".wwebjs_auth"
    make_profile(profiles, VENDAS, settings, corrupt=True)
    (profiles / "session-b72e4d10-9f3a-4e6b-8c21-5a0d3f6e7b98" / "Default").mkdir(parents=True)
    report = _import(settings, FIXTURE, profiles)
    problems = {o.name: o.profile_problem for o in report.unusable_profiles}
    assert problems == {
        "vendas": "WhatsApp IndexedDB is corrupt: CURRENT does not name a manifest",
        "suporte": "no WhatsApp IndexedDB",
    }
    rows = _rows(settings)
    assert rows["vendas"]["status"] == "DISCONNECTED" and rows["vendas"]["auth_state"] is None
    assert "profile unusable" in rows["vendas"]["last_error"]


def test_imported_sessions_with_a_login_are_placed_on_a_live_worker(settings, tmp_path):
    from shared.services import workers as worker_services
    from shared.services.ownership import sessions_to_restore

    profiles = tmp_path / ".wwebjs_auth"
    make_profile(profiles, VENDAS, settings)
    _import(settings, FIXTURE, profiles)
    worker_services.register_worker(
        UnitOfWork(settings), "w1", hostname="test", pid=os.getpid(), capacity=5, lease_seconds=30
    )
    placed = legacy_import.place_imported_sessions(UnitOfWork(settings))
    assert placed == [(VENDAS.replace("-", ""), "w1")]
    assert sessions_to_restore(UnitOfWork(settings), "w1") == [(VENDAS.replace("-", ""), 1)]
    assert legacy_import.place_imported_sessions(UnitOfWork(settings)) == []


def test_automatic_import_is_claimed_once(settings, tmp_path):
    key = legacy_import.run_key_for(FIXTURE)
    assert legacy_import.claim_run(UnitOfWork(settings), key, "w1")
    assert not legacy_import.claim_run(UnitOfWork(settings), key, "w2")
    legacy_import.release_run(UnitOfWork(settings), key, "w1")
    assert legacy_import.claim_run(UnitOfWork(settings), key, "w2")
    entries = legacy_import.read_entries(FIXTURE)
    with pytest.raises(LegacyImportError, match="claim was lost"):
        legacy_import.import_sessions(UnitOfWork(settings), entries, None, None, run_key=key, worker_id="w1")
    assert _counts(settings)[1] == 0
    legacy_import.import_sessions(UnitOfWork(settings), entries, None, None, run_key=key, worker_id="w2")
    assert not legacy_import.claim_run(UnitOfWork(settings), key, "w3")


def _zaphub(args: list[str], settings: Settings) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "SECRET_KEYS", "DEV_MODE")}
    env.update(
        DATABASE_URL=settings.DATABASE_URL, SECRET_KEYS=settings.SECRET_KEY, WA_WEB_URL=settings.WA_WEB_URL
    )
    return subprocess.run(
        [sys.executable, "-m", "shared.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_cli_imports_reports_and_exits_zero(settings, tmp_path):
    profiles = tmp_path / ".wwebjs_auth"
    make_profile(profiles, VENDAS, settings)
    make_profile(profiles, "e41a9c3b-2d7f-4b80-a6e5-1f9c0d2b8a37", settings, corrupt=True)
    dry = _zaphub(["import-legacy", str(FIXTURE), "--profiles", str(profiles), "--dry-run"], settings)
    assert dry.returncode == 0, dry.stderr
    assert "dry run, nothing written" in dry.stdout and "4 created" in dry.stdout
    assert _counts(settings) == (0, 0, 0, 0)
    done = _zaphub(["import-legacy", str(FIXTURE), "--profiles", str(profiles)], settings)
    assert done.returncode == 0, done.stderr
    assert "4 created, 0 updated, 0 skipped" in done.stdout and "1 usable, 1 unusable" in done.stdout
    assert "financeiro" in done.stderr and "unusable" in done.stderr
    again = _zaphub(["import-legacy", str(FIXTURE), "--profiles", str(profiles)], settings)
    assert again.returncode == 0 and "0 created, 0 updated, 4 skipped" in again.stdout


def test_cli_bad_file_exits_one_naming_the_entry(settings, tmp_path):
    entries = _entries()
    entries[3]["status"] = "CONNECTED"
    result = _zaphub(["import-legacy", str(_write(tmp_path, entries))], settings)
    assert result.returncode == 1
    entry = "entry 3 (id '0a5d8e2f-7c19-4b3e-8f60-9e1b4c7d2a85')"
    assert f"error: {entry}: unknown status 'CONNECTED'" in result.stderr
    assert _counts(settings) == (0, 0, 0, 0)
    missing = _zaphub(["import-legacy", str(tmp_path / "nope.json")], settings)
    assert missing.returncode != 0 and "nope.json" in missing.stderr
