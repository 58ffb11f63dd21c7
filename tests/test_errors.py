"""The one table from errors to what callers see (HTTP status, error type, body)."""

from __future__ import annotations

import pytest

from toolbridge.errors import (
    AlreadyExists,
    BadRequest,
    Forbidden,
    InvalidArguments,
    RateLimited,
    SecretKeyError,
    StoreUnavailable,
    ToolbridgeError,
    ToolNotFound,
    Unauthenticated,
    UpstreamUnavailable,
    error_body,
    error_status,
)


@pytest.mark.parametrize(
    ("error", "status", "body"),
    [
        (
            BadRequest("unknown format 'x'"),
            400,
            {"type": "bad_request", "message": "unknown format 'x'"},
        ),
        (BadRequest("too big", status=413), 413, {"type": "too_large", "message": "too big"}),
        (
            Unauthenticated("unknown API key"),
            401,
            {"type": "unauthenticated", "message": "unknown API key"},
        ),
        (Forbidden("admins only"), 403, {"type": "forbidden", "message": "admins only"}),
        (
            ToolNotFound("no tool named 'x'"),
            404,
            {"type": "not_found", "message": "no tool named 'x'"},
        ),
        (
            InvalidArguments("t", [("$.a", "is wrong")]),
            422,
            {
                "type": "invalid_arguments",
                "message": "invalid arguments for 't': $.a: is wrong",
                "problems": [{"path": "$.a", "message": "is wrong"}],
            },
        ),
        (
            RateLimited("slow down", retry_after=2.0),
            429,
            {"type": "rate_limited", "message": "slow down"},
        ),
        (
            UpstreamUnavailable("s", "refused"),
            502,
            {"type": "upstream_unavailable", "message": "upstream 's': refused"},
        ),
        (
            UpstreamUnavailable("s", "no answer within 1 s", timeout=True),
            504,
            {"type": "upstream_timeout", "message": "upstream 's': no answer within 1 s"},
        ),
        (
            AlreadyExists("server 'p' is already registered"),
            409,
            {"type": "conflict", "message": "server 'p' is already registered"},
        ),
        (
            StoreUnavailable("save server 'p'", "postgresql://db/x", "connection refused"),
            503,
            {
                "type": "store_unavailable",
                "message": "could not save server 'p': the state store postgresql://db/x is "
                "unavailable (connection refused)",
            },
        ),
        (
            SecretKeyError("TOOLBRIDGE_SECRET_KEY is not set"),
            503,
            {"type": "secret_key", "message": "TOOLBRIDGE_SECRET_KEY is not set"},
        ),
        (ToolbridgeError("something else"), 500, {"type": "internal", "message": "something else"}),
    ],
)
def test_error_table(error: ToolbridgeError, status: int, body: dict[str, object]) -> None:
    assert (error_status(error)[0], error_body(error)) == (status, {"error": body})
