"""The web console at ``/console``: static ES modules served from the package, no build step.

The files themselves need no token (they hold no data); every piece of data the page
shows comes from the public REST API with the bearer token the user pastes. Responses
carry a strict Content-Security-Policy: only this origin's scripts, styles, images and
connections, so an injected string can never run as code or leak the token elsewhere.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask, Response, redirect, send_from_directory

STATIC_DIR = Path(__file__).parent / "static" / "console"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

blp = Blueprint("console", __name__)


@blp.after_request
def _security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    # The page's URL never goes to another site (it carries no token, but no need to tell).
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    return response


@blp.get("/console")
def index():
    # Revalidated each load, so a deploy's new modules are picked up at once.
    return send_from_directory(STATIC_DIR, "index.html", max_age=0)


@blp.get("/console/")
def index_slash():
    return redirect("/console", code=308)


@blp.get("/console/<path:filename>")
def asset(filename: str):
    return send_from_directory(STATIC_DIR, filename, max_age=0)


def register_console(app: Flask) -> None:
    """Mount the console (outside flask-smorest: it is not part of the API document)."""
    app.register_blueprint(blp)
