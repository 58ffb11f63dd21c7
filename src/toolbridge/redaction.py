"""Redaction by value: every configured secret replaced by `MARKER` wherever it would leave us.

The secrets are the config's (callers' API keys, the JWT secret, upstream credentials, static
headers, fixed arguments and URL query values whose names say key, token, secret or password) and
the local tools' (valves so named, or typed `SecretStr`, or marked `json_schema_extra={"secret":
True}` or Open WebUI's `{"input": {"type": "password"}}`), plus the tokens fetched for upstreams as
they arrive. Each is also looked for as the spellings it takes on the way out: percent-encoded (an
echoed URL), JSON-escaped, and for basic credentials base64 (an echoed `Authorization`).

A `Secrets` is built once per generation (`generation.assemble`), so a reload updates it, and
costs a substring search per spelling per use (memmem, gigabytes a second); only a text that
holds one is rewritten, in one pass of a compiled alternation, longest spelling first. The edges use
it: the HTTP app's answers (`serve/redacting.py`), every log record (`install_log_redaction`,
which `serve` and the CLI install), the CLI's output. Values shorter than `MIN_LENGTH` are not
redacted (they would mask ordinary words); `Secrets.too_short` counts them for a warning.
"""

from __future__ import annotations

import base64
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import Any, TextIO, get_args

import orjson
from pydantic import BaseModel, SecretStr

from toolbridge.config import (
    ApiKeyAuth,
    BasicAuth,
    BearerAuth,
    Config,
    FilterEntry,
    LocalTools,
    OAuth2ClientCredentials,
    Server,
)
from toolbridge.secret_names import SECRET_NAME, STORE_KEY_ENV, spellings, url_secrets
from toolbridge.tools import PythonFunction, Tool

MARKER = "[redacted]"
MIN_LENGTH = 6
"""Shorter values are not redacted: masking `abc` everywhere would garble every answer."""
CUT_PREFIX = 3
"""A cut answer ending in this many or more of a secret's first characters has them masked
(`Secrets.cut`); fewer are too likely an ordinary word's end to tell."""


MAX_ADDED = 256
"""Secrets learned while serving (tokens fetched for upstreams with the config's credentials)
kept besides the config's, the newest: without a bound, months of hourly tokens would grow
every scan and every rebuild of the pattern. (A caller's own are the call's alone:
`call_secrets`.)"""


