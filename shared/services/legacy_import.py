"""Import the sessions of the old NestJS service (``sessions.json`` + whatsapp-web.js profiles).

The old service kept one row per session (a TypeORM entity, dumped as JSON with
camelCase keys) and, through whatsapp-web.js's ``LocalAuth``, one Chromium profile per
session in ``<dataPath>/session-<clientId>/`` (``dataPath`` defaults to
``.wwebjs_auth``; the clientId was the session id). A profile that still holds its
WhatsApp storage becomes the session's stored login state, so a worker brings the
session back linked, without a new scan.

The whole file is checked before anything is written and imported in one transaction:
a bad entry names itself (index and id) and nothing is written. Running it again changes
nothing; a session changed in ZapHub since its import (its ``updated_at`` moved past
what the import left) is never overwritten. Profiles are read and packed before the
transaction opens, so it stays short.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from shared.errors import InvalidInput, ZapHubError
from shared.login_state import LoginStateError, pack
from shared.models import Company, LegacyImport, LegacyImportRun, WhatsappSession, aware, utcnow
from shared.services import events
from shared.services.workers import choose_worker
from shared.statuses import LEGACY_TO_DATABASE, SessionStatus, from_legacy
from shared.uow import UnitOfWork
from shared.validation import check_session_name, encode_config

log = logging.getLogger(__name__)

REQUIRED_FIELDS = (
    "id",
    "name",
    "companyId",
    "status",
    "phoneNumber",
    "isActive",
    "lastSeen",
    "config",
    "createdAt",
    "updatedAt",
)
# whatsapp-web.js LocalAuth: "session-" + clientId, clientId matching /^[-_\w]+$/i.
PROFILE_PREFIX = "session-"
LEGACY_ID_RE = re.compile(r"^[-_A-Za-z0-9]{1,128}\Z")
HEX32_RE = re.compile(r"^[0-9a-f]{32}\Z")
# Stable namespace for ids that do not fit ours: the same legacy id always maps the same way.
_ID_NAMESPACE = uuid.UUID("6f1d2c1e-9a53-4c1b-9f2e-3b7d0c4a5e61")
# A claim on the automatic import older than this belongs to a worker that died mid-way.
CLAIM_STALE = timedelta(minutes=10)


class LegacyImportError(ZapHubError):
    """The legacy file cannot be imported; the message names the entry. Nothing was written."""

    status_code = 422


@dataclass(frozen=True)
class LegacyEntry:
    """One checked entry of ``sessions.json``."""

    index: int
    legacy_id: str
    session_id: str
    name: str
    company_id: str
    company_name: str
    status: SessionStatus
    legacy_status: str
    phone_number: str | None
    is_active: bool
    last_seen: datetime | None
    config: str
    created_at: datetime
    updated_at_text: str

    @property
    def label(self) -> str:
        return f"entry {self.index} (id {self.legacy_id!r})"


@dataclass
class ProfileCheck:
    """What was found in the entry's LocalAuth folder."""

    found: bool
    usable: bool = False
    problem: str | None = None
    archive: bytes | None = field(default=None, repr=False)
    digest: str | None = None


@dataclass
class SessionOutcome:
    """What the import did (or, in a dry run, would do) with one entry."""

    index: int
    legacy_id: str
    session_id: str
    name: str
    company_id: str
    action: str  # created | updated | skipped
    reason: str | None
    status: str
    profile: str  # imported | unusable | not found | not given
    profile_problem: str | None = None

    def line(self) -> str:
        """One line for the command's report."""
        text = f"{self.action:8} {self.company_id}/{self.name} (legacy id {self.legacy_id}) -> {self.status}"
        text += f", profile {self.profile}"
        if self.profile_problem:
            text += f": {self.profile_problem}"
        if self.reason:
            text += f" [{self.reason}]"
        return text


