"""Host names and addresses as a connection sees them: one canonical spelling, and the addresses
no request may ever reach.

`canonical_host` reads a host the way resolvers and browsers do (WHATWG URL host parsing), so
that every spelling of an address compares equal before any check: `2130706433`, `0x7f000001`,
`127.1` and `0177.0.0.1` are all `127.0.0.1`, `[::ffff:127.0.0.1]` is too, names are lower-case
ASCII (IDNA) without a trailing dot. `never_reached` says why a host or address is refused
whatever the config says: link-local addresses and the cloud metadata services'. Pure: no
resolution here (`upstream.resolver` resolves, then asks `never_reached` about each address).
"""

from __future__ import annotations

import functools
import ipaddress
import re

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

NEVER_NETWORKS: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = (
    (
        ipaddress.ip_network("169.254.0.0/16"),
        "a link-local address (cloud metadata services live there)",
    ),
    (
        ipaddress.ip_network("fe80::/10"),
        "a link-local address (cloud metadata services live there)",
    ),
    (ipaddress.ip_network("fd00:ec2::254/128"), "the AWS instance metadata service's address"),
    (ipaddress.ip_network("100.100.100.200/32"), "the Alibaba Cloud metadata service's address"),
    (ipaddress.ip_network("192.0.0.192/32"), "the Oracle Cloud metadata service's address"),
)
"""Addresses never reached, with the reason an error states."""
NEVER_NAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.tencentyun.com",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
"""Host names of cloud metadata services, refused before they are resolved."""
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAME = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*$")
_HOST_PORT = re.compile(r"^(?P<host>\[[^\]]*\]|[^:\[\]]*)(?::(?P<port>[0-9]{1,5}))?$")


class HostError(ValueError):
    """Not a usable host; the message says what is wrong with it."""


@functools.lru_cache(maxsize=4096)
def canonical_host(host: str) -> str:
    """The one spelling of a host: an IP address in its standard form (IPv6 without brackets,
    an IPv4-mapped IPv6 address as IPv4), or a lower-case ASCII name without a trailing dot.

    Raises HostError for what no resolver would read as one host (empty, spaces, `%`, a name
    that ends in a number but is no IPv4 address, ...).
    """
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not text:
        raise HostError("an empty host")
    if ":" in text:
        try:
            address = ipaddress.IPv6Address(text)
        except ValueError:
            raise HostError(f"{host!r} is not an IPv6 address") from None
        return str(address.ipv4_mapped or address)
    if host != text:
        raise HostError(f"{host!r}: only IPv6 addresses are written in brackets")
    name = text[:-1] if text.endswith(".") else text
    if not name or name.endswith("."):
        raise HostError(f"{host!r} is not a host name")
    ipv4 = _ipv4(name, host)
    if ipv4 is not None:
        return str(ipv4)
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            raise HostError(f"{host!r} is not a valid internationalised host name") from None
    name = name.lower()
    if len(name) > 253 or not _NAME.match(name):
        raise HostError(f"{host!r} is not a valid host name")
    return name


def _ipv4(name: str, host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address a name spells (any form a resolver accepts), or None for a name.

    As in the WHATWG URL standard: a host whose last label is a number is an IPv4 address or
    nothing, so `1.2.3.999` and `example.0x1g` are refused rather than resolved as names.
    """
    parts = name.split(".")
    if not _number_like(parts[-1]):
        return None
    if len(parts) > 4:
        raise HostError(f"{host!r} is not an IPv4 address (more than four parts)")
    numbers = [_number(part, host) for part in parts]
    if any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        raise HostError(f"{host!r} is not an IPv4 address (a part is out of range)")
    value = numbers[-1]
    for index, n in enumerate(numbers[:-1]):
        value += n << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _number_like(label: str) -> bool:
    if label.isascii() and label.isdigit():
        return True
    return label[:2].lower() == "0x" and all(c in "0123456789abcdefABCDEF" for c in label[2:])


def _number(part: str, host: str) -> int:
    """One part of an IPv4 address: decimal, octal with a leading 0, or hex with 0x."""
    try:
        if part[:2].lower() == "0x":
            return int(part[2:] or "0", 16)
        if len(part) > 1 and part.startswith("0"):
            return int(part[1:], 8)
        if part.isascii() and part.isdigit():
            return int(part, 10)
    except ValueError:
        pass
    raise HostError(f"{host!r} is not an IPv4 address ({part!r} is not a number)")


def address_of(host: str) -> IPAddress | None:
    """The address a canonical host is, or None when it is a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def never_reached(host: str) -> str | None:
    """Why a canonical host (name or address) is never reached, or None when it may be."""
    if host in NEVER_NAMES:
        return "a cloud metadata service's host name"
    address = address_of(host)
    return None if address is None else never_reached_address(address)


def never_reached_address(address: IPAddress) -> str | None:
    """Why an address is never connected to, or None; IPv6 forms of IPv4 addresses count as
    the IPv4 address they carry (mapped, NAT64, 6to4)."""
    if isinstance(address, ipaddress.IPv6Address):
        carried = address.ipv4_mapped or address.sixtofour
        if carried is None and address in _NAT64:
            carried = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if carried is not None:
            return never_reached_address(carried)
    for network, reason in NEVER_NETWORKS:
        if address.version == network.version and address in network:
            return reason
    return None


def host_port(entry: str) -> tuple[str, int | None]:
    """`host[:port]` (an `allowed_hosts` entry) as (canonical host, port or None).

    IPv6 addresses are written in brackets when a port follows (`[::1]:8080`); a bare IPv6
    address is read whole. Raises HostError naming what is wrong.
    """
    text = entry.strip()
    if ":" in text and not text.startswith("["):
        try:
            return str(ipaddress.IPv6Address(text)), None
        except ValueError:
            pass
    match = _HOST_PORT.match(text)
    if match is None or "/" in text or "@" in text or "*" in text:
        raise HostError(
            f"{entry!r} is not host[:port] (a name or address, an optional port; no scheme, "
            "path or wildcard)"
        )
    host = canonical_host(match.group("host"))
    port_text = match.group("port")
    if port_text is None:
        return host, None
    port = int(port_text)
    if not 0 < port < 65536:
        raise HostError(f"{entry!r}: port {port} is out of range (1 to 65535)")
    return host, port


def display_host(host: str) -> str:
    """A canonical host as a URL writes it (IPv6 in brackets)."""
    return f"[{host}]" if ":" in host else host
