"""`toolbridge.yaml` into a frozen `Config`: every key of the schema, `${VAR}` substitution, and
error messages that name the file, the line and the key path, what was expected and found.

The environment is always passed to `load_config` as a dict, never read from `os.environ`.
Expected messages write the config file's path as `FILE`.
"""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path
from typing import Any

import pytest

from toolbridge.config import (
    ApiKey,
    ApiKeyAuth,
    Auth,
    BasicAuth,
    BearerAuth,
    Config,
    ForwardAuth,
    Grant,
    Jwt,
    LocalTools,
    OAuth2ClientCredentials,
    RateLimit,
    Selection,
    Server,
    State,
)
from toolbridge.config_file import MAX_CONFIG_BYTES, load_config
from toolbridge.errors import ConfigError


def write(tmp_path: Path, text: str, name: str = "toolbridge.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def error_of(path: Path, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ or {})
    return str(caught.value)


def one_server(tmp_path: Path, **fields: object) -> Config:
    """The Config a file holding one server `api` with `spec: api.yaml` and `fields` becomes."""
    return Config(
        servers=(Server.model_validate({"id": "api", "spec": "api.yaml", **fields}),),
        base_dir=tmp_path.resolve(),
    )


# -- valid files ---------------------------------------------------------------------------


FULL = """\
auth:
  api_keys:
    - {user: alice, key: "${ALICE_KEY}", groups: [support]}
    - user: ops
      key_sha256: 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae
      admin: true
  jwt:
    jwks: https://login.example.com/.well-known/jwks.json
    issuer: https://login.example.com/
    audience: toolbridge
    user_claim: email
    groups_claim: roles
servers:
  - id: petstore
    spec: specs/petstore.yaml
    base_url: http://127.0.0.1:9000
    prefix: pets
    auth: {type: bearer, token: "${PETSTORE_TOKEN}"}
    headers: {X-Team: support, X-Trace: "on"}
    include: {tags: [pets], operations: ["list*", getPet], methods: [get, Post], paths: ["/pets/*"]}
    exclude: {methods: [DELETE]}
    timeout: 12.5
    access: {groups: [support]}
  - id: billing
    spec: https://billing.example.com/openapi.json
    auth: {type: api_key, value: "${BILLING_KEY}", name: X-Api-Key, in: header}
    access:
      - {users: [alice]}
      - {groups: [ops], tools: ["billing_*"], methods: [GET]}
  - id: legacy-v1
    spec: legacy.json
    auth: {type: basic, username: svc, password: "${LEGACY_PASSWORD:-changeme}"}
    timeout: 600
  - id: crm
    spec: crm.yaml
    auth:
      type: oauth2_client_credentials
      token_url: https://crm.example.com/oauth/token
      client_id: toolbridge
      client_secret: "${CRM_SECRET}"
      scopes: [contacts.read, contacts.write]
  - id: proxy
    spec: proxy.yaml
    auth: {type: forward, header: X-Forwarded-Authorization}
  - id: echo
    spec: echo.yaml
    auth: {type: forward}
tools:
  - id: calculator
    path: tools/calculator.py
    valves: {precision: 4, mode: fast, units: [m, s]}
    prefix: calc
    access: {users: [alice]}
  - id: weather
    module: myco.weather
"""

FULL_ENVIRON = {
    "ALICE_KEY": "alice-key",
    "PETSTORE_TOKEN": "petstore-token",
    "BILLING_KEY": "billing-key",
    "CRM_SECRET": "crm-secret",
}


def test_a_file_using_every_key_becomes_the_whole_config(tmp_path: Path) -> None:
    """Every key of the schema is read; defaults fill the rest and methods are upper-cased."""
    config = load_config(write(tmp_path, FULL), FULL_ENVIRON)

    assert config == Config(
        auth=Auth(
            api_keys=(
                ApiKey(user="alice", key="alice-key", groups=("support",)),
                ApiKey(
                    user="ops",
                    key_sha256="2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
                    admin=True,
                ),
            ),
            jwt=Jwt(
                jwks="https://login.example.com/.well-known/jwks.json",
                issuer="https://login.example.com/",
                audience="toolbridge",
                user_claim="email",
                groups_claim="roles",
            ),
        ),
        servers=(
            Server(
                id="petstore",
                spec="specs/petstore.yaml",
                base_url="http://127.0.0.1:9000",
                prefix="pets",
                auth=BearerAuth(type="bearer", token="petstore-token"),
                headers={"X-Team": "support", "X-Trace": "on"},
                include=Selection(
                    tags=("pets",),
                    operations=("list*", "getPet"),
                    methods=("GET", "POST"),
                    paths=("/pets/*",),
                ),
                exclude=Selection(methods=("DELETE",)),
                timeout=12.5,
                access=Grant(groups=("support",)),
            ),
            Server(
                id="billing",
                spec="https://billing.example.com/openapi.json",
                auth=ApiKeyAuth.model_validate(
                    {"type": "api_key", "value": "billing-key", "name": "X-Api-Key", "in": "header"}
                ),
                access=(
                    Grant(users=("alice",)),
                    Grant(groups=("ops",), tools=("billing_*",), methods=("GET",)),
                ),
            ),
            Server(
                id="legacy-v1",
                spec="legacy.json",
                auth=BasicAuth(type="basic", username="svc", password="changeme"),
                timeout=600.0,
            ),
            Server(
                id="crm",
                spec="crm.yaml",
                auth=OAuth2ClientCredentials(
                    type="oauth2_client_credentials",
                    token_url="https://crm.example.com/oauth/token",
                    client_id="toolbridge",
                    client_secret="crm-secret",
                    scopes=("contacts.read", "contacts.write"),
                ),
            ),
            Server(
                id="proxy",
                spec="proxy.yaml",
                auth=ForwardAuth(type="forward", header="X-Forwarded-Authorization"),
            ),
            Server(id="echo", spec="echo.yaml", auth=ForwardAuth(type="forward")),
        ),
        tools=(
            LocalTools(
                id="calculator",
                path="tools/calculator.py",
                valves={"precision": 4, "mode": "fast", "units": ["m", "s"]},
                prefix="calc",
                access=Grant(users=("alice",)),
            ),
            LocalTools(id="weather", module="myco.weather"),
        ),
        base_dir=tmp_path.resolve(),
    )


def test_a_server_given_only_its_required_keys_gets_the_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "servers:\n  - {id: api, spec: api.yaml}\n")

    assert load_config(path, {}) == Config(
        servers=(
            Server(
                id="api",
                spec="api.yaml",
                base_url=None,
                prefix=None,
                auth=None,
                headers={},
                include=None,
                exclude=None,
                timeout=30.0,
                access=None,
            ),
        ),
        base_dir=tmp_path.resolve(),
    )


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("# nothing configured yet\n", id="only-a-comment"),
        pytest.param("servers: []\ntools: []\n", id="empty-lists"),
    ],
)
def test_a_file_without_sources_is_an_empty_config(tmp_path: Path, text: str) -> None:
    assert load_config(write(tmp_path, text), {}) == Config(base_dir=tmp_path.resolve())


