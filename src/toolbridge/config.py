"""What a valid `toolbridge.yaml` is: the frozen pydantic models of every key.

Unknown keys are errors. Reading the file (the environment's `${VAR}`s, line numbers, the
error messages) is `config_file.py`'s.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    ValidationInfo,
    field_validator,
    model_validator,
)

from toolbridge.config_values import AllowedHost, Float, HttpMethod, Int, ProxyUrl
from toolbridge.http_values import absolute_url, header_problem, sendable_headers
from toolbridge.selects import checked_select

_ID = r"^[A-Za-z][A-Za-z0-9_-]{0,39}$"
AUTH_TYPES = ("bearer", "api_key", "basic", "oauth2_client_credentials", "forward", "per_user")


M = TypeVar("M", bound=BaseModel)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Selection(_Model):
    """Operations to include or exclude; every given criterion must match."""

    tags: tuple[str, ...] = ()
    operations: tuple[str, ...] = ()
    methods: tuple[HttpMethod, ...] = ()
    paths: tuple[str, ...] = ()


class Grant(_Model):
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    methods: tuple[HttpMethod, ...] = ()


def _grants(value: Any) -> Any:
    """`access` takes one grant or a list of them."""
    return [value] if isinstance(value, dict | Grant) else value


Grants = Annotated[tuple[Grant, ...], BeforeValidator(_grants)]


class BearerAuth(_Model):
    type: Literal["bearer"]
    token: str


class ApiKeyAuth(_Model):
    type: Literal["api_key"]
    value: str
    name: str | None = None
    location: Literal["header", "query", "cookie"] | None = Field(default=None, alias="in")


class BasicAuth(_Model):
    type: Literal["basic"]
    username: str
    password: str


class OAuth2ClientCredentials(_Model):
    type: Literal["oauth2_client_credentials"]
    token_url: str
    client_id: str
    client_secret: str
    scopes: tuple[str, ...] = ()


class ForwardAuth(_Model):
    type: Literal["forward"]
    header: str = "Authorization"


class PerUserAuth(_Model):
    """Each caller's own credential, stored with `PUT /v1/me/credentials/{server_id}`."""

    type: Literal["per_user"]
    scheme: Literal["bearer", "api_key", "basic"] = "bearer"
    name: str | None = None
    """For `api_key`: the header, query parameter or cookie (else the document's scheme says)."""
    location: Literal["header", "query", "cookie"] | None = Field(default=None, alias="in")

    @property
    def fields(self) -> tuple[str, ...]:
        """What a caller's stored credential holds, by scheme."""
        return {"bearer": ("token",), "api_key": ("value",), "basic": ("username", "password")}[
            self.scheme
        ]

    def with_secret(self, secret: Mapping[str, str]) -> BearerAuth | ApiKeyAuth | BasicAuth:
        """The auth a call by one caller uses: this scheme with the caller's stored values."""
        missing = [f for f in self.fields if not isinstance(secret.get(f), str)]
        if missing or set(secret) - set(self.fields):
            raise ValueError(
                f"expected the fields {', '.join(self.fields)} (strings), "
                f"found {', '.join(sorted(secret)) or 'none'}"
            )
        carried = {"bearer": "token", "api_key": "value" if self.location != "query" else None}
        field = carried.get(self.scheme)
        if field is not None and header_problem(secret[field]) is not None:
            raise ValueError(
                f"{field}: holds a character no HTTP header can carry (a line break, a control "
                "character, or one outside ISO-8859-1)"
            )
        match self.scheme:
            case "bearer":
                return BearerAuth(type="bearer", token=secret["token"])
            case "api_key":
                fields = {"type": "api_key", "value": secret["value"], "name": self.name}
                return ApiKeyAuth.model_validate({**fields, "in": self.location})
            case "basic":
                return BasicAuth(
                    type="basic", username=secret["username"], password=secret["password"]
                )


