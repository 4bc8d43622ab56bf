"""URL converters of the API."""

from __future__ import annotations

from werkzeug.routing import BaseConverter


class PathSegment(BaseConverter):
    """Default converter of path parameters: one segment with no control characters.

    No session name or job id holds a control character, and PostgreSQL cannot even
    compare a string with a NUL in it, so such a URL matches no route: 404 for every
    method, before any handler or query runs.
    """

    regex = r"[^/\x00-\x1f\x7f]+"
