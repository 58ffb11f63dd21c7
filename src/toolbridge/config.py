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
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigError

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_ID = r"^[A-Za-z][A-Za-z0-9_-]{0,39}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Selection(_Model):
    """Operations to include or exclude; every given criterion must match."""

    tags: tuple[str, ...] = ()
    operations: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        known = {"GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"}
        for method in value:
            if method.upper() not in known:
                raise ValueError(f"unknown HTTP method {method!r}")
        return tuple(m.upper() for m in value)


class Grant(_Model):
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()


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
    access: Grant | tuple[Grant, ...] | None = None


class LocalTools(_Model):
    """A local Python tools file, folder or module."""

    id: Annotated[str, Field(pattern=_ID)]
    path: str | None = None
    module: str | None = None
    valves: Mapping[str, Any] = {}
    prefix: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,19}$")] | None = None
    access: Grant | tuple[Grant, ...] | None = None


class ApiKey(_Model):
    user: str
    key: str | None = None
    key_sha256: str | None = None
    groups: tuple[str, ...] = ()
    admin: bool = False


class Jwt(_Model):
    secret: str | None = None
    jwks: str | None = None
    issuer: str | None = None
    audience: str | None = None
    user_claim: str = "sub"
    groups_claim: str = "groups"


class Auth(_Model):
    api_keys: tuple[ApiKey, ...] = ()
    jwt: Jwt | None = None


class Config(_Model):
    auth: Auth | None = None
    servers: tuple[Server, ...] = ()
    tools: tuple[LocalTools, ...] = ()
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
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
        raise ConfigError(f"{path}:{line}: not valid YAML: {exc.problem}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: expected a mapping at the top level, found {_kind(data)}")
    data = _substitute(data, environ, path, node, ())
    try:
        return Config.model_validate({**data, "base_dir": path.resolve().parent})
    except ValidationError as exc:
        raise ConfigError(_explain(exc, path, node)) from None


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
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise ConfigError(
            f"{path}:{_line(node, where)}: {_dotted(where)}: environment variable {name} "
            "is not set (write ${" + name + ":-default} to give a default)"
        )

    return _VAR.sub(replace, value)


def _explain(exc: ValidationError, path: Path, node: Any) -> str:
    lines = []
    for error in exc.errors():
        loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p[:1].isupper()))
        loc = tuple(p for p in loc if p not in ("bearer", "api_key", "basic", "forward"))
        if error["type"] == "extra_forbidden":
            message = f"unknown key {loc[-1]!r}"
        elif error["type"] == "missing":
            message = f"required key {loc[-1]!r} is missing"
            loc = loc[:-1]
        else:
            # Only the kind of what was found: the value itself may be a secret.
            message = f"{error['msg']} (found {_kind(error.get('input'))})"
        lines.append(f"{path}:{_line(node, loc)}: {_dotted(loc) or '(top level)'}: {message}")
    return "\n".join(lines)


def _line(node: Any, where: tuple[Any, ...]) -> int:
    """The line of the YAML node at a key path (or of its nearest existing parent)."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in where:
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
        if child is None:
            break
        node = child
    return line


def _dotted(where: tuple[Any, ...]) -> str:
    out = ""
    for part in where:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing"}.get(
        type(value), type(value).__name__
    )
