"""``GET /metrics``: Prometheus text for the deployment, behind its own token.

The figures come from :mod:`shared.metrics` (database and Redis, read at scrape time),
so any gunicorn worker answers the same. The API's own per-process counter
(``zaphub_api_requests_total``) lives in prometheus_client's multiprocess files when
``PROMETHEUS_MULTIPROC_DIR`` is set (see ``api.gunicorn_conf``), and is merged at scrape.

Access: with ``METRICS_TOKEN`` set, ``Authorization: Bearer <METRICS_TOKEN>`` (API user
tokens do not open it); without one, only loopback clients. ``request.remote_addr`` is
the peer of the socket: ``X-Forwarded-For`` is never trusted, as anyone can send it.
The route is left out of the OpenAPI document: it is for Prometheus, not API clients.
"""

from __future__ import annotations

import hmac
import ipaddress

from flask import Flask, Response, jsonify, request
from prometheus_client import CollectorRegistry, Counter

from api.error_shape import error_body
from api.extensions import state
from shared.metrics import CONTENT_TYPE, render

# Made on first use, in the serving process: gunicorn's master imports this module
# before forking, and a multiprocess counter opens its file for the process making it.
_process_registry: CollectorRegistry | None = None
_requests: Counter | None = None


def _request_counter() -> Counter:
    global _process_registry, _requests
    if _requests is None:
        multiprocess = bool(state().settings.PROMETHEUS_MULTIPROC_DIR)
        # In multiprocess mode the files are the registry: registering too would count twice.
        _process_registry = None if multiprocess else CollectorRegistry(auto_describe=True)
        _requests = Counter(
            "zaphub_api_requests",
            "HTTP requests answered by the API, by method and status code.",
            ["method", "code"],
            registry=_process_registry,
        )
    return _requests


def _count_request(response: Response) -> Response:
    _request_counter().labels(request.method, str(response.status_code)).inc()
    return response


def _is_loopback(address: str | None) -> bool:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:  # a unix socket or no peer at all
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _refusal(code: int, message: str) -> Response:
    response = jsonify(error_body(code, message))
    response.status_code = code
    if code == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


def metrics() -> Response:
    """The Prometheus text of the deployment."""
    settings = state().settings
    if settings.METRICS_TOKEN:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        expected = settings.METRICS_TOKEN.encode()
        # Constant time: the comparison must not tell how much of a guess was right.
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            return _refusal(401, "metrics need 'Authorization: Bearer <METRICS_TOKEN>'")
    elif not _is_loopback(request.remote_addr):
        return _refusal(403, "metrics are served to loopback clients only unless METRICS_TOKEN is set")
    _request_counter()  # so the process registry exists before the first scrape renders
    body = render(settings, _process_registry)
    return Response(body, status=200, content_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})


def register_metrics(app: Flask) -> None:
    """Add ``GET /metrics`` and the per-request counter to ``app``."""
    app.add_url_rule("/metrics", "metrics", metrics, methods=["GET"])
    app.after_request(_count_request)