@dataclass
class ImportReport:
    """The result of one import: per session, and the companies created."""

    dry_run: bool
    sessions: list[SessionOutcome] = field(default_factory=list)
    companies_created: list[str] = field(default_factory=list)

    def count(self, action: str) -> int:
        return sum(1 for outcome in self.sessions if outcome.action == action)

    @property
    def unusable_profiles(self) -> list[SessionOutcome]:
        return [outcome for outcome in self.sessions if outcome.profile == "unusable"]

    def summary(self) -> dict[str, Any]:
        """Counts only: no login state, no token."""
        return {
            "created": self.count("created"),
            "updated": self.count("updated"),
            "skipped": self.count("skipped"),
            "companies_created": len(self.companies_created),
            "profiles_imported": sum(1 for o in self.sessions if o.profile == "imported"),
            "profiles_unusable": len(self.unusable_profiles),
        }


# -- reading and checking the file -------------------------------------------------------------


def map_id(legacy_id: str) -> str:
    """ZapHub's 32-hex id for a legacy id: itself when it fits, a UUID without dashes, else a UUID5."""
    lowered = legacy_id.lower()
    if HEX32_RE.fullmatch(lowered):
        return lowered
    try:
        return uuid.UUID(legacy_id).hex
    except ValueError:
        return uuid.uuid5(_ID_NAMESPACE, legacy_id).hex


def _parse_time(value: Any, label: str, key: str, nullable: bool = False) -> datetime | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise LegacyImportError(f"{label}: {key} must be an ISO 8601 timestamp")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise LegacyImportError(f"{label}: {key} is not an ISO 8601 timestamp: {value!r}") from None
    # JSON.stringify writes UTC with "Z"; a time without zone is taken as UTC too.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _entry(index: int, raw: Any) -> LegacyEntry:
    raw_id = raw.get("id") if isinstance(raw, dict) else None
    label = f"entry {index}" + (f" (id {raw_id!r})" if raw_id is not None else "")
    if not isinstance(raw, dict):
        raise LegacyImportError(f"{label}: must be a JSON object")
    missing = [key for key in REQUIRED_FIELDS if key not in raw]
    if missing:
        raise LegacyImportError(f"{label}: missing field {', '.join(repr(k) for k in missing)}")
    legacy_id = raw["id"]
    if isinstance(legacy_id, int) and not isinstance(legacy_id, bool):
        legacy_id = str(legacy_id)
    if not isinstance(legacy_id, str) or not LEGACY_ID_RE.fullmatch(legacy_id):
        raise LegacyImportError(f"{label}: id must be 1-128 letters, digits, '-' or '_'")
    company = raw["companyId"]
    if isinstance(company, int) and not isinstance(company, bool):
        company = str(company)
    if not isinstance(company, str) or not LEGACY_ID_RE.fullmatch(company):
        raise LegacyImportError(f"{label}: companyId must be 1-128 letters, digits, '-' or '_'")
    try:
        name = check_session_name(raw["name"])
    except InvalidInput as exc:
        raise LegacyImportError(f"{label}: name {raw['name']!r} is not a valid session name: {exc}") from None
    status = raw["status"]
    try:
        mapped = from_legacy(status)
    except (KeyError, TypeError):
        known = ", ".join(sorted(LEGACY_TO_DATABASE))
        raise LegacyImportError(f"{label}: unknown status {status!r} (known: {known})") from None
    phone = raw["phoneNumber"]
    if phone is not None and (not isinstance(phone, str) or len(phone) > 32):
        raise LegacyImportError(f"{label}: phoneNumber must be null or text of at most 32 characters")
    if not isinstance(raw["isActive"], bool):
        raise LegacyImportError(f"{label}: isActive must be true or false")
    config = raw["config"] if raw["config"] is not None else {}
    try:
        config_text = encode_config(config)
    except InvalidInput as exc:
        raise LegacyImportError(f"{label}: {exc.message}") from None
    company_name = raw.get("companyName") or company
    if not isinstance(company_name, str) or not 0 < len(company_name.strip()) <= 120:
        raise LegacyImportError(f"{label}: companyName must be 1 to 120 characters")
    updated_text = raw["updatedAt"]
    _parse_time(updated_text, label, "updatedAt")
    if len(updated_text) > 64:
        raise LegacyImportError(f"{label}: updatedAt is too long")
    return LegacyEntry(
        index=index,
        legacy_id=legacy_id,
        session_id=map_id(legacy_id),
        name=name,
        company_id=map_id(company),
        company_name=company_name.strip(),
        status=mapped,
        legacy_status=status,
        phone_number=phone or None,
        is_active=raw["isActive"],
        last_seen=_parse_time(raw["lastSeen"], label, "lastSeen", nullable=True),
        config=config_text,
        created_at=_parse_time(raw["createdAt"], label, "createdAt"),
        updated_at_text=updated_text,
    )


