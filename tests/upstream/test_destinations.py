"""A server's destination policy, as a table: which URLs its requests may go to, and why not."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolbridge.config import Server
from toolbridge.errors import DestinationRefused, UpstreamBusy
from toolbridge.upstream.destinations import Destinations
from toolbridge.upstream.routes import Capacity, RoutedUpstream, destinations_of, route
from toolbridge.upstream.seam import MockUpstream, Timeouts, UpstreamRequest, UpstreamResponse

API = "https://api.example.com:443"
SAYS = "add the host to the server's allowed_hosts to reach it"
POLICY = Destinations.of(
    "api",
    ["https://api.example.com/v1", "https://docs.example.com/openapi.yaml"],
    ["partner.example.net", "127.0.0.2:9000", "[::1]:8080"],
)
LISTED = (
    "https://api.example.com:443, https://docs.example.com:443; allowed_hosts: 127.0.0.2:9000, "
    f"[::1]:8080, partner.example.net; {SAYS}"
)
LINK_LOCAL = "a link-local address (cloud metadata services live there); requests never go there"


@pytest.mark.parametrize(
    ("url", "refusal"),
    [
        # the configured origins, in any spelling of them
        ("https://api.example.com/v1/items", None),
        ("https://API.Example.com./v1/items", None),
        ("https://api.example.com:443/other", None),
        ("https://user:pass@api.example.com/v1", None),
        ("https://docs.example.com/schemas/pet.yaml", None),
        # another scheme or port is another origin
        (
            "http://api.example.com/v1/items",
            f"http://api.example.com:80 is not among this server's destinations ({LISTED})",
        ),
        (
            "https://api.example.com:8443/v1",
            f"https://api.example.com:8443 is not among this server's destinations ({LISTED})",
        ),
        # allowed_hosts: without a port, 80 and 443
        ("https://partner.example.net/x", None),
        ("http://partner.example.net/x", None),
        (
            "https://partner.example.net:8443/x",
            f"https://partner.example.net:8443 is not among this server's destinations ({LISTED})",
        ),
        (
            "https://sub.partner.example.net/x",
            f"https://sub.partner.example.net:443 is not among "
            f"this server's destinations ({LISTED})",
        ),
        # with a port, that port; addresses in any spelling
        ("http://127.0.0.2:9000/x", None),
        ("http://2130706434:9000/x", None),
        ("http://0x7f000002:9000/x", None),
        ("http://127.2:9000/x", None),
        ("http://[::ffff:127.0.0.2]:9000/x", None),
        (
            "http://127.0.0.2:9001/x",
            f"http://127.0.0.2:9001 is not among this server's destinations ({LISTED})",
        ),
        ("http://[::1]:8080/x", None),
        ("http://[0:0:0:0:0:0:0:1]:8080/x", None),
        # loopback is just another host when nobody configured it
        (
            "http://127.0.0.1:9000/x",
            f"http://127.0.0.1:9000 is not among this server's destinations ({LISTED})",
        ),
        (
            "http://2130706433:9000/x",
            f"http://127.0.0.1:9000 is not among this server's destinations ({LISTED})",
        ),
        (
            "http://0177.0.0.1:9000/x",
            f"http://127.0.0.1:9000 is not among this server's destinations ({LISTED})",
        ),
        (
            "http://localhost:9000/x",
            f"http://localhost:9000 is not among this server's destinations ({LISTED})",
        ),
        # never reached, whatever the spelling
        ("http://169.254.169.254/latest/meta-data/", f"http://169.254.169.254:80 is {LINK_LOCAL}"),
        ("http://2852039166/latest/", f"http://169.254.169.254:80 is {LINK_LOCAL}"),
        ("http://0xa9fea9fe/latest/", f"http://169.254.169.254:80 is {LINK_LOCAL}"),
        ("http://[::ffff:169.254.169.254]/", f"http://169.254.169.254:80 is {LINK_LOCAL}"),
        ("http://[fe80::1]/", f"http://[fe80::1]:80 is {LINK_LOCAL}"),
        (
            "http://[fd00:ec2::254]/",
            "http://[fd00:ec2::254]:80 is the AWS instance metadata service's address; "
            "requests never go there",
        ),
        (
            "http://100.100.100.200/",
            "http://100.100.100.200:80 is the Alibaba Cloud metadata service's address; "
            "requests never go there",
        ),
        (
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://metadata.google.internal:80 is a cloud metadata service's host name; "
            "requests never go there",
        ),
        # no host a connection can be made to
        (
            "http://1.2.3.999/",
            "http://1.2.3.999 is no destination a request can go to: "
            "'1.2.3.999' is not an IPv4 address (a part is out of range)",
        ),
        (
            "ftp://api.example.com/x",
            "ftp://api.example.com is no destination a request can go "
            "to: ftp scheme (expected http or https)",
        ),
        ("https://evil.com%2f@api.example.com/", None),  # userinfo never decides the host
        (
            "http://api.example.com:99999/",
            "http://api.example.com:99999 is no destination a "
            "request can go to: the port of 'api.example.com:99999' is not a number",
        ),
    ],
)
def test_where_requests_may_go(url: str, refusal: str | None) -> None:
    assert POLICY.refusal(url) == refusal


def test_never_reached_even_when_configured() -> None:
    """An operator's own base_url or allowed_hosts cannot open the metadata service."""
    policy = Destinations.of("api", ["http://169.254.169.254/"], ["169.254.169.254", "metadata"])
    assert [policy.refusal(u) for u in ("http://169.254.169.254/", "http://metadata/")] == [
        f"http://169.254.169.254:80 is {LINK_LOCAL}",
        "http://metadata:80 is a cloud metadata service's host name; requests never go there",
    ]


