"""`toolbridge.yaml` read into a validated, frozen `Config`; the only reader of the environment.

`${VAR}` and `${VAR:-default}` are substituted from the `environ` passed in. Unknown keys are
errors, and every error names the file, the line and the key path, what was expected and what
was found.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from toolbridge.errors import ConfigError
from toolbridge.yaml_loader import YamlLoader


class _ConfigLoader(yaml.SafeLoader):
    """YAML 1.2 scalars like documents, with the pure-Python parser's clearer error messages."""


_ConfigLoader.yaml_implicit_resolvers = YamlLoader.yaml_implicit_resolvers
_ConfigLoader.add_constructor(
    "tag:yaml.org,2002:int", YamlLoader.yaml_constructors["tag:yaml.org,2002:int"]
)

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_ID = r"^[A-Za-z][A-Za-z0-9_-]{0,39}$"
_METHODS = ("GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE")
_AUTH_TYPES = ("bearer", "api_key", "basic", "oauth2_client_credentials", "forward")
_AUTH_TYPES_TEXT = ", ".join(repr(t) for t in _AUTH_TYPES)


def _method(value: str) -> str:
    if value.upper() not in _METHODS:
        raise ValueError(f"unknown HTTP method {value!r} (expected one of {', '.join(_METHODS)})")
    return value.upper()


HttpMethod = Annotated[str, AfterValidator(_method)]


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


UpstreamAuth = Annotated[
    BearerAuth | ApiKeyAuth | BasicAuth | OAuth2ClientCredentials | ForwardAuth,
    Field(discriminator="type"),
]


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


class RateLimit(_Model):
    """Calls per minute per caller (or per caller and tool), with a burst allowance."""

    per_minute: Annotated[float, Field(gt=0)]
    burst: Annotated[int, Field(ge=1)] = 10
    per_tool: bool = False


class Auth(_Model):
    api_keys: tuple[ApiKey, ...] = ()
    jwt: Jwt | None = None
    rate_limit: RateLimit | None = None


class Audit(_Model):
    """Where the call log (one JSON line per call) goes: a file, or `-` for standard output."""

    file: str


class Mcp(_Model):
    """The `/mcp` endpoint."""

    page_size: Annotated[int, Field(ge=0, le=100_000)] = 1000
    """Tools per `tools/list` page (clients follow `nextCursor`); 0: all in one page."""


class Config(_Model):
    auth: Auth | None = None
    audit: Audit | None = None
    servers: tuple[Server, ...] = ()
    tools: tuple[LocalTools, ...] = ()
    mcp: Mcp = Mcp()
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
        _check_nodes(node, path)
        data = yaml.load(text, Loader=YamlLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
        raise ConfigError(f"{path}:{line}: not valid YAML: {exc.problem}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: expected a mapping at the top level, found {_kind(data)}")
    data = _substitute(data, environ, path, node, ())
    _check_unique_ids(data, path, node)
    try:
        return Config.model_validate({**data, "base_dir": path.resolve().parent})
    except ValidationError as exc:
        raise ConfigError(_explain(exc, path, node)) from None


def _check_nodes(root: Any, path: Path) -> None:
    """Refuse keys given twice in one mapping, and aliases that contain themselves."""
    if root is None:
        return
    stack: list[tuple[Any, tuple[Any, ...], frozenset[int]]] = [(root, (), frozenset())]
    while stack:
        node, where, above = stack.pop()
        if id(node) in above:
            line = node.start_mark.line + 1
            raise ConfigError(f"{path}:{line}: {_dotted(where)}: an alias contains itself")
        inside = above | {id(node)}
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in node.value:
                name = str(key.value)
                if name in seen:
                    line = key.start_mark.line + 1
                    raise ConfigError(
                        f"{path}:{line}: {_dotted((*where, name))}: key {name!r} is given twice"
                    )
                seen.add(name)
                stack.append((value, (*where, name), inside))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*where, i), inside) for i, item in enumerate(node.value))