def test_base_dir_is_the_folder_of_the_file_and_paths_stay_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative config path is resolved for `base_dir`; `spec` itself is left untouched."""
    (tmp_path / "conf").mkdir()
    write(tmp_path / "conf", "servers:\n  - {id: api, spec: ../specs/api.yaml}\n")
    monkeypatch.chdir(tmp_path)

    assert load_config(Path("conf/toolbridge.yaml"), {}) == Config(
        servers=(Server(id="api", spec="../specs/api.yaml"),),
        base_dir=(tmp_path / "conf").resolve(),
    )


# -- ${VAR} substitution -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "environ", "expected"),
    [
        pytest.param("${URL}", {"URL": "http://a"}, "http://a", id="set"),
        pytest.param("${URL:-http://b:8080/v1}", {}, "http://b:8080/v1", id="default-used"),
        pytest.param("${URL:-http://b}", {"URL": "http://a"}, "http://a", id="default-unused"),
        pytest.param("v${URL:-}", {}, "v", id="empty-default"),
        pytest.param(
            "http://${HOST}:${PORT:-80}/${BASE}",
            {"HOST": "h", "BASE": "v2"},
            "http://h:80/v2",
            id="several-in-one-value",
        ),
        pytest.param("${URL}", {"URL": "${OTHER}", "OTHER": "x"}, "${OTHER}", id="not-recursive"),
        pytest.param("$URL/x", {"URL": "http://a"}, "$URL/x", id="only-braces-substitute"),
    ],
)
def test_variables_are_substituted_from_the_environ_given(
    tmp_path: Path, written: str, environ: dict[str, str], expected: str
) -> None:
    # In a header value: substitution is what is checked, not the value (base_url must be an
    # absolute URL).
    path = write(
        tmp_path, f"servers:\n  - id: api\n    spec: api.yaml\n    headers: {{X-V: '{written}'}}\n"
    )

    assert load_config(path, environ) == one_server(tmp_path, headers={"X-V": expected})


def test_a_header_left_empty_by_an_unset_variable_is_an_error(tmp_path: Path) -> None:
    """Sent empty on every call, and the document's parameter of that name no argument any
    more: almost always a variable not set."""
    path = write(
        tmp_path, "servers:\n  - id: api\n    spec: api.yaml\n    headers: {token: '${T:-}'}\n"
    )

    assert error_of(path) == (
        f"{path}:4: servers[0].headers: the value of 'token' is empty (is its environment "
        "variable set?)"
    )


def test_variables_are_substituted_in_lists_and_nested_mappings_then_validated(
    tmp_path: Path,
) -> None:
    """A substituted value is a string; pydantic then reads `"2.5"` as the number 2.5."""
    path = write(
        tmp_path,
        """\
        servers:
          - id: api
            spec: ${SPECS:-specs}/api.yaml
            timeout: ${TIMEOUT}
            headers: {X-Tenant: "${TENANT}"}
            include: {tags: [public, "${EXTRA_TAG}"]}
        """,
    )
    environ = {"TIMEOUT": "2.5", "TENANT": "acme", "EXTRA_TAG": "beta"}

    assert load_config(path, environ) == one_server(
        tmp_path,
        spec="specs/api.yaml",
        timeout=2.5,
        headers={"X-Tenant": "acme"},
        include={"tags": ["public", "beta"]},
    )


def test_a_set_but_empty_variable_takes_the_default(tmp_path: Path) -> None:
    path = write(
        tmp_path, "servers:\n  - {id: api, spec: api.yaml, base_url: '${URL:-http://b}'}\n"
    )

    assert load_config(path, {"URL": ""}) == one_server(tmp_path, base_url="http://b")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            """\
            servers:
              - id: petstore
                spec: petstore.yaml
                auth: {type: bearer, token: "${PETSTORE_TOKEN}"}
            """,
            "FILE:4: servers[0].auth.token: environment variable PETSTORE_TOKEN is not set "
            "(write ${PETSTORE_TOKEN:-default} to give a default)",
            id="in-a-mapping",
        ),
        pytest.param(
            """\
            servers:
              - id: petstore
                spec: petstore.yaml
                include:
                  tags:
                    - pets
                    - ${EXTRA_TAG}
            """,
            "FILE:7: servers[0].include.tags[1]: environment variable EXTRA_TAG is not set "
            "(write ${EXTRA_TAG:-default} to give a default)",
            id="in-a-list",
        ),
        pytest.param(
            """\
            auth:
              api_keys:
                - {user: alice, key: "${ALICE_KEY}"}
                - user: bob
                  key: "${BOB_KEY}"
            """,
            "FILE:5: auth.api_keys[1].key: environment variable BOB_KEY is not set "
            "(write ${BOB_KEY:-default} to give a default)",
            id="second-of-two",
        ),
    ],
)
def test_an_unset_variable_without_default_is_an_error(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)

    assert error_of(path, {"ALICE_KEY": "a"}) == expected.replace("FILE", str(path))


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("${NOPE:?must be set}", "'${NOPE:?must be set}' is not read"),
        ("${NOPE-dflt}", "'${NOPE-dflt}' is not read"),
        ("${}", "'${}' is not read"),
        ("${1URL}", "'${1URL}' is not read"),  # no variable's name
    ],
)
def test_a_reference_of_another_form_is_an_error_not_text(
    tmp_path: Path, written: str, expected: str
) -> None:
    """Shell forms toolbridge does not read went to the upstream as they were written."""
    path = write(
        tmp_path, f"servers:\n  - {{id: api, spec: api.yaml, headers: {{X-A: '{written}'}}}}\n"
    )

    assert error_of(path, {}) == (
        f"{path}:2: servers[0].headers.X-A: {expected}: expected ${{VAR}} or ${{VAR:-default}} "
        "(and $${ for a literal ${)"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "tools:\n  - id: t\n    path: t.py\n    module: m\n",
            ":2: tools[0]: expected one of `path` (a file or folder) and `module`, found both",
        ),
        (
            "tools: []\nfilters:\n  - id: f\n",
            ":3: filters[0]: expected one of `path` (a file or folder) and `module`, found neither",
        ),
    ],
)
def test_a_local_entry_names_its_code_once(tmp_path: Path, text: str, expected: str) -> None:
    """It was a source down at every start, said without its line."""
    path = write(tmp_path, text)

    assert error_of(path, {}) == f"{path}{expected}"


def test_a_doubled_dollar_is_a_literal_reference(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "servers:\n  - {id: api, spec: api.yaml, headers: {X-A: '$${PORT} is ${PORT}'}}\n",
    )

    assert load_config(path, {"PORT": "8080"}).servers[0].headers == {"X-A": "${PORT} is 8080"}


# -- what is wrong, and where --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "servers: []\nlisten: 8080\n",
            "FILE:2: listen: unknown key 'listen'",
            id="top-level",
        ),
        pytest.param(
            "auth:\n  api_keys: []\n  oidc: {}\n",
            "FILE:3: auth.oidc: unknown key 'oidc'",
            id="auth",
        ),
        pytest.param(
            "auth:\n  api_keys:\n    - {user: a, key: b, group: [x]}\n",
            "FILE:3: auth.api_keys[0].group: unknown key 'group'",
            id="auth.api_keys",
        ),
        pytest.param(
            "auth:\n  jwt:\n    secret: s\n    aud: x\n",
            "FILE:4: auth.jwt.aud: unknown key 'aud'",
            id="auth.jwt",
        ),
        pytest.param(
            "servers:\n  - id: pets\n    spec: a.yaml\n    prefx: p\n",
            "FILE:4: servers[0].prefx: unknown key 'prefx'",
            id="server",
        ),
        pytest.param(
            "servers:\n  - id: pets\n    spec: a.yaml\n    auth: {type: bearer, token: t, "
            "scheme: x}\n",
            "FILE:4: servers[0].auth.scheme: unknown key 'scheme'",
            id="server.auth-bearer",
        ),
        pytest.param(
            "servers:\n  - id: pets\n    spec: a.yaml\n    auth: {type: basic, username: u, "
            "password: p, realm: r}\n",
            "FILE:4: servers[0].auth.realm: unknown key 'realm'",
            id="server.auth-basic",
        ),
        pytest.param(
            "servers:\n  - id: pets\n    spec: a.yaml\n    auth: {type: api_key, value: v, "
            "location: query}\n",
            "FILE:4: servers[0].auth.location: unknown key 'location'",
            id="server.auth-api_key",
        ),
        pytest.param(
            "servers:\n  - id: pets\n    spec: a.yaml\n    include: {tag: [pets]}\n",
            "FILE:4: servers[0].include.tag: unknown key 'tag'",
            id="server.include",
        ),
        pytest.param(
            "servers:\n  - id: pets\n    spec: a.yaml\n    exclude:\n      verbs: [DELETE]\n",
            "FILE:5: servers[0].exclude.verbs: unknown key 'verbs'",
            id="server.exclude",
        ),
        pytest.param(
            "tools:\n  - id: calc\n    path: c.py\n    valve: {}\n",
            "FILE:4: tools[0].valve: unknown key 'valve'",
            id="tools",
        ),
    ],
)
def test_unknown_keys_are_errors_at_every_level(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)

    assert error_of(path) == expected.replace("FILE", str(path))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "servers:\n  - spec: a.yaml\n",
            "FILE:2: servers[0]: required key 'id' is missing",
            id="server.id",
        ),
        pytest.param(
            "servers:\n  - id: pets\n    base_url: http://a\n",
            "FILE:2: servers[0]: required key 'spec' is missing",
            id="server.spec",
        ),
        pytest.param(
            "servers:\n  - id: pets\n    spec: a.yaml\n    auth:\n      type: bearer\n",
            "FILE:4: servers[0].auth: required key 'token' is missing",
            id="server.auth.token",
        ),
        pytest.param(
            "servers:\n  - id: pets\n    spec: a.yaml\n    auth: {type: basic, username: u}\n",
            "FILE:4: servers[0].auth: required key 'password' is missing",
            id="server.auth.password",
        ),
        pytest.param(
            "auth:\n  api_keys:\n    - {key: k}\n",
            "FILE:3: auth.api_keys[0]: required key 'user' is missing",
            id="auth.api_keys.user",
        ),
        pytest.param(
            "tools:\n  - path: a.py\n",
            "FILE:2: tools[0]: required key 'id' is missing",
            id="tools.id",
        ),
    ],
)
def test_missing_required_keys_are_named_at_their_parent(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)

    assert error_of(path) == expected.replace("FILE", str(path))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "servers:\n  - id: pets\n    spec:\n",
            "FILE:3: servers[0].spec: Input should be a valid string (found nothing)",
            id="nothing-for-a-string",
        ),
        pytest.param(
            "servers:\n  - id: [pets]\n    spec: a.yaml\n",
            "FILE:2: servers[0].id: Input should be a valid string (found a list)",
            id="list-for-a-string",
        ),
        pytest.param(
            "servers:\n  - id: pets\n    spec: a.yaml\n    timeout: fast\n",
            "FILE:4: servers[0].timeout: Input should be a valid number, unable to parse string "
            "as a number (found a string)",
            id="string-for-a-number",
        ),
        pytest.param(
            "servers:\n  - id: pets\n    spec: a.yaml\n    timeout: true\n",
            "FILE:4: servers[0].timeout: expected a number, found a boolean",
            id="boolean-for-a-number",
        ),
        pytest.param(
            "servers:\n  - id: pets\n    spec: a.yaml\n    max_concurrency: false\n",
            "FILE:4: servers[0].max_concurrency: expected a number, found a boolean",
            id="boolean-for-an-optional-integer",
        ),
        pytest.param(
            "auth:\n  api_keys: [{user: a, key: k123456}]\n  rate_limit: {per_minute: true}\n",
            "FILE:3: auth.rate_limit.per_minute: expected a number, found a boolean",
            id="boolean-for-a-rate",
        ),
        pytest.param(
            "auth:\n  api_keys: [{user: a, key: k123456}]\n  metrics: everyone\n",
            "FILE:3: auth.metrics: Input should be 'public', 'callers' or 'admins' (found a "
            "string)",
            id="metrics-readers-unknown",
        ),
        pytest.param(
            "auth:\n  api_keys:\n    - {user: a, key: k, admin: maybe}\n",
            "FILE:3: auth.api_keys[0].admin: Input should be a valid boolean, unable to "
            "interpret input (found a string)",
            id="string-for-a-boolean",
        ),
        pytest.param(
            "servers:\n  - id: pets\n    spec: a.yaml\n    auth: {type: api_key, value: v, "
            "in: body}\n",
            "FILE:4: servers[0].auth.in: Input should be 'header', 'query' or 'cookie' "
            "(found a string)",
            id="not-one-of-the-choices",
        ),
        pytest.param(
            "servers:\n  - id: pets\n    spec: a.yaml\n    auth: {type: digest, token: t}\n",
            "FILE:4: servers[0].auth: unknown type 'digest' (expected one of 'bearer', "
            "'api_key', 'basic', 'oauth2_client_credentials', 'forward', 'per_user')",
            id="unknown-auth-type",
        ),
    ],
)
def test_wrong_types_say_what_was_expected_and_what_kind_was_found(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)

    assert error_of(path) == expected.replace("FILE", str(path))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "servers:\n  - id: pets\n    spec: a.yaml\n    timeout: 0\n",
            "FILE:4: servers[0].timeout: Input should be greater than 0 (found an integer)",
            id="integer",
        ),
        pytest.param(
            "servers:\n  - id: pets\n    spec: a.yaml\n    timeout: 600.5\n",
            "FILE:4: servers[0].timeout: Input should be less than or equal to 600 "
            "(found a number)",
            id="float",
        ),
        pytest.param(
            "auth:\n  api_keys:\n    - {user: true, key: k}\n",
            "FILE:3: auth.api_keys[0].user: Input should be a valid string (found a boolean)",
            id="boolean",
        ),
        pytest.param(
            "42\n",
            "FILE:1: expected a mapping at the top level, found an integer",
            id="top-level",
        ),
    ],
)
def test_numbers_and_booleans_are_named_like_the_other_kinds(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)

    assert error_of(path) == expected.replace("FILE", str(path))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "servers:\n  id: pets\n  spec: a.yaml\n",
            "FILE:1: servers: Input should be a list (found a mapping)",
            id="servers-as-mapping",
        ),
        pytest.param(
            "servers:\n  - id: pets\n    spec: a.yaml\n    include: {methods: GET}\n",
            "FILE:4: servers[0].include.methods: Input should be a list (found a string)",
            id="methods-as-string",
        ),
        pytest.param(
            "auth: [alice]\n",
            "FILE:1: auth: Input should be a mapping (found a list)",
            id="auth-as-list",
        ),
        pytest.param(
            "servers:\n  -\n",
            "FILE:2: servers[0]: Input should be a mapping (found nothing)",
            id="empty-server",
        ),
    ],
)
def test_wrong_container_kinds_are_named_in_yaml_terms(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)

    assert error_of(path) == expected.replace("FILE", str(path))


ID_PATTERN = "'^[A-Za-z][A-Za-z0-9_-]{0,39}$'"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "servers:\n  - id: 1pets\n    spec: a.yaml\n",
            f"FILE:2: servers[0].id: String should match pattern {ID_PATTERN} (found a string)",
            id="starts-with-a-digit",
        ),
        pytest.param(
            f"servers:\n  - id: {'a' * 41}\n    spec: a.yaml\n",
            f"FILE:2: servers[0].id: String should match pattern {ID_PATTERN} (found a string)",
            id="41-characters",
        ),
        pytest.param(
            "tools:\n  - id: my tools\n    path: a.py\n",
            f"FILE:2: tools[0].id: String should match pattern {ID_PATTERN} (found a string)",
            id="tools-with-a-space",
        ),
        pytest.param(
            "servers:\n  - id: pets\n    spec: a.yaml\n    prefix: my-pets\n",
            "FILE:4: servers[0].prefix: String should match pattern "
            "'^[A-Za-z][A-Za-z0-9_]{0,19}$' (found a string)",
            id="prefix-with-a-dash",
        ),
    ],
)
def test_bad_ids_and_prefixes_show_the_pattern_expected(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)

    assert error_of(path) == expected.replace("FILE", str(path))


def test_an_id_of_40_characters_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, f"servers:\n  - {{id: {'a' * 40}, spec: api.yaml}}\n")

    assert load_config(path, {}) == Config(
        servers=(Server(id="a" * 40, spec="api.yaml"),), base_dir=tmp_path.resolve()
    )


def test_every_error_in_the_file_is_listed_one_per_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        servers:
          - id: pets
            spec: a.yaml
            prefx: p
          - spec: b.yaml
        tools:
          - id: calc
            path: c.py
            valve: {}
        """,
    )

    assert error_of(path) == (
        f"{path}:4: servers[0].prefx: unknown key 'prefx'\n"
        f"{path}:5: servers[1]: required key 'id' is missing\n"
        f"{path}:9: tools[0].valve: unknown key 'valve'"
    )


