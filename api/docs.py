"""Serves Swagger UI's assets from the ``swagger_ui_bundle`` package: no CDN needed."""

from __future__ import annotations

from flask import Flask, send_from_directory
from swagger_ui_bundle import swagger_ui_path


def register_docs(app: Flask) -> None:
    """Expose ``/docs/assets/<file>`` for the Swagger UI page at ``/docs``."""

    @app.get("/docs/assets/<path:filename>")
    def swagger_ui_asset(filename: str):
        return send_from_directory(swagger_ui_path, filename, max_age=3600)