def _check_unique_ids(data: dict[str, Any], path: Path, node: Any) -> None:
    """Every source (server or local tools entry) needs an id of its own."""
    seen: set[str] = set()
    for section in ("servers", "tools"):
        entries = data.get(section)
        if not isinstance(entries, list):
            continue
        for index, entry in enumerate(entries):
            ident = entry.get("id") if isinstance(entry, dict) else None
            if not isinstance(ident, str):
                continue
            if ident in seen:
                where = (section, index, "id")
                kind = "server" if section == "servers" else "tools"
                raise ConfigError(
                    f"{path}:{_locate(node, where)[0]}: {_dotted(where)}: "
                    f"{kind} id {ident!r} is used twice"
                )
            seen.add(ident)


def _substitute(
    value: Any, environ: Mapping[str, str], path: Path, node: Any, where: tuple[Any, ...]
) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, environ, path, node, (*where, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, environ, path, node, (*where, i)) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if environ.get(name):
            return environ[name]
        if default is not None:
            return default  # as in the shell, `:-` also replaces a set but empty variable
        if name in environ:
            return ""
        raise ConfigError(
            f"{path}:{_locate(node, where)[0]}: {_dotted(where)}: environment variable {name} "
            "is not set (write ${" + name + ":-default} to give a default)"
        )

    return _VAR.sub(replace, value)


_MESSAGES = {
    "list_type": "Input should be a list",
    "tuple_type": "Input should be a list",
    "dict_type": "Input should be a mapping",
    "model_type": "Input should be a mapping",
    "model_attributes_type": "Input should be a mapping",
}


def _explain(exc: ValidationError, path: Path, node: Any) -> str:
    lines = []
    for error in exc.errors():
        loc = _plain_loc(error["loc"])
        line, loc = _locate(node, loc)
        kind = error["type"]
        if kind == "extra_forbidden":
            message = f"unknown key {loc[-1]!r}"
        elif kind == "missing":
            message = f"required key {loc[-1]!r} is missing"
            loc = loc[:-1]
            line = _locate(node, loc)[0]
        elif kind == "union_tag_not_found":
            message = f"required key 'type' is missing (one of {_AUTH_TYPES_TEXT})"
        elif kind == "union_tag_invalid":
            found = error.get("input")
            found = found.get("type") if isinstance(found, dict) else found
            message = f"unknown type {found!r} (expected one of {_AUTH_TYPES_TEXT})"
        elif kind == "value_error":
            message = str(error["msg"]).removeprefix("Value error, ")
        else:
            # Only the kind of what was found: the value itself may be a secret.
            text = _MESSAGES.get(kind, error["msg"])
            message = f"{text} (found {_kind(error.get('input'))})"
        lines.append(f"{path}:{line}: {_dotted(loc) or '(top level)'}: {message}")
    return "\n".join(dict.fromkeys(lines))


def _plain_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """pydantic's location without the tags it adds for tagged unions (`auth.bearer.token`)."""
    out: list[Any] = []
    for part in loc:
        if out and out[-1] == "auth" and part in _AUTH_TYPES:
            continue
        out.append(part)
    return tuple(out)


def _locate(node: Any, where: tuple[Any, ...]) -> tuple[int, tuple[Any, ...]]:
    """The line of the YAML node at a key path (or of its nearest existing parent), and the key
    path as the file writes it: a single value given where a list is allowed has no index."""
    line = node.start_mark.line + 1 if node is not None else 1
    shown: list[Any] = []
    for index, part in enumerate(where):
        if node is None:
            shown.extend(where[index:])
            break
        if isinstance(node, yaml.MappingNode) and isinstance(part, int):
            continue
        child = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    child = value
                    line = key.start_mark.line + 1
                    break
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            child = node.value[part]
            line = child.start_mark.line + 1
        shown.append(part)
        node = child
    return line, tuple(shown)


def _dotted(where: tuple[Any, ...]) -> str:
    out = ""
    for part in where:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing"}.get(
        type(value), type(value).__name__
    )