def test_a_duplicate_server_id_is_reported_where_it_is_repeated(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        servers:
          - id: pets
            spec: a.yaml
          - id: pets
            spec: b.yaml
        """,
    )

    assert error_of(path) == f"{path}:4: servers[1].id: server id 'pets' is used twice"


def test_a_duplicate_server_id_is_an_error(tmp_path: Path) -> None:
    """Whatever the wording, two servers may not share an id, and the message names the id."""
    path = write(tmp_path, "servers:\n  - {id: pets, spec: a.yaml}\n  - {id: pets, spec: b.yaml}\n")

    assert "server id 'pets' is used twice" in error_of(path)


def test_an_id_a_server_and_a_tools_entry_share_names_where_it_was_first(tmp_path: Path) -> None:
    """Ids are one space for servers, tools and filters: the second says where the first is."""
    path = write(
        tmp_path, "servers:\n  - {id: notes, spec: a.yaml}\ntools:\n  - {id: notes, path: t.py}\n"
    )

    assert error_of(path) == (
        f"{path}:4: tools[0].id: tools id 'notes' is used twice (servers[0] has it too)"
    )


def test_an_unknown_http_method_is_named_with_the_allowed_ones(tmp_path: Path) -> None:
    path = write(
        tmp_path, "servers:\n  - id: pets\n    spec: a.yaml\n    include: {methods: [FETCH]}\n"
    )

    assert error_of(path) == (
        f"{path}:4: servers[0].include.methods[0]: unknown HTTP method 'FETCH' "
        "(expected one of GET, PUT, POST, DELETE, OPTIONS, HEAD, PATCH, TRACE)"
    )


def test_a_bad_header_value_names_the_header(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        servers:
          - id: pets
            spec: a.yaml
            headers:
              X-Team: [a, b]
        """,
    )

    assert error_of(path) == (
        f"{path}:5: servers[0].headers.X-Team: Input should be a valid string (found a list)"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            'servers:\n  - id: pets\n    spec: a.yaml\n    headers: {"X-A\\r\\nHost": x}\n',
            "FILE:4: servers[0].headers: 'X-A\\r\\nHost' is no header name (letters, digits and "
            "!#$%&'*+-.^_`|~ only)",
            id="header-name",
        ),
        pytest.param(
            "servers:\n  - id: pets\n    spec: a.yaml\n"
            '    headers: {X-Token: "canary-hv-1\\r\\nX: y"}\n',
            "FILE:4: servers[0].headers: the value of 'X-Token' holds a line break, a control "
            "character or one outside ISO-8859-1, which no HTTP header can carry",
            id="header-value-never-shown",
        ),
        pytest.param(
            'servers:\n  - id: pets\n    spec: a.yaml\n    headers: {X-Token: "canary-hv-日本"}\n',
            "FILE:4: servers[0].headers: the value of 'X-Token' holds a line break, a control "
            "character or one outside ISO-8859-1, which no HTTP header can carry",
            id="header-value-beyond-latin-1",
        ),
        pytest.param(
            "servers:\n  - id: pets\n    spec: a.yaml\n    headers: {Host: api.internal}\n",
            "FILE:4: servers[0].headers: 'Host' belongs to the gateway's own connection to the "
            "upstream, which sets it (Host from the server's URL); leave it out",
            id="header-host",
        ),
        pytest.param(
            "servers:\n  - id: pets\n    spec: a.yaml\n    headers: {Transfer-Encoding: chunked}\n",
            "FILE:4: servers[0].headers: 'Transfer-Encoding' belongs to the gateway's own "
            "connection to the upstream, which sets it (Host from the server's URL); leave it out",
            id="header-framing",
        ),
        pytest.param(
            "servers:\n  - id: pets\n    spec: a.yaml\n    base_url: not a url\n",
            "FILE:4: servers[0].base_url: expected an absolute http(s) URL, found a value that "
            "does not start with http:// or https://",
            id="base-url",
        ),
        pytest.param(
            "servers:\n  - id: pets\n    spec: a.yaml\n    base_url: /v1\n",
            "FILE:4: servers[0].base_url: expected an absolute http(s) URL, found a value that "
            "does not start with http:// or https://",
            id="relative-base-url",
        ),
        # The value is never shown: a URL may hold a password (here without its scheme).
        pytest.param(
            "servers:\n  - id: pets\n    spec: a.yaml\n"
            "    base_url: admin:canary-url-1@api.internal/v1\n",
            "FILE:4: servers[0].base_url: expected an absolute http(s) URL, found a value that "
            "does not start with http:// or https://",
            id="base-url-never-shown",
        ),
        pytest.param(
            "servers:\n  - id: pets\n    spec: a.yaml\n    base_url: 'https://'\n",
            "FILE:4: servers[0].base_url: expected an absolute http(s) URL, found no host",
            id="base-url-without-host",
        ),
        # Calls never sent it, though `call --dry-run`'s curl line would have.
        pytest.param(
            "servers:\n  - id: pets\n    spec: a.yaml\n"
            "    base_url: https://admin:canary-url-2@api.internal/v1\n",
            "FILE:4: servers[0].base_url: expected a URL without user:password@; give the "
            "credentials in `auth` (type: basic)",
            id="base-url-with-credentials",
        ),
        # A secret substituted into `type` by mistake is said by its kind only.
        pytest.param(
            "servers:\n  - id: pets\n    spec: a.yaml\n    auth: {type: sk-live-canary-2}\n",
            "FILE:4: servers[0].auth: unknown type a string (expected one of 'bearer', "
            "'api_key', 'basic', 'oauth2_client_credentials', 'forward', 'per_user')",
            id="type-never-shown",
        ),
    ],
)
def test_what_no_request_could_carry_is_a_config_error(
    tmp_path: Path, text: str, expected: str
) -> None:
    """Found here, in the file and in the admin API alike (they were a source down at load, or
    a 502 at every call)."""
    path = write(tmp_path, text)
    assert error_of(path) == expected.replace("FILE", str(path))


