"""The automatic legacy import: the first worker to start imports the old service's sessions.

Like the old service, ZapHub can pick its sessions up by itself: with
``LEGACY_SESSIONS_FILE`` (and ``LEGACY_PROFILES_DIR``) set, the first worker to start
imports them, once per file content, under a claim row that other workers starting at
the same time respect (``shared.services.legacy_import.claim_run``). Then the imported
sessions that have a login are given live owners, whose restore brings them back
linked. A failed import is logged and leaves the worker running its other sessions;
the next worker start tries again.
"""

from __future__ import annotations

import logging
from pathlib import Path

from shared.secrets import require_secret_keys
from shared.services import legacy_import
from workers.context import WorkerContext

log = logging.getLogger(__name__)


def import_on_start(ctx: WorkerContext) -> legacy_import.ImportReport | None:
    """Run the configured automatic import unless done; place imported sessions. Never raises.

    The placement runs on every start, so sessions imported with ``zaphub import-legacy``
    while no worker ran come back as soon as one starts.
    """
    report = _import_once(ctx) if ctx.settings.LEGACY_SESSIONS_FILE else None
    try:
        placed = legacy_import.place_imported_sessions(ctx.uow())
        if placed:
            log.info("worker %s placed %d imported sessions", ctx.worker_id, len(placed))
    except Exception:
        log.exception("placing imported sessions failed")
    return report


def _import_once(ctx: WorkerContext) -> legacy_import.ImportReport | None:
    settings = ctx.settings
    report = None
    sessions_file = Path(settings.LEGACY_SESSIONS_FILE)
    profiles_dir = Path(settings.LEGACY_PROFILES_DIR) if settings.LEGACY_PROFILES_DIR else None
    key = None
    try:
        key = legacy_import.run_key_for(sessions_file)
        if legacy_import.claim_run(ctx.uow(), key, ctx.worker_id):
            report = legacy_import.import_sessions(
                ctx.uow(),
                legacy_import.read_entries(sessions_file),
                profiles_dir,
                require_secret_keys(settings),
                run_key=key,
                worker_id=ctx.worker_id,
            )
            log.info("worker %s imported the legacy sessions: %s", ctx.worker_id, report.summary())
            for outcome in report.unusable_profiles:
                log.warning(
                    "legacy session %s (%s/%s): profile unusable (%s); imported DISCONNECTED",
                    outcome.legacy_id,
                    outcome.company_id,
                    outcome.name,
                    outcome.profile_problem,
                )
        else:
            log.info("worker %s: legacy sessions already imported (or being imported)", ctx.worker_id)
    except Exception as exc:
        # An unreadable file must not keep the worker from running the sessions it has.
        log.error("worker %s: legacy import failed, nothing imported: %s", ctx.worker_id, exc)
        if key is not None:
            try:
                legacy_import.release_run(ctx.uow(), key, ctx.worker_id)
            except Exception:
                log.exception("releasing the legacy import claim failed")
    return report
