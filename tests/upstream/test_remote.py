"""Remote calls: request building for every style and body kind, result shaping, redirects.

Requests are compared whole (method, URL, headers, body bytes); multipart bodies are parsed
back with the standard library's email parser, since their boundary is derived from the parts.
"""

from __future__ import annotations

import email.parser
import email.policy
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import pytest

from toolbridge.errors import InvalidArguments, UpstreamUnavailable
from toolbridge.tools import BodyPlan, FieldEncoding, HttpOperation, ParamBinding, ToolResult
from toolbridge.upstream import styles
from toolbridge.upstream.answers import shape_result
from toolbridge.upstream.curl import curl_line
from toolbridge.upstream.remote import invoke
from toolbridge.upstream.request import build_request
from toolbridge.upstream.seam import AuthParts, MockUpstream, UpstreamRequest, UpstreamResponse

BASE = "https://api.example.com/v1"
PRIMITIVE = "blue"
ARRAY = ["blue", "black", "brown"]
OBJECT = {"R": 100, "G": 200, "B": 150}


def make_op(
    *params: ParamBinding,
    path: str = "/items",
    method: str = "GET",
    body: BodyPlan | None = None,
    accept: str | None = None,
) -> HttpOperation:
    return HttpOperation(
        server="api",
        method=method,  # type: ignore[arg-type]  # the tests pass valid methods
        path=path,
        base_url=BASE,
        operation_id="op",
        params=params,
        body=body,
        accept=accept,
    )


def param(
    name: str,
    location: str = "query",
    *,
    style: str | None = None,
    explode: bool | None = None,
    allow_reserved: bool = False,
    content_type: str | None = None,
) -> ParamBinding:
    style = style or ("form" if location in ("query", "cookie") else "simple")
    return ParamBinding(
        argument=name,
        name=name,
        location=location,  # type: ignore[arg-type]  # the tests pass valid locations
        required=location == "path",
        style=style,
        explode=style == "form" if explode is None else explode,
        allow_reserved=allow_reserved,
        content_type=content_type,
    )


# -- path parameters -------------------------------------------------------------------

PATH_STYLES = [
    # OpenAPI 3's style table for path parameters (color = blue / [blue, black, brown] / R,G,B).
    ("simple", False, PRIMITIVE, "blue"),
    ("simple", False, ARRAY, "blue,black,brown"),
    ("simple", False, OBJECT, "R,100,G,200,B,150"),
    ("simple", True, PRIMITIVE, "blue"),
    ("simple", True, ARRAY, "blue,black,brown"),
    ("simple", True, OBJECT, "R=100,G=200,B=150"),
    ("label", False, PRIMITIVE, ".blue"),
    ("label", False, ARRAY, ".blue,black,brown"),
    ("label", False, OBJECT, ".R,100,G,200,B,150"),
    ("label", True, PRIMITIVE, ".blue"),
    ("label", True, ARRAY, ".blue.black.brown"),
    ("label", True, OBJECT, ".R=100.G=200.B=150"),
    ("matrix", False, PRIMITIVE, ";color=blue"),
    ("matrix", False, ARRAY, ";color=blue,black,brown"),
    ("matrix", False, OBJECT, ";color=R,100,G,200,B,150"),
    ("matrix", True, PRIMITIVE, ";color=blue"),
    ("matrix", True, ARRAY, ";color=blue;color=black;color=brown"),
    ("matrix", True, OBJECT, ";R=100;G=200;B=150"),
    ("simple", False, True, "true"),
    ("simple", False, 2.5, "2.5"),
    ("simple", False, "a b,c", "a%20b%2Cc"),
]


@pytest.mark.parametrize(("style", "explode", "value", "segment"), PATH_STYLES)
def test_path_styles(style: str, explode: bool, value: Any, segment: str) -> None:
    op = make_op(param("color", "path", style=style, explode=explode), path="/colors/{color}")
    request = build_request(op, {"color": value}, base_url=BASE)
    assert request == UpstreamRequest(
        server="api", pool="api", method="GET", url=f"{BASE}/colors/{segment}"
    )


@pytest.mark.parametrize(
    ("value", "segment"),
    [
        ("../admin", "..%2Fadmin"),
        ("a/b", "a%2Fb"),
        ("?x=1", "%3Fx%3D1"),
        ("#top", "%23top"),
        ("%2F", "%252F"),
        ("..;/x", "..%3B%2Fx"),
        ("...", "..."),
        ("ä €", "%C3%A4%20%E2%82%AC"),
    ],
)
def test_path_values_never_change_the_route(value: str, segment: str) -> None:
    """Anything outside RFC 3986's unreserved characters is percent-encoded in a path value."""
    op = make_op(param("name", "path"), path="/files/{name}/meta")
    request = build_request(op, {"name": value}, base_url=BASE)
    assert request.url == f"{BASE}/files/{segment}/meta"


@pytest.mark.parametrize(
    ("path", "url"),
    [
        ("/users/{name}/delete", None),  # `/users//delete`: merged, it is another route
        ("/users/{name}", None),
        ("/files/{name}.json", f"{BASE}/files/.json"),  # part of a segment: the segment stays
        ("/files/x{name}/raw", f"{BASE}/files/x/raw"),
    ],
)
def test_an_empty_value_is_no_path_segment(path: str, url: str | None) -> None:
    op = make_op(param("name", "path"), path=path)
    if url is not None:
        assert build_request(op, {"name": ""}, base_url=BASE).url == url
        return
    with pytest.raises(InvalidArguments) as caught:
        build_request(op, {"name": ""}, base_url=BASE)
    assert caught.value.problems == [("$.name", "'' is empty, and a path segment cannot be")]


@pytest.mark.parametrize("value", [".", ".."])
def test_dot_segments_are_refused(value: str) -> None:
    """`.` and `..` would climb the route (and %2E is no escape: normalizers decode it)."""
    op = make_op(param("name", "path"), path="/files/{name}")
    with pytest.raises(InvalidArguments) as caught:
        build_request(op, {"name": value}, base_url=BASE)
    assert caught.value.problems == [("$.name", f"{value!r} is not a usable path segment")]