@pytest.mark.parametrize("written", ["''", "'${BASE_URL}'"])
def test_an_empty_base_url_is_an_error_not_none_given(tmp_path: Path, written: str) -> None:
    """A deploy that left BASE_URL empty sent the calls, with the server's credentials, where
    the document's own `servers` said."""
    path = write(tmp_path, f"servers:\n  - id: api\n    spec: api.yaml\n    base_url: {written}\n")
    assert error_of(path, {"BASE_URL": ""}) == (
        f"{path}:4: servers[0].base_url: expected an absolute http(s) URL, found an empty value "
        "(leave the key out to call the servers the document names)"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "servers:\n  - id: pets\n    spec: a.yaml\n    access: {roles: [x]}\n",
            "FILE:4: servers[0].access.roles: unknown key 'roles'",
            id="one-grant",
        ),
        pytest.param(
            "servers:\n  - id: pets\n    spec: a.yaml\n    access:\n      - {users: [a]}\n"
            "      - {roles: [x]}\n",
            "FILE:6: servers[0].access[1].roles: unknown key 'roles'",
            id="list-of-grants",
        ),
    ],
)
def test_a_bad_access_grant_is_one_error_at_its_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)

    assert error_of(path) == expected.replace("FILE", str(path))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "servers:\n  - id: crm\n    spec: a.yaml\n    auth: {type: oauth2_client_credentials, "
            "token_url: u, client_id: c, client_secret: [s]}\n",
            "FILE:4: servers[0].auth.client_secret: Input should be a valid string (found a list)",
            id="wrong-type",
        ),
        pytest.param(
            "servers:\n  - id: crm\n    spec: a.yaml\n    auth: {type: oauth2_client_credentials, "
            "token_url: u, client_secret: s}\n",
            "FILE:4: servers[0].auth: required key 'client_id' is missing",
            id="missing-key",
        ),
    ],
)
def test_oauth2_errors_have_the_plain_key_path(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)

    assert error_of(path) == expected.replace("FILE", str(path))


