"""The ``zaphub`` admin command line: migrations, companies, users, tokens, keys and the legacy import."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from shared.config import get_settings
from shared.errors import ZapHubError
from shared.migrate import upgrade
from shared.secrets import SecretKeyError, generate_key, require_secret_keys
from shared.services import accounts, legacy_import
from shared.services.key_rotation import rotate_login_states, rotate_webhook_secrets
from shared.uow import UnitOfWork


def _fail(exc: ZapHubError) -> None:
    click.echo(f"error: {exc.message}", err=True)
    sys.exit(1)


@click.group()
def main() -> None:
    """ZapHub administration."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION."""
    upgrade(get_settings().DATABASE_URL, revision)
    click.echo(f"database at {revision}")


@main.group()
def company() -> None:
    """Companies (tenants)."""


@company.command("create")
@click.argument("name")
def company_create(name: str) -> None:
    """Create a company and print its id."""
    try:
        created = accounts.create_company(UnitOfWork(), name)
    except ZapHubError as exc:
        _fail(exc)
    click.echo(created.id)


@main.group()
def user() -> None:
    """Users and their API tokens."""


@user.command("create")
@click.option("--company", "company_name", required=True, help="company name")
@click.option("--email", required=True)
@click.option("--role", type=click.Choice(accounts.ROLES), default="agent", show_default=True)
def user_create(company_name: str, email: str, role: str) -> None:
    """Create a user; the API token is printed once, on the last line."""
    try:
        created, token = accounts.create_user(UnitOfWork(), company_name, email, role)
    except ZapHubError as exc:
        _fail(exc)
    click.echo(f"user {created.email} ({created.role}) created; API token (shown once):")
    click.echo(token)


@main.group()
def token() -> None:
    """API tokens."""


@token.command("revoke")
@click.option("--email", required=True)
def token_revoke(email: str) -> None:
    """Revoke the user's token."""
    try:
        accounts.revoke_token(UnitOfWork(), email)
    except ZapHubError as exc:
        _fail(exc)
    click.echo(f"token of {email} revoked")


@token.command("rotate")
@click.option("--email", required=True)
def token_rotate(email: str) -> None:
    """Issue a new token (printed once, on the last line); the old one stops working."""
    try:
        new_token = accounts.rotate_token(UnitOfWork(), email)
    except ZapHubError as exc:
        _fail(exc)
    click.echo(f"new API token of {email} (shown once):")
    click.echo(new_token)


@main.group()
def keys() -> None:
    """Keys that encrypt stored login states (SECRET_KEYS, newest first)."""


@keys.command("generate")
def keys_generate() -> None:
    """Print a new random key, to put first in SECRET_KEYS."""
    click.echo(generate_key())


@keys.command("rotate")
@click.option("--batch-size", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--dry-run", is_flag=True, help="count what would be re-encrypted; write nothing")
def keys_rotate(batch_size: int, dry_run: bool) -> None:
    """Re-encrypt every stored login state and webhook secret with the first key of SECRET_KEYS.

    Exits 1 if something stored cannot be decrypted by any configured key.
    """
    settings = get_settings()
    try:
        secret_keys = require_secret_keys(settings)
    except SecretKeyError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    report = rotate_login_states(settings, secret_keys, batch_size=batch_size, dry_run=dry_run)
    done = "would be re-encrypted" if dry_run else "re-encrypted"
    click.echo(f"{done}: {report.reencrypted}")
    click.echo(f"already current: {report.current}")
    click.echo(f"saved by a worker meanwhile (left alone): {report.changed_meanwhile}")
    click.echo(f"failed (no key decrypts them): {len(report.failed)}")
    hooks = rotate_webhook_secrets(settings, secret_keys, dry_run=dry_run)
    click.echo(f"webhook secrets {done}: {hooks.reencrypted}, already current: {hooks.current}")
    if report.failed:
        click.echo(f"error: login states no key decrypts: {', '.join(report.failed)}", err=True)
    if hooks.failed:
        click.echo(f"error: webhook secrets no key decrypts: {', '.join(hooks.failed)}", err=True)
    if report.failed or hooks.failed:
        sys.exit(1)


@main.command("import-legacy")
@click.argument("sessions_json", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--profiles",
    "profiles_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="the old service's whatsapp-web.js LocalAuth folder (.wwebjs_auth) with session-<id> profiles",
)
@click.option("--dry-run", is_flag=True, help="print what would be done; write nothing")
def import_legacy(sessions_json: Path, profiles_dir: Path | None, dry_run: bool) -> None:
    """Import the old service's sessions (and their logins) from SESSIONS_JSON.

    One transaction: a bad entry is named and nothing is written (exit 1). Running it
    again changes nothing; sessions changed in ZapHub since their import are left alone.
    """
    settings = get_settings()
    keys = None
    if profiles_dir is not None and not dry_run:
        try:
            keys = require_secret_keys(settings)
        except SecretKeyError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
    try:
        report = legacy_import.import_file(
            UnitOfWork(settings), sessions_json, profiles_dir, keys, dry_run=dry_run
        )
    except ZapHubError as exc:
        _fail(exc)
    prefix = "dry run, nothing written: " if dry_run else ""
    for company_id in report.companies_created:
        click.echo(f"{prefix}company {company_id} {'would be ' if dry_run else ''}created")
    for outcome in report.sessions:
        click.echo(prefix + outcome.line())
    counts = report.summary()
    click.echo(
        f"{prefix}{counts['created']} created, {counts['updated']} updated, {counts['skipped']} skipped; "
        f"{counts['companies_created']} companies created; profiles: {counts['profiles_imported']} usable, "
        f"{counts['profiles_unusable']} unusable"
    )
    for outcome in report.unusable_profiles:
        click.echo(
            f"warning: profile of {outcome.company_id}/{outcome.name} (legacy id {outcome.legacy_id}) "
            f"is unusable ({outcome.profile_problem}); "
            "the session imports DISCONNECTED and must be linked again",
            err=True,
        )


if __name__ == "__main__":  # pragma: no cover
    main()