def test_encoded_dots_are_a_plain_name() -> None:
    """A value that merely spells `%2E%2E` has its percent signs encoded: a harmless name."""
    op = make_op(param("name", "path"), path="/files/{name}")
    assert build_request(op, {"name": "%2E%2E"}, base_url=BASE).url == f"{BASE}/files/%252E%252E"


def test_path_problems() -> None:
    """A missing value and a template variable the document never declares are both named."""
    op = make_op(param("a", "path"), path="/x/{a}/{b}")
    with pytest.raises(InvalidArguments) as caught:
        build_request(op, {}, base_url=BASE)
    assert caught.value.problems == [
        ("$.a", "path parameter 'a' has no value"),
        ("$", "path parameter 'b' is not described by the document"),
    ]


def test_fragment_in_the_template_is_not_sent() -> None:
    """`/schema#update` is how some documents put two operations on one path."""
    op = make_op(param("id", "path"), path="/templates/{id}/schema#update")
    assert build_request(op, {"id": "t1"}, base_url=BASE).url == f"{BASE}/templates/t1/schema"


@pytest.mark.parametrize(
    ("base_url", "url"),
    [
        ("https://api.example.com/v1/", "https://api.example.com/v1/items"),
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000/items"),
        ("https://h.example/a b", "https://h.example/a%20b/items"),
        ("https://h.example/base?api-version=2", "https://h.example/base/items?api-version=2"),
    ],
)
def test_base_url_replaces_the_server(base_url: str, url: str) -> None:
    assert build_request(make_op(), {}, base_url=base_url).url == url


@pytest.mark.parametrize("base_url", ["/v1", "api.example.com", "ftp://api.example.com", ""])
def test_base_url_must_be_absolute_http(base_url: str) -> None:
    with pytest.raises(UpstreamUnavailable) as caught:
        build_request(make_op(), {}, base_url=base_url)
    assert str(caught.value) == (
        f"upstream 'api': base URL {base_url!r} is not an absolute http(s) URL: "
        "set base_url in the config for this server"
    )


@pytest.mark.parametrize("path", ["/../admin", "/a/./b", "/%2e%2e/admin"])
def test_a_template_with_a_dot_segment_is_the_documents_doing(path: str) -> None:
    """No request can reach it, whatever the arguments: not the caller's fault (it was a 422
    blaming the arguments). The converter leaves such operations out, with a note."""
    with pytest.raises(UpstreamUnavailable) as caught:
        build_request(make_op(path=path), {}, base_url=BASE)
    assert str(caught.value) == (
        f"upstream 'api': the operation's path {path!r} holds a `.` or `..` segment, which URLs "
        "resolve away: no request can reach it"
    )


@pytest.mark.parametrize(
    ("base_url", "path", "arguments", "problem"),
    [
        (
            "https://api.example.com/../../bp",
            "/p",
            {},
            "upstream 'api': the base path '/../../bp' holds a `.` or `..` segment, which URLs "
            "resolve away: set base_url in the config for this server",
        ),
        (
            BASE,
            "/files/{name}.{ext}/raw",
            {"name": "", "ext": ""},
            "invalid arguments for 'op': $: the arguments make the request path "
            "'/v1/files/./raw', whose `.` or `..` segment URLs resolve away",
        ),
    ],
)
def test_dot_segments_are_said_as_whose_they_are(
    base_url: str, path: str, arguments: dict[str, str], problem: str
) -> None:
    params = tuple(param(n, "path") for n in arguments)
    with pytest.raises((UpstreamUnavailable, InvalidArguments)) as caught:
        build_request(make_op(*params, path=path), arguments, base_url=base_url)
    assert str(caught.value) == problem


# -- query parameters --------------------------------------------------------------------

QUERY_STYLES = [
    ("form", True, PRIMITIVE, "color=blue"),
    ("form", True, ARRAY, "color=blue&color=black&color=brown"),
    ("form", True, OBJECT, "R=100&G=200&B=150"),
    ("form", False, PRIMITIVE, "color=blue"),
    ("form", False, ARRAY, "color=blue,black,brown"),
    ("form", False, OBJECT, "color=R,100,G,200,B,150"),
    ("spaceDelimited", False, ARRAY, "color=blue%20black%20brown"),
    ("spaceDelimited", False, OBJECT, "color=R%20100%20G%20200%20B%20150"),
    ("pipeDelimited", False, ARRAY, "color=blue|black|brown"),
    ("pipeDelimited", False, OBJECT, "color=R|100|G|200|B|150"),
    ("tabDelimited", False, ARRAY, "color=blue%09black%09brown"),
    ("spaceDelimited", True, ARRAY, "color=blue&color=black&color=brown"),
    ("deepObject", True, OBJECT, "color%5BR%5D=100&color%5BG%5D=200&color%5BB%5D=150"),
    (
        "deepObject",
        True,
        {"a": {"b": 1}, "l": [1, {"x": True}]},
        "color%5Ba%5D%5Bb%5D=1&color%5Bl%5D%5B0%5D=1&color%5Bl%5D%5B1%5D%5Bx%5D=true",
    ),
    ("deepObject", True, ["x", "y"], "color%5B0%5D=x&color%5B1%5D=y"),
    ("deepObject", True, 1700000000, "color=1700000000"),
    ("form", True, False, "color=false"),
    ("form", True, "", "color="),
    ("form", True, "a&b=c d+e", "color=a%26b%3Dc%20d%2Be"),
    ("form", False, ["a,b", "c"], "color=a%2Cb,c"),
]


@pytest.mark.parametrize(("style", "explode", "value", "query"), QUERY_STYLES)
def test_query_styles(style: str, explode: bool, value: Any, query: str) -> None:
    op = make_op(param("color", style=style, explode=explode))
    request = build_request(op, {"color": value}, base_url=BASE)
    assert request.url == f"{BASE}/items?{query}"


