"""One call's time and outcome: one retry when the upstream asks for it, the deadline over every
send, and a timed-out request that may have arrived said to have an unknown outcome."""

from __future__ import annotations

import asyncio
import email.utils
import time

import pytest

from toolbridge.errors import UpstreamUnavailable
from toolbridge.tools import HttpOperation, ToolResult
from toolbridge.upstream.remote import invoke, retry_delay
from toolbridge.upstream.seam import Timeouts, UpstreamRequest, UpstreamResponse, timed_out

pytestmark = pytest.mark.anyio
BASE = "https://api.example.com/v1"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def op(method: str = "GET") -> HttpOperation:
    return HttpOperation(
        server="api",
        method=method,  # type: ignore[arg-type]  # the tests pass valid methods
        path="/items",
        base_url=BASE,
        operation_id="op",
    )


def answer(status: int, retry_after: str | None = None) -> UpstreamResponse:
    headers = (("Retry-After", retry_after),) if retry_after is not None else ()
    return UpstreamResponse(status=status, headers=headers, body=b"")


class Scripted:
    """Gives these answers in turn (or raises them), and records each request and its limits."""

    def __init__(self, *answers: UpstreamResponse | Exception, delay: float = 0.0) -> None:
        self.answers = list(answers)
        self.delay = delay
        self.sent: list[tuple[str, Timeouts]] = []

    async def send(
        self, request: UpstreamRequest, *, timeouts: Timeouts, max_bytes: int
    ) -> UpstreamResponse:
        self.sent.append((request.url, timeouts))
        await asyncio.sleep(self.delay)
        found = self.answers.pop(0)
        if isinstance(found, Exception):
            raise found
        return found

    async def aclose(self) -> None:
        return None


PAST = email.utils.formatdate(time.time() - 60, usegmt=True)


@pytest.mark.parametrize(
    ("method", "answers", "status", "sends"),
    [
        ("GET", [answer(503, "0"), answer(200)], 200, 2),
        ("GET", [answer(429, "0"), answer(200)], 200, 2),
        ("PUT", [answer(503, "0"), answer(204)], 204, 2),
        ("DELETE", [answer(503, PAST), answer(204)], 204, 2),
        # only once
        ("GET", [answer(503, "0"), answer(503, "0")], 503, 2),
        # not without Retry-After, nor one that cannot be read
        ("GET", [answer(503)], 503, 1),
        ("GET", [answer(503, "soon")], 503, 1),
        ("GET", [answer(503, "-1")], 503, 1),
        # never a request that sending twice could do twice
        ("POST", [answer(503, "0")], 503, 1),
        ("PATCH", [answer(429, "0")], 429, 1),
        # other statuses stand
        ("GET", [answer(500, "0")], 500, 1),
        ("GET", [answer(502, "0")], 502, 1),
    ],
)
async def test_one_retry_for_idempotent_requests_when_asked(
    method: str, answers: list[UpstreamResponse], status: int, sends: int
) -> None:
    upstream = Scripted(*answers)
    result = await invoke(op(method), {}, upstream=upstream, base_url=BASE)
    assert (result.status, len(upstream.sent)) == (status, sends)


async def test_a_retry_waits_as_long_as_it_was_told() -> None:
    upstream = Scripted(answer(503, "1"), answer(200))
    started = time.monotonic()
    result = await invoke(op(), {}, upstream=upstream, base_url=BASE)
    waited = time.monotonic() - started
    assert result == ToolResult(ok=True, status=200)
    assert 0.95 <= waited < 2.0


async def test_no_retry_when_the_wait_does_not_fit_in_the_deadline() -> None:
    upstream = Scripted(answer(503, "5"), answer(200))
    started = time.monotonic()
    result = await invoke(op(), {}, upstream=upstream, base_url=BASE, timeouts=Timeouts(total=2))
    assert (result.status, len(upstream.sent)) == (503, 1)
    assert time.monotonic() - started < 0.5


async def test_later_sends_get_what_is_left_of_the_deadline() -> None:
    """A redirect and a retry share the call's deadline: no send gets the whole of it again."""
    moved = UpstreamResponse(status=302, headers=(("Location", "/v1/next"),))
    upstream = Scripted(moved, answer(503, "0"), answer(200), delay=0.2)
    result = await invoke(
        op(), {}, upstream=upstream, base_url=BASE, timeouts=Timeouts(connect=10, total=1.0)
    )
    totals = [t.total for _, t in upstream.sent]
    assert result.status == 200
    assert totals[0] == 1.0
    assert 0.7 < totals[1] <= 0.8
    assert 0.5 < totals[2] <= 0.6
    assert all(t.connect == t.total for _, t in upstream.sent[1:])


async def test_the_deadline_ends_a_chain_of_redirects() -> None:
    moved = UpstreamResponse(status=302, headers=(("Location", "/v1/next"),))
    upstream = Scripted(moved, moved, moved, delay=0.3)
    with pytest.raises(UpstreamUnavailable) as caught:
        await invoke(op(), {}, upstream=upstream, base_url=BASE, timeouts=Timeouts(total=0.5))
    assert (str(caught.value), caught.value.timeout) == (
        "upstream 'api': no answer from https://api.example.com:443 within 0.5 s",
        True,
    )


REQUEST = UpstreamRequest(server="api", method="POST", url=f"{BASE}/items")


@pytest.mark.parametrize(
    ("method", "failure", "message"),
    [
        (
            "POST",
            timed_out(REQUEST, 30, connecting=False),
            "upstream 'api': no answer from https://api.example.com:443 within 30 s; the outcome "
            "is unknown: the POST may or may not have taken effect",
        ),
        (
            "PATCH",
            UpstreamUnavailable("api", "no valid answer from X: connection reset", sent=True),
            "upstream 'api': no valid answer from X: connection reset; the outcome is unknown: "
            "the PATCH may or may not have taken effect",
        ),
        # never sent: nothing happened
        (
            "POST",
            timed_out(REQUEST, 10, connecting=True),
            "upstream 'api': no connection to https://api.example.com:443 within 10 s",
        ),
        # sending again would do no harm: nothing to warn about
        (
            "PUT",
            timed_out(REQUEST, 30, connecting=False),
            "upstream 'api': no answer from https://api.example.com:443 within 30 s",
        ),
    ],
)
async def test_a_request_that_may_have_arrived_has_an_unknown_outcome(
    method: str, failure: UpstreamUnavailable, message: str
) -> None:
    with pytest.raises(UpstreamUnavailable) as caught:
        await invoke(op(method), {}, upstream=Scripted(failure), base_url=BASE)
    assert (str(caught.value), caught.value.timeout) == (message, failure.timeout)


@pytest.mark.parametrize(
    ("headers", "delay"),
    [
        ((("Retry-After", "120"),), 120.0),
        ((("retry-after", " 0 "),), 0.0),
        ((("Retry-After", PAST),), 0.0),
        ((("Retry-After", "Wed, 21 Oct 2015 07:28:00"),), None),  # no zone: no HTTP date
        ((("Retry-After", "1.5"),), None),
        ((("Retry-After", ""),), None),
        ((), None),
    ],
)
def test_retry_after(headers: tuple[tuple[str, str], ...], delay: float | None) -> None:
    response = UpstreamResponse(status=503, headers=headers)
    request = UpstreamRequest(server="api", method="GET", url=BASE)
    assert retry_delay(request, response) == delay
