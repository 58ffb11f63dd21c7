"""Who may use what: principals, and the decision for one principal and one tool.

The decision is a pure function of plain values: the same one serves listing and calling on
every surface. A source without `access` is for admins only; admins see everything; a tool a
principal may not use does not exist for them.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass

from toolbridge.config import Config, Grant
from toolbridge.tools import HttpOperation, Tool


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """An authenticated caller."""

    id: str
    name: str | None = None
    email: str | None = None
    groups: frozenset[str] = frozenset()
    admin: bool = False
    token_expires_at: int | None = None
    """When the caller signed in with a bearer token that expires (a JWT): its `exp`. Local
    tools then get that token as `__oauth_token__`."""


ANONYMOUS_ADMIN = Principal(id="anonymous", name="anonymous", admin=True)
"""Who calls when the config has no `auth` section (open mode, for local use)."""


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str


def grant_names(principal: Principal, grant: Grant) -> bool:
    """Whether a grant is for this principal (by user or group), whatever tools it allows."""
    return ("*" in grant.users or principal.id in grant.users) or (
        "*" in grant.groups or bool(principal.groups & set(grant.groups))
    )


def grant_matches(principal: Principal, tool: Tool, grant: Grant) -> bool:
    """Whether one grant lets this principal use this tool."""
    if not grant_names(principal, grant):
        return False
    if grant.tools and not any(fnmatch.fnmatchcase(tool.name, glob) for glob in grant.tools):
        return False
    if grant.methods:
        method = tool.target.method if isinstance(tool.target, HttpOperation) else "POST"
        method = (
            "GET"
            if not isinstance(tool.target, HttpOperation) and tool.annotations.read_only
            else method
        )
        return method in grant.methods
    return True


class Policy:
    """The grants of every source, and the decision they give."""

    def __init__(self, grants: Mapping[str, tuple[Grant, ...] | None]) -> None:
        self.grants = dict(grants)

    @classmethod
    def from_config(cls, config: Config) -> Policy:
        grants = {server.id: server.access for server in config.servers}
        grants.update({entry.id: entry.access for entry in config.tools})
        return cls(grants)

    def decide(self, principal: Principal, tool: Tool) -> Decision:
        if principal.admin:
            return Decision(True, "admins may use every tool")
        grants = self.grants.get(tool.source)
        if not grants:
            return Decision(False, f"source {tool.source!r} has no `access`: admins only")
        for index, grant in enumerate(grants):
            if grant_matches(principal, tool, grant):
                return Decision(True, f"source {tool.source!r} access[{index}] allows it")
        return Decision(False, f"no grant of source {tool.source!r} matches")

    def allows(self, principal: Principal, tool: Tool) -> bool:
        return self.decide(principal, tool).allowed

    def sees_source(self, principal: Principal, source: str) -> bool:
        """Whether a source exists for this principal (`/v1/servers`): admins see every one,
        others those with a grant naming them (even while it is down or has no tool)."""
        if principal.admin:
            return True
        return any(grant_names(principal, grant) for grant in self.grants.get(source) or ())
