"""Redaction by value: which values are secrets, their spellings, and the log and stream gates."""

from __future__ import annotations

import base64
import io
import logging
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field, SecretStr

from toolbridge.config import Config
from toolbridge.config_file import load_config
from toolbridge.redaction import (
    MARKER,
    MAX_ADDED,
    RedactingStream,
    Secrets,
    entry_secrets,
    install_log_redaction,
    secret_fields,
    secrets_of,
)
from toolbridge.tools import PythonFunction, Tool

CONFIG = """\
auth:
  api_keys:
    - {user: alice, key: alice-key-0001}
  jwt: {secret: jwt-shared-secret-0002}
  rate_limit: {per_minute: 60, redis: "redis://:redis-pass-0011@127.0.0.1:6379/0"}
state: {url: "postgresql://toolbridge-role:db-pass-0012@127.0.0.1:5432/toolbridge"}
servers:
  - id: bearer
    spec: https://api.example/openapi.json?api_key=doc-query-key-0003&v=2
    auth: {type: bearer, token: bearer-token-0004}
    headers: {X-Api-Key: header-key-0005, X-Team: support-team}
  - id: basic
    spec: https://user:url-password-0006@api.example/openapi.json
    auth: {type: basic, username: bob, password: basic-pass-0007}
  - id: oauth
    spec: api.yaml
    auth:
      type: oauth2_client_credentials
      token_url: https://idp.example/token
      client_id: gateway
      client_secret: client-secret-0008
  - id: key
    spec: api.yaml
    auth: {type: api_key, value: "api-key-0009", in: query, name: k}
tools:
  - id: local
    path: tools.py
    valves: {weather_api_key: valve-key-0010, city: Paris-the-city}
"""


def test_the_secrets_are_every_credential_every_value_named_like_one_and_the_stores_keys(
    tmp_path: Path,
) -> None:
    path = tmp_path / "toolbridge.yaml"
    path.write_text(CONFIG)
    environ = {"TOOLBRIDGE_SECRET_KEY": "store-key-new-0013, store-key-old-0014"}
    secrets = secrets_of(load_config(path, {}), environ=environ)

    assert secrets.values == {
        "alice-key-0001",
        "jwt-shared-secret-0002",
        "doc-query-key-0003",
        "bearer-token-0004",
        "header-key-0005",
        "url-password-0006",
        "basic-pass-0007",
        base64.b64encode(b"bob:basic-pass-0007").decode(),
        "client-secret-0008",
        base64.b64encode(b"gateway:client-secret-0008").decode(),
        "api-key-0009",
        "valve-key-0010",
        "redis-pass-0011",
        "db-pass-0012",
        "store-key-new-0013",
        "store-key-old-0014",
    }


class Valves(BaseModel):
    api_token: str = "token-in-a-valve-1"
    hidden: SecretStr = SecretStr("typed-secret-2")
    marked: str = Field(default="marked-secret-3", json_schema_extra={"secret": True})
    shown: str = Field(
        default="password-input-4", json_schema_extra={"input": {"type": "password"}}
    )
    city: str = "Paris-the-city"
    loose: Any = SecretStr("held-as-any-5")
    maybe: SecretStr | None = None


class Tools:
    def __init__(self) -> None:
        self.valves = Valves()

    def weather(self) -> str:
        return "sunny"


def test_a_local_tools_valves_are_secrets_by_name_type_or_mark() -> None:
    target = PythonFunction(
        tool_id="local", function="m:Tools.weather", func=Tools().weather, arguments_model=None
    )
    tool = Tool(
        name="weather", original_name="weather", description="", input_schema={}, target=target
    )

    assert secrets_of(Config(), [tool]).values == {
        "token-in-a-valve-1",
        "typed-secret-2",
        "marked-secret-3",
        "password-input-4",
        "held-as-any-5",
    }
    assert secret_fields(Valves) == {"api_token", "hidden", "marked", "shown", "maybe"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer s3cret/key+1", f"Authorization: Bearer {MARKER}"),
        ("https://x/?k=s3cret%2Fkey%2B1", f"https://x/?k={MARKER}"),  # percent-encoded
        ("q=s3cret%2Fkey%2B1&x=1", f"q={MARKER}&x=1"),
        # as URL encoders that keep `/` write it (httpx, Python's quote; httpbin echoes it)
        ("https://x/get?api_key=s3cret/key%2B1", f"https://x/get?api_key={MARKER}"),
        ("https://x/get?api_key=s3cret%2fkey%2b1", f"https://x/get?api_key={MARKER}"),
        ('{"token": "s3cret\\/key+1"}', f'{{"token": "{MARKER}"}}'),  # JSON may escape `/`
        ('{"token": "s3cret/key+1"}', f'{{"token": "{MARKER}"}}'),
        ('{"echo": "czNjcmV0L2tleSsx"}', f'{{"echo": "{MARKER}"}}'),  # handed back in base64
        ("nothing to see", "nothing to see"),
        ("short ab12", "short ab12"),  # too short to be redacted by value
        # as a Cookie header carries it (RFC 6265 octets kept: `=`, `+`, `/`; space, comma not)
        ("Cookie: sid=s3cret/key+1%20x=1%2C2", f"Cookie: sid={MARKER}"),
    ],
)
def test_each_spelling_of_a_secret_is_redacted(text: str, expected: str) -> None:
    secrets = Secrets(["s3cret/key+1", "ab12", "s3cret/key+1 x=1,2"])

    assert secrets.text(text) == expected
    assert secrets.bytes(text.encode()) == expected.encode()
    assert secrets.too_short == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("key=canary-value-1&x=1 key=canary-val", f"key={MARKER}&x=1 key={MARKER}"),
        ("key=canary%2Dv", "key=canary%2Dv"),  # not a spelling the secret takes
        ("key=can", f"key={MARKER}"),  # CUT_PREFIX characters of it
        ("key=ca", "key=ca"),  # fewer: an ordinary word's end as likely
        ("key=canary-value-1", f"key={MARKER}"),  # whole: redacted as anywhere
        ("the end", "the end"),
    ],
)
def test_a_cut_text_has_a_secrets_start_at_its_end_masked(text: str, expected: str) -> None:
    assert Secrets(["canary-value-1"]).cut(text) == expected