UpstreamAuth = Annotated[
    BearerAuth | ApiKeyAuth | BasicAuth | OAuth2ClientCredentials | ForwardAuth | PerUserAuth,
    Field(discriminator="type"),
]


MAX_RESULT_BYTES = 4 * 1024 * 1024
"""The largest `result.max_bytes`: answers are cut at this size anyway."""


class ResultBudget(_Model):
    """What of a tool's answer reaches the model: a JMESPath selection, then a size cap."""

    select: Annotated[str, AfterValidator(checked_select)] | None = None
    """A JMESPath expression applied to a successful JSON answer (`items[].{id: id}`)."""
    max_bytes: Annotated[Int, Field(ge=256, le=MAX_RESULT_BYTES)] | None = None
    """The answer's size as compact JSON, at most; arrays are cut to fit, and say so."""


Arguments = Mapping[Annotated[str, Field(min_length=1)], JsonValue]
"""Fixed arguments: document parameters (by name) and the values the config gives them."""


class ToolSettings(_Model):
    """Settings for one tool of a server, by the tool's name or operationId."""

    result: ResultBudget | None = None
    arguments: Arguments = {}
    """Fixed arguments of this tool alone, over the server's (`fixed_arguments`)."""


class Server(_Model):
    """A remote OpenAPI service."""

    id: Annotated[str, Field(pattern=_ID)]
    spec: str
    base_url: Annotated[str | None, AfterValidator(absolute_url)] = None
    prefix: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,19}$")] | None = None
    auth: UpstreamAuth | None = None
    headers: Annotated[Mapping[str, str], AfterValidator(sendable_headers)] = {}
    arguments: Arguments = {}
    """Document parameters (by name) whose values the config gives: sent on every call, not
    asked of the model; `null` leaves an optional one out (`fixed_arguments`)."""
    include: Selection | None = None
    exclude: Selection | None = None
    timeout: Annotated[Float, Field(gt=0, le=600)] = 30.0
    access: Grants | None = None
    on_change: Literal["apply", "hold"] = "apply"
    """`hold`: a changed document is not served until `POST /v1/admin/sources/{id}/approve`."""
    result: ResultBudget | None = None
    """The result budget of every tool of this server (a tool's own `tools` entry wins)."""
    tools: Mapping[str, ToolSettings] = {}
    """Per tool (its name or operationId): settings that differ from the server's."""
    output_schema: Literal["withhold", "publish"] = "withhold"
    """`publish`: promise MCP clients that answers fit the document's response schemas
    (`outputSchema`); by default they are only checked, and mismatches counted."""
    # Hosts (`host[:port]`; no port: 80 and 443) a document may name besides the configured origin.
    allowed_hosts: tuple[AllowedHost, ...] = ()
    ca_file: str | None = None  # PEM certificates trusted instead of the system's
    client_cert: str | None = None  # PEM client certificate (mTLS); with client_key unless in it
    client_key: str | None = None
    proxy: ProxyUrl | None = None  # else HTTPS_PROXY / HTTP_PROXY / ALL_PROXY, minus NO_PROXY
    max_concurrency: Annotated[Int, Field(ge=1, le=100_000)] | None = None  # more: 503 busy

    @model_validator(mode="after")
    def _key_needs_cert(self) -> Server:
        if self.client_key is not None and self.client_cert is None:
            raise ValueError("client_key is given without client_cert")
        return self


class LocalTools(_Model):
    """A local Python tools file, folder or module."""

    id: Annotated[str, Field(pattern=_ID)]
    path: str | None = None
    module: str | None = None
    valves: Mapping[str, Any] = {}
    secret: tuple[str, ...] = ()
    """Valves that hold secrets besides those whose names or types say so (redacted wherever
    they would leave; the admin API's `secret`, sealed at rest)."""
    prefix: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,19}$")] | None = None
    install_requirements: bool = False
    """Install the `requirements` a tool file's frontmatter names (package specifiers only)."""
    timeout: Annotated[Float, Field(gt=0, le=3600)] | None = None
    """Seconds a call of one of these tools may take (default 60)."""
    access: Grants | None = None


