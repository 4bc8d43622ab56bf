"""Symmetric encryption of stored secrets with the deployment's keys (``SECRET_KEYS``).

Each purpose (login states, webhook signing secrets) derives its own Fernet keys from
the same configured keys, so one ciphertext can never be passed off as the other. The
first key encrypts, any decrypts: a key rotation keeps what is stored readable.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from cryptography.fernet import Fernet, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.config import Settings
from shared.secrets import secret_keys

# HKDF salts, one per purpose (the login states' one predates this module).
LOGIN_STATES = b"zaphub-login-state"
WEBHOOK_SECRETS = b"zaphub-webhook-secret"


def fernet_for(secret: str, purpose: bytes) -> Fernet:
    """The Fernet key derived from one configured ``secret`` for ``purpose``."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=purpose, info=b"fernet-v1").derive(
        secret.encode("utf-8")
    )
    return Fernet(base64.urlsafe_b64encode(key))


def multi_fernet(secrets: Sequence[str], purpose: bytes) -> MultiFernet:
    """Encrypt with the first of ``secrets``, decrypt with any (``MultiFernet``)."""
    # A bare string is a sequence too: each character would silently become a key.
    if isinstance(secrets, (str, bytes)):
        raise TypeError("secrets must be a list of keys, newest first")
    if not secrets:
        raise ValueError("no secret key configured (SECRET_KEYS)")
    return MultiFernet([fernet_for(secret, purpose) for secret in secrets])


def seal(settings: Settings, text: str, purpose: bytes = WEBHOOK_SECRETS) -> str:
    """``text`` encrypted with the deployment's newest key."""
    return multi_fernet(secret_keys(settings), purpose).encrypt(text.encode()).decode()


def unseal(settings: Settings, token: str, purpose: bytes = WEBHOOK_SECRETS) -> str:
    """The text :func:`seal` encrypted (``cryptography.fernet.InvalidToken`` if no key opens it)."""
    return multi_fernet(secret_keys(settings), purpose).decrypt(token.encode()).decode()


def reseal(settings: Settings, token: str, purpose: bytes = WEBHOOK_SECRETS) -> str:
    """``token`` re-encrypted with the newest key (after a key rotation)."""
    return multi_fernet(secret_keys(settings), purpose).rotate(token.encode()).decode()