@pytest.mark.parametrize(
    ("allow_reserved", "query"),
    [
        (True, "to=https://x.example/a?b%3Dc%26d%3De%23f"),
        (False, "to=https%3A%2F%2Fx.example%2Fa%3Fb%3Dc%26d%3De%23f"),
    ],
)
def test_allow_reserved(allow_reserved: bool, query: str) -> None:
    """Reserved characters pass with allowReserved, except those that would split the query."""
    op = make_op(param("to", allow_reserved=allow_reserved))
    request = build_request(op, {"to": "https://x.example/a?b=c&d=e#f"}, base_url=BASE)
    assert request.url == f"{BASE}/items?{query}"


def test_query_content_parameter_is_json() -> None:
    op = make_op(param("where", content_type="application/json"))
    request = build_request(op, {"where": {"a": [1, "x y"]}}, base_url=BASE)
    assert request.url == f"{BASE}/items?where=%7B%22a%22%3A%5B1%2C%22x%20y%22%5D%7D"


def test_absent_and_null_optional_arguments_are_not_sent() -> None:
    op = make_op(param("a"), param("b"), param("c"))
    assert build_request(op, {"a": None, "c": 0}, base_url=BASE).url == f"{BASE}/items?c=0"


def test_whole_numbers_are_sent_as_integers_wherever_they_go() -> None:
    """`5.0` and `1e3` (how some clients write an integer) are the numbers 5 and 1000: sent as
    an API that wants an integer reads them. Other floats, and ones too large to be exact, stay
    as they are."""
    op = make_op(
        param("petId", "path"),
        param("limit"),
        param("ratio"),
        param("huge"),
        param("X-Page", "header"),
        path="/pets/{petId}",
        method="PUT",
        body=BodyPlan(media_type="application/json", kind="json", argument="body"),
    )
    arguments = {
        "petId": 7.0,
        "limit": 1e3,
        "ratio": 0.5,
        "huge": 1e300,
        "X-Page": 2.0,
        "body": {"n": 3.0, "l": [1.0, 1.5, True], "s": "4.0"},
    }
    request = build_request(op, arguments, base_url=BASE)
    assert (request.url, dict(request.headers)["X-Page"], request.body) == (
        f"{BASE}/pets/7?limit=1000&ratio=0.5&huge=1e%2B300",
        "2",
        b'{"n":3,"l":[1,1.5,true],"s":"4.0"}',
    )


def test_credentials_in_the_query_come_last_and_win() -> None:
    """An argument never replaces a credential of the same name."""
    op = make_op(param("api_key"), param("q"))
    auth = AuthParts(query=(("api_key", "s3cret/+"),), secrets=("s3cret/+",))
    request = build_request(op, {"api_key": "mine", "q": "x"}, base_url=BASE, auth=auth)
    assert request.url == f"{BASE}/items?q=x&api_key=s3cret%2F%2B"


# -- headers and cookies -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("explode", "value", "header"),
    [
        (False, PRIMITIVE, "blue"),
        (False, ARRAY, "blue,black,brown"),
        (False, OBJECT, "R,100,G,200,B,150"),
        (True, OBJECT, "R=100,G=200,B=150"),
        (False, 5, "5"),
        (False, True, "true"),
    ],
)
def test_header_parameters(explode: bool, value: Any, header: str) -> None:
    op = make_op(param("X-Color", "header", explode=explode))
    request = build_request(op, {"X-Color": value}, base_url=BASE)
    assert request.headers == (("X-Color", header),)


@pytest.mark.parametrize(
    ("value", "found"),
    [
        ("a\r\nX-Evil: 1", "the control character U+000D (at 1)"),
        ("a\nb", "the control character U+000A (at 1)"),
        ("a\rb", "the control character U+000D (at 1)"),
        ("a\x00b", "the control character U+0000 (at 1)"),
        (["ok", "b\n"], "the control character U+000A (at 4)"),
        ("\x1b[31mred", "the control character U+001B (at 0)"),
        ("del\x7f", "the control character U+007F (at 3)"),
        ("c1\x85", "the control character U+0085 (at 2)"),
        ("日本", "the character U+65E5 (at 0)"),
        ("line\u2028separator", "the character U+2028 (at 4)"),
    ],
)
def test_header_values_hold_only_what_a_header_can_carry(value: Any, found: str) -> None:
    """Control characters would split or smuggle a header; characters past U+00FF have no byte
    to be sent as: both are the caller's error (422), naming the argument."""
    op = make_op(param("X-Trace", "header"))
    with pytest.raises(InvalidArguments) as caught:
        build_request(op, {"X-Trace": value}, base_url=BASE)
    assert str(caught.value) == (
        f"invalid arguments for 'op': $.X-Trace: a header value cannot hold {found}; "
        "tabs, spaces, visible ASCII and Latin-1 letters can be sent"
    )


@pytest.mark.parametrize("value", ["tab\there", "café", "~!@#$%^&*()"])
def test_header_values_may_hold_tabs_and_latin_1(value: str) -> None:
    op = make_op(param("X-Trace", "header"))
    assert build_request(op, {"X-Trace": value}, base_url=BASE).headers == (("X-Trace", value),)


def test_cookies_join_the_credentials_cookies() -> None:
    op = make_op(
        param("prefs", "cookie", explode=False),
        param("theme", "cookie"),
        param("session", "cookie"),
    )
    auth = AuthParts(cookies=(("session", "abc"),))
    request = build_request(
        op,
        {"prefs": ["a", "b c"], "theme": "dark;x=1", "session": "forged"},
        base_url=BASE,
        auth=auth,
    )
    assert request.headers == (("Cookie", "prefs=a,b%20c; theme=dark%3Bx=1; session=abc"),)


