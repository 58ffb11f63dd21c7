"""`toolbridge.yaml` read into a validated, frozen `Config`; the only reader of the environment.

`${VAR}` and `${VAR:-default}` are substituted from the `environ` passed in (so are the proxy
variables). Every error names the file, the line and the key path, what was expected and what
was found; an entry given through the admin API is checked the same way (`validate_entry`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from toolbridge.config import AUTH_TYPES, Config, FilterEntry, LocalTools
from toolbridge.errors import ConfigError
from toolbridge.yaml_limits import ShapeError, check_shape
from toolbridge.yaml_loader import YamlLoader
from toolbridge.yaml_paths import check_nodes, dotted, explain, kind_of, locate, substitute

DEFAULT_CONFIG = "toolbridge.yaml"
"""The config file read when none is named (`-c`), in the working directory."""

M = TypeVar("M", bound=BaseModel)


class _ConfigLoader(yaml.SafeLoader):
    """YAML 1.2 scalars like documents, with the pure-Python parser's clearer error messages."""


_ConfigLoader.yaml_implicit_resolvers = YamlLoader.yaml_implicit_resolvers
_ConfigLoader.add_constructor(
    "tag:yaml.org,2002:int", YamlLoader.yaml_constructors["tag:yaml.org,2002:int"]
)


def _check_shape(text: str) -> None:
    """An alias bomb would be built at every reload, in every worker: refused first (ShapeError).
    Text that is no YAML is said by the composer, in its words."""
    with contextlib.suppress(yaml.YAMLError):
        check_shape(text)


MAX_CONFIG_BYTES = 4 * 1024 * 1024
"""A config larger than this is refused: configs are kilobytes (the admin API's entries are
held to 64 KiB each), and every worker reads the file at every reload."""


def read_config_text(path: Path) -> str:
    """The config file's text; ConfigError when it cannot be read, is larger than
    MAX_CONFIG_BYTES or is not UTF-8."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{path}: cannot be read: larger than {MAX_CONFIG_BYTES} bytes (a config is "
                "kilobytes; documents and tool files are read from files of their own)"
            )
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: cannot be read: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} "
            f"at offset {exc.start})"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from exc


def load_config(path: Path, environ: Mapping[str, str], *, text: str | None = None) -> Config:
    """Read and validate a config file (or `text`, as if the file held it: its folder and name
    are still `path`'s); raises ConfigError naming file, line and key path."""
    if text is None:
        text = read_config_text(path)
    try:
        _check_shape(text)
        node = yaml.compose(text, Loader=_ConfigLoader)
        check_nodes(node, path)
        data = yaml.load(text, Loader=YamlLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
        raise ConfigError(f"{path}:{line}: not valid YAML: {exc.problem}") from exc
    except ShapeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: expected a mapping at the top level, found {kind_of(data)}")
    data = substitute(data, environ, path, node, ())
    _check_unique_ids(data, path, node)
    try:
        config = Config.model_validate(
            {
                **data,
                # The folder of the path as given, not of a symlink's target: a Kubernetes
                # ConfigMap's files sit beside the link, and its target's folder changes.
                "base_dir": Path(os.path.abspath(path)).parent,
                "proxy_environment": proxy_environment(environ),
            }
        )
    except ValidationError as exc:
        raise ConfigError(explain(exc, path, node, union_tags=AUTH_TYPES)) from None
    _check_someone_gets_in(config, path, node)
    _check_one_place(config, path, node)
    _check_one_caller_per_user(config, path, node)
    return config


PROXY_VARIABLES = ("https_proxy", "http_proxy", "all_proxy", "no_proxy")
"""Proxy settings read from the environment, in lower case or upper case (lower case wins)."""


def proxy_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The proxy variables of an environment, by lower-case name (`https_proxy` wins over
    `HTTPS_PROXY`, as in curl); empty ones left out."""
    out: dict[str, str] = {}
    for name in PROXY_VARIABLES:
        value = environ.get(name) or environ.get(name.upper())
        if value:
            out[name] = value.strip()
    return out


_SAID_OF_A_USER = ("admin", "groups", "name", "email")
"""What an API key entry says of its user, which each of a user's keys must say alike."""


def _check_one_caller_per_user(config: Config, path: Path, node: Any) -> None:
    """A user may have several keys (one being retired, one new), all saying the same of them:
    an admin key beside a plain one of the same user is one user who is two callers, and
    `check --as` (and the audit log) could tell only one of them."""
    first: dict[str, int] = {}
    keys = config.auth.api_keys if config.auth is not None else ()
    for index, entry in enumerate(keys):
        seen = first.setdefault(entry.user, index)
        differ = [k for k in _SAID_OF_A_USER if getattr(entry, k) != getattr(keys[seen], k)]
        if differ:
            where = ("auth", "api_keys", index)
            raise ConfigError(
                f"{path}:{locate(node, where)[0]}: {dotted(where)}: user {entry.user!r} is "
                f"api_keys[{seen}] too, with another {', '.join(differ)}: a user's keys must say "
                "the same of them (or be two users)"
            )


def _check_one_place(config: Config, path: Path, node: Any) -> None:
    """A local tools or filter entry names its code once: a file or folder, or a module (else
    it was a source down at every start, not an error with its line)."""
    entries: list[tuple[str, int, LocalTools | FilterEntry]] = [
        *(("tools", i, e) for i, e in enumerate(config.tools)),
        *(("filters", i, e) for i, e in enumerate(config.filters)),
    ]
    for section, index, entry in entries:
        if (entry.path is None) == (entry.module is None):
            found = "both" if entry.path is not None else "neither"
            raise ConfigError(
                f"{path}:{locate(node, (section, index))[0]}: {section}[{index}]: expected one "
                f"of `path` (a file or folder) and `module`, found {found}"
            )


def _check_someone_gets_in(config: Config, path: Path, node: Any) -> None:
    """An `auth` with neither API keys nor JWTs lets no one in, admins neither (so no admin API
    call, nor `toolbridge reload`, could undo it): not what anyone means by it."""
    auth = config.auth
    if auth is not None and not auth.api_keys and auth.jwt is None:
        raise ConfigError(
            f"{path}:{locate(node, ('auth',))[0]}: auth: no `api_keys` and no `jwt`: no caller "
            "could be let in, admins neither (leave `auth` out for open mode, on loopback only)"
        )


def _check_unique_ids(data: dict[str, Any], path: Path, node: Any) -> None:
    """Every source (server, local tools or filter entry) needs an id of its own; so does a
    toolset."""
    sources: dict[str, str] = {}
    for section in ("servers", "tools", "filters", "toolsets"):
        seen: dict[str, str] = sources if section != "toolsets" else {}
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
                first = seen[ident]
                also = f" ({first} has it too)" if not first.startswith(f"{section}[") else ""
                raise ConfigError(
                    f"{path}:{locate(node, where)[0]}: {dotted(where)}: "
                    f"{kind} id {ident!r} is used twice{also}"
                )
            seen[ident] = f"{section}[{index}]"


def validate_entry(model: type[M], entry: Any, where: str) -> M:
    """One entry (a server, a tools entry) given through the admin API, checked as a
    `toolbridge.yaml` entry is: `where` (`servers[pets]`) stands for the file and line."""
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping, found {kind_of(entry)}")
    try:
        return model.model_validate(entry)
    except ValidationError as exc:
        lines = explain(exc, Path("-"), None, union_tags=AUTH_TYPES).splitlines()
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
