"""End to end: sessions of the old service come back linked in ZapHub without a new scan.

The old service's login is made the way whatsapp-web.js made it: a plain Playwright
persistent context on ``.wwebjs_auth/session-<id>`` (LocalAuth's folder), logged into
the simulator by scanning its QR. Then ``zaphub import-legacy`` (or a worker started
with ``LEGACY_SESSIONS_FILE``) imports it and a real worker brings it back CONNECTED.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from playwright.sync_api import sync_playwright
from sqlalchemy import func, select

from shared.config import Settings
from shared.models import Event, LegacyImport, LegacyImportRun, WhatsappSession
from shared.services.legacy_import import map_id
from shared.uow import UnitOfWork
from tests.e2e.stack import wait_until
from tests.simulator import SimulatorControl
from workers.browser.runtime import CHROMIUM_ARGS, find_chromium
from workers.whatsapp.page import SEL_MAIN, SEL_QR

PHONE = "5511999990333"
LEGACY_ID = "3f0c1a9e-6b2d-4c7e-9a41-2d5e8f7b1c03"
BROKEN_ID = "b72e4d10-9f3a-4e6b-8c21-5a0d3f6e7b98"
COMPANY = "8d6f2b7a-1c4e-4f3a-b5d9-0e7c6a2f9b14"


def legacy_login(sim: SimulatorControl, url: str, profiles: Path, legacy_id: str, phone: str = PHONE) -> Path:
    """Log a LocalAuth profile into the simulator with a plain persistent context, then close it."""
    profile = profiles / f"session-{legacy_id}"
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            user_data_dir=str(profile),
            executable_path=find_chromium(),
            args=list(CHROMIUM_ARGS),
            headless=True,
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.goto(url)
            page.wait_for_selector(SEL_QR, timeout=20_000)
            ref = page.get_attribute(SEL_QR, "data-ref")
            sim.scan(ref, phone=phone, push_name="Loja")
            page.wait_for_selector(", ".join(SEL_MAIN), timeout=20_000)
        finally:
            context.close()
    return profile


def sessions_file(tmp_path: Path, *entries: tuple[str, str]) -> Path:
    """A sessions.json like the old service's, with one entry per (legacy id, name)."""
    rows = [
        {
            "id": legacy_id,
            "name": name,
            "companyId": COMPANY,
            "status": "connected",
            "phoneNumber": PHONE if legacy_id == LEGACY_ID else None,
            "isActive": True,
            "lastSeen": "2026-11-20T14:03:11.512Z",
            "config": {"autoReconnect": True},
            "createdAt": "2026-03-02T10:15:42.118Z",
            "updatedAt": "2026-11-20T14:03:11.530Z",
        }
        for legacy_id, name in entries
    ]
    path = tmp_path / "sessions.json"
    path.write_text(json.dumps(rows))
    return path