def test_headers_whole() -> None:
    """Accept, Content-Type, arguments, credentials, extra headers; credentials win names."""
    op = make_op(
        param("X-Api-Key", "header"),
        param("X-Request-Id", "header"),
        param("Authorization", "header"),
        param("lang", "cookie"),
        method="POST",
        body=BodyPlan(media_type="application/json", kind="json", argument="body"),
        accept="application/json",
    )
    auth = AuthParts(
        headers=(("X-Api-Key", "k3y"), ("Authorization", "Bearer t0k")),
        cookies=(("sid", "1"),),
    )
    request = build_request(
        op,
        {
            "X-Api-Key": "mine",
            "X-Request-Id": "r1",
            "Authorization": "Bearer forged",
            "lang": "en",
            "body": {"a": 1},
        },
        base_url=BASE,
        auth=auth,
        headers=(("User-Agent", "toolbridge"), ("Accept", "application/vnd.x+json")),
    )
    assert request == UpstreamRequest(
        server="api",
        pool="api",
        method="POST",
        url=f"{BASE}/items",
        headers=(
            ("Content-Type", "application/json"),
            ("X-Request-Id", "r1"),
            ("Cookie", "lang=en; sid=1"),
            ("X-Api-Key", "k3y"),
            ("Authorization", "Bearer t0k"),
            ("User-Agent", "toolbridge"),
            ("Accept", "application/vnd.x+json"),
        ),
        body=b'{"a":1}',
    )


# -- bodies ------------------------------------------------------------------------------


def test_json_body_from_flattened_fields() -> None:
    """Only body fields go in the body; path and query arguments stay where they belong."""
    op = make_op(
        param("petId", "path"),
        param("dryRun"),
        path="/pets/{petId}",
        method="PUT",
        body=BodyPlan(
            media_type="application/json",
            kind="json",
            fields=(("name", "name"), ("tag", "tag"), ("owner", "owner")),
        ),
        accept="application/json",
    )
    request = build_request(
        op, {"petId": 7, "dryRun": True, "name": "Rex", "owner": None}, base_url=BASE
    )
    assert request == UpstreamRequest(
        server="api",
        pool="api",
        method="PUT",
        url=f"{BASE}/pets/7?dryRun=true",
        headers=(("Accept", "application/json"), ("Content-Type", "application/json")),
        body=b'{"name":"Rex","owner":null}',
    )


@pytest.mark.parametrize(
    ("plan", "arguments", "body", "content_type"),
    [
        (
            BodyPlan(media_type="application/merge-patch+json", kind="json", argument="body"),
            {"body": [1, "ä"]},
            '[1,"ä"]'.encode(),
            "application/merge-patch+json",
        ),
        (
            BodyPlan(media_type="*/*", kind="json", argument="body"),
            {"body": "x"},
            b'"x"',
            "application/json",
        ),
        (
            BodyPlan(media_type="application/json", kind="json", fields=(("a", "a"),)),
            {},
            None,
            None,
        ),
        (
            BodyPlan(
                media_type="application/json", kind="json", required=True, fields=(("a", "a"),)
            ),
            {},
            b"{}",
            "application/json",
        ),
        (
            BodyPlan(media_type="text/plain", kind="text", argument="body"),
            {"body": "héllo\n"},
            "héllo\n".encode(),
            "text/plain; charset=utf-8",
        ),
        (
            BodyPlan(media_type="text/csv; charset=utf-8", kind="text", argument="body"),
            {"body": "a,b"},
            b"a,b",
            "text/csv; charset=utf-8",
        ),
        (
            BodyPlan(media_type="text/plain; charset=ISO-8859-1", kind="text", argument="body"),
            {"body": "café"},
            b"caf\xe9",
            "text/plain; charset=ISO-8859-1",
        ),
        (
            BodyPlan(media_type="application/xml", kind="text", argument="body"),
            {"body": "<a/>"},
            b"<a/>",
            "application/xml",
        ),
        (
            BodyPlan(media_type="application/octet-stream", kind="binary", argument="body"),
            {"body": "AAEC/w=="},
            b"\x00\x01\x02\xff",
            "application/octet-stream",
        ),
        (
            BodyPlan(media_type="image/*", kind="binary", argument="body"),
            {"body": "AAEC_w"},
            b"\x00\x01\x02\xff",
            "application/octet-stream",
        ),
        (
            BodyPlan(media_type="application/x-www-form-urlencoded", kind="form", argument="b"),
            {"b": {"q": "a b&c", "n": 1}},
            b"q=a%20b%26c&n=1",
            "application/x-www-form-urlencoded",
        ),
    ],
)
def test_bodies(
    plan: BodyPlan, arguments: dict[str, Any], body: bytes | None, content_type: str | None
) -> None:
    request = build_request(make_op(method="POST", body=plan), arguments, base_url=BASE)
    headers = (("Content-Type", content_type),) if content_type else ()
    assert request == UpstreamRequest(
        server="api", pool="api", method="POST", url=f"{BASE}/items", headers=headers, body=body
    )


def test_form_body_with_encoding_rules() -> None:
    """Stripe-style: deepObject objects and arrays, exploded arrays, a JSON-encoded field."""
    plan = BodyPlan(
        media_type="application/x-www-form-urlencoded",
        kind="form",
        fields=tuple((n, n) for n in ("amount", "metadata", "expand", "tags", "ids", "filter")),
        encoding=(
            ("metadata", FieldEncoding(style="deepObject", explode=True)),
            ("expand", FieldEncoding(style="deepObject", explode=True)),
            ("tags", FieldEncoding(style="form", explode=False)),
            ("filter", FieldEncoding(content_type="application/json")),
        ),
    )
    arguments = {
        "amount": 2000,
        "metadata": {"order": "6735", "nested": {"k": "v w"}},
        "expand": ["customer", "invoice"],
        "tags": ["a", "b"],
        "ids": [1, 2],
        "filter": {"x": 1},
    }
    request = build_request(make_op(method="POST", body=plan), arguments, base_url=BASE)
    assert request.body == (
        b"amount=2000&metadata%5Border%5D=6735&metadata%5Bnested%5D%5Bk%5D=v%20w"
        b"&expand%5B0%5D=customer&expand%5B1%5D=invoice&tags=a,b&ids=1&ids=2"
        b"&filter=%7B%22x%22%3A1%7D"
    )