def test_an_auth_block_without_type_says_the_type_is_missing(tmp_path: Path) -> None:
    path = write(tmp_path, "servers:\n  - id: pets\n    spec: a.yaml\n    auth: {token: t}\n")

    assert error_of(path) == (
        f"{path}:4: servers[0].auth: required key 'type' is missing (one of 'bearer', "
        "'api_key', 'basic', 'oauth2_client_credentials', 'forward', 'per_user')"
    )


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        pytest.param("auth: {type: bearer, token: 918273645}", "918273645", id="token-number"),
        pytest.param("auth: {type: bearer, token: [s3cr3t-tok]}", "s3cr3t-tok", id="token-list"),
        pytest.param(
            "auth: {type: bearer, token: {value: s3cr3t-tok}}", "s3cr3t-tok", id="token-mapping"
        ),
        pytest.param("auth: {type: bearer, token: 9182.736}", "9182.736", id="token-float"),
        pytest.param(
            "auth: {type: basic, username: u, password: 55501234}", "55501234", id="password"
        ),
        pytest.param(
            "auth: {type: api_key, value: [s3cr3t-key], in: header}", "s3cr3t-key", id="api-key"
        ),
        pytest.param(
            "auth: {type: oauth2_client_credentials, token_url: u, client_id: c, "
            "client_secret: 424242424}",
            "424242424",
            id="client-secret",
        ),
        pytest.param("headers: {X-Token: [s3cr3t-hdr]}", "s3cr3t-hdr", id="header-value"),
        pytest.param(
            "auth: {type: bearer, token: s3cr3t-tok, scheme: x}", "s3cr3t-tok", id="beside-an-error"
        ),
    ],
)
def test_a_secret_never_appears_in_an_error(tmp_path: Path, text: str, secret: str) -> None:
    """Only the kind of a rejected value is reported: the value itself may be a credential."""
    path = write(tmp_path, f"servers:\n  - id: pets\n    spec: a.yaml\n    {text}\n")

    message = error_of(path)

    assert message.startswith(f"{path}:4: servers[0].")
    assert secret not in message


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        pytest.param("secret", "[jwt-s3cr3t]", id="jwt-secret"),
        pytest.param("audience", "{aud: s3cr3t-aud}", id="jwt-audience"),
    ],
)
def test_a_jwt_secret_never_appears_in_an_error(tmp_path: Path, key: str, secret: str) -> None:
    path = write(tmp_path, f"auth:\n  jwt:\n    {key}: {secret}\n")

    message = error_of(path)

    assert message.startswith(f"{path}:3: auth.jwt.{key}: ")
    assert "s3cr3t" not in message


