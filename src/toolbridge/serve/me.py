"""`/v1/me`: what a caller keeps for themselves: UserValves per local tool (and per filter
around a tool they may use), a credential per `per_user` server. Stored encrypted (the secret
ones), used when a call carries none.

What it trusts: the caller is authenticated (by the app); they reach only tools and servers
they may use (a source they may not use does not exist for them: 404, as everywhere), and
only their own entries. Bodies are untrusted JSON, checked against the tool's `UserValves`
model or the server's `per_user` scheme before anything is stored. Nothing here ever answers a
stored secret.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from toolbridge.config import PerUserAuth
from toolbridge.errors import BadRequest, InvalidArguments, ToolNotFound, quoted
from toolbridge.filters.chain import select
from toolbridge.gateway import Gateway
from toolbridge.local.calls import user_valves
from toolbridge.local.signatures import unknown_user_valves
from toolbridge.policy import Principal
from toolbridge.redaction import secret_fields
from toolbridge.serve.admin_files import Answer, secret_names
from toolbridge.serve.shared import Shared
from toolbridge.state.store import Store
from toolbridge.state.values import REDACTED
from toolbridge.tools import PythonFunction


class Me:
    def __init__(self, gateway: Gateway, shared: Shared | None) -> None:
        self.gateway = gateway
        self.shared = shared

    async def valves(self, principal: Principal, tool_id: str) -> Answer:
        store = self._store()
        self._user_valves(principal, tool_id)
        stored = await store.users.get_valves(principal.id, tool_id)
        return 200, {"tool": tool_id, "valves": dict(stored.values) if stored else None}

    async def put_valves(self, principal: Principal, tool_id: str, body: Any) -> Answer:
        store = self._store()
        model = self._user_valves(principal, tool_id)
        if not isinstance(body, dict):
            raise BadRequest("expected your UserValves as a JSON object")
        try:
            model.model_validate(body)
        except ValidationError as exc:
            problems = [
                ("$." + ".".join(str(p) for p in error["loc"]), str(error["msg"]))
                for error in exc.errors()
            ]
            raise InvalidArguments(f"UserValves of {tool_id!r}", problems) from None
        unknown = unknown_user_valves(model, body, "$")
        if unknown:
            raise InvalidArguments(f"UserValves of {tool_id!r}", unknown)
        secret = secret_names(body, None) | secret_fields(model)
        await store.users.put_valves(
            principal.id,
            tool_id,
            body,
            secret=secret,
            by=principal.id,
            registered=self._registered(tool_id),
        )
        self._forget(principal, tool_id)
        shown = {k: REDACTED if k in secret else v for k, v in body.items()}
        return 200, {"tool": tool_id, "valves": shown}

    async def credentials(self, principal: Principal) -> Answer:
        store = self._store()
        stored = await store.users.credentials(principal.id)
        return 200, {
            "credentials": [{"server": c.server_id, "fields": list(c.fields)} for c in stored]
        }

    async def put_credential(self, principal: Principal, server_id: str, body: Any) -> Answer:
        store = self._store()
        auth = self._per_user(principal, server_id)
        if not isinstance(body, dict):
            raise BadRequest(f"expected {{{', '.join(repr(f) for f in auth.fields)}}}")
        try:
            auth.with_secret(body)
        except ValueError as exc:
            raise InvalidArguments(f"credential for {server_id!r}", [("$", str(exc))]) from None
        await store.users.put_credential(
            principal.id, server_id, body, by=principal.id, registered=self._registered(server_id)
        )
        self._forget(principal, server_id)
        return 200, {"server": server_id, "fields": sorted(body)}

    async def delete_credential(self, principal: Principal, server_id: str) -> Answer:
        store = self._store()
        self._per_user(principal, server_id)
        if not await store.users.delete_credential(principal.id, server_id, by=principal.id):
            raise ToolNotFound(f"you have stored no credential for server {quoted(server_id)}")
        self._forget(principal, server_id)
        return 200, {"deleted": server_id}

    def _store(self) -> Store:
        if self.shared is None:
            raise BadRequest("this gateway keeps no per-user state: it has no `state` store")
        return self.shared.require()

    def _user_valves(self, principal: Principal, tool_id: str) -> type[BaseModel]:
        """The UserValves model of a tools entry this caller may use, or of a filter around a
        tool they may use (ids are unique across both); 404 otherwise."""
        tools = self.gateway.list_tools(principal)
        for tool in tools:
            target = tool.target
            if tool.source == tool_id and isinstance(target, PythonFunction):
                model = user_valves(getattr(target.func, "__self__", None))
                if model is not None:
                    return model
        for status in self.gateway.filters():
            loaded = status.filter
            if loaded is None or loaded.id != tool_id:
                continue
            model = user_valves(loaded.instance)
            if model is not None and any(select((status,), tool) for tool in tools):
                return model
        raise ToolNotFound(
            f"no tools entry or filter {quoted(tool_id)} with UserValves that you may use"
        )

    def _per_user(self, principal: Principal, server_id: str) -> PerUserAuth:
        """The `per_user` scheme of a server this caller may use; 404 otherwise."""
        server = next((s for s in self.gateway.config.servers if s.id == server_id), None)
        visible = any(t.source == server_id for t in self.gateway.list_tools(principal))
        if server is None or not visible or not isinstance(server.auth, PerUserAuth):
            raise ToolNotFound(f"no server {quoted(server_id)} that takes your own credential")
        return server.auth

    def _registered(self, ident: str) -> bool:
        """Whether a source is registered through the admin API (its deletion may race this)."""
        return self.shared is not None and ident in self.shared.registered.ids

    def _forget(self, principal: Principal, key: str) -> None:
        if self.shared is not None:
            self.shared.users.forget(principal.id, key)  # this process; the others by the feed
