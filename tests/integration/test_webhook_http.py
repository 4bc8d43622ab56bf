"""One delivery attempt against a real local HTTP receiver (127.0.0.1, allowed explicitly; no database)."""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shared.webhooks.http import USER_AGENT, AttemptResult, post
from shared.webhooks.targets import parse_networks

LOOPBACK = "127.0.0.1"
LOCAL = parse_networks("127.0.0.0/8, ::1/128")
BODY = json.dumps({"type": "message.received", "data": {"text": "olá 👋"}}, ensure_ascii=False).encode()
BIG_BODY = b"a" * 1023 + "é".encode() + b"z" * 100_000


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Receiver

    def log_message(self, format, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.received.append(Received(self.path, headers, body))
        route = self.path.split("?", 1)[0]
        if route == "/hang":
            # Accept the request but never answer, until the test is over.
            self.server.release.wait(10)
            return
        status, payload, extra = {
            "/ok": (200, b"accepted", {}),
            "/big": (200, BIG_BODY, {}),
            "/error": (500, b"internal error", {}),
            "/gone": (410, b"webhook removed", {}),
            "/redirect": (302, b"", {"Location": f"http://127.0.0.1:{self.server.server_port}/ok"}),
        }.get(route, (404, b"no such path", {}))
        try:
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            pass  # The client stops reading big bodies early; that is the point.


class _Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[Received] = []
        self.release = threading.Event()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.server_port}{path}"


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    server = _Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def _post(url: str, body: bytes = BODY, headers: dict[str, str] | None = None, **kwargs) -> AttemptResult:
    options = {"allowed_networks": LOCAL, "connect_timeout": 2.0, "read_timeout": 2.0, **kwargs}
    return post(url, body, headers or {}, **options)


def test_success_is_recorded_with_body_excerpt(receiver):
    result = _post(receiver.url("/ok"))
    assert result.status_code == 200
    assert result.ok and not result.gone
    assert result.error is None
    assert result.response_excerpt == "accepted"
    assert result.latency_ms > 0
    assert len(receiver.received) == 1


def test_excerpt_of_a_100_kb_response_is_capped_at_1024_bytes(receiver):
    result = _post(receiver.url("/big"))
    assert result.ok
    # The 1024th byte is the first half of "é": it is replaced, not allowed to break decoding.
    assert result.response_excerpt == "a" * 1023 + "\ufffd"
    assert len(result.response_excerpt.encode("utf-8", errors="replace")) <= 1026


def test_server_error_is_not_ok(receiver):
    result = _post(receiver.url("/error"))
    assert result.status_code == 500
    assert not result.ok and not result.gone
    assert result.error is None
    assert result.response_excerpt == "internal error"


def test_410_means_gone(receiver):
    result = _post(receiver.url("/gone"))
    assert result.status_code == 410
    assert result.gone and not result.ok


def test_redirect_is_not_followed(receiver):
    result = _post(receiver.url("/redirect"))
    assert result.status_code == 302
    assert not result.ok
    assert "redirect not followed" in result.error
    assert receiver.url("/ok") in result.error
    time.sleep(0.1)
    assert [request.path for request in receiver.received] == ["/redirect"]


def test_silent_server_is_a_read_timeout(receiver):
    started = time.monotonic()
    result = _post(receiver.url("/hang"), read_timeout=0.5)
    elapsed = time.monotonic() - started
    assert result.status_code is None
    assert result.error == "read timeout"
    assert not result.ok
    assert 0.4 <= elapsed < 2.0
    assert 400 <= result.latency_ms < 2000


def test_closed_port_is_an_error_not_an_exception():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = _post(f"http://127.0.0.1:{port}/ok")
    assert result.status_code is None
    assert result.error == "connection refused"
    assert not result.ok


