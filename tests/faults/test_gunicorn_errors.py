"""Item 14: through the real gunicorn of the Procfile, every error is JSON.

A real ``gunicorn -c python:api.gunicorn_conf`` process serves the API on a free
port; malformed requests are written on raw sockets, since no HTTP client would
send them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.gunicorn_stack import exchange, gunicorn_serving


@pytest.fixture
def gunicorn_url(settings, tmp_path) -> Iterator[int]:
    """The API under gunicorn with the project's config, on 127.0.0.1 and a free port."""
    with gunicorn_serving(settings, tmp_path / "gunicorn.log") as port:
        yield port


def chunked(body: bytes, size: int = 8192) -> bytes:
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


def test_item_14_oversized_chunked_body_is_413_json(gunicorn_url, tenant):
    body = b'{"name": "big", "config": {"a": "' + b"x" * 200_000 + b'"}}'
    status, headers, payload = exchange(
        gunicorn_url,
        b"POST /session HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {tenant.admin_token}\r\n".encode()
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + chunked(body),
    )
    assert status == 413
    assert headers["content-type"].startswith("application/json")
    assert json.loads(payload)["code"] == 413

    small = b'{"name": "small"}'
    status, _, payload = exchange(
        gunicorn_url,
        b"POST /session HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nConnection: close\r\n"
        + f"Authorization: Bearer {tenant.admin_token}\r\n".encode()
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + chunked(small, 5),
    )
    assert status == 202, payload


@pytest.mark.parametrize(
    "raw,expected",
    [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414),
        (b"GET /health HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n", 400),
        (b"GET /health HTTP/1.1\r\nHost: t\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431),
        (
            b"GET /health HTTP/1.1\r\nHost: t\r\n"
            + b"".join(b"X-%d: 1\r\n" % i for i in range(200))
            + b"\r\n",
            431,
        ),
        (b"GARBAGE\r\n\r\n", 400),
    ],
    ids=[
        "uri-too-long",
        "malformed-header",
        "header-too-large",
        "too-many-headers",
        "bad-request-line",
    ],
)
def test_item_14_errors_raised_by_gunicorn_are_json(gunicorn_url, raw, expected):
    status, headers, payload = exchange(gunicorn_url, raw)
    assert status == expected
    assert headers["content-type"] == "application/json"
    error = json.loads(payload)
    assert error["code"] == expected and error["status"] and error["message"]


def test_item_14_malformed_chunked_body_is_400_json(gunicorn_url, tenant):
    status, headers, payload = exchange(
        gunicorn_url,
        b"POST /session HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {tenant.admin_token}\r\n".encode()
        + b'Transfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\nzz\r\n',
    )
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert json.loads(payload)["code"] == 400
