"""API keys to principals; open mode without an `auth` section."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from toolbridge.config import ApiKey, Auth, Jwt
from toolbridge.errors import Unauthenticated
from toolbridge.identity import Authenticator
from toolbridge.policy import ANONYMOUS_ADMIN, Principal

AUTH = Auth(
    api_keys=(
        ApiKey(user="alice", key="alice-key-0123456789", groups=("support",)),
        ApiKey(
            user="ops", key_sha256=hashlib.sha256(b"ops-key-0123456789").hexdigest(), admin=True
        ),
        ApiKey(user="bob", key="bob-key-0123456789", name="Bob Stone", email="bob@example.org"),
    )
)


def test_open_mode_is_an_anonymous_admin() -> None:
    assert Authenticator(None).authenticate(None) == ANONYMOUS_ADMIN


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            "Bearer alice-key-0123456789",
            Principal(id="alice", name="alice", groups=frozenset({"support"})),
        ),
        ("bearer ops-key-0123456789", Principal(id="ops", name="ops", admin=True)),
        (
            "Bearer bob-key-0123456789",
            Principal(id="bob", name="Bob Stone", email="bob@example.org"),
        ),
    ],
)
def test_known_keys(header: str, expected: Principal) -> None:
    assert Authenticator(AUTH).authenticate(header) == expected


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "send Authorization: Bearer <api key>"),
        ("", "send Authorization: Bearer <api key>"),
        ("Basic YWxpY2U6eA==", "expected Authorization: Bearer <api key>"),
        ("Bearer ", "expected Authorization: Bearer <api key>"),
        ("Bearer nope", "unknown API key"),
    ],
)
def test_missing_or_unknown_credentials(header: str | None, message: str) -> None:
    with pytest.raises(Unauthenticated) as caught:
        Authenticator(AUTH).authenticate(header)
    assert str(caught.value) == message


# -- JWTs -------------------------------------------------------------------------------------

SECRET = "a-shared-secret-of-enough-length-0123456789"


def now() -> int:
    """PyJWT reads the real clock, so tokens are made from it when a test runs."""
    return int(time.time())


def claims(**extra: object) -> dict[str, object]:
    return {"sub": "carol", "groups": ["support"], "iss": "idp", "aud": "toolbridge", **extra}


def hs256(payload: dict[str, object], secret: str = SECRET) -> str:
    return jwt.encode(payload, secret, algorithm="HS256")


JWT_AUTH = Auth(jwt=Jwt(secret=SECRET, issuer="idp", audience="toolbridge", admin_group="ops"))


def test_a_valid_hs256_token_is_its_subject_with_groups() -> None:
    expires = now() + 60
    token = hs256(claims(exp=expires, email="carol@example.com"))
    assert Authenticator(JWT_AUTH).authenticate(f"Bearer {token}") == Principal(
        id="carol",
        name="carol",
        email="carol@example.com",
        groups=frozenset({"support"}),
        token_expires_at=expires,
    )
    admin = hs256(claims(exp=now() + 60, groups=["ops"]))
    assert Authenticator(JWT_AUTH).authenticate(f"Bearer {admin}").admin is True


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (lambda: hs256(claims(exp=now() - 120)), "JWT refused: Signature has expired"),
        (lambda: hs256(claims()), 'JWT refused: Token is missing the "exp" claim'),
        (lambda: hs256(claims(exp=now() + 60, aud="other")), "JWT refused: Audience doesn't match"),
        (lambda: hs256(claims(exp=now() + 60, iss="evil")), "JWT refused: Invalid issuer"),
        (
            lambda: hs256(claims(exp=now() + 60), secret="another-secret-of-enough-length-000000"),
            "JWT refused: Signature verification failed",
        ),
        (
            lambda: jwt.encode(claims(exp=now() + 60), "", algorithm="none"),
            "JWT algorithm 'none' is not accepted (HS256)",
        ),
        (lambda: hs256(claims(exp=now() + 60, sub="")), "JWT has no 'sub' claim naming the user"),
        # The store keeps user ids of up to 320 characters (was a 500 at the first write).
        (
            lambda: hs256(claims(exp=now() + 60, sub="u" * 321)),
            "JWT's 'sub' claim is no user name this gateway keeps: over 320 characters",
        ),
        (
            lambda: hs256(claims(exp=now() + 60, sub="carol\x00admin")),
            "JWT's 'sub' claim is no user name this gateway keeps: control characters",
        ),
    ],
)
def test_bad_tokens_are_refused(token: Any, message: str) -> None:
    with pytest.raises(Unauthenticated) as caught:
        Authenticator(JWT_AUTH).authenticate(f"Bearer {token()}")
    assert str(caught.value) == message


def test_rs256_keys_from_a_jwks_file_and_no_algorithm_confusion(tmp_path: Path) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    (tmp_path / "keys.json").write_text(json.dumps({"keys": [{**public_jwk, "kid": "k1"}]}))
    auth = Auth(jwt=Jwt(jwks="keys.json", audience="toolbridge"))
    authenticator = Authenticator(auth, base_dir=tmp_path)
    good = jwt.encode(claims(exp=now() + 60), private, algorithm="RS256", headers={"kid": "k1"})
    assert authenticator.authenticate(f"Bearer {good}").id == "carol"
    # HS256 signed with the public key as the secret: the classic confusion attack.
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = hmac_jwt(claims(exp=now() + 60), public_pem)
    with pytest.raises(Unauthenticated) as caught:
        authenticator.authenticate(f"Bearer {forged}")
    assert str(caught.value) == "JWT algorithm 'HS256' is not accepted (RS256, ES256)"


def hmac_jwt(payload: dict[str, object], key: bytes) -> str:
    """An HS256 token signed by hand (PyJWT itself refuses to use a PEM key as a secret)."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = part(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = part(json.dumps(payload).encode())
    signature = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{part(signature)}"