def test_receiver_gets_exact_body_headers_and_original_host(receiver):
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": "1700000000",
        "webhook-signature": "v1,abc v1,def",
        "X-Tenant": "acme",
        # Caller values for these must not override what describes the real request.
        "Host": "evil.example",
        "content-type": "text/plain",
        "User-Agent": "curl/8",
    }
    result = _post(receiver.url("/ok?tenant=acme&x=1", host="localhost"), headers=headers)
    assert result.ok, result
    (request,) = receiver.received
    assert request.path == "/ok?tenant=acme&x=1"
    assert request.body == BODY
    assert request.headers["host"] == f"localhost:{receiver.server_port}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == USER_AGENT == "ZapHub-Webhooks/1"
    assert request.headers["content-length"] == str(len(BODY))
    assert request.headers["webhook-id"] == "msg_1"
    assert request.headers["webhook-timestamp"] == "1700000000"
    assert request.headers["webhook-signature"] == "v1,abc v1,def"
    assert request.headers["x-tenant"] == "acme"


def test_host_header_keeps_the_ip_literal_and_port(receiver):
    assert _post(receiver.url("/ok")).ok
    assert receiver.received[0].headers["host"] == f"127.0.0.1:{receiver.server_port}"


def test_without_allow_list_the_url_is_refused_and_nothing_is_sent(receiver):
    result = _post(receiver.url("/ok"), allowed_networks=[])
    assert result.status_code is None
    assert result.error.startswith("url refused: url host 127.0.0.1 is a loopback address")
    assert not result.ok
    time.sleep(0.1)
    assert receiver.received == []


def test_invalid_url_is_refused_not_raised():
    result = _post("ftp://127.0.0.1/file")
    assert result.error == "url refused: url must use http or https"


@pytest.fixture
def fake_dns(monkeypatch):
    """Answers for made-up names (the network is closed); IP literals still go to the real resolver."""
    real_getaddrinfo = socket.getaddrinfo
    answers: dict[str, list[list[str]]] = {}
    lookups: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            return real_getaddrinfo(host, port, *args, **kwargs)
        lookups.append(host)
        # Each lookup pops the next answer; the last one keeps being served.
        addresses = answers[host].pop(0) if len(answers[host]) > 1 else answers[host][0]
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (a, port)) for a in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers, lookups


def test_connection_goes_to_the_vetted_address_not_a_second_lookup(receiver, fake_dns):
    answers, lookups = fake_dns
    # DNS rebinding: the first answer passes the check, any later one points elsewhere (nothing listens).
    answers["rebind.test"] = [["127.0.0.1"], ["127.0.0.2"]]
    result = _post(f"http://rebind.test:{receiver.server_port}/ok")
    assert result.ok, result
    assert lookups == ["rebind.test"]
    assert receiver.received[0].headers["host"] == f"rebind.test:{receiver.server_port}"


def test_addresses_are_tried_in_order_until_one_connects(receiver, fake_dns):
    answers, _ = fake_dns
    answers["multi.test"] = [["127.0.0.2", "127.0.0.1"]]
    result = _post(f"http://multi.test:{receiver.server_port}/ok")
    assert result.ok, result
    assert len(receiver.received) == 1


def test_every_address_refusing_is_reported(fake_dns):
    answers, _ = fake_dns
    answers["down.test"] = [["127.0.0.2", "127.0.0.3"]]
    result = _post("http://down.test:9/ok")
    assert result.status_code is None
    assert result.error == "connection refused"


def test_name_resolving_to_a_private_address_is_refused_at_delivery(receiver, fake_dns):
    answers, _ = fake_dns
    # Registered while public, now (or partly) private: refused without sending anything.
    answers["moved.test"] = [["93.184.216.34", "127.0.0.1"]]
    result = _post(f"http://moved.test:{receiver.server_port}/ok", allowed_networks=[])
    assert result.error.startswith("url refused: url host moved.test resolves to 127.0.0.1")
    assert receiver.received == []


def _self_signed_pair(directory) -> tuple[str, str]:
    """A throwaway certificate for 127.0.0.1 that no trust store knows."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, LOOPBACK)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(cert_path), str(key_path)


def test_untrusted_certificate_is_an_error_and_nothing_is_delivered(receiver, tmp_path):
    cert, key = _self_signed_pair(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    receiver.socket = context.wrap_socket(receiver.socket, server_side=True)
    result = _post(f"https://127.0.0.1:{receiver.server_port}/ok")
    assert result.status_code is None
    assert result.error.startswith("tls error"), result
    assert "certificate" in result.error.lower()
    assert receiver.received == []
