"""The ZapHub REST API: a thin Flask layer over the services in ``shared``.

``create_app`` is imported on first use, not with the package: gunicorn's master
imports ``api.gunicorn_conf`` and the worker class from this package before the gevent
worker monkey-patches the standard library, and it must not load the app (SQLAlchemy,
Celery, their locks and queues) unpatched on the way.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from api.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
