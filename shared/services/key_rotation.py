"""Re-encrypting what is stored with the newest key (``zaphub keys rotate``).

Login states:

Rows are read in batches by id; archives are re-encrypted outside any transaction
(they can be megabytes each) and written back only if the row's
``auth_state_updated_at`` is still what was read, so a fresher save by a worker is
never overwritten. Such a row was written with the worker's own keys and is left
alone; running the command again picks it up if it still needs it.

Webhook signing secrets are small and few: they are re-encrypted in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select, update

from shared.config import Settings
from shared.login_state import LoginStateError, reencrypt
from shared.models import WebhookEndpoint, WhatsappSession
from shared.sealing import WEBHOOK_SECRETS, fernet_for, multi_fernet
from shared.uow import UnitOfWork


@dataclass
class RotationReport:
    """What a rotation did (or, in a dry run, would do)."""

    reencrypted: int = 0
    current: int = 0
    # Saved by a worker between our read and our write: left as the worker wrote it.
    changed_meanwhile: int = 0
    # Session ids whose archive no key decrypts (or whose frame is damaged).
    failed: list[str] = field(default_factory=list)


@dataclass
class _Pending:
    session_id: str
    read_at: datetime | None
    archive: bytes


def rotate_login_states(
    settings: Settings, keys: Sequence[str], batch_size: int = 10, dry_run: bool = False
) -> RotationReport:
    """Re-encrypt every stored login state with ``keys[0]``; see the module docstring."""
    report = RotationReport()
    after = ""
    while True:
        with UnitOfWork(settings) as uow:
            rows = uow.db.execute(
                select(WhatsappSession.id, WhatsappSession.auth_state, WhatsappSession.auth_state_updated_at)
                .where(WhatsappSession.auth_state.is_not(None), WhatsappSession.id > after)
                .order_by(WhatsappSession.id)
                .limit(batch_size)
            ).all()
        if not rows:
            return report
        after = rows[-1].id
        pending: list[_Pending] = []
        for session_id, archive, read_at in rows:
            try:
                fresh = reencrypt(archive, keys)
            except LoginStateError:
                report.failed.append(session_id)
                continue
            if fresh is None:
                report.current += 1
            else:
                pending.append(_Pending(session_id, read_at, fresh))
        if dry_run:
            report.reencrypted += len(pending)
        else:
            _write_back(settings, pending, report)


def _write_back(settings: Settings, pending: list[_Pending], report: RotationReport) -> None:
    with UnitOfWork(settings) as uow:
        for item in pending:
            result = uow.db.execute(
                update(WhatsappSession)
                .where(
                    WhatsappSession.id == item.session_id,
                    WhatsappSession.auth_state_updated_at.is_not_distinct_from(item.read_at),
                )
                # A new encryption is not a new login state nor a change of the session:
                # keep both timestamps (cleanup's retention reads updated_at).
                .values(auth_state=item.archive, updated_at=WhatsappSession.updated_at)
            )
            if result.rowcount == 1:
                report.reencrypted += 1
            else:
                report.changed_meanwhile += 1
        uow.commit()


def rotate_webhook_secrets(settings: Settings, keys: Sequence[str], dry_run: bool = False) -> RotationReport:
    """Re-encrypt every endpoint's signing secrets (current and previous) with ``keys[0]``.

    Endpoints are few per company; each is re-encrypted under its row lock, so a
    concurrent secret rotation is either before (and re-encrypted) or after (and
    already encrypted with the newest key).
    """
    report = RotationReport()
    box = multi_fernet(keys, WEBHOOK_SECRETS)
    newest = fernet_for(keys[0], WEBHOOK_SECRETS)
    with UnitOfWork(settings) as uow:
        for endpoint in uow.db.scalars(
            select(WebhookEndpoint).order_by(WebhookEndpoint.id).with_for_update()
        ):
            try:
                tokens = [endpoint.secret, endpoint.previous_secret]
                if all(token is None or _opens(newest, token) for token in tokens):
                    report.current += 1
                    continue
                endpoint.secret = box.rotate(endpoint.secret.encode()).decode()
                if endpoint.previous_secret:
                    endpoint.previous_secret = box.rotate(endpoint.previous_secret.encode()).decode()
                report.reencrypted += 1
            except InvalidToken:
                report.failed.append(endpoint.id)
        if not dry_run:
            uow.commit()
    return report


def _opens(fernet: Fernet, token: str) -> bool:
    try:
        fernet.decrypt(token.encode())
        return True
    except InvalidToken:
        return False
