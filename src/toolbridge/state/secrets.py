"""Secrets at rest: Fernet tokens under keys from the environment, and which values are secret.

`TOOLBRIDGE_SECRET_KEY` holds one Fernet key, or several separated by commas: the first
encrypts, every one decrypts (`MultiFernet`), so a key is rotated by putting a new one first,
re-encrypting with `Store.rotate_secrets`, then removing the old one. A key is 32 random bytes in
url-safe base64 (44 characters); `python -c "from cryptography.fernet import Fernet;
print(Fernet.generate_key().decode())"` makes one. Keys and values never appear in an error.

A stored mapping with secrets is split in two: the public part (secrets replaced by
`REDACTED`), which listings return, and the secret part, sealed in one token.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from toolbridge.errors import SecretKeyError
from toolbridge.secret_names import STORE_KEY_ENV, url_secrets
from toolbridge.state.values import REDACTED

ENV_KEY = STORE_KEY_ENV
"""The environment variable holding the key (or comma-separated keys, newest first)."""

KeyPath = tuple[str, ...]

_PUBLIC_AUTH_KEYS = frozenset(
    {"type", "scheme", "in", "name", "header", "token_url", "client_id", "scopes", "username"}
)
"""Keys of a server's `auth` that are not secret; every other one (token, value, password,
client_secret, and any key a future auth type adds) is encrypted."""


class SecretBox:
    """Seals with the first key and opens with any of them."""

    def __init__(self, keys: Iterable[str]) -> None:
        fernets = []
        listed = [key.strip() for key in keys if key.strip()]
        for index, key in enumerate(listed, 1):
            try:
                fernets.append(Fernet(key.encode("ascii")))
            except (ValueError, UnicodeEncodeError):
                raise SecretKeyError(
                    f"{ENV_KEY}: key {index} of {len(listed)} is not a Fernet key (expected 32 "
                    "bytes in url-safe base64, 44 characters)"
                ) from None
        if not fernets:
            raise SecretKeyError(f"{ENV_KEY}: expected at least one key, found none")
        self._multi = MultiFernet(fernets)
        self.key_count = len(fernets)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> SecretBox | None:
        """The box for `TOOLBRIDGE_SECRET_KEY`, or None when it is unset or empty."""
        value = environ.get(ENV_KEY, "")
        return cls(value.split(",")) if value.strip() else None

    def seal(self, secrets: object) -> bytes:
        """One token holding `secrets` (as JSON), encrypted with the first key."""
        return self._multi.encrypt(json.dumps(secrets, sort_keys=True).encode("utf-8"))

    def open(self, token: bytes, what: str) -> Any:
        """The secrets in `token`; `what` names the stored thing in the error."""
        try:
            opened = json.loads(self._multi.decrypt(token))
        except InvalidToken:
            raise SecretKeyError(
                f"cannot decrypt the stored secret of {what}: none of the {self.key_count} "
                f"key(s) in {ENV_KEY} opens it (was the key that encrypted it removed?)"
            ) from None
        return opened

    def rotate(self, token: bytes, what: str) -> bytes:
        """The same secrets, encrypted with the first key."""
        try:
            return self._multi.rotate(token)
        except InvalidToken:
            raise SecretKeyError(
                f"cannot rotate the stored secret of {what}: none of the {self.key_count} "
                f"key(s) in {ENV_KEY} opens it"
            ) from None


def no_key(action: str) -> SecretKeyError:
    """The error for a secret that must be sealed or opened while no key is configured."""
    return SecretKeyError(
        f"cannot {action}: it holds a secret, and secrets are stored encrypted with the key in "
        f"{ENV_KEY}, which is not set (set it to a Fernet key; see the README's State section)"
    )


def server_secret_paths(entry: Mapping[str, Any]) -> list[KeyPath]:
    """The secret values of a server entry: its auth's secrets, every header value and fixed
    argument (`arguments`, and a tool's own under `tools`), and each URL (`spec`, `base_url`,
    `auth.token_url`) that holds a password or a query parameter named like a secret
    (`?api_key=...`): sealed whole."""
    paths: list[KeyPath] = [(key,) for key in ("spec", "base_url") if _holds_secret(entry, key)]
    auth = entry.get("auth")
    if isinstance(auth, Mapping):
        paths += [
            ("auth", key)
            for key in auth
            if key not in _PUBLIC_AUTH_KEYS or _holds_secret(auth, key)
        ]
    for key in ("headers", "arguments"):  # a fixed argument may be a token, as a header may
        values = entry.get(key)
        if isinstance(values, Mapping):
            paths += [(key, name) for name in values]
    tools = entry.get("tools")
    for tool, settings in tools.items() if isinstance(tools, Mapping) else ():
        values = settings.get("arguments") if isinstance(settings, Mapping) else None
        if isinstance(values, Mapping):
            paths += [("tools", tool, "arguments", name) for name in values]
    return paths


def _holds_secret(entry: Mapping[str, Any], key: str) -> bool:
    value = entry.get(key)
    return isinstance(value, str) and any(url_secrets(value))


def split(data: Mapping[str, Any], paths: Iterable[KeyPath]) -> tuple[dict[str, Any], list[Any]]:
    """`data` with the values at `paths` redacted, and those values as `[[path, value], ...]`."""
    public = copy.deepcopy(dict(data))
    secrets: list[Any] = []
    for path in paths:
        parent = _parent(public, path)
        if parent is not None and path[-1] in parent:
            secrets.append([list(path), parent[path[-1]]])
            parent[path[-1]] = REDACTED
    return public, secrets


def join(public: Mapping[str, Any], secrets: Iterable[Any]) -> dict[str, Any]:
    """The inverse of `split`: the redacted values put back."""
    whole = copy.deepcopy(dict(public))
    for path, value in secrets:
        parent = _parent(whole, tuple(path))
        if parent is not None:
            parent[path[-1]] = value
    return whole


def _parent(data: dict[str, Any], path: KeyPath) -> dict[str, Any] | None:
    node: Any = data
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None
