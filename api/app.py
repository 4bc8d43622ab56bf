"""Flask application factory: configuration, extensions, blueprints, error handlers."""

from __future__ import annotations

import logging

from flask import Flask

from api.console import register_console
from api.converters import PathSegment
from api.deadlines import register_request_deadline
from api.docs import register_docs
from api.errors import register_error_handlers
from api.extensions import ZapHubState, register_request_unit_of_work, smorest_api
from api.json_body import StrictJSONProvider
from api.metrics import register_metrics
from api.request import BoundedRequest
from api.resources import register_blueprints
from shared.celery_factory import broker_ping, create_celery
from shared.config import Settings, get_settings, set_settings
from shared.db import CLIENT_DEADLINE_MARGIN
from shared.jobs import CeleryPublisher
from shared.secrets import require_secret_keys
from shared.webhooks import dispatch as webhook_dispatch


def create_app(settings: Settings | None = None) -> Flask:
    """Build the API for ``settings`` (default: read from the environment)."""
    settings = settings or get_settings()
    # Refuse to boot (gunicorn exits) rather than store login states under a public key.
    require_secret_keys(settings)
    set_settings(settings)
    app = Flask(__name__)
    app.request_class = BoundedRequest
    app.json = StrictJSONProvider(app)
    # Before any route is added: routes take the converter in force when added.
    app.url_map.converters["string"] = app.url_map.converters["default"] = PathSegment
    app.config.update(
        TESTING=settings.TESTING,
        MAX_CONTENT_LENGTH=64 * 1024,
        API_TITLE="ZapHub",
        API_VERSION="1.0",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL="/docs/assets/",
        API_SPEC_OPTIONS={
            "info": {
                "description": "Multi-tenant WhatsApp Web sessions. "
                "Every call needs `Authorization: Bearer <token>`."
            },
            "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearerAuth": []}],
        },
    )
    celery = create_celery(settings)
    webhook_dispatch.install(webhook_dispatch.celery_publisher(celery))
    app.extensions["zaphub"] = ZapHubState(
        settings=settings,
        publisher=CeleryPublisher(celery),
        broker_ping=lambda: broker_ping(celery),
    )
    smorest_api.init_app(app)
    register_request_deadline(app, settings.DB_STATEMENT_TIMEOUT + CLIENT_DEADLINE_MARGIN)
    register_request_unit_of_work(app)
    register_blueprints(smorest_api)
    register_error_handlers(app)
    register_docs(app)
    register_console(app)
    register_metrics(app)
    logging.getLogger(__name__).info("api ready (database %s)", settings.DATABASE_URL.split(":")[0])
    return app