def test_a_secret_from_the_environment_never_appears_in_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, 'auth:\n  api_keys:\n    - {user: alice, key: "${ALICE_KEY}", x: 1}\n')

    message = error_of(path, {"ALICE_KEY": "alice-s3cr3t"})

    assert message == f"{path}:3: auth.api_keys[0].x: unknown key 'x'"


# -- files that are not a config at all ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "servers:\n  - id: pets\n    spec: [a\n",
            "FILE:4: not valid YAML: expected ',' or ']', but got '<stream end>'",
            id="unclosed-flow-list",
        ),
        pytest.param(
            "servers:\n  - id: pets\n\tspec: a\n",
            "FILE:3: not valid YAML: found character '\\t' that cannot start any token",
            id="tab-indent",
        ),
        pytest.param(
            "servers:\n  - id: pets\n    spec: a\n   prefix: p\n",
            "FILE:4: not valid YAML: expected <block end>, but found '<block mapping start>'",
            id="bad-indent",
        ),
        pytest.param(
            "servers:\n  - id: x\n    spec: a\n    headers: {X: !!python/object:os.system ls}\n",
            "FILE:4: not valid YAML: could not determine a constructor for the tag "
            "'tag:yaml.org,2002:python/object:os.system'",
            id="python-tag",
        ),
    ],
)
def test_invalid_yaml_names_the_line(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)

    assert error_of(path) == expected.replace("FILE", str(path))


