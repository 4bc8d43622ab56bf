"""Companies, users and API tokens.

Tokens are random, shown once, and stored as a SHA-256 hash: they carry enough
entropy that a slow hash would add nothing but latency to every request. A token's
principal is cached in the process for at most ``TOKEN_CACHE_SECONDS``
(:mod:`shared.token_cache`); revoking or rotating drops it from this process's cache.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import select

from shared.config import Settings
from shared.errors import Conflict, InvalidInput, NotFound
from shared.models import Company, User, utcnow
from shared.token_cache import TokenCache
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


_token_cache: TokenCache[Principal] | None = None


def token_cache(settings: Settings) -> TokenCache[Principal]:
    """This process's token cache, sized and timed by ``settings``."""
    global _token_cache
    ttl, size = settings.TOKEN_CACHE_SECONDS, settings.TOKEN_CACHE_SIZE
    if _token_cache is None or (_token_cache.ttl, _token_cache.size) != (ttl, size):
        _token_cache = TokenCache(ttl, size)
    return _token_cache


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
        token_cache(uow.settings).forget_user(user.id)
        log.info("token of user %s rotated", user.id)
        return token


def revoke_token(uow: UnitOfWork, email: str) -> None:
    """Revoke the user's token: every request with it is refused from now on."""
    with uow:
        user = _user_by_email(uow, email)
        user.token_hash, user.token_created_at = None, None
        uow.commit()
        token_cache(uow.settings).forget_user(user.id)
        log.info("token of user %s revoked", user.id)


def authenticate(uow: UnitOfWork, token: str) -> Principal | None:
    """The principal owning ``token``, or ``None`` for an unknown or revoked token.

    A principal read less than ``TOKEN_CACHE_SECONDS`` ago comes from the cache.
    """
    if not token:
        return None
    token_hash = hash_token(token)
    cache = token_cache(uow.settings)
    principal = cache.get(token_hash)
    if principal is not None:
        return principal
    read_at = time.monotonic()
    with uow:
        row = uow.db.execute(
            select(User.id, User.company_id, User.email, User.role).where(User.token_hash == token_hash)
        ).first()
    if row is None:
        return None
    principal = Principal(user_id=row.id, company_id=row.company_id, email=row.email, role=row.role)
    cache.put(token_hash, row.id, principal, read_at)
    return principal


def _user_by_email(uow: UnitOfWork, email: str) -> User:
    user = uow.db.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise NotFound(f"user {email!r} not found")
    return user
