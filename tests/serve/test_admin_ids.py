"""Whose an id is, as the admin API decides it: the config file's, the store's, or (between
another replica's delete and this one's reload) nobody's."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest

from toolbridge.config import Config, Server
from toolbridge.errors import Conflict
from toolbridge.gateway import Gateway
from toolbridge.serve.admin import Admin
from toolbridge.upstream.seam import MockUpstream


def admin(file_ids: set[str], registered: set[str]) -> Admin:
    """The catalog serves `file` (the file's) and `gone` (registered, deleted elsewhere)."""
    servers = tuple(Server(id=i, spec="specs/demo.yaml") for i in ("file", "gone"))
    gateway = Gateway(Config(servers=servers), upstream=MockUpstream(lambda r: None))  # type: ignore[arg-type, return-value]
    shared = SimpleNamespace(
        file_ids=frozenset(file_ids),
        file_sources=frozenset(file_ids),
        registered=SimpleNamespace(ids=frozenset(registered)),
    )
    live = SimpleNamespace(config_file=None)
    return Admin(gateway, cast(Any, live), cast(Any, shared))


def test_an_id_another_replica_deleted_just_now_is_not_the_files() -> None:
    """Its store no longer has it and the catalog still does: a write of it goes on to the
    store (which answers 404), never a 409 saying the file defines it."""
    found = admin(file_ids={"file"}, registered=set())
    found.writable("gone", "server")  # no Conflict
    with pytest.raises(Conflict) as caught:
        found.writable("file", "server")
    assert str(caught.value) == (
        "server 'file' is defined in the config file: edit the file (the API changes only the "
        "sources it registered)"
    )


def test_a_config_files_entry_is_listed_with_what_the_store_would_seal_hidden() -> None:
    """The same secrets as a registered entry's (`server_secret_paths`): credentials (not their
    public keys), header values, fixed arguments (a tool's own too), a URL with a key in it."""
    server = Server.model_validate(
        {
            "id": "file",
            "spec": "https://api.example/openapi.json?api_key=canary-key-123456",
            "auth": {"type": "basic", "username": "svc", "password": "canary-pass-123456"},
            "headers": {"X-Team": "support"},
            "arguments": {"token": "canary-token-123456"},
            "tools": {
                "listThings": {"arguments": {"channel": "C1"}, "result": {"max_bytes": 1000}}
            },
        }
    )
    listed = admin({"file"}, set()).from_file(server)
    assert listed == {
        "id": "file",
        "origin": "config",
        "entry": {
            "id": "file",
            "spec": "********",
            "auth": {"type": "basic", "username": "svc", "password": "********"},
            "headers": {"X-Team": "********"},
            "arguments": {"token": "********"},
            "tools": {
                "listThings": {"arguments": {"channel": "********"}, "result": {"max_bytes": 1000}}
            },
        },
    }
