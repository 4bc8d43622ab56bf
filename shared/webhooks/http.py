"""One webhook delivery attempt: a single POST to a vetted, pinned address, never following redirects.

The URL is vetted again at delivery time (DNS may have changed since the webhook was registered) and the
connection goes to the vetted IP itself rather than to the host name, so a second DNS answer cannot swap
in a private address between the check and the connect (DNS rebinding).
"""

from __future__ import annotations

import errno
import http.client
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from shared.errors import InvalidInput
from shared.webhooks.targets import IPNetwork, Target, resolve_target

USER_AGENT = "ZapHub-Webhooks/1"
EXCERPT_BYTES = 1024
DRAIN_LIMIT_BYTES = 64 * 1024
_DRAIN_CHUNK = 16 * 1024
# Headers that describe the request itself; a caller-supplied value would contradict what is really sent.
_CONTROLLED_HEADERS = {"host", "content-type", "content-length", "user-agent", "transfer-encoding"}


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt produced: the receiver's status (``None`` if none arrived) and any failure reason."""

    status_code: int | None
    latency_ms: float
    response_excerpt: str
    error: str | None

    @property
    def ok(self) -> bool:
        """True when the receiver accepted the event (any 2xx)."""
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        """True on 410 Gone: the receiver asks for the webhook to be disabled."""
        return self.status_code == 410


def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    allowed_networks: Sequence[IPNetwork],
    connect_timeout: float,
    read_timeout: float,
) -> AttemptResult:
    """POST ``body`` to ``url`` once and report the outcome; never raises for network problems.

    The URL is re-vetted with ``resolve_target`` and the vetted addresses are tried in order until one
    accepts the connection; the ``Host`` header (and TLS server name) stay those of the URL. Redirects are
    not followed (a 3xx is a failure), at most 64 KB of the response is read and the first 1 KB is kept.
    """
    started = time.monotonic()

    def finish(status: int | None, excerpt: str, error: str | None) -> AttemptResult:
        return AttemptResult(status, (time.monotonic() - started) * 1000.0, excerpt, error)

    try:
        target = resolve_target(url, allowed_networks)
    except InvalidInput as exc:
        return finish(None, "", f"url refused: {exc.message}")

    request_headers = {
        name: value for name, value in headers.items() if name.lower() not in _CONTROLLED_HEADERS
    }
    request_headers["Host"] = target.host_header
    request_headers["Content-Type"] = "application/json"
    request_headers["User-Agent"] = USER_AGENT
    timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)

    error = "no address to connect to"
    for address in target.addresses:
        pool = _pool_for(target, address, timeout)
        try:
            try:
                response = pool.urlopen(
                    "POST",
                    target.path_and_query,
                    body=body,
                    headers=request_headers,
                    redirect=False,
                    retries=False,
                    preload_content=False,
                    decode_content=False,
                    assert_same_host=False,
                    release_conn=False,
                )
            except (NewConnectionError, ConnectTimeoutError) as exc:
                # Nothing was sent, so the next address can be tried without delivering twice.
                error = _describe(exc)
                continue
            except (HTTPError, OSError, http.client.HTTPException) as exc:
                return finish(None, "", _describe(exc))
            excerpt = _read_excerpt(response, deadline=time.monotonic() + connect_timeout + read_timeout)
            status = response.status
            if 300 <= status < 400:
                location = response.headers.get("Location", "no Location")
                return finish(status, excerpt, f"redirect not followed ({status} to {location})")
            return finish(status, excerpt, None)
        finally:
            pool.close()
    return finish(None, "", error)


def _pool_for(target: Target, address: str, timeout: urllib3.Timeout) -> urllib3.HTTPConnectionPool:
    if target.scheme == "https":
        # Certificates are checked against the URL's host even though the socket goes to the pinned IP.
        return urllib3.HTTPSConnectionPool(
            address,
            target.port,
            timeout=timeout,
            retries=False,
            maxsize=1,
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
        )
    return urllib3.HTTPConnectionPool(address, target.port, timeout=timeout, retries=False, maxsize=1)


def _read_excerpt(response: urllib3.BaseHTTPResponse, *, deadline: float) -> str:
    """Keep the first 1 KB of the body and drain at most 64 KB, so a huge or endless body costs little.

    Once the status and headers arrived the receiver's verdict is known; a body that breaks off or trickles
    is not a delivery failure, so read problems here only shorten the excerpt.
    """
    kept = b""
    read_total = 0
    try:
        kept = response.read(EXCERPT_BYTES, decode_content=False)
        read_total = len(kept)
        while read_total < DRAIN_LIMIT_BYTES and time.monotonic() < deadline:
            chunk = response.read(min(_DRAIN_CHUNK, DRAIN_LIMIT_BYTES - read_total), decode_content=False)
            if not chunk:
                break
            read_total += len(chunk)
    except (HTTPError, OSError, http.client.HTTPException):
        pass
    finally:
        # The pool is discarded after every attempt, so closing (rather than returning) the connection
        # just drops whatever body is left unread.
        response.close()
    return kept.decode("utf-8", errors="replace")


def _describe(exc: BaseException) -> str:
    """A short, stable reason for a failed attempt, suitable for storing and showing to the tenant."""
    if isinstance(exc, NewConnectionError):
        cause = _root_cause(exc)
        if isinstance(cause, ConnectionRefusedError) or getattr(cause, "errno", None) == errno.ECONNREFUSED:
            return "connection refused"
        if isinstance(cause, TimeoutError):
            return "connect timeout"
        return f"connection failed: {cause}"
    if isinstance(exc, ConnectTimeoutError):
        return "connect timeout"
    if isinstance(exc, ReadTimeoutError):
        return "read timeout"
    if isinstance(exc, SSLError):
        return f"tls error: {_root_cause(exc)}"
    if isinstance(exc, ProtocolError):
        cause = _root_cause(exc)
        if isinstance(cause, http.client.RemoteDisconnected):
            return "connection closed without a response"
        if isinstance(cause, ConnectionResetError):
            return "connection reset"
        if isinstance(cause, TimeoutError):
            return "read timeout"
        return f"connection failed: {cause}"
    return f"connection failed: {exc}"


def _root_cause(exc: BaseException) -> BaseException:
    seen = exc
    while True:
        nested = seen.__cause__ or seen.__context__
        if nested is None and isinstance(seen, ProtocolError) and len(seen.args) > 1:
            nested = seen.args[1] if isinstance(seen.args[1], BaseException) else None
        if nested is None or nested is seen:
            return seen
        seen = nested