class Secrets:
    """A set of secret values and the pattern that finds any spelling of any of them: the
    config's (`values`), and up to `MAX_ADDED` learned while serving (`added`, newest last)."""

    def __init__(self, values: Iterable[str] = (), added: Iterable[str] = ()) -> None:
        kept = {v for v in values if isinstance(v, str) and v}
        fixed = frozenset(v for v in kept if len(v) >= MIN_LENGTH)
        self.too_short = len(kept) - len(fixed)
        self.added = tuple(
            v for v in dict.fromkeys(added) if isinstance(v, str) and len(v) >= MIN_LENGTH
        )[-MAX_ADDED:]
        self._fixed = fixed
        self.values = fixed | frozenset(self.added)
        spellings = sorted({s for v in self.values for s in _spellings(v)}, key=len, reverse=True)
        encoded = [s.encode("utf-8") for s in spellings]
        # Finding is a substring search per spelling (memmem: gigabytes a second); replacing,
        # rare, is one pass of the alternation, longest spelling first.
        self._spellings = tuple(spellings)
        self._encoded = tuple(encoded)
        self._text = re.compile("|".join(map(re.escape, spellings))) if spellings else None
        self._bytes = re.compile(b"|".join(map(re.escape, encoded))) if encoded else None

    def __bool__(self) -> bool:
        return self._text is not None

    def holds(self, values: Iterable[str]) -> bool:
        """Whether every value given (of redactable length) is already among these."""
        return all(v in self.values or len(v) < MIN_LENGTH for v in values)

    def adding(self, values: Iterable[str]) -> Secrets:
        """These secrets and some more learned while serving (a token fetched for an upstream,
        a caller's own credential), the oldest learned dropped past `MAX_ADDED`."""
        fresh = [v for v in values if v not in self._fixed]
        more = Secrets(self._fixed, [v for v in self.added if v not in fresh] + fresh)
        more.too_short = self.too_short
        return more

    def text(self, text: str) -> str:
        """`text` with every secret replaced by MARKER (the same object when there is none)."""
        if self._text is None or not any(s in text for s in self._spellings):
            return text
        return self._text.sub(MARKER, text)

    def bytes(self, data: bytes) -> bytes:
        """As `text`, for UTF-8 bytes."""
        if self._bytes is None or not any(s in data for s in self._encoded):
            return data
        return self._bytes.sub(MARKER.encode(), data)

    def cut(self, text: str) -> str:
        """`text`, whose end was cut at a size limit, redacted, and a secret's first
        `CUT_PREFIX` or more characters at its very end masked too: a cut inside a secret
        leaves its start, which no whole spelling matches."""
        text = self.text(text)
        for spelling in self._spellings:
            for length in range(min(len(spelling) - 1, len(text)), CUT_PREFIX - 1, -1):
                if text.endswith(spelling[:length]):
                    return text[:-length] + MARKER
        return text

    def binary(self, value: Any) -> Any:
        """A binary answer (`{"base64", "size", "content_type"}`, as `upstream.answers` writes
        one) with every secret in its bytes replaced by MARKER's bytes, and its base64 and
        size written anew: a base64 text hides a secret from `text` and `value`. Anything else,
        and a clean one, is the same object."""
        if self._bytes is None or not isinstance(value, dict) or len(value) != 3:
            return value  # (a large JSON object answer costs no set of its keys)
        if set(value) != _BINARY_KEYS:
            return value
        encoded = value["base64"]
        if not isinstance(encoded, str):
            return value
        try:
            data = base64.b64decode(encoded, validate=True)
        except ValueError:
            return value
        clean = self.bytes(data)
        if clean is data:
            return value
        return {**value, "base64": base64.b64encode(clean).decode("ascii"), "size": len(clean)}

    def value(self, value: Any) -> Any:
        """A JSON-like value with every string (and key) redacted; the same object when clean."""
        if self._text is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict | list | tuple):
            try:
                dumped = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
                if any(s in dumped for s in self._encoded):
                    return _walk(value, self.text)
                return value
            except TypeError:
                return _walk(value, self.text)
        return value


_BINARY_KEYS = frozenset(("base64", "size", "content_type"))


