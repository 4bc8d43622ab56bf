"""Companies, users and API tokens.

Tokens are random, shown once, and stored as a SHA-256 hash: they carry enough
entropy that a slow hash would add nothing but latency to every request.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass

from sqlalchemy import select

from shared.errors import Conflict, InvalidInput, NotFound
from shared.models import Company, User, utcnow
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)

ROLES = ("admin", "agent")
TOKEN_PREFIX = "zh_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user of one company, with a role."""

    user_id: str
    company_id: str
    email: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def hash_token(token: str) -> str:
    """The stored form of an API token."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_company(uow: UnitOfWork, name: str) -> Company:
    """Create a company with a unique name."""
    name = name.strip()
    if not name or len(name) > 120:
        raise InvalidInput("name", "company name must be 1 to 120 characters")
    with uow:
        if uow.db.scalar(select(Company.id).where(Company.name == name)):
            raise Conflict(f"company {name!r} already exists")
        company = Company(name=name)
        uow.db.add(company)
        uow.commit()
        log.info("company %s created", company.id)
        return company


def create_user(uow: UnitOfWork, company_name: str, email: str, role: str = "agent") -> tuple[User, str]:
    """Create a user in ``company_name`` and return it with its new API token."""
    email = email.strip().lower()
    if role not in ROLES:
        raise InvalidInput("role", f"role must be one of {', '.join(ROLES)}")
    if "@" not in email or len(email) > 254:
        raise InvalidInput("email", "email must be a valid address")
    with uow:
        company = uow.db.scalar(select(Company).where(Company.name == company_name))
        if company is None:
            raise NotFound(f"company {company_name!r} not found")
        if uow.db.scalar(select(User.id).where(User.email == email)):
            raise Conflict(f"user {email!r} already exists")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        user = User(
            company_id=company.id,
            email=email,
            role=role,
            token_hash=hash_token(token),
            token_created_at=utcnow(),
        )
        uow.db.add(user)
        uow.commit()
        log.info("user %s (%s) created in company %s", user.id, role, company.id)
        return user, token


def rotate_token(uow: UnitOfWork, email: str) -> str:
    """Give the user a new token; the previous one stops working."""
    with uow:
        user = _user_by_email(uow, email)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        user.token_hash, user.token_created_at = hash_token(token), utcnow()
        uow.commit()
        log.info("token of user %s rotated", user.id)
        return token


def revoke_token(uow: UnitOfWork, email: str) -> None:
    """Revoke the user's token: every request with it is refused from now on."""
    with uow:
        user = _user_by_email(uow, email)
        user.token_hash, user.token_created_at = None, None
        uow.commit()
        log.info("token of user %s revoked", user.id)


def authenticate(uow: UnitOfWork, token: str) -> Principal | None:
    """The principal owning ``token``, or ``None`` for an unknown or revoked token."""
    if not token:
        return None
    with uow:
        user = uow.db.scalar(select(User).where(User.token_hash == hash_token(token)))
        if user is None:
            return None
        return Principal(user_id=user.id, company_id=user.company_id, email=user.email, role=user.role)


def _user_by_email(uow: UnitOfWork, email: str) -> User:
    user = uow.db.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise NotFound(f"user {email!r} not found")
    return user