@pytest.mark.parametrize(
    ("text", "found"),
    [
        pytest.param("- id: pets\n  spec: a.yaml\n", "a list", id="list"),
        pytest.param("servers\n", "a string", id="string"),
    ],
)
def test_the_top_level_must_be_a_mapping(tmp_path: Path, text: str, found: str) -> None:
    path = write(tmp_path, text)

    assert error_of(path) == f"{path}:1: expected a mapping at the top level, found {found}"


def test_a_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"

    assert error_of(path) == f"{path}: cannot be read: No such file or directory"


def test_a_folder_is_an_error_naming_it(tmp_path: Path) -> None:
    assert error_of(tmp_path) == f"{tmp_path}: cannot be read: Is a directory"


def test_a_file_past_the_size_limit_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "toolbridge.yaml"
    path.write_bytes(b"servers: []\n" + b"# " + b"x" * MAX_CONFIG_BYTES + b"\n")

    assert error_of(path) == (
        f"{path}: cannot be read: larger than {MAX_CONFIG_BYTES} bytes (a config is kilobytes; "
        "documents and tool files are read from files of their own)"
    )


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "toolbridge.yaml"
    path.write_bytes(b"servers:\n  - id: caf\xe9\n    spec: a.yaml\n")

    assert error_of(path).startswith(f"{path}: cannot be read: ")


def test_a_self_referencing_alias_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, "servers: &s\n  - *s\n")

    assert error_of(path).startswith(f"{path}:1: ")


def test_a_users_keys_say_the_same_of_them(tmp_path: Path) -> None:
    """Two keys for one user (one being retired) are fine; an admin key beside a plain one is
    one user who is two callers."""
    fine = write(
        tmp_path,
        "auth:\n  api_keys:\n    - {user: bob, key: bob-key-old}\n"
        "    - {user: bob, key: bob-key-new}\n",
    )
    auth = load_config(fine, {}).auth
    assert auth is not None
    assert [(k.user, k.key) for k in auth.api_keys] == [
        ("bob", "bob-key-old"),
        ("bob", "bob-key-new"),
    ]
    path = write(
        tmp_path,
        "auth:\n  api_keys:\n    - {user: bob, key: bob-key-1}\n"
        "    - {user: ops, key: ops-key-1, admin: true}\n"
        "    - {user: bob, key: bob-key-2, admin: true}\n",
    )
    assert error_of(path) == (
        f"{path}:5: auth.api_keys[2]: user 'bob' is api_keys[0] too, with another admin: a "
        "user's keys must say the same of them (or be two users)"
    )


@pytest.mark.parametrize(
    "auth", ["auth: {}", "auth: {api_keys: []}", "auth:\n  rate_limit: {per_minute: 5}"]
)
def test_an_auth_that_lets_no_one_in_is_an_error(tmp_path: Path, auth: str) -> None:
    """Admins neither: no admin API call nor `toolbridge reload` could undo a live edit to it."""
    path = write(tmp_path, f"tools: []\n{auth}\n")

    assert error_of(path) == (
        f"{path}:2: auth: no `api_keys` and no `jwt`: no caller could be let in, admins neither "
        "(leave `auth` out for open mode, on loopback only)"
    )


def test_an_alias_bomb_is_refused_before_it_is_built(tmp_path: Path) -> None:
    """Nine levels of nine aliases: 387 million strings, were it composed (at every reload)."""
    levels = ['a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    path = write(tmp_path, "\n".join(levels) + "\nservers: [*a8]\n")

    assert error_of(path) == (
        f"{path}: YAML aliases expand too far (line 5): they add 15670 values and 13932 bytes "
        "of text by there; at most 10000 values and 1048576 bytes may be added (what the "
        "document writes out itself, at least 10000 values and 1048576 bytes): an alias bomb?"
    )


def test_a_key_given_twice_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "servers:\n  - id: pets\n    spec: a.yaml\n    spec: b.yaml\n")

    assert error_of(path) == f"{path}:4: servers[0].spec: key 'spec' is given twice"


# -- state and shared rate limits ----------------------------------------------------------------