def parse_entries(text: str) -> list[LegacyEntry]:
    """Check the whole ``sessions.json`` text; ``LegacyImportError`` naming the first bad entry."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise LegacyImportError(f"sessions file is not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise LegacyImportError("sessions file must hold a JSON array of sessions")
    entries = [_entry(index, raw) for index, raw in enumerate(data)]
    seen_ids: dict[str, LegacyEntry] = {}
    seen_names: dict[tuple[str, str], LegacyEntry] = {}
    for entry in entries:
        first = seen_ids.get(entry.session_id)
        if first is not None:
            raise LegacyImportError(f"{entry.label}: duplicate of {first.label} (same session id)")
        seen_ids[entry.session_id] = entry
        first = seen_names.get((entry.company_id, entry.name))
        if first is not None:
            raise LegacyImportError(
                f"{entry.label}: duplicate of {first.label} (name {entry.name!r} twice in one company)"
            )
        seen_names[(entry.company_id, entry.name)] = entry
    return entries


def read_entries(path: Path) -> list[LegacyEntry]:
    """Read and check ``sessions.json``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LegacyImportError(f"cannot read sessions file {path}: {exc}") from None
    return parse_entries(text)


# -- profiles ---------------------------------------------------------------------------------


def _origin_folder(wa_url: str) -> str:
    """Chromium's folder name for an origin's IndexedDB, e.g. ``https_web.whatsapp.com_0``."""
    parts = urlsplit(wa_url)
    return f"{parts.scheme}_{parts.hostname}_{parts.port or 0}.indexeddb.leveldb"


def _check_leveldb(folder: Path, what: str) -> str | None:
    """Why ``folder`` is not a readable LevelDB, or None when its CURRENT names a present MANIFEST."""
    if not folder.is_dir():
        return f"no {what}"
    try:
        current = (folder / "CURRENT").read_bytes()
    except OSError:
        return f"{what} is corrupt: no CURRENT file"
    manifest = current.decode("ascii", "replace").strip()
    if not re.fullmatch(r"MANIFEST-[0-9]{6,}", manifest) or not (folder / manifest).is_file():
        return f"{what} is corrupt: CURRENT does not name a manifest"
    return None


def _storage_digest(profile: Path) -> str:
    """sha256 over the names and bytes of the storage files: what the import would store."""
    digest = hashlib.sha256()
    for root in ("Default/IndexedDB", "Default/Local Storage"):
        for path in sorted((profile / root).rglob("*")):
            if path.is_file() and not path.is_symlink() and path.name not in ("LOCK", "LOG", "LOG.old"):
                digest.update(path.relative_to(profile).as_posix().encode() + b"\0")
                digest.update(path.read_bytes())
    return digest.hexdigest()


