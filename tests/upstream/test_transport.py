"""A server's transport: which proxy each request goes through, and which client serves it."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolbridge.config import Server
from toolbridge.config_file import proxy_environment
from toolbridge.upstream.http11 import Http11Upstream
from toolbridge.upstream.seam import MockUpstream, UpstreamResponse
from toolbridge.upstream.transport import (
    Clients,
    ProxiedUpstream,
    Transport,
    proxy_for,
    server_transport,
)

P = "http://proxy.internal:3128"
S = "http://secure-proxy.internal:3129"


def env(**variables: str) -> Transport:
    return Transport(environment=tuple(sorted(variables.items())))


@pytest.mark.parametrize(
    ("transport", "url", "proxy"),
    [
        # by scheme, with all_proxy as the fallback
        (env(http_proxy=P), "http://api.example.com/x", P),
        (env(http_proxy=P), "https://api.example.com/x", None),
        (env(https_proxy=S), "https://api.example.com/x", S),
        (env(https_proxy=S, all_proxy=P), "http://api.example.com/x", P),
        (env(all_proxy=P), "https://api.example.com/x", P),
        # no_proxy: names and their subdomains, .domains, *, ports, addresses, CIDR ranges
        (env(all_proxy=P, no_proxy="example.com"), "https://api.example.com/x", None),
        (env(all_proxy=P, no_proxy="example.com"), "https://example.com/x", None),
        (env(all_proxy=P, no_proxy="example.com"), "https://badexample.com/x", P),
        (env(all_proxy=P, no_proxy=".example.com"), "https://api.example.com/x", None),
        (env(all_proxy=P, no_proxy="*.example.com"), "https://api.example.com/x", None),
        (env(all_proxy=P, no_proxy="*"), "https://anything.example/x", None),
        (env(all_proxy=P, no_proxy="a.test, example.com"), "https://api.example.com/x", None),
        (env(all_proxy=P, no_proxy="API.Example.COM"), "https://api.example.com/x", None),
        (env(all_proxy=P, no_proxy="example.com:8443"), "https://api.example.com:8443/x", None),
        (env(all_proxy=P, no_proxy="example.com:8443"), "https://api.example.com/x", P),
        (env(all_proxy=P, no_proxy="10.0.0.0/8"), "http://10.1.2.3/x", None),
        (env(all_proxy=P, no_proxy="10.0.0.0/8"), "http://0x0a010203/x", None),
        (env(all_proxy=P, no_proxy="10.0.0.0/8"), "http://11.1.2.3/x", P),
        (env(all_proxy=P, no_proxy="[2001:db8::1]"), "http://[2001:db8::1]/x", None),
        (env(all_proxy=P, no_proxy="2001:db8::/32"), "http://[2001:db8::5]/x", None),
        # loopback never goes through the environment's proxy, in any spelling
        (env(all_proxy=P), "http://127.0.0.1:9000/x", None),
        (env(all_proxy=P), "http://2130706433:9000/x", None),
        (env(all_proxy=P), "http://[::1]:9000/x", None),
        (env(all_proxy=P), "http://localhost:9000/x", None),
        (env(all_proxy=P), "http://api.localhost/x", None),
        # a server's own proxy carries everything
        (Transport(proxy=S), "http://127.0.0.1:9000/x", S),
        (Transport(proxy=S), "https://api.example.com/x", S),
        # nothing configured
        (Transport(), "https://api.example.com/x", None),
    ],
)
def test_which_proxy_a_request_goes_through(
    transport: Transport, url: str, proxy: str | None
) -> None:
    assert proxy_for(url, transport) == proxy


def test_proxy_variables_are_read_lower_case_first() -> None:
    environ = {
        "HTTPS_PROXY": "http://upper:1",
        "https_proxy": "http://lower:1",
        "HTTP_PROXY": "http://upper:2",
        "NO_PROXY": "internal",
        "ALL_PROXY": "",
        "PATH": "/usr/bin",
    }
    assert proxy_environment(environ) == {
        "https_proxy": "http://lower:1",
        "http_proxy": "http://upper:2",
        "no_proxy": "internal",
    }


def server(**fields: object) -> Server:
    return Server.model_validate({"id": "api", "spec": "a.yaml", **fields})


@pytest.mark.parametrize(
    ("fields", "environment", "transport"),
    [
        ({}, {}, Transport()),
        ({}, {"no_proxy": "internal"}, Transport()),  # nothing to bypass: the plain client
        ({}, {"https_proxy": S, "no_proxy": "x"}, env(https_proxy=S, no_proxy="x")),
        ({"proxy": P}, {"https_proxy": S}, Transport(proxy=P)),
        (
            {"ca_file": "ca.pem", "client_cert": "c.pem", "client_key": "k.pem"},
            {},
            Transport(
                ca_file=Path("/etc/tb/ca.pem"),
                client_cert=Path("/etc/tb/c.pem"),
                client_key=Path("/etc/tb/k.pem"),
            ),
        ),
    ],
)
def test_a_servers_transport(
    fields: dict[str, object], environment: dict[str, str], transport: Transport
) -> None:
    assert server_transport(server(**fields), Path("/etc/tb"), environment) == transport


@pytest.mark.anyio
async def test_clients_are_shared_by_transport_and_renewed_with_their_files(
    tmp_path: Path,
) -> None:
    from tests.tls import TestAuthority

    default = MockUpstream(lambda r: UpstreamResponse(status=200))
    clients = Clients(default)
    authority = TestAuthority(tmp_path)
    with_ca = Transport(ca_file=authority.ca_file)
    first = clients.client(with_ca, "a")
    again = clients.client(with_ca, "b")
    proxied = clients.client(env(https_proxy=S), "c")
    authority.ca_file.write_bytes(TestAuthority(tmp_path, "renewed CA").ca_file.read_bytes())
    renewed = clients.client(with_ca, "a")
    try:
        assert clients.client(Transport(), "d") is default
        assert (again is first, renewed is first) == (True, False)
        assert (type(first), type(proxied)) == (Http11Upstream, ProxiedUpstream)
    finally:
        await clients.aclose()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
