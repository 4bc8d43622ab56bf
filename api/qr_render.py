"""Rendering a session's QR text as PNG or SVG for ``GET /session/<name>/qr``."""

from __future__ import annotations

import io

import segno
from werkzeug.datastructures import MIMEAccept

FORMATS = {"json": "application/json", "png": "image/png", "svg": "image/svg+xml"}


def negotiate_qr_format(explicit: str | None, accept: MIMEAccept) -> str:
    """``?format=`` wins; else the best match of the Accept header; JSON by default."""
    if explicit:
        return explicit
    best = accept.best_match(list(FORMATS.values()), default="application/json")
    return next(fmt for fmt, mimetype in FORMATS.items() if mimetype == best)


def render_qr(text: str, fmt: str) -> tuple[bytes, str]:
    """Encode ``text`` as a QR image in ``fmt`` (``png`` or ``svg``)."""
    out = io.BytesIO()
    segno.make_qr(text, error="l").save(out, kind=fmt, scale=8, border=4)
    return out.getvalue(), FORMATS[fmt]