def test_the_state_store_and_the_shared_rate_limit_are_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        state: {url: "postgresql://tb:${DB_PASSWORD}@db.internal:5432/toolbridge"}
        auth:
          api_keys: [{user: ops, key: ops-key-1, admin: true}]
          rate_limit: {per_minute: 60, burst: 5, redis: "redis://cache.internal:6379/2"}
        """,
    )

    assert load_config(path, {"DB_PASSWORD": "pw"}) == Config(
        state=State(url="postgresql://tb:pw@db.internal:5432/toolbridge"),
        auth=Auth(
            api_keys=(ApiKey(user="ops", key="ops-key-1", admin=True),),
            rate_limit=RateLimit(per_minute=60, burst=5, redis="redis://cache.internal:6379/2"),
        ),
        base_dir=tmp_path.resolve(),
    )


@pytest.mark.parametrize(
    "url", ["sqlite:///state.db", "sqlite:////var/lib/toolbridge/state.db", "postgres://h/db"]
)
def test_state_urls_that_are_accepted(tmp_path: Path, url: str) -> None:
    assert load_config(write(tmp_path, f"state: {{url: {url!r}}}\n"), {}).state == State(url=url)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "state: {url: 'mysql://root:s3cr3t-pw@db/x'}",
            "FILE:1: state.url: expected sqlite:///PATH or postgresql://..., "
            "found a URL with scheme 'mysql'",
            id="state-scheme",
        ),
        pytest.param(
            "state: {url: 's3cr3t-pw.db'}",
            "FILE:1: state.url: expected sqlite:///PATH or postgresql://..., "
            "found a URL with no scheme",
            id="state-no-scheme",
        ),
        pytest.param(
            "state: {url: 'sqlite://s3cr3t-pw.db'}",
            "FILE:1: state.url: expected sqlite:///PATH (three slashes, then the file's path)",
            id="state-two-slashes",
        ),
        pytest.param(
            "state: {path: x.db}",
            "FILE:1: state.path: unknown key 'path'",
            id="state-unknown-key",
        ),
        pytest.param(
            "state: {audit_days: 0}",
            "FILE:1: state.audit_days: Input should be greater than or equal to 1 "
            "(found an integer)",
            id="state-audit-days-zero",
        ),
        pytest.param(
            "auth:\n  rate_limit: {per_minute: 1, redis: 'http://:s3cr3t-pw@cache'}",
            "FILE:2: auth.rate_limit.redis: expected redis://HOST:PORT/DB, "
            "found a URL with scheme 'http'",
            id="redis-scheme",
        ),
    ],
)
def test_bad_state_and_redis_urls_name_the_scheme_never_the_url(
    tmp_path: Path, text: str, expected: str
) -> None:
    """A store or Redis URL may carry a password: errors name its scheme, never the URL."""
    path = write(tmp_path, text + "\n")

    message = error_of(path)

    assert message == expected.replace("FILE", str(path))
    assert "s3cr3t" not in message


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        pytest.param(
            "- {user: bob, key: shared-key-1234}\n"
            "  - {user: root, key: shared-key-1234, admin: true}",
            "auth: api_keys[0] (bob) and api_keys[1] (root) have the same key: each caller "
            "needs a key of their own",
            id="one-key-twice",
        ),
        pytest.param(
            "- {user: bob, key: shared-key-1234}\n"
            f"  - {{user: root, key_sha256: {hashlib.sha256(b'shared-key-1234').hexdigest()}}}",
            "auth: api_keys[0] (bob) and api_keys[1] (root) have the same key: each caller "
            "needs a key of their own",
            id="once-as-its-hash",
        ),
        pytest.param(
            "- {user: bob, key: short}",
            "auth.api_keys[0].key: shorter than 6 characters (use a long random one, e.g. "
            "`openssl rand -hex 24`)",
            id="too-short",
        ),
    ],
)
def test_each_caller_has_a_key_of_their_own(tmp_path: Path, keys: str, expected: str) -> None:
    path = write(tmp_path, f"auth:\n  api_keys:\n  {keys}\n")

    message = error_of(path)

    assert message.removeprefix(f"{path}:").split(": ", 1)[1] == expected
    assert "shared-key-1234" not in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # One typo in a server: said once, and a filter naming another server is not wrong.
        (
            "servers:\n  - id: good\n    spec: a.yaml\n  - id: bad\n    spec: b.yaml\n"
            "    prefx: b\nfilters:\n  - id: f\n    path: f.py\n    sources: [good]\n",
            "FILE:6: servers[1].prefx: unknown key 'prefx'",
        ),
        # A filter's unknown source: at its line, under its key path.
        (
            "servers:\n  - id: good\n    spec: a.yaml\nfilters:\n  - id: f\n    path: f.py\n"
            "    sources: [good, nope]\n",
            "FILE:7: filters[0].sources: 'nope' is no server or tools id (filter 'f')",
        ),
        # A JWT secret too short to be redacted (or to be safe).
        (
            "auth:\n  jwt:\n    secret: short\n",
            "FILE:3: auth.jwt.secret: shorter than 6 characters (HS256 wants 32 or more: e.g. "
            "`openssl rand -hex 32`)",
        ),
        # An API key's problem: at the key's line.
        (
            "auth:\n  api_keys:\n    - {user: ops, key: long-enough-1}\n"
            "    - {user: bob, key: short}\n",
            "FILE:4: auth.api_keys[1].key: shorter than 6 characters (use a long random one, "
            "e.g. `openssl rand -hex 24`)",
        ),
    ],
    ids=["no-second-error", "filter-source-line", "jwt-secret-short", "api-key-line"],
)
def test_a_validators_problem_is_said_at_its_own_key_and_line(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    assert error_of(path) == expected.replace("FILE", str(path))


@pytest.mark.parametrize(
    ("given", "url", "audit_days"),
    [
        ({}, None, 365),  # a year of audit entries, the default store
        ({"audit_days": None}, None, None),  # kept for ever
        ({"url": "sqlite:///s.db", "audit_days": 30}, "sqlite:///s.db", 30),
    ],
)
def test_state_keeps_a_year_of_audit_entries_unless_told(
    given: dict[str, Any], url: str | None, audit_days: int | None
) -> None:
    state = Config.model_validate({"state": given}).state
    assert state is not None
    assert (state.url, state.audit_days) == (url, audit_days)