def check_profile(
    profiles_dir: Path, legacy_id: str, wa_url: str, secret_keys: Sequence[str] | None
) -> ProfileCheck:
    """Look at ``profiles_dir/session-<legacy_id>``; pack it when ``secret_keys`` are given."""
    profile = Path(profiles_dir) / f"{PROFILE_PREFIX}{legacy_id}"
    if not profile.exists():
        return ProfileCheck(found=False)
    if not profile.is_dir():
        return ProfileCheck(found=True, problem="not a folder")
    problem = _check_leveldb(profile / "Default" / "IndexedDB" / _origin_folder(wa_url), "WhatsApp IndexedDB")
    problem = problem or _check_leveldb(profile / "Default" / "Local Storage" / "leveldb", "Local Storage")
    if problem:
        return ProfileCheck(found=True, problem=problem)
    try:
        digest = _storage_digest(profile)
        archive = pack(profile, secret_keys) if secret_keys is not None else None
    except (OSError, LoginStateError) as exc:
        return ProfileCheck(found=True, problem=f"cannot be read: {exc}")
    return ProfileCheck(found=True, usable=True, archive=archive, digest=digest)


# -- the import -------------------------------------------------------------------------------


def _same_time(a: datetime | None, b: datetime | None) -> bool:
    if a is None or b is None:
        return a is b
    return aware(a) == aware(b)


def _target_state(entry: LegacyEntry, profile: ProfileCheck, profiles_given: bool) -> tuple[str, str | None]:
    """The status and ``last_error`` an entry imports with.

    Nothing is live right after an upgrade, so nothing imports as CONNECTED: a session
    with a usable login is DISCONNECTED without an error, which the restore treats as
    "closed quietly" and brings back linked. One without a login carries the reason,
    so the restore does not open a QR for it on its own.
    """
    if entry.status is SessionStatus.ERROR:
        return SessionStatus.ERROR.value, f"imported from the old service in status {entry.legacy_status!r}"
    if profile.usable:
        return SessionStatus.DISCONNECTED.value, None
    if profile.problem:
        reason = f"imported without login: profile unusable ({profile.problem})"
        return SessionStatus.DISCONNECTED.value, reason
    if profiles_given:
        return SessionStatus.DISCONNECTED.value, "imported without login: no profile found; link it again"
    return SessionStatus.DISCONNECTED.value, "imported without login; link it again"


def _profile_label(profile: ProfileCheck, profiles_given: bool) -> str:
    if not profiles_given:
        return "not given"
    if profile.usable:
        return "imported"
    return "unusable" if profile.found else "not found"


def import_sessions(
    uow: UnitOfWork,
    entries: list[LegacyEntry],
    profiles_dir: Path | None,
    secret_keys: Sequence[str] | None,
    *,
    dry_run: bool = False,
    run_key: str | None = None,
    worker_id: str | None = None,
) -> ImportReport:
    """Import checked ``entries`` in one transaction (nothing is written when ``dry_run``).

    With ``run_key`` (the automatic import) the run's claim by ``worker_id`` is marked
    finished in the same transaction, so a crash leaves neither half.
    """
    if profiles_dir is not None and not Path(profiles_dir).is_dir():
        raise LegacyImportError(f"profiles folder {profiles_dir} does not exist")
    if not dry_run and profiles_dir is not None and not secret_keys:
        raise LegacyImportError("no key to encrypt login states (SECRET_KEYS)")
    wa_url = uow.settings.WA_WEB_URL
    profiles = {
        entry.legacy_id: (
            check_profile(profiles_dir, entry.legacy_id, wa_url, None if dry_run else secret_keys)
            if profiles_dir is not None
            else ProfileCheck(found=False)
        )
        for entry in entries
    }
    report = ImportReport(dry_run=dry_run)
    with uow:
        db = uow.db
        for entry in entries:
            company = db.get(Company, entry.company_id)
            if company is None and entry.company_id not in report.companies_created:
                taken = db.scalar(select(Company.id).where(Company.name == entry.company_name))
                if taken:
                    raise LegacyImportError(
                        f"{entry.label}: company {entry.company_name!r} exists under another id ({taken})"
                    )
                if not dry_run:
                    db.add(Company(id=entry.company_id, name=entry.company_name))
                    db.flush()
                report.companies_created.append(entry.company_id)
            report.sessions.append(_import_one(uow, entry, profiles[entry.legacy_id], profiles_dir, dry_run))
        if run_key is not None and not dry_run:
            finished = db.execute(
                update(LegacyImportRun)
                .where(LegacyImportRun.key == run_key, LegacyImportRun.claimed_by == worker_id)
                .values(finished_at=utcnow(), summary=json.dumps(report.summary()))
                .execution_options(synchronize_session=False)
            )
            if finished.rowcount != 1:
                raise LegacyImportError("the automatic import's claim was lost; another worker runs it")
        if not dry_run:
            try:
                uow.commit()
            except IntegrityError as exc:  # a concurrent create of the same name or id
                raise LegacyImportError(f"the import collided with a concurrent change: {exc.orig}") from None
    for outcome in report.sessions:
        log.info(
            "legacy import%s: session %s of company %s %s (profile %s)",
            " (dry run)" if dry_run else "",
            outcome.session_id,
            outcome.company_id,
            outcome.action,
            outcome.profile,
        )
    return report


