"""``python -m workers.flower``: Flower, bound as the settings say and never open by accident.

Flower itself answers any ``Host`` header and asks for no credentials. Bound to
loopback (``FLOWER_ADDRESS``, default 127.0.0.1) only this machine reaches it, but a
web page open in the operator's browser still could, through DNS rebinding (a name
of the attacker's that resolves to 127.0.0.1): so on loopback a request must name a
loopback host. Bound anywhere else, Flower refuses to start without
``FLOWER_BASIC_AUTH``.

Only the Celery configuration is loaded, not the task modules, so this process never
imports Playwright. Extra arguments go to Flower (``--port=5555``).
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Sequence

import flower.command
from celery import Celery
from flower.app import Flower
from tornado.httputil import HTTPServerRequest, split_host_and_port
from tornado.web import ErrorHandler

from shared.celery_factory import create_celery
from shared.config import Settings, get_settings

# Host names a browser sends for a loopback URL (any port).
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
# Set only through the settings, so the checks below cannot be bypassed.
_RESERVED_OPTIONS = frozenset({"address", "basic_auth", "unix_socket"})


class FlowerConfigError(RuntimeError):
    """Flower would be reachable without protection; the message says what to set."""


def is_loopback(address: str) -> bool:
    """Whether binding ``address`` listens on loopback only ('' means every interface)."""
    if address.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def host_allowed(host: str) -> bool:
    """Whether a ``Host`` header names this machine's loopback (DNS-rebinding guard)."""
    name, _port = split_host_and_port(host.lower())
    return name in LOOPBACK_HOSTS


def _check_basic_auth(value: str) -> None:
    for pair in value.split(","):
        user, colon, password = pair.partition(":")
        if not (user.strip() and colon and password):
            raise FlowerConfigError("FLOWER_BASIC_AUTH must be user:password pairs separated by commas")


def flower_arguments(settings: Settings, extra: Sequence[str] = ()) -> list[str]:
    """Flower's command-line options for ``settings``, or ``FlowerConfigError``."""
    for argument in extra:
        name = argument.lstrip("-").partition("=")[0].replace("-", "_")
        if name in _RESERVED_OPTIONS:
            raise FlowerConfigError(f"--{name} is set by FLOWER_ADDRESS and FLOWER_BASIC_AUTH only")
    address = settings.FLOWER_ADDRESS.strip()
    arguments = [f"--address={address}"]
    basic_auth = settings.FLOWER_BASIC_AUTH.strip()
    if basic_auth:
        _check_basic_auth(basic_auth)
        arguments.append(f"--basic-auth={basic_auth}")
    elif not is_loopback(address):
        raise FlowerConfigError(
            f"Flower bound to {address or 'every interface'} needs FLOWER_BASIC_AUTH "
            "(user:password, comma-separated pairs), or FLOWER_ADDRESS=127.0.0.1"
        )
    return [*arguments, *extra]


class LoopbackHostFlower(Flower):
    """Flower that answers only requests addressed to a loopback host name."""

    def find_handler(self, request: HTTPServerRequest, **kwargs):
        """Refuse (403) a request whose ``Host`` is not a loopback name."""
        if not host_allowed(request.host):
            return self.get_handler_delegate(request, ErrorHandler, {"status_code": 403})
        return super().find_handler(request, **kwargs)


def monitoring_celery(settings: Settings) -> Celery:
    """The project's Celery app without its task modules (they import Playwright)."""
    celery = create_celery(settings)
    celery.conf.include = []
    return celery


def main(argv: Sequence[str] | None = None) -> None:
    """Check the settings and run Flower; exits 1 with a message if it would be open."""
    settings = get_settings()
    try:
        arguments = flower_arguments(settings, sys.argv[1:] if argv is None else argv)
    except FlowerConfigError as exc:
        sys.exit(f"zaphub flower: {exc}")
    if is_loopback(settings.FLOWER_ADDRESS.strip()):
        # Flower's command builds its app from this name; there is no other hook.
        flower.command.Flower = LoopbackHostFlower
    monitoring_celery(settings).start(["flower", *arguments])


if __name__ == "__main__":
    main()