def server(**fields: object) -> Server:
    return Server.model_validate({"id": "api", **fields})


@pytest.mark.parametrize(
    ("fields", "document_servers", "origins"),
    [
        # base_url wins; the document's own URL is configured too
        (
            {
                "spec": "https://docs.example.com/openapi.json",
                "base_url": "https://api.example.com/v1",
            },
            ["https://evil.example/"],
            {("https", "api.example.com", 443), ("https", "docs.example.com", 443)},
        ),
        # a document read by URL, without base_url: only its own origin
        (
            {"spec": "https://docs.example.com/openapi.json"},
            ["https://evil.example/"],
            {("https", "docs.example.com", 443)},
        ),
        # a file the operator chose: the servers it names are theirs
        (
            {"spec": "specs/demo.yaml"},
            ["http://127.0.0.1:8901/"],
            {("http", "127.0.0.1", 8901)},
        ),
        (
            {"spec": "specs/demo.yaml", "base_url": "http://10.0.0.5:80"},
            ["http://127.0.0.1:8901/"],
            {("http", "10.0.0.5", 80)},
        ),
    ],
)
def test_a_servers_configured_origins(
    fields: dict[str, object], document_servers: list[str], origins: set[tuple[str, str, int]]
) -> None:
    assert destinations_of(server(**fields), document_servers).origins == origins


ANSWER = UpstreamResponse(status=200, body=b"ok")


def request(url: str) -> UpstreamRequest:
    return UpstreamRequest(server="api", method="GET", url=url)


@pytest.mark.anyio
async def test_routed_upstream_checks_every_request_before_it_is_sent() -> None:
    mock = MockUpstream(lambda r: ANSWER)
    routed = RoutedUpstream(mock, POLICY, None)
    sent = await routed.send(
        request("https://api.example.com/v1/a"), timeouts=Timeouts(), max_bytes=9
    )
    with pytest.raises(DestinationRefused) as caught:
        await routed.send(request("http://2852039166/x"), timeouts=Timeouts(), max_bytes=9)
    assert (sent, [r.url for r in mock.requests]) == (ANSWER, ["https://api.example.com/v1/a"])
    assert (
        str(caught.value) == f"upstream 'api': refused: http://169.254.169.254:80 is {LINK_LOCAL}"
    )


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_concurrency_cap_refuses_one_more_and_frees_its_slot() -> None:
    import asyncio

    release = asyncio.Event()

    async def slow(r: UpstreamRequest) -> UpstreamResponse:
        await release.wait()
        return ANSWER

    routed = RoutedUpstream(MockUpstream(slow), POLICY, Capacity("api", 2))
    url = "https://api.example.com/v1/a"
    first = asyncio.ensure_future(routed.send(request(url), timeouts=Timeouts(), max_bytes=9))
    second = asyncio.ensure_future(routed.send(request(url), timeouts=Timeouts(), max_bytes=9))
    await asyncio.sleep(0)
    with pytest.raises(UpstreamBusy) as caught:
        await routed.send(request(url), timeouts=Timeouts(), max_bytes=9)
    release.set()
    assert [await first, await second] == [ANSWER, ANSWER]
    assert await routed.send(request(url), timeouts=Timeouts(), max_bytes=9) == ANSWER
    assert (str(caught.value), caught.value.retry_after) == (
        "upstream 'api': busy: 2 requests to this server are already in flight (its "
        "max_concurrency); try again in 1 s",
        1.0,
    )


def test_a_reload_keeps_the_count_of_requests_in_flight(tmp_path: Path) -> None:
    mock = MockUpstream(lambda r: ANSWER)
    first = route(server(spec="a.yaml", max_concurrency=3), mock)
    assert first.upstream.capacity is not None
    first.upstream.capacity.in_flight = 2
    same = route(server(spec="a.yaml", max_concurrency=3), mock, previous=first)
    other = route(server(spec="a.yaml", max_concurrency=4), mock, previous=first)
    assert same.upstream.capacity is first.upstream.capacity
    assert other.upstream.capacity is not None
    assert other.upstream.capacity.in_flight == 0