def _parts(request: UpstreamRequest) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a multipart/form-data request: their headers and payloads."""
    content_type = dict(request.headers)["Content-Type"]
    raw = f"Content-Type: {content_type}\r\n\r\n".encode() + (request.body or b"")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    assert message.is_multipart()
    return [
        (dict(part.items()), part.get_payload(decode=True))  # type: ignore[misc]
        for part in message.iter_parts()
    ]


def test_multipart_body() -> None:
    plan = BodyPlan(
        media_type="multipart/form-data",
        kind="multipart",
        fields=tuple((n, n) for n in ("file", "photos", "meta", "note", "tags", "count")),
        encoding=(
            ("file", FieldEncoding(is_file=True)),
            ("photos", FieldEncoding(is_file=True)),
            ("meta", FieldEncoding(content_type="application/json")),
        ),
    )
    arguments = {
        "file": {"content": "aGVsbG8=", "filename": 'a "b".txt', "content_type": "text/plain"},
        "photos": [{"content": "AAE="}, {"content": "Ag==", "filename": "2.png"}],
        "meta": {"k": [1]},
        "note": "héllo",
        "tags": ["x", "y"],
        "count": 3,
    }
    request = build_request(make_op(method="POST", body=plan), arguments, base_url=BASE)
    content_type = dict(request.headers)["Content-Type"]
    assert content_type.startswith("multipart/form-data; boundary=toolbridge-")
    assert request.body is not None
    assert request.body.endswith(b"--\r\n")
    disposition = "Content-Disposition"
    assert _parts(request) == [
        (
            {
                disposition: 'form-data; name="file"; filename="a %22b%22.txt"',
                "Content-Type": "text/plain",
            },
            b"hello",
        ),
        (
            {
                disposition: 'form-data; name="photos"; filename="photos"',
                "Content-Type": "application/octet-stream",
            },
            b"\x00\x01",
        ),
        (
            {
                disposition: 'form-data; name="photos"; filename="2.png"',
                "Content-Type": "application/octet-stream",
            },
            b"\x02",
        ),
        ({disposition: 'form-data; name="meta"', "Content-Type": "application/json"}, b'{"k":[1]}'),
        ({disposition: 'form-data; name="note"'}, "héllo".encode()),
        ({disposition: 'form-data; name="tags"'}, b"x"),
        ({disposition: 'form-data; name="tags"'}, b"y"),
        ({disposition: 'form-data; name="count"'}, b"3"),
    ]


@pytest.mark.parametrize(
    ("declared", "given", "sent"),
    [
        ("image/png", None, "image/png"),  # the document's one type for the field
        ("image/png", "image/webp", "image/webp"),  # the caller's word first
        ("image/*", None, "application/octet-stream"),
        ("image/png, image/jpeg", None, "image/png"),  # one the document allows
        ("image/*, text/plain", None, "text/plain"),
        (None, None, "application/octet-stream"),
    ],
)
def test_a_file_part_is_of_the_type_the_document_gives_it(
    declared: str | None, given: str | None, sent: str
) -> None:
    plan = BodyPlan(
        media_type="multipart/form-data",
        kind="multipart",
        fields=(("pic", "pic"),),
        encoding=(("pic", FieldEncoding(is_file=True, content_type=declared)),),
    )
    file = {"content": "AAE=", **({"content_type": given} if given else {})}
    request = build_request(make_op(method="POST", body=plan), {"pic": file}, base_url=BASE)
    ((headers, _),) = _parts(request)
    assert headers["Content-Type"] == sent


def test_multipart_boundary_is_deterministic() -> None:
    plan = BodyPlan(media_type="multipart/form-data", kind="multipart", fields=(("a", "a"),))
    op = make_op(method="POST", body=plan)
    first = build_request(op, {"a": "x"}, base_url=BASE)
    assert first == build_request(op, {"a": "x"}, base_url=BASE)
    assert first.headers != build_request(op, {"a": "y"}, base_url=BASE).headers


@pytest.mark.parametrize(
    ("plan", "arguments", "problems"),
    [
        (
            BodyPlan(
                media_type="multipart/form-data",
                kind="multipart",
                fields=(("file", "file"),),
                encoding=(("file", FieldEncoding(is_file=True)),),
            ),
            {"file": {"content": "not base64!"}},
            [("$.file.content", "is not valid base64")],
        ),
        (
            BodyPlan(
                media_type="multipart/form-data",
                kind="multipart",
                fields=(("file", "file"),),
                encoding=(("file", FieldEncoding(is_file=True)),),
            ),
            {"file": "aGk="},
            [("$.file", "expected a file {content, filename}, found a string")],
        ),
        (
            BodyPlan(media_type="application/octet-stream", kind="binary", argument="body"),
            {"body": 12},
            [("$.body", "expected base64 text, found int")],
        ),
        (
            BodyPlan(media_type="text/plain", kind="text", argument="body"),
            {"body": {"a": 1}},
            [("$.body", "expected text for this body, found a JSON structure")],
        ),
        (
            BodyPlan(media_type="text/plain; charset=us-ascii", kind="text", argument="body"),
            {"body": "é"},
            [("$.body", "cannot be sent as us-ascii: character 0 is not in it")],
        ),
        (
            BodyPlan(media_type="application/x-www-form-urlencoded", kind="form", argument="b"),
            {"b": [1]},
            [("$.b", "expected an object of form fields, found an array")],
        ),
    ],
)
def test_unsendable_bodies(
    plan: BodyPlan, arguments: dict[str, Any], problems: list[tuple[str, str]]
) -> None:
    with pytest.raises(InvalidArguments) as caught:
        build_request(make_op(method="POST", body=plan), arguments, base_url=BASE)
    found = [(path, message.split(" (")[0]) for path, message in caught.value.problems]
    assert found == problems


def test_unsendable_values() -> None:
    """A value no JSON argument could hold (it slipped past validation) is named, not sent."""
    op = make_op(param("when"), param("at", "path"), path="/x/{at}")
    with pytest.raises(InvalidArguments) as caught:
        build_request(op, {"when": object(), "at": b"raw"}, base_url=BASE)
    assert caught.value.problems == [
        ("$.at", "expected a JSON value, found bytes"),
        ("$.when", "expected a JSON value, found object"),
    ]


# -- results -----------------------------------------------------------------------------


def response(
    status: int, body: bytes = b"", content_type: str | None = None, truncated: bool = False
) -> UpstreamResponse:
    headers = (("Content-Type", content_type),) if content_type else ()
    return UpstreamResponse(status=status, headers=headers, body=body, truncated=truncated)


@pytest.mark.parametrize(
    ("answer", "result"),
    [
        (
            response(200, b'{"a": [1]}', "application/json"),
            ToolResult(ok=True, status=200, content_type="application/json", result={"a": [1]}),
        ),
        (
            response(404, b'{"title": "no"}', "application/problem+json"),
            ToolResult(
                ok=False,
                status=404,
                content_type="application/problem+json",
                result={"title": "no"},
            ),
        ),
        (
            response(500, b"boom", "text/plain"),
            ToolResult(ok=False, status=500, content_type="text/plain", result="boom"),
        ),
        (
            response(200, b"caf\xe9", "text/html; charset=ISO-8859-1"),
            ToolResult(
                ok=True, status=200, content_type="text/html; charset=ISO-8859-1", result="café"
            ),
        ),
        (
            response(200, b"a\xffb", "text/plain"),
            ToolResult(ok=True, status=200, content_type="text/plain", result="a\ufffdb"),
        ),
        (
            response(200, b"<a/>", "application/atom+xml"),
            ToolResult(ok=True, status=200, content_type="application/atom+xml", result="<a/>"),
        ),
        (
            response(200, b"\x89PNG", "image/png"),
            ToolResult(
                ok=True,
                status=200,
                content_type="image/png",
                result={"base64": "iVBORw==", "size": 4, "content_type": "image/png"},
            ),
        ),
        (response(204), ToolResult(ok=True, status=204)),
        (response(200, b'{"a":1}'), ToolResult(ok=True, status=200, result={"a": 1})),
        (response(200, b"plain words"), ToolResult(ok=True, status=200, result="plain words")),
        (
            response(200, b"\xff\xfe"),
            ToolResult(
                ok=True,
                status=200,
                result={"base64": "//4=", "size": 2, "content_type": "application/octet-stream"},
            ),
        ),
        (
            response(502, b"<html>bad gateway", "application/json"),
            ToolResult(
                ok=False,
                status=502,
                content_type="application/json",
                result="<html>bad gateway",
                text_form="not_json",
            ),
        ),
        (
            response(200, b"null", "application/json"),
            ToolResult(ok=True, status=200, content_type="application/json", result=None),
        ),
        (  # deeper than JSON is read: not said to be no JSON (it may well be)
            response(200, b"[" * 2000 + b"]" * 2000, "application/json"),
            ToolResult(
                ok=True,
                status=200,
                content_type="application/json",
                result="[" * 2000 + "]" * 2000,
                text_form="too_deep",
            ),
        ),
        (
            response(302, b"", "text/html"),
            ToolResult(ok=False, status=302, content_type="text/html"),
        ),
        (  # Not Modified: what a conditional request (If-None-Match) hopes for
            response(304, b"", None),
            ToolResult(ok=True, status=304),
        ),
        (
            response(200, b'{"items": [1, 2', "application/json", truncated=True),
            ToolResult(
                ok=True,
                status=200,
                content_type="application/json",
                result='{"items": [1, 2\n[truncated: the upstream answer was longer than 15 bytes]',
                truncated=True,
                text_form="not_json",
            ),
        ),
        (
            response(200, b"caf\xc3", "text/plain; charset=utf-8", truncated=True),
            ToolResult(
                ok=True,
                status=200,
                content_type="text/plain; charset=utf-8",
                result="caf\n[truncated: the upstream answer was longer than 4 bytes]",
                truncated=True,
            ),
        ),
        (
            response(200, b"\x00\x01", "application/pdf", truncated=True),
            ToolResult(
                ok=True,
                status=200,
                content_type="application/pdf",
                result={"base64": "AAE=", "size": 2, "content_type": "application/pdf"},
                truncated=True,
            ),
        ),
        # bytes that are no text come back as base64 whatever the content type says
        (
            response(200, b"\x00" * 6, "text/plain"),
            ToolResult(
                ok=True,
                status=200,
                content_type="text/plain",
                result={"base64": "AAAAAAAA", "size": 6, "content_type": "text/plain"},
            ),
        ),
        (
            response(200, b"\x00\x00\x00\x00"),
            ToolResult(
                ok=True,
                status=200,
                result={
                    "base64": "AAAAAA==",
                    "size": 4,
                    "content_type": "application/octet-stream",
                },
            ),
        ),
        (
            response(200, b'{"a": "\x00"}', "application/json"),
            ToolResult(
                ok=True,
                status=200,
                content_type="application/json",
                result={
                    "base64": "eyJhIjogIgAifQ==",
                    "size": 10,
                    "content_type": "application/json",
                },
            ),
        ),
        (
            response(200, bytes(range(1, 9)) * 4 + b"text", "text/plain"),
            ToolResult(
                ok=True,
                status=200,
                content_type="text/plain",
                result={
                    "base64": "AQIDBAUGBwgBAgMEBQYHCAECAwQFBgcIAQIDBAUGBwh0ZXh0",
                    "size": 36,
                    "content_type": "text/plain",
                },
            ),
        ),
        (
            response(200, "h\u00e9".encode("utf-16-le"), "text/plain; charset=utf-16-le"),
            ToolResult(
                ok=True, status=200, content_type="text/plain; charset=utf-16-le", result="h\u00e9"
            ),
        ),
        (
            response(200, b"line\tone\r\n\x1b[1mbold\x1b[0m\n", "text/plain"),
            ToolResult(
                ok=True,
                status=200,
                content_type="text/plain",
                result="line\tone\r\n\x1b[1mbold\x1b[0m\n",
            ),
        ),
    ],
)
def test_shape_result(answer: UpstreamResponse, result: ToolResult) -> None:
    assert shape_result(answer) == result


@pytest.mark.parametrize(
    ("charset", "body", "text"),
    [
        # Not character sets: read as UTF-8 (punycode decoded in quadratic time on the loop).
        *((name, b"hello world", "hello world") for name in ("rot13", "hex", "base64", "uu")),
        *((name, b"hello world", "hello world") for name in ("quopri", "idna", "undefined")),
        ("punycode", b"a-" * 50, "a-" * 50),
        ("no-such-charset", b"caf\xc3\xa9", "caf\u00e9"),
        # UTF-16 and UTF-32 without a byte order mark are big-endian; with one, as it says.
        ("utf-16", "h\u00e9".encode("utf-16-be"), "h\u00e9"),
        ("utf-16", "h\u00e9".encode("utf-16"), "h\u00e9"),
        ("utf-32", "h\u00e9".encode("utf-32-be"), "h\u00e9"),
        ("latin-1", b"caf\xe9", "caf\u00e9"),
    ],
)
def test_an_answer_is_read_in_its_charset_when_that_is_one(
    charset: str, body: bytes, text: str
) -> None:
    content_type = f"text/plain; charset={charset}"
    assert shape_result(response(200, body, content_type)) == ToolResult(
        ok=True, status=200, content_type=content_type, result=text
    )


def test_a_large_json_answer_with_an_integer_past_64_bits_is_its_text_too() -> None:
    body = b'{"rows": [' + b",".join(b'{"n": %d}' % n for n in range(200_000)) + b'], "big": '
    body += b"1" * 25 + b"}"
    assert shape_result(response(200, body, "application/json")).result == body.decode()


def test_json_with_integers_past_64_bits_is_passed_as_its_text() -> None:
    """orjson reads them as floats: the model would read 1e+20 for 99999999999999999999."""
    big = b'{"id": 99999999999999999999, "low": -9223372036854775809, "name": "a"}'
    fits = (
        b'{"id": 18446744073709551615, "low": -9223372036854775808, '
        b'"phone": "123456789012345678901"}'
    )
    low = b'{"low": -9223372036854775809}'  # 19 digits: orjson reads a float
    assert (
        shape_result(response(200, big, "application/json")).result,
        shape_result(response(200, low, "application/json")).result,
        shape_result(response(200, fits, "application/json")).result,
    ) == (
        big.decode(),
        low.decode(),
        {"id": 18446744073709551615, "low": -9223372036854775808, "phone": "123456789012345678901"},
    )


# -- invoke ------------------------------------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def redirecting(*answers: UpstreamResponse) -> MockUpstream:
    """An upstream that gives these answers in turn."""
    queue = list(answers)
    return MockUpstream(lambda request: queue.pop(0))


def moved(status: int, location: str) -> UpstreamResponse:
    return UpstreamResponse(status=status, headers=(("Location", location),))


POST_JSON = make_op(
    method="POST",
    path="/items",
    body=BodyPlan(media_type="application/json", kind="json", argument="body"),
)


@pytest.mark.anyio
async def test_redirect_on_the_same_origin_is_followed() -> None:
    upstream = redirecting(moved(302, "/v1/items?page=2"), response(200, b"[]", "application/json"))
    result = await invoke(make_op(), {}, upstream=upstream, base_url=BASE)
    assert result == ToolResult(ok=True, status=200, content_type="application/json", result=[])
    assert [r.url for r in upstream.requests] == [f"{BASE}/items", f"{BASE}/items?page=2"]


@pytest.mark.parametrize(
    "location",
    [
        "https://evil.example/v1/items",
        "http://api.example.com/v1/items",
        "https://api.example.com:8443/v1/items",
        "/admin",
        "/v1/../admin",
        "/v1/%2e%2e/admin",
        "//evil.example/v1/items",
    ],
)
@pytest.mark.anyio
async def test_redirect_off_the_base_url_is_a_result(location: str) -> None:
    """One that says where it was sent and why it went no further (only scheme, host and
    path of the target: its query may hold what the upstream put there)."""
    upstream = redirecting(moved(301, location))
    result = await invoke(make_op(), {}, upstream=upstream, base_url=BASE)
    target = urlsplit(urljoin(f"{BASE}/items", location))
    said = (
        f"the upstream redirected to {target.scheme}://{target.netloc}{target.path}; not "
        "followed: it leaves https://api.example.com/v1, where this server's calls stay"
    )
    assert result == ToolResult(ok=False, status=301, result=said)
    assert len(upstream.requests) == 1


@pytest.mark.anyio
async def test_a_query_credential_goes_along_a_followed_redirect() -> None:
    """As header and cookie credentials do: without it, the redirected request is a 401."""
    upstream = redirecting(moved(302, "/v1/items?page=2"), response(200, b"[]", "application/json"))
    auth = AuthParts(query=(("api_key", "k e y"),), secrets=("k e y",))
    await invoke(make_op(), {}, upstream=upstream, base_url=BASE, auth=auth)
    assert [r.url for r in upstream.requests] == [
        f"{BASE}/items?api_key=k%20e%20y",
        f"{BASE}/items?page=2&api_key=k%20e%20y",
    ]


@pytest.mark.parametrize(
    ("status", "method", "body"),
    [(303, "GET", None), (302, "GET", None), (301, "GET", None), (307, "POST", b'{"a":1}')],
)
@pytest.mark.anyio
async def test_redirect_methods(status: int, method: str, body: bytes | None) -> None:
    """303 (and 301/302 after a POST) continue as GET without the body; 307/308 keep both."""
    upstream = redirecting(moved(status, f"{BASE}/done"), response(200))
    await invoke(POST_JSON, {"body": {"a": 1}}, upstream=upstream, base_url=BASE)
    second = upstream.requests[1]
    headers = () if body is None else (("Content-Type", "application/json"),)
    assert second == UpstreamRequest(
        server="api", pool="api", method=method, url=f"{BASE}/done", headers=headers, body=body
    )


@pytest.mark.anyio
async def test_redirects_are_bounded() -> None:
    upstream = MockUpstream(lambda request: moved(302, "/v1/loop"))
    result = await invoke(make_op(), {}, upstream=upstream, base_url=BASE, max_redirects=3)
    said = f"the upstream redirected to {BASE}/loop; not followed: it is one redirect too many"
    assert (result, len(upstream.requests)) == (
        ToolResult(ok=False, status=302, result=said),
        4,
    )


@pytest.mark.parametrize(
    ("base_url", "found"),
    [
        (None, "the document names no server"),
        ("/api", "the server URL '/api' is not an absolute http(s) URL"),
    ],
)
@pytest.mark.anyio
async def test_invoke_needs_a_base_url(base_url: str | None, found: str) -> None:
    upstream = redirecting()
    with pytest.raises(UpstreamUnavailable) as caught:
        await invoke(make_op(), {}, upstream=upstream, base_url=base_url)
    assert str(caught.value) == (
        f"upstream 'api': no base URL: set base_url in the config for this server ({found})"
    )
    assert upstream.requests == []


@pytest.mark.anyio
async def test_unreachable_upstream_propagates() -> None:
    def down(request: UpstreamRequest) -> UpstreamResponse:
        raise UpstreamUnavailable("api", "connection refused")

    with pytest.raises(UpstreamUnavailable):
        await invoke(make_op(), {}, upstream=MockUpstream(down), base_url=BASE)


@pytest.mark.anyio
async def test_invoke_caps_the_answer() -> None:
    upstream = redirecting(response(200, b"x" * 100, "text/plain"))
    result = await invoke(make_op(), {}, upstream=upstream, base_url=BASE, max_bytes=10)
    assert result == ToolResult(
        ok=True,
        status=200,
        content_type="text/plain",
        result="xxxxxxxxxx\n[truncated: the upstream answer was longer than 10 bytes]",
        truncated=True,
    )


@pytest.mark.anyio
async def test_invoke_sends_credentials_and_arguments() -> None:
    upstream = redirecting(response(201, b'{"id": 1}', "application/json"))
    auth = AuthParts(headers=(("Authorization", "Bearer t"),), secrets=("t",))
    result = await invoke(
        POST_JSON, {"body": {"a": 1}}, upstream=upstream, base_url=BASE, auth=auth
    )
    assert result.result == {"id": 1}
    assert upstream.requests == [
        UpstreamRequest(
            server="api",
            pool="api",
            method="POST",
            url=f"{BASE}/items",
            headers=(("Content-Type", "application/json"), ("Authorization", "Bearer t")),
            body=b'{"a":1}',
        )
    ]


# -- --dry-run ---------------------------------------------------------------------------


def test_curl_line_masks_secrets() -> None:
    request = UpstreamRequest(
        server="api",
        pool="api",
        method="POST",
        url=f"{BASE}/items?api_key=s%2Fcret&q=it's",
        headers=(("Authorization", "Bearer s/cret"), ("Content-Type", "application/json")),
        body=b'{"token": "s/cret", "q": "it\'s"}',
    )
    assert curl_line(request, ["s/cret"]) == (
        "curl -g -X POST 'https://api.example.com/v1/items?api_key=***&q=it'\"'\"'s' "
        "-H 'Authorization: Bearer ***' -H 'Content-Type: application/json' "
        '--data-binary \'{"token": "***", "q": "it\'"\'"\'s"}\''
    )


def test_curl_line_masks_a_short_secret_only_as_a_whole_value() -> None:
    """`t` is masked as a query value, a header value and a JSON string, not in `https`."""
    request = UpstreamRequest(
        server="api",
        pool="api",
        method="POST",
        url="https://h.example/x?token=t&q=at",
        headers=(("token", "t"),),
        body=b'{"token": "t", "text": "at"}',
    )
    assert curl_line(request, ["t"]) == (
        "curl -g -X POST 'https://h.example/x?token=***&q=at' -H 'token: ***' "
        '--data-binary \'{"token": "***", "text": "at"}\''
    )


@pytest.mark.parametrize(
    ("method", "body", "tail"),
    [
        ("GET", None, "curl -g -X GET https://h.example/x"),
        ("HEAD", None, "curl -g -I https://h.example/x"),
        (
            "PUT",
            b"\x00\xff'\\\na",
            "curl -g -X PUT https://h.example/x --data-binary $'\\x00\\xff\\x27\\x5c\\x0aa'",
        ),
    ],
)
def test_curl_line_bodies(method: str, body: bytes | None, tail: str) -> None:
    request = UpstreamRequest(
        server="api", pool="api", method=method, url="https://h.example/x", body=body
    )
    assert curl_line(request, []) == tail


# -- percent-encoding: the same bytes as urllib's quote, by a faster road ----------------

ENCODING_SAMPLES = [
    "",
    "plain-word_1.2~",
    "blue widget",
    "a/b?c#d&e=f+g%h",
    "..",
    "caf\u00e9 \u20ac \u4e2d \U0001f600",
    "".join(chr(i) for i in range(0x20, 0x7F)),
    "\x00\x01\t\r\n\x7f",
    "[]@!$'()*,;:",
]


@pytest.mark.parametrize("text", ENCODING_SAMPLES)
def test_encoders_match_quote(text: str) -> None:
    assert styles.path_enc(text) == quote(text, safe="-._~")
    assert styles._reserved_enc(text) == quote(text, safe="-._~:/?[]@!$'()*,;")
    assert styles.cookie_enc(text) == quote(text, safe="!#$&'()*+-./:<=>?@[]^_`{|}~")


def test_whole_numbers_copy_nothing_when_there_is_none_and_stop_at_a_depth() -> None:
    from toolbridge.upstream.styles import MAX_DEPTH, whole_numbers

    plain = {"a": [1, "b", {"c": 2.5}]}
    deep: list[Any] = [1.0]
    for _ in range(5000):  # deeper than Python would recurse
        deep = [deep]
    assert whole_numbers(plain) is plain
    assert whole_numbers(deep) is deep  # past MAX_DEPTH it is left as it is
    shallow: Any = [2.0]
    for _ in range(MAX_DEPTH - 1):
        shallow = [shallow]
    found = whole_numbers(shallow)
    for _ in range(MAX_DEPTH - 1):
        found = found[0]
    assert (found, type(found[0])) == ([2], int)
