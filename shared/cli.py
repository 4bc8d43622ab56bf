"""The ``zaphub`` admin command line: migrations, companies, users and tokens."""

from __future__ import annotations

import logging
import sys

import click

from shared.config import get_settings
from shared.errors import ZapHubError
from shared.migrate import upgrade
from shared.services import accounts
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


if __name__ == "__main__":  # pragma: no cover
    main()