def test_values_are_redacted_in_strings_and_keys_and_untouched_when_clean() -> None:
    secrets = Secrets(["canary-value-1"])
    clean = {"a": [1, "b"]}

    assert secrets.value({"canary-value-1": ["x canary-value-1", 5]}) == {
        MARKER: [f"x {MARKER}", 5]
    }
    assert secrets.value(clean) is clean
    assert Secrets().value(clean) is clean
    assert (bool(Secrets()), bool(Secrets(["canary-value-1"]))) == (False, True)


def test_every_log_record_is_redacted_at_every_level_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    install_log_redaction(lambda: Secrets(["log-canary-0001"]))
    logger = logging.getLogger("anything.at.all")
    with caplog.at_level(logging.DEBUG):
        logger.debug("debug %s", "log-canary-0001")
        logger.warning("dict %r", {"k": "log-canary-0001"})
        try:
            raise ValueError("failed with log-canary-0001")
        except ValueError:
            logger.exception("boom")
    text = caplog.text + "".join(r.exc_text or "" for r in caplog.records)

    assert "log-canary-0001" not in text
    assert [r.getMessage() for r in caplog.records] == [
        f"debug {MARKER}",
        f"dict {{'k': '{MARKER}'}}",
        "boom",
    ]
    assert (caplog.records[2].exc_text or "").endswith(f"ValueError: failed with {MARKER}")
    install_log_redaction(Secrets)


def test_streams_redact_text_and_bytes() -> None:
    raw = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    stream = RedactingStream(raw, lambda: Secrets(["stream-canary-1"]))
    stream.write("a stream-canary-1 b\n")
    stream.flush()
    stream.buffer.write(b"c stream-canary-1 d\n")
    raw.buffer.seek(0)

    assert raw.buffer.read() == f"a {MARKER} b\nc {MARKER} d\n".encode()


def test_a_reload_brings_the_new_configs_secrets() -> None:
    """The secrets belong to a generation: a reload that changes a token redacts the new one."""
    import anyio

    from toolbridge.config import Server
    from toolbridge.gateway import Gateway
    from toolbridge.upstream.seam import MockUpstream, UpstreamResponse

    def server(token: str) -> Config:
        auth = {"type": "bearer", "token": token}
        spec = str(Path(__file__).resolve().parents[1] / "specs" / "demo.yaml")
        return Config(servers=(Server.model_validate({"id": "notes", "spec": spec, "auth": auth}),))

    configs = iter([server("second-token-0002")])
    gateway = Gateway(
        server("first-token-0001"),
        upstream=MockUpstream(lambda request: UpstreamResponse(status=204)),
        reread=lambda: next(configs),
    )

    async def run() -> tuple[frozenset[str], frozenset[str]]:
        async with gateway:
            before = gateway.secrets.values
            await gateway.reload()
            return before, gateway.secrets.values

    assert anyio.run(run) == (frozenset({"first-token-0001"}), frozenset({"second-token-0002"}))


def test_secrets_learned_while_serving_are_kept_to_the_newest_few() -> None:
    """Months of hourly tokens and callers' rotating credentials must not grow each scan."""
    secrets = Secrets(["config-secret-0001"])
    for n in range(MAX_ADDED + 10):
        secrets = secrets.adding([f"token-{n:06d}", "config-secret-0001"])
    newest = tuple(f"token-{n:06d}" for n in range(10, MAX_ADDED + 10))
    assert (secrets.added, "config-secret-0001" in secrets.values) == (newest, True)
    assert secrets.text("token-000009 token-000010 config-secret-0001") == (
        f"token-000009 {MARKER} {MARKER}"
    )
    assert secrets.adding(["token-000010"]).added == (*newest[1:], "token-000010")


def test_an_entrys_secret_list_names_valves_whose_values_are_secrets_and_not_secrets_itself() -> (
    None
):
    entry = {
        "id": "retry",
        "valves": {"retries": "often-canary-1", "mode": "fast", "api_key": "key-canary-2"},
        "secret": ["retries", "missing"],
    }

    assert sorted(entry_secrets(entry)) == ["key-canary-2", "often-canary-1"]


def test_a_state_urls_user_name_is_no_secret(tmp_path: Path) -> None:
    """A database role (`toolbridge`) is no token: taken for one, every answer that said
    `toolbridge` was garbled."""
    path = tmp_path / "toolbridge.yaml"
    path.write_text("state: {url: 'postgresql://toolbridge@127.0.0.1:5432/toolbridge'}\n")
    assert secrets_of(load_config(path, {}), environ={}).values == set()
