"""The keys that encrypt stored login states, and the startup check that guards them.

``SECRET_KEYS`` is a comma-separated list, newest first: login states are encrypted
with the first key and decrypted with any, so a key can be rotated without losing a
session (``zaphub keys rotate`` then re-encrypts what is stored). ``SECRET_KEY`` is
one more key, used alone when ``SECRET_KEYS`` is empty and tried last otherwise.

The API and the workers call :func:`require_secret_keys` before they start: without a
key, or encrypting with the public development key, anyone who reads the database
could open every stored WhatsApp login. ``DEV_MODE`` is the explicit way round it.
"""

from __future__ import annotations

from secrets import token_urlsafe

from shared.config import Settings

# The key `make run` uses when none is set; public, so never acceptable in production.
DEVELOPMENT_KEY = "dev-insecure-change-me"

_HOW_TO_FIX = (
    "set SECRET_KEYS (comma-separated, newest first) or SECRET_KEY "
    "to a private random value (`zaphub keys generate`), or DEV_MODE=1 for local development only"
)


class SecretKeyError(RuntimeError):
    """No usable key for login states; the one-line message says what to set."""


def secret_keys(settings: Settings) -> list[str]:
    """The login-state keys, newest (the one that encrypts) first.

    In development mode with no key configured, the public development key, so a
    local stack still runs; otherwise only what the operator configured.
    """
    keys = [key.strip() for key in settings.SECRET_KEYS.split(",") if key.strip()]
    single = settings.SECRET_KEY.strip()
    if single and single not in keys:
        keys.append(single)
    if not keys and settings.DEV_MODE:
        keys.append(DEVELOPMENT_KEY)
    return keys


def require_secret_keys(settings: Settings) -> list[str]:
    """The login-state keys, or ``SecretKeyError`` unless they are fit to encrypt with.

    Refused outside ``DEV_MODE``: no key at all, and the public development key as the
    encrypting one. The development key may stay later in the list, so a deployment
    can rotate away from it.
    """
    keys = secret_keys(settings)
    if settings.DEV_MODE:
        return keys
    if not keys:
        raise SecretKeyError(f"no key to encrypt login states: {_HOW_TO_FIX}")
    if keys[0] == DEVELOPMENT_KEY:
        raise SecretKeyError(f"the public development key would encrypt login states: {_HOW_TO_FIX}")
    return keys


def generate_key() -> str:
    """A new random key (256 bits, URL-safe text) for ``SECRET_KEYS``."""
    return token_urlsafe(32)