def zaphub(args: list[str], settings: Settings, wa_url: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "SECRET_KEYS", "DEV_MODE")}
    env.update(DATABASE_URL=settings.DATABASE_URL, SECRET_KEYS=settings.SECRET_KEY, WA_WEB_URL=wa_url)
    return subprocess.run(
        [sys.executable, "-m", "shared.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def session_row(settings: Settings, legacy_id: str) -> WhatsappSession | None:
    with UnitOfWork(settings) as uow:
        return uow.db.get(WhatsappSession, map_id(legacy_id))


def wait_connected(settings: Settings, legacy_id: str, worker, timeout: float = 60) -> WhatsappSession:
    def probe():
        row = session_row(settings, legacy_id)
        return row if row is not None and row.status == "CONNECTED" and row.phone_number == PHONE else None

    try:
        return wait_until(probe, timeout, message=f"legacy session {legacy_id} to be CONNECTED")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{worker.log_tail()}") from None


def import_events(settings: Settings) -> int:
    with UnitOfWork(settings) as uow:
        return uow.db.scalar(
            select(func.count())
            .select_from(Event)
            .where(Event.session_id == map_id(LEGACY_ID), Event.payload.contains("old service"))
        )


def test_imported_localauth_profile_comes_back_linked_without_a_scan(
    settings, sim, simulator_server, start_worker, tmp_path
):
    profiles = tmp_path / ".wwebjs_auth"
    legacy_login(sim, simulator_server.url, profiles, LEGACY_ID)
    # A second profile that is corrupt: its IndexedDB lost its CURRENT file.
    broken = profiles / f"session-{BROKEN_ID}"
    shutil.copytree(profiles / f"session-{LEGACY_ID}", broken)
    for current in (broken / "Default" / "IndexedDB").rglob("CURRENT"):
        current.write_text("garbage\n")
    scans = len(sim.state()["devices"])
    path = sessions_file(tmp_path, (LEGACY_ID, "vendas"), (BROKEN_ID, "suporte"))

    result = zaphub(["import-legacy", str(path), "--profiles", str(profiles)], settings, simulator_server.url)
    assert result.returncode == 0, result.stderr
    assert "2 created" in result.stdout and "1 usable, 1 unusable" in result.stdout
    assert "suporte" in result.stderr and "corrupt" in result.stderr
    broken_row = session_row(settings, BROKEN_ID)
    assert broken_row.status == "DISCONNECTED" and not broken_row.has_auth_state

    worker = start_worker("w1")
    connected = wait_connected(settings, LEGACY_ID, worker)
    assert connected.worker_id == "w1" and connected.push_name == "Loja"
    # Linked from the old service's profile: the phone saw no new device.
    assert len(sim.state()["devices"]) == scans
    assert session_row(settings, BROKEN_ID).status == "DISCONNECTED"

    again = zaphub(["import-legacy", str(path), "--profiles", str(profiles)], settings, simulator_server.url)
    assert again.returncode == 0 and "0 created, 0 updated, 2 skipped" in again.stdout
    assert session_row(settings, LEGACY_ID).status == "CONNECTED"


def test_workers_import_on_start_once(settings, sim, simulator_server, start_worker, tmp_path):
    profiles = tmp_path / ".wwebjs_auth"
    legacy_login(sim, simulator_server.url, profiles, LEGACY_ID)
    scans = len(sim.state()["devices"])
    path = sessions_file(tmp_path, (LEGACY_ID, "vendas"))
    env = {"LEGACY_SESSIONS_FILE": str(path), "LEGACY_PROFILES_DIR": str(profiles)}

    # Two workers starting at once: one imports, the other finds the claim taken.
    with ThreadPoolExecutor(2) as pool:
        workers = list(pool.map(lambda w: start_worker(w, env=env), ["w1", "w2"]))
    connected = wait_connected(settings, LEGACY_ID, workers[0])
    assert connected.worker_id in ("w1", "w2")
    assert len(sim.state()["devices"]) == scans
    with UnitOfWork(settings) as uow:
        runs = uow.db.scalars(select(LegacyImportRun)).all()
        assert len(runs) == 1 and runs[0].finished_at is not None and runs[0].claimed_by in ("w1", "w2")
        assert uow.db.scalar(select(func.count()).select_from(LegacyImport)) == 1
        run_before = (runs[0].claimed_by, runs[0].finished_at)
    # One "imported" status event: the second worker wrote nothing.
    assert import_events(settings) == 1

    # A later start (a restart, a new worker) imports nothing again.
    start_worker("w3", env=env)
    with UnitOfWork(settings) as uow:
        run = uow.db.scalar(select(LegacyImportRun))
        assert (run.claimed_by, run.finished_at) == run_before
        assert uow.db.scalar(select(func.count()).select_from(LegacyImport)) == 1
    assert import_events(settings) == 1
    assert session_row(settings, LEGACY_ID).status == "CONNECTED"