def _import_one(
    uow: UnitOfWork, entry: LegacyEntry, profile: ProfileCheck, profiles_dir: Path | None, dry_run: bool
) -> SessionOutcome:
    db = uow.db
    given = profiles_dir is not None
    record = db.get(LegacyImport, entry.legacy_id)
    # A login imported before is only ever replaced by a newer usable profile: a re-run
    # without --profiles, or after the old folder was cleaned up, must not drop it.
    kept_login = record is not None and record.profile_digest is not None and not profile.usable
    digest = record.profile_digest if kept_login else profile.digest
    status, last_error = _target_state(
        entry, ProfileCheck(found=True, usable=True) if kept_login else profile, given
    )

    def outcome(action: str, reason: str | None, shown_status: str) -> SessionOutcome:
        return SessionOutcome(
            index=entry.index,
            legacy_id=entry.legacy_id,
            session_id=entry.session_id,
            name=entry.name,
            company_id=entry.company_id,
            action=action,
            reason=reason,
            status=shown_status,
            profile=_profile_label(profile, given),
            profile_problem=profile.problem,
        )

    session = db.get(WhatsappSession, entry.session_id)
    if record is None and session is not None:
        return outcome("skipped", "a ZapHub session already has this id", session.status)
    if record is not None:
        if session is None:
            return outcome("skipped", "removed in ZapHub since its import", "-")
        if not _same_time(session.updated_at, record.session_updated_at):
            return outcome("skipped", "changed in ZapHub since its import", session.status)
        if record.legacy_updated_at == entry.updated_at_text and record.profile_digest == digest:
            return outcome("skipped", "unchanged since its import", session.status)
    taken = db.scalar(
        select(WhatsappSession.id).where(
            WhatsappSession.company_id == entry.company_id,
            WhatsappSession.name == entry.name,
            WhatsappSession.id != entry.session_id,
        )
    )
    if taken:
        raise LegacyImportError(f"{entry.label}: company already has another session named {entry.name!r}")
    action = "created" if session is None else "updated"
    if dry_run:
        return outcome(action, None, status)
    # One explicit time for both rows, so "changed since" compares like with like.
    now = utcnow()
    old_status = session.status if session is not None else None
    if session is None:
        session = WhatsappSession(
            id=entry.session_id, company_id=entry.company_id, epoch=0, created_at=entry.created_at
        )
        db.add(session)
    session.name = entry.name
    session.status = status
    session.last_error = last_error
    session.qr_code = None
    session.is_active = entry.is_active
    session.phone_number = entry.phone_number
    session.last_seen = entry.last_seen
    session.config = entry.config
    session.updated_at = now
    if profile.usable:
        session.auth_state, session.auth_state_updated_at = profile.archive, now
    db.flush()
    events.status_change(db, session.id, old_status, status, "imported from the old service")
    if record is None:
        record = LegacyImport(legacy_id=entry.legacy_id, session_id=session.id, company_id=entry.company_id)
        db.add(record)
    record.legacy_updated_at = entry.updated_at_text
    record.profile_digest = digest
    record.imported_at = now
    # The event numbering above keeps updated_at as it was: ``now`` is what stays.
    record.session_updated_at = now
    db.flush()
    return outcome(action, None, status)