class FilterEntry(_Model):
    """A file with an Open WebUI-style `class Filter` whose `inlet` and `outlet` run around
    every tool call in its scope (remote and local)."""

    id: Annotated[str, Field(pattern=_ID)]
    path: str | None = None
    module: str | None = None
    sources: tuple[str, ...] = ()
    """Ids of the servers and tools entries whose calls it filters; empty: every source."""
    tools: tuple[str, ...] = ()
    """Tool-name globs it filters; empty: every tool of its sources."""
    valves: Mapping[str, Any] = {}
    secret: tuple[str, ...] = ()
    """Valves that hold secrets besides those whose names or types say so."""
    priority: Int | None = None
    """Lower runs first (inlets; outlets too, as in Open WebUI); default: the file's
    `Valves.priority`, else 0. Ties run in id order."""
    required: bool = False
    """When its outlet fails (or it cannot be loaded), the result is withheld instead of
    passed on unfiltered."""
    timeout: Annotated[Float, Field(gt=0, le=600)] = 30.0
    """Seconds one inlet or outlet may take; longer counts as raising."""
    switched_on: bool = False
    """For a filter whose file sets `toggle = True` (a switch a person flips in Open WebUI's
    chat, off until then): run it. Without this it stays off, there being no chat to flip it in."""


class ApiKey(_Model):
    user: str
    key: str | None = None
    key_sha256: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")] | None = None
    groups: tuple[str, ...] = ()
    admin: bool = False
    name: str | None = None
    """The caller's display name (`__user__["name"]`); default: `user`."""
    email: str | None = None
    """The caller's e-mail (`__user__["email"]`, which tools use as who to write to)."""

    @model_validator(mode="after")
    def _one_key(self) -> ApiKey:
        if (self.key is None) == (self.key_sha256 is None):
            raise ValueError("give exactly one of `key` and `key_sha256`")
        return self


class Jwt(_Model):
    """Bearer JWTs: HS256 with a shared `secret`, or RS256/ES256 with keys from `jwks`."""

    secret: str | None = None
    jwks: str | None = None
    """A JWKS file (relative to the config) or an http(s) URL."""
    issuer: str | None = None
    audience: str | None = None
    user_claim: str = "sub"
    groups_claim: str = "groups"
    admin_group: str | None = None
    """Members of this group (in the groups claim) are admins."""
    leeway: Annotated[Float, Field(ge=0, le=300)] = 30.0

    @model_validator(mode="after")
    def _one_key_source(self) -> Jwt:
        if (self.secret is None) == (self.jwks is None):
            raise ValueError("give exactly one of `secret` (HS256) and `jwks` (RS256, ES256)")
        if self.secret is not None and len(self.secret) < MIN_KEY_LENGTH:
            # Shorter values are not redacted either (they would garble answers).
            raise ValueError(
                f"secret: shorter than {MIN_KEY_LENGTH} characters (HS256 wants 32 or more: "
                "e.g. `openssl rand -hex 32`)"
            )
        return self


def _scheme(value: str, allowed: tuple[str, ...], shape: str) -> str:
    """Check a URL's scheme; the error names the scheme only (the URL may hold a password)."""
    scheme = value.partition("://")[0] if "://" in value else None
    if scheme not in allowed:
        found = f"scheme {scheme!r}" if scheme else "no scheme"
        raise ValueError(f"expected {shape}, found a URL with {found}")
    return value


class RateLimit(_Model):
    """Calls per minute per caller (or per caller and tool), with a burst allowance."""

    per_minute: Annotated[Float, Field(gt=0)]
    burst: Annotated[Int, Field(ge=1)] = 10
    per_tool: bool = False
    redis: str | None = None
    """`redis://HOST:PORT/DB` (or `rediss://`, `unix://`): count the limits once, there, for
    every gateway process; without it each process counts its own."""

    @field_validator("redis")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return _scheme(value, ("redis", "rediss", "unix"), "redis://HOST:PORT/DB")


