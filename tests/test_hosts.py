"""Host names and addresses: every spelling of an address reads as one; what is never reached."""

from __future__ import annotations

import pytest

from toolbridge.hosts import HostError, canonical_host, host_port, never_reached

SPELLINGS = [
    # every way resolvers accept to write 127.0.0.1
    ("127.0.0.1", "127.0.0.1"),
    ("2130706433", "127.0.0.1"),
    ("0x7f000001", "127.0.0.1"),
    ("0X7F000001", "127.0.0.1"),
    ("127.1", "127.0.0.1"),
    ("127.0.1", "127.0.0.1"),
    ("0177.0.0.1", "127.0.0.1"),
    ("0x7f.1", "127.0.0.1"),
    ("127.0.0.1.", "127.0.0.1"),
    ("[::ffff:127.0.0.1]", "127.0.0.1"),
    ("::ffff:7f00:1", "127.0.0.1"),
    # the metadata address, as attackers spell it
    ("169.254.169.254", "169.254.169.254"),
    ("2852039166", "169.254.169.254"),
    ("0xa9fea9fe", "169.254.169.254"),
    ("0251.0376.0251.0376", "169.254.169.254"),
    ("169.254.43518", "169.254.169.254"),
    ("[::ffff:a9fe:a9fe]", "169.254.169.254"),
    # IPv6 in one form
    ("[::1]", "::1"),
    ("[0:0:0:0:0:0:0:1]", "::1"),
    ("[FD00:EC2::254]", "fd00:ec2::254"),
    # names: lower case, IDNA, no trailing dot
    ("API.Example.COM", "api.example.com"),
    ("api.example.com.", "api.example.com"),
    ("bücher.example", "xn--bcher-kva.example"),
    ("Metadata.Google.Internal.", "metadata.google.internal"),
    ("localhost", "localhost"),
    ("under_score.example", "under_score.example"),
]


@pytest.mark.parametrize(("host", "canonical"), SPELLINGS)
def test_every_spelling_reads_as_one_host(host: str, canonical: str) -> None:
    assert canonical_host(host) == canonical


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("", "an empty host"),
        ("1.2.3.999", "'1.2.3.999' is not an IPv4 address (a part is out of range)"),
        ("256.1", "'256.1' is not an IPv4 address (a part is out of range)"),
        ("4294967296", "'4294967296' is not an IPv4 address (a part is out of range)"),
        ("1.2.3.4.5", "'1.2.3.4.5' is not an IPv4 address (more than four parts)"),
        ("09.1.1.1", "'09.1.1.1' is not an IPv4 address ('09' is not a number)"),
        ("example.1", "'example.1' is not an IPv4 address ('example' is not a number)"),
        ("evil.com%2f", "'evil.com%2f' is not a valid host name"),
        ("a b", "'a b' is not a valid host name"),
        ("[127.0.0.1]", "'[127.0.0.1]': only IPv6 addresses are written in brackets"),
        ("[::1", "'[::1' is not an IPv6 address"),
        ("..", "'..' is not a host name"),
    ],
)
def test_what_no_resolver_reads_as_one_host_is_refused(host: str, message: str) -> None:
    with pytest.raises(HostError) as caught:
        canonical_host(host)
    assert str(caught.value) == message


LINK_LOCAL = "a link-local address (cloud metadata services live there)"


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("169.254.169.254", LINK_LOCAL),
        ("169.254.0.1", LINK_LOCAL),
        ("169.254.170.2", LINK_LOCAL),  # ECS task metadata
        ("fe80::1", LINK_LOCAL),
        ("fe80::1%eth0", LINK_LOCAL),
        ("fd00:ec2::254", "the AWS instance metadata service's address"),
        ("100.100.100.200", "the Alibaba Cloud metadata service's address"),
        ("192.0.0.192", "the Oracle Cloud metadata service's address"),
        ("64:ff9b::a9fe:a9fe", LINK_LOCAL),  # NAT64 of 169.254.169.254
        ("2002:a9fe:a9fe::1", LINK_LOCAL),  # 6to4 of 169.254.169.254
        ("metadata.google.internal", "a cloud metadata service's host name"),
        ("metadata", "a cloud metadata service's host name"),
        ("instance-data", "a cloud metadata service's host name"),
        ("127.0.0.1", None),
        ("10.0.0.1", None),
        ("::1", None),
        ("api.example.com", None),
        ("100.100.100.201", None),
    ],
)
def test_never_reached(host: str, reason: str | None) -> None:
    assert never_reached(canonical_host(host)) == reason


@pytest.mark.parametrize(
    ("entry", "parsed"),
    [
        ("api.example.com", ("api.example.com", None)),
        ("API.example.com:8443", ("api.example.com", 8443)),
        ("127.0.0.2:9000", ("127.0.0.2", 9000)),
        ("2130706434:80", ("127.0.0.2", 80)),
        ("[::1]:8080", ("::1", 8080)),
        ("::1", ("::1", None)),
        ("[::1]", ("::1", None)),
    ],
)
def test_allowed_hosts_entries(entry: str, parsed: tuple[str, int | None]) -> None:
    assert host_port(entry) == parsed


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "https://api.example.com",
            "'https://api.example.com' is not host[:port] (a name or address, an optional "
            "port; no scheme, path or wildcard)",
        ),
        (
            "*.example.com",
            "'*.example.com' is not host[:port] (a name or address, an optional port; no "
            "scheme, path or wildcard)",
        ),
        ("api.example.com:0", "'api.example.com:0': port 0 is out of range (1 to 65535)"),
        (
            "api.example.com:70000",
            "'api.example.com:70000': port 70000 is out of range (1 to 65535)",
        ),
        (
            "api.example.com:http",
            "'api.example.com:http' is not host[:port] (a name or address, an optional port; "
            "no scheme, path or wildcard)",
        ),
    ],
)
def test_allowed_hosts_entries_refused(entry: str, message: str) -> None:
    with pytest.raises(HostError) as caught:
        host_port(entry)
    assert str(caught.value) == message
