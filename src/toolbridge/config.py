"""`toolbridge.yaml` read into a validated, frozen `Config`; the only reader of the environment.

`${VAR}` and `${VAR:-default}` are substituted from the `environ` passed in. Unknown keys are
errors, and every error names the file, the line and the key path, what was expected and what
was found.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from toolbridge.errors import ConfigError
from toolbridge.yaml_loader import YamlLoader
from toolbridge.yaml_paths import check_nodes, dotted, explain, kind_of, locate, substitute


class _ConfigLoader(yaml.SafeLoader):
    """YAML 1.2 scalars like documents, with the pure-Python parser's clearer error messages."""


_ConfigLoader.yaml_implicit_resolvers = YamlLoader.yaml_implicit_resolvers
_ConfigLoader.add_constructor(
    "tag:yaml.org,2002:int", YamlLoader.yaml_constructors["tag:yaml.org,2002:int"]
)

_ID = r"^[A-Za-z][A-Za-z0-9_-]{0,39}$"
_METHODS = ("GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE")
_AUTH_TYPES = ("bearer", "api_key", "basic", "oauth2_client_credentials", "forward", "per_user")


def _method(value: str) -> str:
    if value.upper() not in _METHODS:
        raise ValueError(f"unknown HTTP method {value!r} (expected one of {', '.join(_METHODS)})")
    return value.upper()


HttpMethod = Annotated[str, AfterValidator(_method)]


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


def _jmespath(value: str) -> str:
    import jmespath
    from jmespath.exceptions import JMESPathError

    try:
        jmespath.compile(value)
    except JMESPathError as exc:
        where = getattr(exc, "lex_position", None)
        at = f" at character {where}" if isinstance(where, int) else ""
        reason = getattr(exc, "msg", None) or str(exc)
        raise ValueError(f"not a JMESPath expression: {reason}{at}") from None
    return value


class ResultBudget(_Model):
    """What of a tool's answer reaches the model: a JMESPath selection, then a size cap."""

    select: Annotated[str, AfterValidator(_jmespath)] | None = None
    """A JMESPath expression applied to a successful JSON answer (`items[].{id: id}`)."""
    max_bytes: Annotated[int, Field(ge=256, le=MAX_RESULT_BYTES)] | None = None
    """The answer's size as compact JSON, at most; arrays are cut to fit, and say so."""


class ToolSettings(_Model):
    """Settings for one tool of a server, by the tool's name or operationId."""

    result: ResultBudget | None = None


class Server(_Model):
    """A remote OpenAPI service."""

    id: Annotated[str, Field(pattern=_ID)]
    spec: str
    base_url: str | None = None
    prefix: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,19}$")] | None = None
    auth: UpstreamAuth | None = None
    headers: Mapping[str, str] = {}
    include: Selection | None = None
    exclude: Selection | None = None
    timeout: Annotated[float, Field(gt=0, le=600)] = 30.0
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


class LocalTools(_Model):
    """A local Python tools file, folder or module."""

    id: Annotated[str, Field(pattern=_ID)]
    path: str | None = None
    module: str | None = None
    valves: Mapping[str, Any] = {}
    prefix: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,19}$")] | None = None
    install_requirements: bool = False
    """Install the `requirements` a tool file's frontmatter names (package specifiers only)."""
    timeout: Annotated[float, Field(gt=0, le=3600)] | None = None
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
    priority: int | None = None
    """Lower runs first (inlets; outlets too, as in Open WebUI); default: the file's
    `Valves.priority`, else 0. Ties run in id order."""
    required: bool = False
    """When its outlet fails (or it cannot be loaded), the result is withheld instead of
    passed on unfiltered."""
    timeout: Annotated[float, Field(gt=0, le=600)] = 30.0
    """Seconds one inlet or outlet may take; longer counts as raising."""


class ApiKey(_Model):
    user: str
    key: str | None = None
    key_sha256: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")] | None = None
    groups: tuple[str, ...] = ()
    admin: bool = False

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
    leeway: Annotated[float, Field(ge=0, le=300)] = 30.0

    @model_validator(mode="after")
    def _one_key_source(self) -> Jwt:
        if (self.secret is None) == (self.jwks is None):
            raise ValueError("give exactly one of `secret` (HS256) and `jwks` (RS256, ES256)")
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

    per_minute: Annotated[float, Field(gt=0)]
    burst: Annotated[int, Field(ge=1)] = 10
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


class Auth(_Model):
    api_keys: tuple[ApiKey, ...] = ()
    jwt: Jwt | None = None
    rate_limit: RateLimit | None = None


class Audit(_Model):
    """Where the call log (one JSON line per call) goes: a file, or `-` for standard output."""

    file: str


