"""API keys to principals; open mode without an `auth` section."""

from __future__ import annotations

import hashlib

import pytest

from toolbridge.config import ApiKey, Auth
from toolbridge.errors import Unauthenticated
from toolbridge.identity import Authenticator
from toolbridge.policy import ANONYMOUS_ADMIN, Principal

AUTH = Auth(
    api_keys=(
        ApiKey(user="alice", key="alice-key-0123456789", groups=("support",)),
        ApiKey(
            user="ops", key_sha256=hashlib.sha256(b"ops-key-0123456789").hexdigest(), admin=True
        ),
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
