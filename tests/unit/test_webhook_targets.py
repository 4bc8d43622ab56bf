"""The SSRF guard refuses non-public destinations unless the allow-list covers them.

The network here is closed, so only IP literals and ``localhost`` are used (no DNS queries).
"""

import ipaddress
import re

import pytest

from shared.errors import InvalidInput
from shared.webhooks.targets import Target, parse_networks, resolve_target

LOOPBACK = parse_networks("127.0.0.0/8, ::1")


@pytest.mark.parametrize(
    "url, fragment",
    [
        ("ftp://93.184.216.34/file", "http or https"),
        ("javascript:alert(1)", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("http:///path-only", "must have a host"),
        ("http://", "must have a host"),
        ("not a url", "spaces"),
        ("", "non-empty"),
        ("http://user:pass@93.184.216.34/", "credentials"),
        ("http://93.184.216.34:99999/", "port"),
        ("http://93.184.216.34/" + "a" * 2048, "2048"),
        ("http://93.184.216.34/\r\nX-Injected: 1", "control characters"),
    ],
)
def test_malformed_or_foreign_urls_are_invalid_input_on_url(url, fragment):
    with pytest.raises(InvalidInput) as caught:
        resolve_target(url, [])
    assert caught.value.field == "url"
    assert caught.value.status_code == 422
    assert fragment in caught.value.message


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://127.0.0.1/hook", "loopback"),
        ("http://[::1]:8080/hook", "loopback"),
        ("http://localhost/hook", "loopback"),
        ("http://10.0.0.1/hook", "private"),
        ("http://192.168.1.1/hook", "private"),
        ("http://172.16.5.4/hook", "private"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://0.0.0.0/hook", "unspecified"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://[::ffff:169.254.169.254]/", "cloud metadata"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://224.0.0.1/hook", "multicast"),
        ("http://100.64.0.1/hook", "carrier-grade NAT"),
        ("http://[64:ff9b::7f00:1]/hook", "loopback"),
    ],
)
def test_non_public_addresses_are_refused_without_allow_list(url, reason):
    with pytest.raises(InvalidInput) as caught:
        resolve_target(url, [])
    assert caught.value.field == "url"
    assert reason in caught.value.message
    assert "WEBHOOK_ALLOWED_NETWORKS" in caught.value.message


def test_refusal_names_host_and_reason():
    with pytest.raises(InvalidInput) as caught:
        resolve_target("http://127.0.0.1/", [])
    assert caught.value.message == (
        "url host 127.0.0.1 is a loopback address; add its network to WEBHOOK_ALLOWED_NETWORKS to allow it"
    )


def test_refusal_of_a_name_names_the_address_it_resolved_to():
    with pytest.raises(InvalidInput) as caught:
        resolve_target("http://localhost:9000/x", [])
    assert "url host localhost resolves to" in caught.value.message


@pytest.mark.parametrize(
    "url, networks",
    [
        ("http://127.0.0.1/hook", "127.0.0.0/8"),
        ("http://[::1]:8080/hook", "::1"),
        ("http://10.0.0.1/hook", "10.0.0.0/8"),
        ("http://192.168.1.1/hook", "192.168.0.0/16"),
        ("http://169.254.169.254/", "169.254.169.254"),
        ("http://0.0.0.0/", "0.0.0.0/32"),
        ("http://[::ffff:127.0.0.1]/hook", "127.0.0.0/8"),
        ("http://localhost/hook", "127.0.0.0/8, ::1/128"),
    ],
)
def test_allow_list_admits_covered_addresses(url, networks):
    target = resolve_target(url, parse_networks(networks))
    assert target.addresses
    for address in target.addresses:
        assert not ipaddress.ip_address(address).is_global


def test_allow_list_must_cover_every_resolved_address():
    # An allow-list for one address family must not let the other family through.
    with pytest.raises(InvalidInput):
        resolve_target("http://[::1]/", parse_networks("127.0.0.0/8"))
    with pytest.raises(InvalidInput):
        resolve_target("http://10.0.0.1/", parse_networks("127.0.0.0/8"))


def test_public_ip_literal_is_accepted_without_dns():
    target = resolve_target("HTTPS://93.184.216.34/hooks/in?x=1&y=2#frag", [])
    assert target == Target(
        url="HTTPS://93.184.216.34/hooks/in?x=1&y=2#frag",
        scheme="https",
        host="93.184.216.34",
        port=443,
        path_and_query="/hooks/in?x=1&y=2",
        addresses=("93.184.216.34",),
    )
    assert target.host_header == "93.184.216.34"


def test_target_defaults_and_host_header():
    target = resolve_target("http://127.0.0.1:8081", LOOPBACK)
    assert (target.scheme, target.host, target.port) == ("http", "127.0.0.1", 8081)
    assert target.path_and_query == "/"
    assert target.host_header == "127.0.0.1:8081"
    assert resolve_target("http://[::1]:8080/", LOOPBACK).host_header == "[::1]:8080"
    assert resolve_target("http://LocalHost/", LOOPBACK).host == "localhost"


def test_unresolvable_host_is_reported():
    # A 64-character label fails IDNA encoding before any DNS query, so this needs no network.
    host = "a" * 64 + ".example"
    with pytest.raises(InvalidInput) as caught:
        resolve_target(f"http://{host}/hook", [])
    assert caught.value.message == f"url host {host} could not be resolved"


def test_parse_networks():
    assert parse_networks("") == []
    assert parse_networks(" , ,") == []
    assert parse_networks("127.0.0.0/8, ::1 ,,10.1.2.3") == [
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
        ipaddress.ip_network("10.1.2.3/32"),
    ]
    assert parse_networks("10.1.2.3/8") == [ipaddress.ip_network("10.0.0.0/8")]


@pytest.mark.parametrize("bad", ["not-a-network", "10.0.0.0/33", "300.1.1.1", "::1/129"])
def test_parse_networks_names_the_bad_entry(bad):
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        parse_networks(f"127.0.0.0/8, {bad}")
