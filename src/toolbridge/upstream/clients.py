"""The real `Upstream`s by name: our own HTTP/1.1 client (http11.py, the default), the network
seam over aiohttp's client (what a server whose requests go through a proxy uses, see
`transport`), and over httpx2, kept only to measure ours against.

All pool keep-alive connections per origin, never follow redirects, keep no cookies, ignore
proxy variables unless asked, ask for and decode the content codings `encodings` knows (gzip,
deflate, br, zstd: the same code in all three, so none depends on which optional decoders the
HTTP library finds installed), read at most `max_bytes` of a decoded body, and
turn every failure to reach the upstream into `UpstreamUnavailable`, whose message names only
`scheme://host:port` (query strings may carry secrets). That error is raised `from None`: the
client's own exceptions carry the whole URL, and aiohttp's the request headers too. None
builds requests: they send the bytes `UpstreamRequest` holds. `bench/proxy.py` measured ours
at 1.24 to 1.35 times aiohttp's requests per second (half its CPU time a call) and aiohttp at
3 to 7 times httpx2's.
proxy variables (a proxy is given explicitly, per request), decode gzip and deflate, read at
most `max_bytes` of a body, cap the answer's headers, and turn every failure to reach the
upstream into `UpstreamUnavailable`, whose message names only `scheme://host:port` (query
strings may carry secrets). That error is raised `from None`: the client's own exceptions carry
the whole URL, and aiohttp's the request headers too. Ours and aiohttp's connect only to
addresses `resolver` checked (aiohttp through `GuardedResolver`); httpx2's does not, which is
one reason it carries no traffic. None builds requests: they send the bytes `UpstreamRequest`
holds. `bench/proxy.py` measured ours at 1.24 to 1.35 times aiohttp's requests per second (half
its CPU time a call) and aiohttp at 3 to 7 times httpx2's.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import TYPE_CHECKING, Literal

import httpx2

from toolbridge import __version__
from toolbridge.hosts import address_of
from toolbridge.upstream.encodings import ACCEPT_ENCODING, CappedBody, EncodingError
from toolbridge.upstream.http11 import Http11Upstream
from toolbridge.upstream.resolver import RefusedAddress, checked_host
from toolbridge.upstream.seam import (
    MAX_RESPONSE_HEAD_BYTES,
    MAX_RESPONSE_HEADERS,
    Headers,
    Timeouts,
    Upstream,
    UpstreamRequest,
    UpstreamResponse,
    bad_answer,
    reason_of,
    timed_out,
    unreachable,
)

if TYPE_CHECKING:
    import aiohttp

UpstreamKind = Literal["http11", "aiohttp", "httpx"]

MAX_CONNECTIONS_PER_HOST = 100
"""Open connections to one origin at most; further requests wait for one (within `total`)."""
MAX_CONNECTIONS = 1000
"""Open connections to all origins together at most."""
KEEPALIVE_EXPIRY = 4.0
"""Seconds an idle connection stays in the pool: under uvicorn's and Node's default of 5 s,
so we close an idle connection before the server does and rarely reuse a dying one."""
USER_AGENT = f"toolbridge/{__version__}"


@dataclass(frozen=True, slots=True)
class Pool:
    """How an upstream client pools connections, and what it trusts."""

    max_connections_per_host: int = MAX_CONNECTIONS_PER_HOST
    max_connections: int = MAX_CONNECTIONS
    keepalive_expiry: float = KEEPALIVE_EXPIRY
    trust_env: bool = False
    """Read proxy settings from the environment (off: loopback must never go via a proxy)."""
    verify: ssl.SSLContext | bool = True


DEFAULT_POOL = Pool()

ProxyChoice = Callable[[str], str | None]
"""The proxy URL a request to this URL goes through, or None to connect directly."""


class AiohttpUpstream:
    """Sends with one `aiohttp.ClientSession`, opened on the first request inside the loop.

    `proxy` picks, per request URL, the proxy it goes through (None: directly). Use it from one
    event loop; `aclose()` closes the pool (a later send opens a new one). aiohttp is imported
    when one is opened: it costs a third of a second at start, and the gateway's own client
    is the default.
    """

    def __init__(self, pool: Pool = DEFAULT_POOL, *, proxy: ProxyChoice | None = None) -> None:
        self.pool = pool
        self.proxy = proxy
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[Timeouts, aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        import aiohttp

        from toolbridge.upstream.guarded_resolver import GuardedResolver

        connector = aiohttp.TCPConnector(
            limit=self.pool.max_connections,
            limit_per_host=self.pool.max_connections_per_host,
            keepalive_timeout=self.pool.keepalive_expiry,
            ssl=self.pool.verify,
            resolver=GuardedResolver(),
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=self.pool.trust_env,
            auto_decompress=False,  # decoded by `encodings`, as the other clients do
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": ACCEPT_ENCODING},
            # A body goes out with the Content-Type the request says, or none: never a guess.
            skip_auto_headers=("Content-Type",),
            max_headers=MAX_RESPONSE_HEADERS,
        )
        return self._session

    def _timeout(self, timeouts: Timeouts) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get(timeouts)
        if timeout is None:
            import aiohttp

            timeout = aiohttp.ClientTimeout(total=timeouts.total, sock_connect=timeouts.connect)
            self._timeouts[timeouts] = timeout
        return timeout

    async def send(
        self, request: UpstreamRequest, *, timeouts: Timeouts, max_bytes: int
    ) -> UpstreamResponse:
        import aiohttp
        from yarl import URL

        session = self._session or self._open()
        # encoded=True: the bytes go out as built; yarl must not requote or drop `..`.
        url = URL(request.url, encoded=True)
        proxy = self.proxy(request.url) if self.proxy is not None else None
        try:
            # Through a proxy the target is resolved there: its name and any address it spells
            # are checked here (directly, GuardedResolver checks what the name resolves to).
            # An address in another spelling (`127.1`) is sent in its own, which aiohttp reads.
            host = checked_host(url.raw_host or "")
            if host != url.raw_host and address_of(host) is not None:
                url = url.with_host(host)
            async with session.request(
                request.method,
                url,
                headers=request.headers,
                data=request.body,
                allow_redirects=False,
                timeout=self._timeout(timeouts),
                proxy=proxy,
            ) as response:
                head = sum(len(k) + len(v) + 4 for k, v in response.raw_headers)
                if head > MAX_RESPONSE_HEAD_BYTES:
                    response.close()
                    limit = MAX_RESPONSE_HEAD_BYTES
                    raise bad_answer(request, f"the answer's headers are longer than {limit} bytes")
                body, truncated = await _read_aiohttp(response, max_bytes)
                return UpstreamResponse(
                    status=response.status,
                    headers=_headers(response.raw_headers),
                    body=body,
                    truncated=truncated,
                )
        except EncodingError as exc:
            raise bad_answer(request, str(exc)) from None
        except aiohttp.ConnectionTimeoutError:
            raise timed_out(request, min(timeouts.connect, timeouts.total), True) from None
        except TimeoutError:
            raise timed_out(request, timeouts.total, False) from None
        except aiohttp.ClientProxyConnectionError as exc:
            raise unreachable(request, exc, proxy=str(proxy)) from None
        except (aiohttp.ClientConnectorError, RefusedAddress) as exc:
            raise unreachable(request, exc) from None
        except aiohttp.ClientResponseError as exc:
            # Its str() carries the full URL; the message alone says what was wrong.
            raise bad_answer(request, exc.message or type(exc).__name__) from None
        except aiohttp.ClientError as exc:
            raise bad_answer(request, reason_of(exc)) from None

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


async def _read_aiohttp(response: aiohttp.ClientResponse, max_bytes: int) -> tuple[bytes, bool]:
    """Up to `max_bytes` of the decoded body, and whether there was more.

    A body read to its end leaves the connection to the pool; a cut one closes it.
    """
    codings = ", ".join(response.headers.getall("Content-Encoding", ()))
    body = CappedBody(codings, max_bytes)
    while chunk := await response.content.readany():
        if not body.add(chunk):
            response.close()
            break
    return body.end()


class HttpxUpstream:
    """Sends with one `httpx2.AsyncClient`, opened on the first request.

    httpx2 has no per-origin connection limit: `max_connections` bounds all connections and
    `max_connections_per_host` the idle ones kept. The total timeout is an `asyncio.timeout`
    around the exchange, since httpx2's own timeouts are per operation.
    """

    def __init__(self, pool: Pool = DEFAULT_POOL) -> None:
        self.pool = pool
        self._client: httpx2.AsyncClient | None = None
        self._timeouts: dict[Timeouts, httpx2.Timeout] = {}

    def _open(self) -> httpx2.AsyncClient:
        self._client = httpx2.AsyncClient(
            http1=True,
            http2=False,
            follow_redirects=False,
            trust_env=self.pool.trust_env,
            verify=self.pool.verify,
            limits=httpx2.Limits(
                max_connections=self.pool.max_connections,
                max_keepalive_connections=self.pool.max_connections_per_host,
                keepalive_expiry=self.pool.keepalive_expiry,
            ),
            # A jar whose policy accepts no domain: no cookie is ever stored or sent back.
            cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])),
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": ACCEPT_ENCODING},
        )
        return self._client

    def _timeout(self, timeouts: Timeouts) -> httpx2.Timeout:
        timeout = self._timeouts.get(timeouts)
        if timeout is None:
            timeout = httpx2.Timeout(timeouts.total, connect=timeouts.connect)
            self._timeouts[timeouts] = timeout
        return timeout

    async def send(
        self, request: UpstreamRequest, *, timeouts: Timeouts, max_bytes: int
    ) -> UpstreamResponse:
        client = self._client or self._open()
        try:
            async with (
                asyncio.timeout(timeouts.total),
                client.stream(
                    request.method,
                    request.url,
                    headers=_httpx_headers(request),
                    content=request.body,
                    timeout=self._timeout(timeouts),
                ) as response,
            ):
                body, truncated = await _read_httpx(response, max_bytes)
                return UpstreamResponse(
                    status=response.status_code,
                    headers=_headers(response.headers.raw),
                    body=body,
                    truncated=truncated,
                )
        except EncodingError as exc:
            raise bad_answer(request, str(exc)) from None
        except httpx2.ConnectTimeout:
            raise timed_out(request, min(timeouts.connect, timeouts.total), True) from None
        except (httpx2.TimeoutException, TimeoutError):
            raise timed_out(request, timeouts.total, False) from None
        except httpx2.ConnectError as exc:
            raise unreachable(request, exc) from None
        except httpx2.RequestError as exc:
            raise bad_answer(request, reason_of(exc)) from None

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


def _httpx_headers(request: UpstreamRequest) -> list[tuple[str, str]]:
    """The request's headers; and `Content-Length: 0` for an empty body (not None), which
    httpx2 leaves out but our client and aiohttp send (except on GET and HEAD)."""
    headers = list(request.headers)
    if request.body == b"" and request.method.upper() not in ("GET", "HEAD"):
        headers.append(("Content-Length", "0"))
    return headers


async def _read_httpx(response: httpx2.Response, max_bytes: int) -> tuple[bytes, bool]:
    """Up to `max_bytes` of the decoded body, and whether there was more.

    Leaving `client.stream()` returns a connection read to its end to the pool and closes one
    that was cut.
    """
    body = CappedBody(response.headers.get("Content-Encoding"), max_bytes)
    async for chunk in response.aiter_raw():  # decoded by `encodings`, as the other clients do
        if not body.add(chunk):
            break
    return body.end()


def make_upstream(
    kind: UpstreamKind = "http11",
    *,
    max_connections_per_host: int = MAX_CONNECTIONS_PER_HOST,
    keepalive_expiry: float = KEEPALIVE_EXPIRY,
    trust_env: bool = False,
) -> Upstream:
    """The upstream the gateway sends tool calls through; `kind` picks the HTTP client."""
    pool = Pool(
        max_connections_per_host=max_connections_per_host,
        keepalive_expiry=keepalive_expiry,
        trust_env=trust_env,
    )
    match kind:
        case "http11":
            return Http11Upstream(
                max_connections_per_host=max_connections_per_host,
                max_connections=MAX_CONNECTIONS,
                keepalive_expiry=keepalive_expiry,
                user_agent=USER_AGENT,
            )
        case "aiohttp":
            return AiohttpUpstream(pool)
        case "httpx":
            return HttpxUpstream(pool)


def _headers(raw: Iterable[tuple[bytes, bytes]]) -> Headers:
    """Response headers as sent (names in their case, duplicates kept), decoded to text.

    UTF-8 when every header is UTF-8, else ISO-8859-1: never lone surrogates, which JSON
    encoders reject. Content-Encoding and Content-Length describe the wire, not the decoded body.
    """
    pairs = tuple(raw)
    try:
        return tuple((k.decode("ascii"), v.decode("utf-8")) for k, v in pairs)
    except UnicodeDecodeError:
        return tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in pairs)
