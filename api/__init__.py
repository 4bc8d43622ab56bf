"""The ZapHub REST API: a thin Flask layer over the services in ``shared``."""

from api.app import create_app

__all__ = ["create_app"]
