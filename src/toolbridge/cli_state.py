"""The commands over the state store: `toolbridge export` and `toolbridge rotate-secrets`.

Each opens the store `serve` would open with the same config, and never makes one: a store that
is not there has nothing to export or re-encrypt.
"""

from __future__ import annotations

import argparse
import getpass
import os
from pathlib import Path

import anyio

from toolbridge.config import Config
from toolbridge.config_file import DEFAULT_CONFIG, load_config
from toolbridge.errors import ToolbridgeError
from toolbridge.state.export import Exported, export
from toolbridge.state.secrets import SecretBox
from toolbridge.state.store import Store
from toolbridge.state.urls import resolve_url, sqlite_file


def _store_url(args: argparse.Namespace, doing: str) -> str:
    """The state store's URL, as `serve` would open it with this config (a `-c` given must be
    there; without one, ./toolbridge.yaml if any, else the default store here). A SQLite store
    that is not there is not made: there is nothing to `doing`."""
    path = args.config or Path(DEFAULT_CONFIG)
    given = args.config is not None or path.exists()
    config = load_config(path, os.environ) if given else Config(base_dir=Path.cwd())
    url = resolve_url(config.state, config.base_dir)
    file = sqlite_file(url)
    if file is not None and not file.exists():  # opening would make a new, empty one
        hint = " (run it beside the gateway's toolbridge.yaml, or give -c FILE)"
        hint = "" if args.config is not None else hint
        raise ToolbridgeError(f"no state store at {file}: nothing to {doing}{hint}")
    return url


def export_command(args: argparse.Namespace) -> int:
    """Exit 0 when written; 2 when the store cannot be read (main prints why)."""
    secrets = SecretBox.from_environ(os.environ)  # a malformed key is said first
    url = _store_url(args, "export")

    async def run() -> Exported:
        store = await Store.open(url, secrets=secrets)
        async with store:
            return await export(store, args.out)

    done = anyio.run(run)
    filters = f", {done.filters} filters" if done.filters else ""
    print(f"wrote {done.file}: {done.servers} servers, {done.tools} tools{filters}")
    if done.variables:
        print("set these environment variables to the secrets (not exported):")
        for name in done.variables:
            print(f"  {name}")
    return 0


def rotate_secrets_command(args: argparse.Namespace) -> int:
    """Exit 0 when every secret was re-encrypted (in one transaction); 2 when the store or a
    key cannot be used (main prints why, and nothing changed)."""
    url = _store_url(args, "re-encrypt")

    async def run() -> int:
        store = await Store.open(url, secrets=SecretBox.from_environ(os.environ))
        async with store:
            return await store.rotate_secrets(by=f"cli:{getpass.getuser()}")

    count = anyio.run(run)
    print(f"re-encrypted {count} secrets with the first key of TOOLBRIDGE_SECRET_KEY")
    return 0
