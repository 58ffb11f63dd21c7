"""Secrets at rest: encrypted in every table, absent from every listing, the audit log and the
change feed, readable only `..._in_clear`; keys from the environment, rotated without loss."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
import sqlalchemy as sa

from tests.state.conftest import KEY_A, KEY_B
from toolbridge.errors import SecretKeyError
from toolbridge.state import ENV_KEY, SecretBox, Store
from toolbridge.state.engine import make_engine
from toolbridge.state.tables import metadata

pytestmark = pytest.mark.anyio

CANARY = "c4n4ry"
KEY_C = "Y8hSG0mr0Sx7q3kGOaN5T6vQk8m7bX2ZbqJc1vY3k2Q="
"""A third key, which opens nothing written here."""
"""Every secret below contains this; it must never appear outside the sealed columns."""

Write = Callable[[Store], Awaitable[Any]]
WRITES: list[tuple[str, Write]] = [
    ("bearer token", lambda s: s.servers.create(
        {"id": "a", "spec": "a.yaml", "auth": {"type": "bearer", "token": f"{CANARY}-1"}},
        by="ops")),
    ("api key value", lambda s: s.servers.create(
        {"id": "b", "spec": "b.yaml", "auth": {"type": "api_key", "value": f"{CANARY}-2"}},
        by="ops")),
    ("basic password", lambda s: s.servers.create(
        {"id": "c", "spec": "c.yaml",
         "auth": {"type": "basic", "username": "svc", "password": f"{CANARY}-3"}}, by="ops")),
    ("client secret", lambda s: s.servers.create(
        {"id": "d", "spec": "d.yaml",
         "auth": {"type": "oauth2_client_credentials", "token_url": "https://t/", "client_id": "c",
                  "client_secret": f"{CANARY}-4"}}, by="ops")),
    ("header value", lambda s: s.servers.create(
        {"id": "e", "spec": "e.yaml", "headers": {"X-Api-Key": f"{CANARY}-5"}}, by="ops")),
    ("secret valve", lambda s: s.tools.create(
        "t", "class Tools: pass\n", {}, valves={"key": f"{CANARY}-6"}, secret=["key"], by="ops")),
    ("secret valve put", lambda s: s.tools.put_valves(
        "u", {"key": f"{CANARY}-7", "n": 1}, secret=["key"], by="ops")),
    ("secret user valve", lambda s: s.users.put_valves(
        "alice", "t", {"key": f"{CANARY}-8"}, secret=["key"])),
    ("credential", lambda s: s.users.put_credential("alice", "a", {"token": f"{CANARY}-9"})),
    ("key in a spec URL", lambda s: s.servers.create(
        {"id": "f", "spec": f"https://h/a.yaml?v=2&api_key={CANARY}-s"}, by="ops")),
    ("password in a base URL", lambda s: s.servers.create(
        {"id": "g", "spec": "g.yaml", "base_url": f"https://svc:{CANARY}-b@h/"}, by="ops")),
    ("token in a token URL", lambda s: s.servers.create(
        {"id": "h", "spec": "h.yaml",
         "auth": {"type": "oauth2_client_credentials", "client_id": "c", "client_secret": "x",
                  "token_url": f"https://t/token?access_token={CANARY}-u"}}, by="ops")),
]  # fmt: skip


async def everything_stored(url: str) -> str:
    """Every row of every table, as text (bytes decoded loosely), read past the store."""
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            dump = []
            for table in metadata.sorted_tables:
                for row in (await connection.execute(sa.select(table))).all():
                    for value in row:
                        dump.append(
                            value.decode("latin-1") if isinstance(value, bytes) else repr(value)
                        )
        return "\n".join(dump)
    finally:
        await engine.dispose()


async def test_no_secret_is_stored_or_shown_in_clear(store: Store, store_url: str) -> None:
    for _, write in WRITES:
        await write(store)

    shown = [
        await store.servers.list(),
        [await store.servers.get(s) for s in "abcdefgh"],
        await store.tools.list(),
        await store.tools.get_valves("t"),
        await store.tools.get_valves("u"),
        await store.users.get_valves("alice", "t"),
        await store.users.credentials(),
        await store.audit_log(),
        await store.changes_since(0),
    ]
    assert CANARY not in repr(shown)
    assert CANARY not in await everything_stored(store_url)
    clear = [
        await store.servers.in_clear(),
        await store.tools.in_clear(),
        await store.tools.valves_in_clear("u"),
        await store.users.valves_in_clear("alice", "t"),
        await store.users.credential_in_clear("alice", "a"),
    ]
    assert sorted(set(re.findall(f"{CANARY}-(\\w)", repr(clear)))) == list("123456789bsu")


@pytest.mark.parametrize(("what", "write"), WRITES, ids=[what for what, _ in WRITES])
async def test_a_secret_without_a_key_is_refused(store_url: str, what: str, write: Write) -> None:
    async with await Store.open(store_url) as store:
        with pytest.raises(SecretKeyError) as caught:
            await write(store)
        assert str(caught.value).endswith(
            "it holds a secret, and secrets are stored encrypted with the key in "
            "TOOLBRIDGE_SECRET_KEY, which is not set (set it to a Fernet key; see the README's "
            "State section)"
        )
        assert await store.changes_since(0) == ()


async def test_what_holds_no_secret_needs_no_key(store_url: str) -> None:
    async with await Store.open(store_url) as store:
        await store.servers.create(
            {"id": "a", "spec": "a.yaml", "auth": {"type": "forward"}}, by="o"
        )
        per_user = {"type": "per_user", "scheme": "bearer"}
        public_url = "https://h/openapi.yaml?version=2"
        await store.servers.create({"id": "b", "spec": public_url, "auth": per_user}, by="o")
        await store.tools.create("t", "class Tools: pass\n", {}, valves={"n": 1}, by="o")
        await store.users.put_valves("alice", "t", {"n": 2})

        assert [s.id for s in await store.servers.in_clear()] == ["a", "b"]
        assert (await store.servers.list())[1].entry == {
            "id": "b",
            "spec": public_url,
            "auth": per_user,
        }
        assert await store.tools.valves_in_clear("t") == {"n": 1}
        assert await store.users.valves_in_clear("alice", "t") == {"n": 2}


async def test_a_stored_secret_without_a_key_cannot_be_read(store: Store, store_url: str) -> None:
    await store.users.put_credential("alice", "a", {"token": "t"})

    async with await Store.open(store_url) as keyless:
        with pytest.raises(SecretKeyError) as caught:
            await keyless.users.credential_in_clear("alice", "a")
        assert str(caught.value).startswith(
            "cannot read the credential of 'alice' for server 'a': it holds a secret"
        )


async def test_rotation_moves_every_secret_to_the_new_key(store: Store, store_url: str) -> None:
    for _, write in WRITES:
        await write(store)
    before = (
        await store.servers.in_clear(),
        await store.tools.in_clear(),
        await store.users.valves_in_clear("alice", "t"),
        await store.users.credential_in_clear("alice", "a"),
    )

    async with await Store.open(store_url, secrets=SecretBox([KEY_B, KEY_A])) as both:
        last = await both.last_change_id()
        assert (
            await both.rotate_secrets(by="ops") == 12
        )  # 8 servers, 2 valves, 1 user's, 1 credential
        assert (await both.audit_log(limit=1))[0].detail == {"count": 12}
        # In the feed: the other replicas read the store again (and one not given the new key
        # says so at once).
        fed = [(c.kind, c.op, dict(c.subject)) for c in await both.changes_since(last)]
        assert fed == [("secrets", "rotate", {"what": "secrets"})]
    async with await Store.open(store_url, secrets=SecretBox([KEY_B])) as new:
        after = (
            await new.servers.in_clear(),
            await new.tools.in_clear(),
            await new.users.valves_in_clear("alice", "t"),
            await new.users.credential_in_clear("alice", "a"),
        )
    assert after == before
    async with await Store.open(store_url, secrets=SecretBox([KEY_A])) as old:
        with pytest.raises(SecretKeyError) as caught:
            await old.users.credential_in_clear("alice", "a")
    assert str(caught.value) == (
        "cannot decrypt the stored secret of the credential of 'alice' for server 'a': none of "
        "the 1 key(s) in TOOLBRIDGE_SECRET_KEY opens it (was the key that encrypted it removed?)"
    )


async def test_rotation_needs_a_key(store_url: str) -> None:
    async with await Store.open(store_url) as store:
        with pytest.raises(SecretKeyError, match=r"^cannot rotate the stored secrets: "):
            await store.rotate_secrets(by="ops")


# -- the key from the environment ----------------------------------------------------------------


def test_keys_come_from_the_environment_first_one_encrypting() -> None:
    assert SecretBox.from_environ({}) is None
    assert SecretBox.from_environ({ENV_KEY: " "}) is None
    both = SecretBox.from_environ({ENV_KEY: f"{KEY_B}, {KEY_A}"})
    assert both is not None
    assert both.key_count == 2
    sealed = both.seal({"a": 1})
    assert SecretBox([KEY_B]).open(sealed, "x") == {"a": 1}
    with pytest.raises(SecretKeyError):
        SecretBox([KEY_A]).open(sealed, "x")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (f"{KEY_A},s3cr3t-not-a-key", "TOOLBRIDGE_SECRET_KEY: key 2 of 2 is not a Fernet key "
         "(expected 32 bytes in url-safe base64, 44 characters)"),
        ("s3cr3t-é", "TOOLBRIDGE_SECRET_KEY: key 1 of 1 is not a Fernet key "
         "(expected 32 bytes in url-safe base64, 44 characters)"),
        (",,", "TOOLBRIDGE_SECRET_KEY: expected at least one key, found none"),
    ],
)  # fmt: skip
def test_a_bad_key_is_named_by_position_never_shown(value: str, expected: str) -> None:
    with pytest.raises(SecretKeyError) as caught:
        SecretBox.from_environ({ENV_KEY: value})
    assert str(caught.value) == expected


# -- the command -----------------------------------------------------------------------------


def test_the_rotate_secrets_command_re_encrypts_the_store_of_a_config(tmp_path: Path) -> None:
    """`toolbridge rotate-secrets` opens the store `serve` would (state.url of the config) and
    re-encrypts it with the first key; with a key that opens nothing, it changes nothing."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    (tmp_path / "toolbridge.yaml").write_text(f"state: {{url: '{url}'}}\n")

    async def write() -> None:
        async with await Store.open(url, secrets=SecretBox([KEY_A])) as store:
            await store.users.put_credential("alice", "a", {"token": f"{CANARY}-cli"})

    async def read(key: str) -> Any:
        async with await Store.open(url, secrets=SecretBox([key])) as store:
            return await store.users.credential_in_clear("alice", "a")

    def rotate(keys: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "toolbridge", "rotate-secrets"],
            cwd=tmp_path,
            env={**os.environ, ENV_KEY: keys},
            capture_output=True,
            text=True,
            check=False,
        )

    anyio.run(write)
    refused = rotate(KEY_C)
    done = rotate(f"{KEY_B},{KEY_A}")

    assert (refused.returncode, refused.stdout) == (2, "")
    assert "none of the 1 key(s) in TOOLBRIDGE_SECRET_KEY opens it" in refused.stderr
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        "re-encrypted 1 secrets with the first key of TOOLBRIDGE_SECRET_KEY\n",
        "",
    )
    assert anyio.run(read, KEY_B) == {"token": f"{CANARY}-cli"}
    for output in (refused.stdout, refused.stderr, done.stdout, done.stderr):
        assert CANARY not in output