MIN_KEY_LENGTH = 6
"""An API key shorter than this is refused: it is guessed at once, and too short to be redacted
(`redaction.MIN_LENGTH`) wherever it is echoed."""


class Auth(_Model):
    api_keys: tuple[ApiKey, ...] = ()
    jwt: Jwt | None = None
    rate_limit: RateLimit | None = None
    metrics: Literal["public", "callers", "admins"] = "public"
    """Who may read `GET /metrics` (it names the tools called, admin-only ones too): anyone,
    any caller with a key or token (a scraper's key with no grants), or admins only."""

    @model_validator(mode="after")
    def _keys_of_their_own(self) -> Auth:
        """Each key long enough, and each caller's own: a key given twice is the first entry's
        only, so the second caller (an admin, say) would be somebody else."""
        seen: dict[str, int] = {}
        for index, entry in enumerate(self.api_keys):
            if entry.key is not None and len(entry.key) < MIN_KEY_LENGTH:
                raise ValueError(
                    f"api_keys[{index}].key: shorter than {MIN_KEY_LENGTH} characters (use a "
                    "long random one, e.g. `openssl rand -hex 24`)"
                )
            digest = entry.key_sha256 or hashlib.sha256((entry.key or "").encode()).hexdigest()
            first = seen.setdefault(digest.lower(), index)
            if first != index:
                raise ValueError(
                    f"api_keys[{first}] ({self.api_keys[first].user}) and api_keys[{index}] "
                    f"({entry.user}) have the same key: each caller needs a key of their own"
                )
        return self


class Audit(_Model):
    """Where the call log (one JSON line per call) goes: a file, or `-` for standard output."""

    file: str


class State(_Model):
    """Where the gateway keeps what it learns at run time (see `toolbridge.state`)."""

    url: str | None = None
    """`sqlite:///PATH` (relative to this file; `sqlite:////abs/path` for an absolute one) or
    `postgresql://USER:PASSWORD@HOST:PORT/DB` (several gateways sharing one store); by
    default, `toolbridge-state.db` beside this file."""
    audit_days: int | None = Field(default=365, ge=1, le=36_500)
    """Days the admin audit log keeps an entry (null: for ever); older ones are deleted. A year
    by default: what audit standards commonly ask an audit trail to be kept (PCI DSS, SOC 2)."""

    @field_validator("url")
    @classmethod
    def _state_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        _scheme(value, ("sqlite", "postgresql", "postgres"), "sqlite:///PATH or postgresql://...")
        if value.startswith("sqlite:") and (
            not value.startswith("sqlite:///") or value == "sqlite:///"
        ):
            raise ValueError("expected sqlite:///PATH (three slashes, then the file's path)")
        return value


def _given(value: tuple[Any, ...]) -> tuple[Any, ...]:
    if not value:  # none would match, or, as "no criterion", all: neither is meant
        raise ValueError("expected one value at least, found an empty list (else leave it out)")
    return value


Criterion = Annotated[tuple[str, ...], AfterValidator(_given)]
"""A toolset's criterion, when given: one value at least."""


class ToolsetInclude(_Model):
    """Which tools a toolset holds: every criterion given must match (any of its values)."""

    sources: Criterion = ()
    """Source ids (servers and local tools entries)."""
    tags: Criterion = ()
    methods: Annotated[tuple[HttpMethod, ...], AfterValidator(_given)] = ()
    """Local tools count as POST, or GET when marked read-only (as in `access`)."""
    tools: Criterion = ()
    """Tool-name globs (`issues_*`)."""


class Toolset(_Model):
    """A named part of the catalog, served as its own MCP endpoint and OpenAPI document."""

    id: Annotated[str, Field(pattern=_ID)]
    description: str = ""
    include: ToolsetInclude = ToolsetInclude()
    descriptions: Mapping[str, str] = {}
    """Per tool name: the description the toolset's clients see instead of the tool's own."""
    discovery: Literal["list", "search"] = "list"
    """`search`: clients see three tools (search, describe, call) instead of the toolset's."""