def import_file(
    uow: UnitOfWork,
    sessions_file: Path,
    profiles_dir: Path | None,
    secret_keys: Sequence[str] | None,
    *,
    dry_run: bool = False,
) -> ImportReport:
    """Check ``sessions_file`` and import it (see :func:`import_sessions`)."""
    return import_sessions(uow, read_entries(sessions_file), profiles_dir, secret_keys, dry_run=dry_run)


# -- the automatic import on worker start ------------------------------------------------------


def run_key_for(sessions_file: Path) -> str:
    """The claim key of an automatic import: the file's content digest (the same file runs once)."""
    return "auto:" + hashlib.sha256(Path(sessions_file).read_bytes()).hexdigest()


def claim_run(uow: UnitOfWork, key: str, worker_id: str) -> bool:
    """Claim the automatic import ``key`` for ``worker_id``; False when done or claimed by another.

    The claim is one conditional UPDATE, atomic on PostgreSQL (row lock) and SQLite
    (database write lock) alike, committed at once: the import itself then runs in its
    own transaction and marks the run finished there. A claim older than
    ``CLAIM_STALE`` belongs to a worker that died and can be taken over.
    """
    with uow:
        if uow.db.get(LegacyImportRun, key) is None:
            uow.db.add(LegacyImportRun(key=key))
            try:
                uow.commit()
            except IntegrityError:  # another worker made the row first: fine
                uow.rollback()
        now = utcnow()
        claimed = uow.db.execute(
            update(LegacyImportRun)
            .where(
                LegacyImportRun.key == key,
                LegacyImportRun.finished_at.is_(None),
                LegacyImportRun.claimed_at.is_(None) | (LegacyImportRun.claimed_at < now - CLAIM_STALE),
            )
            .values(claimed_by=worker_id, claimed_at=now)
            .execution_options(synchronize_session=False)
        )
        uow.commit()
        return claimed.rowcount == 1


def release_run(uow: UnitOfWork, key: str, worker_id: str) -> None:
    """Give up an unfinished claim (the import failed), so the next worker start tries again."""
    with uow:
        uow.db.execute(
            update(LegacyImportRun)
            .where(
                LegacyImportRun.key == key,
                LegacyImportRun.claimed_by == worker_id,
                LegacyImportRun.finished_at.is_(None),
            )
            .values(claimed_by=None, claimed_at=None)
            .execution_options(synchronize_session=False)
        )
        uow.commit()


def place_imported_sessions(uow: UnitOfWork) -> list[tuple[str, str]]:
    """Give each imported session that should come back a live owner; (session id, worker id) pairs.

    Only unowned, active sessions with a stored login and no error: the owner's
    restore then brings them back linked. Least-loaded live worker first; the
    compare-and-set on the epoch leaves a session someone else placed meanwhile alone.
    """
    placed = []
    with uow:
        candidates = list(
            uow.db.execute(
                select(WhatsappSession.id, WhatsappSession.epoch).where(
                    WhatsappSession.id.in_(select(LegacyImport.session_id)),
                    WhatsappSession.worker_id.is_(None),
                    WhatsappSession.is_active.is_(True),
                    WhatsappSession.status == SessionStatus.DISCONNECTED.value,
                    WhatsappSession.last_error.is_(None),
                    WhatsappSession.auth_state_updated_at.is_not(None),
                )
            )
        )
    for session_id, epoch in candidates:
        with uow:
            owner = choose_worker(uow.db, uow.settings.WORKER_LEASE)
            if owner is None:
                break
            moved = uow.db.execute(
                update(WhatsappSession)
                .where(
                    WhatsappSession.id == session_id,
                    WhatsappSession.epoch == epoch,
                    WhatsappSession.worker_id.is_(None),
                )
                .values(worker_id=owner.id, epoch=epoch + 1)
                .execution_options(synchronize_session=False)
            )
            uow.commit()
            if moved.rowcount == 1:
                placed.append((session_id, owner.id))
    return placed
