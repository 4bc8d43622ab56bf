"""The API's request class: a streamed (chunked) body over the size limit is a 413.

With no ``Content-Length``, werkzeug caps a terminated stream at
``MAX_CONTENT_LENGTH`` but silently cuts it there, so an oversized chunked JSON body
reaches the parser truncated and comes back as 400 "invalid JSON body". Reading one
byte past the limit tells "exactly at the limit" from "too large". A body the
server cannot de-frame (a malformed chunk) is the client's error, 400.
"""

from __future__ import annotations

import io
from typing import IO

from flask import Request
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge
from werkzeug.utils import cached_property


def _read_at_most(stream: IO[bytes], size: int) -> bytes:
    # A WSGI input may return fewer bytes than asked (werkzeug's own dechunker does).
    parts, remaining = [], size
    while remaining > 0:
        part = stream.read(remaining)
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)


class BoundedRequest(Request):
    """A Flask request whose body, however it is framed, is at most ``max_content_length``."""

    @cached_property
    def stream(self) -> IO[bytes]:
        """The body stream; raises 413 for a streamed body longer than the limit."""
        limit = self.max_content_length
        if self.content_length is not None or limit is None or "wsgi.input_terminated" not in self.environ:
            return super().stream
        try:
            body = _read_at_most(self.environ["wsgi.input"], limit + 1)
        except Exception as exc:  # the server's own framing errors (a bad chunk) vary by server
            raise BadRequest("the request body is malformed or incomplete") from exc
        if len(body) > limit:
            raise RequestEntityTooLarge()
        return io.BytesIO(body)