class Http(_Model):
    """The HTTP edge: which Host and Origin headers are taken, and the connection limits."""

    allowed_hosts: tuple[str, ...] | None = None
    """Host header values taken (`name`, `name:port`, `*.domain`, `*`). Default: any host with
    `auth`, loopback names only (localhost, 127.0.0.1, [::1]) in open mode."""
    allowed_origins: tuple[str, ...] | None = None
    """Origin header values taken besides the gateway's own (`https://app.example`, `*`).
    Default: none with `auth`; loopback origins in open mode."""
    header_timeout: Annotated[Float, Field(gt=0, le=300)] = 10.0
    """Seconds a client has, from connecting (or from the first byte of a request on a kept-
    alive connection), to send a request's whole head."""
    body_timeout: Annotated[Float, Field(gt=0, le=3600)] = 60.0
    """Seconds a client has, from the end of the head, to send the whole body."""
    keep_alive_timeout: Annotated[Float, Field(gt=0, le=300)] = 5.0
    """Seconds an idle kept-alive connection stays open."""
    max_header_bytes: Annotated[Int, Field(ge=1024, le=1024 * 1024)] = 32 * 1024
    """Bytes of request line and headers; more is answered 431."""
    max_headers: Annotated[Int, Field(ge=8, le=1000)] = 100
    """Header fields in one request; more is answered 431."""
    shutdown_delay: Annotated[Float, Field(ge=0, le=300)] = 0.0
    """Seconds between SIGTERM and the stop, while `/readyz` answers 503 and requests are still
    served, for a load balancer to stop sending any (serve/draining.py). 0: stop at once."""


class Mcp(_Model):
    """The `/mcp` endpoint."""

    page_size: Annotated[Int, Field(ge=0, le=100_000)] = 1000
    """Tools per `tools/list` page (clients follow `nextCursor`); 0: all in one page."""


class Config(_Model):
    auth: Auth | None = None
    audit: Audit | None = None
    state: State | None = None
    http: Http = Http()
    servers: tuple[Server, ...] = ()
    tools: tuple[LocalTools, ...] = ()
    filters: tuple[FilterEntry, ...] = ()
    toolsets: tuple[Toolset, ...] = ()
    mcp: Mcp = Mcp()
    watch: bool = True
    """Reload when the config file (or a local tool file) changes on disk."""
    base_dir: Path = Path(".")
    """The folder relative paths in the file are resolved against (the file's own folder)."""
    proxy_environment: Mapping[str, str] = {}
    """The proxy variables of the environment the file was read in (`proxy_environment()`)."""

    @field_validator("servers")
    @classmethod
    def _unique_servers(cls, value: tuple[Server, ...]) -> tuple[Server, ...]:
        seen: set[str] = set()
        for server in value:
            if server.id in seen:
                raise ValueError(f"server id {server.id!r} is used twice")
            seen.add(server.id)
        return value

    @field_validator("filters")
    @classmethod
    def _filter_scopes(
        cls, value: tuple[FilterEntry, ...], info: ValidationInfo
    ) -> tuple[FilterEntry, ...]:
        if "servers" not in info.data or "tools" not in info.data:
            return value  # those are wrong: what they would say is said there
        sources = {s.id for s in info.data["servers"]} | {t.id for t in info.data["tools"]}
        for index, entry in enumerate(value):
            unknown = [s for s in entry.sources if s not in sources]
            if unknown:
                raise ValueError(
                    f"[{index}].sources: {', '.join(map(repr, unknown))} is no server or tools "
                    f"id (filter {entry.id!r})"
                )
        return value

    @field_validator("toolsets")
    @classmethod
    def _unique_toolsets(cls, value: tuple[Toolset, ...]) -> tuple[Toolset, ...]:
        seen: set[str] = set()
        for toolset in value:
            if toolset.id in seen:
                raise ValueError(f"toolset id {toolset.id!r} is used twice")
            seen.add(toolset.id)
        return value