def _walk(value: Any, text: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return text(value)
    if isinstance(value, dict):
        return {text(k) if isinstance(k, str) else k: _walk(v, text) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_walk(v, text) for v in value]
    return value


def _spellings(value: str) -> set[str]:
    """How a secret may appear in an answer, an error or a log line (`spellings`), long enough
    to be told apart from other text."""
    return {s for s in spellings(value) if len(s) >= MIN_LENGTH}


# -- which values are secrets --------------------------------------------------------------------


def entry_secrets(entry: Any) -> list[str]:
    """The secrets a config entry may hold, read from it as it was sent (a JSON value, not yet
    checked: a refused one is never a Config to read them from): strings and numbers under names
    that say secret (a number as its JSON text), an `auth` mapping's `value` (an API key's), a URL's
    (`url_secrets`), at any depth; and a tool or filter entry's valves its `secret` list names (the
    names themselves are not secrets: an error about a valve says which)."""
    found: list[str] = []
    nodes: list[tuple[str, str, Any]] = [("", "", entry)]
    if isinstance(entry, dict) and isinstance(entry.get("secret"), list):
        valves = entry.get("valves")
        for name in entry["secret"]:
            value = valves.get(name) if isinstance(valves, dict) and isinstance(name, str) else None
            if isinstance(value, str | int | float):
                found.append(str(value))
        nodes = [("", "", {k: v for k, v in entry.items() if k != "secret"})]
    while nodes:
        parent, name, value = nodes.pop()
        if isinstance(value, str):
            if SECRET_NAME.search(name) or (parent == "auth" and name == "value"):
                found.append(value)
            if "://" in value or "@" in value:
                found.extend(url_secrets(value))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            if SECRET_NAME.search(name):
                found.append(orjson.dumps(value).decode())
        elif isinstance(value, dict):
            nodes.extend((name, str(k), v) for k, v in value.items())
        elif isinstance(value, list):
            nodes.extend((parent, name, v) for v in value)
    return found


def said_without(exc: Exception, values: Iterable[str]) -> None:
    """`exc`'s message (and an InvalidArguments' problems) with these secrets redacted, in
    place: an error about an entry that was refused may quote it, and its secrets are none of
    the gateway's yet."""
    secrets = Secrets(values)
    if not secrets:
        return
    exc.args = tuple(secrets.text(a) if isinstance(a, str) else a for a in exc.args)
    problems = getattr(exc, "problems", None)
    if isinstance(problems, list):
        exc.problems = [(path, secrets.text(message)) for path, message in problems]  # type: ignore[attr-defined]


def secrets_of(
    config: Config,
    tools: Iterable[Tool] = (),
    filters: Iterable[Any] = (),
    environ: Mapping[str, str] | None = None,
    fixed: Iterable[Mapping[str, Any]] = (),
) -> Secrets:
    """Every secret the config, the local tools of a catalog and the filters as loaded (their
    `Valves` objects, `instance.valves`) hold, and the state store's keys in the process's
    environment (`environ`, else `os.environ`): no config names them, and they open every
    secret stored. `fixed`: the arguments tools are served with (`Conversion.fixed`), which
    may be an earlier config's (a source whose reload failed keeps its last good tools)."""
    keys = (os.environ if environ is None else environ).get(STORE_KEY_ENV, "")
    found = [*config_secrets(config), *_valve_secrets(tools)]
    for values in fixed:
        found += argument_secrets(values)
    found += [key.strip() for key in keys.split(",") if key.strip()]
    for loaded in filters:
        valves = getattr(getattr(loaded, "instance", None), "valves", None)
        if isinstance(valves, BaseModel):
            found += valve_secrets(valves)
    return Secrets(found)


def config_secrets(config: Config) -> Iterator[str]:
    if config.state is not None and config.state.url is not None:  # a PostgreSQL password
        yield from url_secrets(config.state.url, name_as_token=False)
    auth = config.auth
    if auth is not None:
        if auth.rate_limit is not None and auth.rate_limit.redis:
            yield from url_secrets(auth.rate_limit.redis, name_as_token=False)
        yield from (k.key for k in auth.api_keys if k.key)
        if auth.jwt is not None:
            if auth.jwt.secret:
                yield auth.jwt.secret
            if auth.jwt.jwks:
                yield from url_secrets(auth.jwt.jwks)
    for server in config.servers:
        yield from _server_secrets(server)
    entries: list[LocalTools | FilterEntry] = [*config.tools, *config.filters]
    for entry in entries:
        yield from _named_secrets(entry.valves)
        listed = (entry.valves.get(name) for name in entry.secret)
        yield from (value for value in listed if isinstance(value, str))


def _server_secrets(server: Server) -> Iterator[str]:
    match server.auth:
        case BearerAuth(token=token):
            yield token
        case ApiKeyAuth(value=value):
            yield value
        case BasicAuth(username=user, password=password):
            yield password
            yield base64.b64encode(f"{user}:{password}".encode()).decode()
        case OAuth2ClientCredentials() as oauth:
            yield oauth.client_secret
            pair = f"{oauth.client_id}:{oauth.client_secret}"
            yield base64.b64encode(pair.encode()).decode()
            yield from url_secrets(oauth.token_url)
    yield from _named_secrets(server.headers)
    yield from argument_secrets(server.arguments)
    for settings in server.tools.values():
        yield from argument_secrets(settings.arguments)
    yield from url_secrets(server.spec)
    if server.base_url:
        yield from url_secrets(server.base_url)


def argument_secrets(values: Mapping[str, Any]) -> list[str]:
    """The secrets among fixed arguments (`arguments:`), as any config entry's are found
    (`entry_secrets`): strings and numbers under a name that says token, key, secret or
    password, at any depth (`client: {secret: ...}`, a list of keys)."""
    return entry_secrets({"arguments": dict(values)})


def _named_secrets(values: Mapping[str, Any]) -> Iterator[str]:
    for name, value in values.items():
        if isinstance(value, str) and SECRET_NAME.search(name):
            yield value.split(" ", 1)[1] if value.lower().startswith("bearer ") else value


def _valve_secrets(tools: Iterable[Tool]) -> Iterator[str]:
    seen: set[int] = set()
    for tool in tools:
        if not isinstance(tool.target, PythonFunction):
            continue
        valves = getattr(getattr(tool.target.func, "__self__", None), "valves", None)
        if not isinstance(valves, BaseModel) or id(valves) in seen:
            continue
        seen.add(id(valves))
        yield from valve_secrets(valves)


def valve_secrets(valves: BaseModel) -> Iterator[str]:
    """The values of a Valves or UserValves object's secret fields (`secret_fields`), and of
    any field that holds a `SecretStr` whatever its annotation says."""
    secret = secret_fields(type(valves))
    for name in type(valves).model_fields:
        value = getattr(valves, name, None)
        if isinstance(value, SecretStr):
            yield value.get_secret_value()
        elif isinstance(value, str) and name in secret:
            yield value


@lru_cache(maxsize=256)
def secret_fields(model: type[BaseModel]) -> frozenset[str]:
    """The fields of a Valves or UserValves model that hold secrets: typed `SecretStr`, marked
    `json_schema_extra={"secret": True}` (or Open WebUI's password input), or so named. Found
    once per model (a local tool's calls ask it each time)."""
    return frozenset(
        name
        for name, field in model.model_fields.items()
        if SecretStr in (field.annotation, *get_args(field.annotation))
        or _marked(field)
        or SECRET_NAME.search(name)
    )


def _marked(field: Any) -> bool:
    extra = field.json_schema_extra
    if not isinstance(extra, dict):
        return False
    shown = extra.get("input")
    return extra.get("secret") is True or (
        isinstance(shown, dict) and shown.get("type") == "password"
    )


# -- the edges: logs and output streams ----------------------------------------------------------

_source: list[Callable[[], Secrets]] = []


_CALL: ContextVar[Secrets | None] = ContextVar("toolbridge_call_secrets", default=None)
"""The secrets of the call being carried out in this context, when its caller brought some of
its own (`call_secrets`)."""


@contextmanager
def call_secrets(secrets: Secrets) -> Iterator[None]:
    """While the block runs, log records made in this context (this task, and the threads and
    tasks it starts, which copy the context) are redacted with `secrets` rather than the
    gateway's: a call's, the gateway's and its caller's own (a per-user credential, a forwarded
    header, secret UserValves). A caller's own secrets are never added to the gateway's, which
    every caller's answers are redacted with: a caller could otherwise make any word of
    everyone's answers a secret (`description`, `jsonrpc`)."""
    token = _CALL.set(secrets)
    try:
        yield
    finally:
        _CALL.reset(token)


def install_log_redaction(source: Callable[[], Secrets]) -> None:
    """Redact every log record of every logger, at every level, from now on: `source` answers
    the secrets in force (a gateway's current generation's). Idempotent; the latest source wins.

    It works at record creation (the record factory), so handlers configured later (uvicorn's)
    get redacted records too. httpx2's per-request INFO lines (full URLs) are turned off.
    """
    first = not _source
    _source[:] = [source]
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    if not first:
        return
    make = logging.getLogRecordFactory()
    formatter = logging.Formatter()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        secrets = _CALL.get() or (_source[0]() if _source else None)
        if not secrets:
            return record
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it itself later
            return record
        clean = secrets.text(message)
        if clean is not message:
            record.msg, record.args = clean, None
        if record.exc_info:
            record.exc_text = secrets.text(formatter.formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = secrets.text(record.stack_info)
        return record

    logging.setLogRecordFactory(factory)


def current_secrets() -> Secrets:
    """The secrets the installed log redaction uses (none before it is installed): the call's
    in this context, else the gateway's."""
    return _CALL.get() or (_source[0]() if _source else Secrets())


class RedactingStream:
    """A text stream (stdout, stderr) that redacts what is written, and its `.buffer` too."""

    def __init__(self, stream: TextIO, source: Callable[[], Secrets] = current_secrets) -> None:
        self._stream = stream
        self._source = source
        self.buffer = _RedactingBuffer(getattr(stream, "buffer", None), source)

    def write(self, text: str) -> int:
        self._stream.write(self._source().text(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _RedactingBuffer:
    def __init__(self, buffer: Any, source: Callable[[], Secrets]) -> None:
        self._buffer = buffer
        self._source = source

    def write(self, data: bytes) -> int:
        self._buffer.write(self._source().bytes(bytes(data)))
        return len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._buffer, name)
