"""What a caller tells a local tool (or a filter) about a call beyond its arguments: the
conversation, the chat, message and session ids, metadata, files, the model, the caller's own
OAuth token, a view of the request, and who, if anyone, can answer `__event_call__`.

Plain values and pure parsers. The edges (`serve/`) fill a `CallContext` from the documented
headers below, the `context` object of a `/v1/tool_calls` payload and MCP `_meta`;
`calls.injected` hands it to a tool under Open WebUI's names.

Trust: everything here comes from the caller and reaches the tool as data only; it never
decides access. `user_id` in `__metadata__` is always the authenticated caller's, whatever the
caller sends, and `RequestView.headers` holds no credential.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from toolbridge.errors import BadRequest

EventCall = Callable[[Any], Awaitable[Any]]
"""Answers an Open WebUI `__event_call__` event (`confirmation`, `input`, ...)."""

MAX_CONTEXT_BYTES = 256 * 1024
"""The largest JSON value one context header or field may carry (metadata, files, messages)."""

HEADERS: dict[str, tuple[str, ...]] = {
    "chat_id": ("x-toolbridge-chat-id", "x-openwebui-chat-id"),
    "message_id": ("x-toolbridge-message-id", "x-openwebui-message-id"),
    "session_id": ("x-toolbridge-session-id",),
    "model": ("x-toolbridge-model",),
    "metadata": ("x-toolbridge-metadata",),
    "files": ("x-toolbridge-files",),
}
"""The request headers each context field is read from; Open WebUI's own names for the chat
and message ids are accepted too (it sends them to tool servers when told to forward them)."""
_FIELD_OF = {header: name for name, headers in HEADERS.items() for header in headers}
_NOTHING: Mapping[str, Any] = MappingProxyType({})

_JSON_FIELDS = frozenset({"metadata", "files", "messages"})
_TEXT_FIELDS = frozenset({"chat_id", "message_id", "session_id"})
FIELDS = (*sorted(_TEXT_FIELDS), "files", "messages", "metadata", "model")
"""The keys of a `context` object (and, under `toolbridge/`, of MCP `_meta`)."""

_CREDENTIAL = re.compile(r"auth|token|secret|key|passw|cookie|session|credential|signature", re.I)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallContext:
    """What the caller sent about the call; each field empty when it sent nothing."""

    messages: tuple[Any, ...] = ()
    """The conversation so far (`__messages__`)."""
    metadata: Mapping[str, Any] = field(default_factory=lambda: _NOTHING)
    chat_id: str | None = None
    message_id: str | None = None
    session_id: str | None = None
    files: tuple[Any, ...] | None = None
    """None when not given, so that `metadata["files"]` can stand in."""
    model: Any = None
    """A model object, or `{"id": ..., "name": ...}` made from a bare model id."""
    oauth_token: Mapping[str, Any] | None = None
    request: RequestView | None = None
    ask: EventCall | None = None
    """Who answers `__event_call__`; None when nobody can (the tool's fallback runs)."""

    def updated(self, given: Mapping[str, Any], where: str) -> CallContext:
        """This context with the fields of a `context` object (or MCP `_meta`) applied.

        Raises BadRequest naming `where` and the field when a value has the wrong shape.
        """
        changes: dict[str, Any] = {}
        for name, value in given.items():
            if name not in FIELDS or value is None:
                continue
            changes[name] = _field(name, value, f"{where}.{name}")
        return replace(self, **changes) if changes else self

    def chat(self) -> str | None:
        return self.chat_id or _text(self.metadata.get("chat_id"))

    def message(self) -> str | None:
        return self.message_id or _text(self.metadata.get("message_id"))

    def session(self) -> str | None:
        return self.session_id or _text(self.metadata.get("session_id"))

    def file_list(self) -> list[Any]:
        if self.files is not None:
            return list(self.files)
        files = self.metadata.get("files")
        return list(files) if isinstance(files, list) else []

    def metadata_for(self, user_id: str | None) -> dict[str, Any]:
        """`__metadata__`: the caller's metadata with the ids, files and model resolved, and
        `user_id` the authenticated caller's."""
        return {
            **self.metadata,
            "user_id": user_id,
            "chat_id": self.chat(),
            "message_id": self.message(),
            "session_id": self.session(),
            "files": self.file_list(),
            "model": self.model if self.model is not None else self.metadata.get("model"),
        }


class Headers(Mapping[str, str]):
    """Request headers without credentials, looked up case-insensitively."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        self._headers = {
            name.lower(): value
            for name, value in headers.items()
            if not _CREDENTIAL.search(name) and not name.lower().startswith("x-toolbridge-")
        }

    def __getitem__(self, name: str) -> str:
        return self._headers[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._headers)

    def __len__(self) -> int:
        return len(self._headers)

    def __repr__(self) -> str:
        return f"Headers({self._headers!r})"


class URL(str):
    """A URL that is also a string, with the parts Starlette's `URL` offers."""

    __slots__ = ()

    @property
    def scheme(self) -> str:
        return urlsplit(self).scheme

    @property
    def netloc(self) -> str:
        return urlsplit(self).netloc

    @property
    def hostname(self) -> str | None:
        return urlsplit(self).hostname

    @property
    def port(self) -> int | None:
        return urlsplit(self).port

    @property
    def path(self) -> str:
        return urlsplit(self).path

    @property
    def query(self) -> str:
        return urlsplit(self).query


class RequestView:
    """`__request__`: the HTTP request that carried the call, as far as a tool may see it.

    A stand-in for Open WebUI's FastAPI `Request`: `headers` (without `Authorization`, cookies
    or anything named like a credential), `url`, `base_url`, `method` and `query_params`.
    `cookies` is always empty, and there is no `app`: the Open WebUI application is not here.
    The headers are filtered when first read.
    """

    __slots__ = ("_given", "_headers", "method", "url")

    def __init__(self, method: str, url: str, headers: Mapping[str, str]) -> None:
        self.method = method
        self.url = URL(url)
        self._given = headers
        self._headers: Headers | None = None

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            self._headers = Headers(self._given)
        return self._headers

    @property
    def base_url(self) -> URL:
        parts = urlsplit(self.url)
        return URL(f"{parts.scheme}://{parts.netloc}/")

    @property
    def query_params(self) -> dict[str, str]:
        return dict(parse_qsl(self.url.query))

    @property
    def cookies(self) -> dict[str, str]:
        return {}

    @property
    def client(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"RequestView({self.method} {self.url})"


def context_from_headers(
    headers: Mapping[str, str],
    *,
    url: str | None = None,
    method: str = "POST",
    oauth_token: Mapping[str, Any] | None = None,
) -> CallContext:
    """The context the documented headers carry (see HEADERS), the request view when `url`
    is known, and the caller's OAuth token when it has one.

    Raises BadRequest when a JSON header is not valid JSON of the right shape.
    """
    fields: dict[str, Any] = {}
    for header in headers:  # one pass over the names: most requests carry none of these
        name = _FIELD_OF.get(header.lower())
        if name is None or name in fields:
            continue
        raw = headers[header]
        if not raw:
            continue
        where = f"the {HEADERS[name][0]} header"
        if name == "model" and not raw.lstrip().startswith("{"):
            fields[name] = _field(name, raw, where)
        elif name in _JSON_FIELDS or name == "model":
            fields[name] = _field(name, _json(raw, where), where)
        else:
            fields[name] = _field(name, raw, where)
    if url is not None:
        fields["request"] = RequestView(method, url, headers)
    if oauth_token is not None:
        fields["oauth_token"] = oauth_token
    return CallContext(**fields)


def oauth_token(authorization: str | None, expires_at: int | None) -> dict[str, Any] | None:
    """`__oauth_token__`: the caller's own bearer token, when the caller signed in with one
    that expires (a JWT from the identity provider); None for API keys and open mode."""
    if expires_at is None or not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return {"access_token": token.strip(), "token_type": "Bearer", "expires_at": expires_at}


def _field(name: str, value: Any, where: str) -> Any:
    if name in _TEXT_FIELDS:
        if not isinstance(value, str) or len(value) > 1024:
            raise BadRequest(f"{where}: expected a string of at most 1024 characters")
        return value
    if name == "metadata":
        if not isinstance(value, dict):
            raise BadRequest(f"{where}: expected a JSON object, found {_kind(value)}")
        _check_size(value, where)
        return value
    if name in ("files", "messages"):
        if not isinstance(value, list):
            raise BadRequest(f"{where}: expected a JSON array, found {_kind(value)}")
        _check_size(value, where)
        return tuple(value)
    # model: an object as given, or a bare id
    if isinstance(value, str) and value:
        return {"id": value, "name": value}
    if not isinstance(value, dict):
        raise BadRequest(f"{where}: expected a model id or a JSON object, found {_kind(value)}")
    _check_size(value, where)
    return value


def _json(raw: str, where: str) -> Any:
    if len(raw) > MAX_CONTEXT_BYTES:
        raise BadRequest(f"{where} is over {MAX_CONTEXT_BYTES} bytes")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"{where} is not valid JSON: {exc}") from None


def _check_size(value: Any, where: str) -> None:
    try:
        size = len(orjson.dumps(value))
    except TypeError as exc:
        raise BadRequest(f"{where}: not JSON: {exc}") from None
    if size > MAX_CONTEXT_BYTES:
        raise BadRequest(f"{where} is over {MAX_CONTEXT_BYTES} bytes as JSON")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