class State(_Model):
    """Where the gateway keeps what it learns at run time (see `toolbridge.state`)."""

    url: str
    """`sqlite:///PATH` (relative to this file; `sqlite:////abs/path` for an absolute one) or
    `postgresql://USER:PASSWORD@HOST:PORT/DB` (several gateways sharing one store)."""

    @field_validator("url")
    @classmethod
    def _state_url(cls, value: str) -> str:
        _scheme(value, ("sqlite", "postgresql", "postgres"), "sqlite:///PATH or postgresql://...")
        if value.startswith("sqlite:") and (
            not value.startswith("sqlite:///") or value == "sqlite:///"
        ):
            raise ValueError("expected sqlite:///PATH (three slashes, then the file's path)")
        return value


class ToolsetInclude(_Model):
    """Which tools a toolset holds: every criterion given must match (any of its values)."""

    sources: tuple[str, ...] = ()
    """Source ids (servers and local tools entries)."""
    tags: tuple[str, ...] = ()
    methods: tuple[HttpMethod, ...] = ()
    """Local tools count as POST, or GET when marked read-only (as in `access`)."""
    tools: tuple[str, ...] = ()
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


class Config(_Model):
    auth: Auth | None = None
    audit: Audit | None = None
    state: State | None = None
    servers: tuple[Server, ...] = ()
    tools: tuple[LocalTools, ...] = ()
    filters: tuple[FilterEntry, ...] = ()
    toolsets: tuple[Toolset, ...] = ()
    watch: bool = True
    """Reload when the config file (or a local tool file) changes on disk."""
    base_dir: Path = Path(".")
    """The folder relative paths in the file are resolved against (the file's own folder)."""

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
        sources = {s.id for s in info.data.get("servers", ())}
        sources |= {t.id for t in info.data.get("tools", ())}
        for index, entry in enumerate(value):
            unknown = [s for s in entry.sources if s not in sources]
            if unknown:
                raise ValueError(
                    f"[{index}].sources of filter {entry.id!r}: "
                    f"{', '.join(map(repr, unknown))} is no server or tools id"
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


def load_config(path: Path, environ: Mapping[str, str]) -> Config:
    """Read and validate a config file; raises ConfigError naming file, line and key path."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: cannot be read: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} "
            f"at offset {exc.start})"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    try:
        node = yaml.compose(text, Loader=_ConfigLoader)
        check_nodes(node, path)
        data = yaml.load(text, Loader=YamlLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
        raise ConfigError(f"{path}:{line}: not valid YAML: {exc.problem}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: expected a mapping at the top level, found {kind_of(data)}")
    data = substitute(data, environ, path, node, ())
    _check_unique_ids(data, path, node)
    try:
        return Config.model_validate({**data, "base_dir": path.resolve().parent})
    except ValidationError as exc:
        raise ConfigError(explain(exc, path, node, union_tags=_AUTH_TYPES)) from None


def _check_unique_ids(data: dict[str, Any], path: Path, node: Any) -> None:
    """Every source (server, local tools or filter entry) needs an id of its own; so does a
    toolset."""
    sources: set[str] = set()
    for section in ("servers", "tools", "filters", "toolsets"):
        seen = sources if section != "toolsets" else set()
        entries = data.get(section)
        if not isinstance(entries, list):
            continue
        for index, entry in enumerate(entries):
            ident = entry.get("id") if isinstance(entry, dict) else None
            if not isinstance(ident, str):
                continue
            if ident in seen:
                where = (section, index, "id")
                kind = {
                    "servers": "server",
                    "tools": "tools",
                    "filters": "filter",
                    "toolsets": "toolset",
                }[section]
                raise ConfigError(
                    f"{path}:{locate(node, where)[0]}: {dotted(where)}: "
                    f"{kind} id {ident!r} is used twice"
                )
            seen.add(ident)


def validate_entry(model: type[M], entry: Any, where: str) -> M:
    """One entry (a server, a tools entry) given through the admin API, checked as a
    `toolbridge.yaml` entry is: `where` (`servers[pets]`) stands for the file and line."""
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping, found {kind_of(entry)}")
    try:
        return model.model_validate(entry)
    except ValidationError as exc:
        lines = explain(exc, Path("-"), None, union_tags=_AUTH_TYPES).splitlines()
        placed = (_placed(where, line.removeprefix("-:1: ")) for line in lines)
        raise ConfigError("\n".join(placed)) from None


def line_of(path: Path, where: tuple[Any, ...]) -> int:
    """The line of a key path in a config file (or of its nearest parent), for reports that
    point into the file after it was loaded; 0 when the file cannot be read again."""
    try:
        return locate(yaml.compose(path.read_text("utf-8"), Loader=_ConfigLoader), where)[0]
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return 0


def _placed(where: str, line: str) -> str:
    """`servers[x]` and `auth: ...` as `servers[x].auth: ...`."""
    if line.startswith("(top level)"):
        return where + line.removeprefix("(top level)")
    return f"{where}.{line}" if not line.startswith("[") else where + line
