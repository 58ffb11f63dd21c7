"""Every exception toolbridge raises, in one tree.

    ToolbridgeError
    ├── ConfigError          the YAML config is unreadable or invalid (names file, line, key path)
    │                        -> HTTP 422 when a reload refuses it
    ├── SourceError          a document or module cannot be read or parsed at all
    │   ├── DocumentError    an OpenAPI document is unreadable, unparsable or not OpenAPI
    │   └── ToolNameClash    two sources produce the same tool name (suggests a prefix)
    ├── BadRequest           a malformed request (unknown format, body too large) -> 400 / 413
    ├── Unauthenticated      no or unknown credential                    -> HTTP 401
    ├── Forbidden            an admin operation asked by a non-admin     -> HTTP 403
    │   └── CredentialRequired  a `per_user` server, and the caller stored no credential
    ├── ToolNotFound         no such tool for this caller                -> HTTP 404
    ├── InvalidArguments     arguments fail the tool's schema (details)  -> HTTP 422
    ├── Conflict             a change the current state does not allow     -> HTTP 409
    │   ├── AlreadyExists    a create of something the state store already holds -> HTTP 409
    │   └── PreconditionFailed  an entry's revision is not the one `If-Match` names -> HTTP 412
    ├── RateLimited          the caller is over its rate limit           -> HTTP 429
    ├── UpstreamUnavailable  connect error or timeout reaching the API   -> HTTP 502 / 504
    │   ├── DestinationRefused   a host the server's destination policy refuses -> HTTP 502
    │   └── UpstreamBusy         the server's `max_concurrency` calls are in flight -> HTTP 503
    ├── ToolsBusy            the process's sync local tools have every thread they may use -> 503
    ├── StoreUnavailable     the state store cannot be reached (says what was attempted) -> 503
    ├── SecretKeyError       no key to seal a secret, or none that opens a stored one -> 503
    └── ShuttingDown         the process stopped before the request's answer  -> HTTP 503

    AnswerNeeded             not an error: a local tool asked the caller a question
                             (`__event_call__`) that must be answered first; a BaseException,
                             so that a tool's own `except Exception` cannot swallow it

Problems that degrade a single operation (a dangling `$ref`, a media type we cannot send)
are not exceptions: they become `Note`s in the conversion report, and the rest of the
document still converts. An upstream 4xx/5xx is a result, not an exception.
"""

from __future__ import annotations

import math


class ToolbridgeError(Exception):
    """Base of every error toolbridge raises on purpose."""


class ConfigError(ToolbridgeError):
    """The config file is unreadable or invalid; the message names file, line and key path."""


class SourceError(ToolbridgeError):
    """A source (OpenAPI document or Python module) cannot become tools at all."""


class DocumentError(SourceError):
    """An OpenAPI document cannot be read, parsed, or is not an OpenAPI document."""

    def __init__(self, location: str, message: str) -> None:
        super().__init__(f"{location}: {message}")
        self.location = location


class ToolNameClash(SourceError):
    """Two tools would get the same name."""


class BadRequest(ToolbridgeError):
    """The request itself is malformed: an unknown query value, a body over the size limit."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Forbidden(ToolbridgeError):
    """An authenticated caller asked for something only admins may do."""


class Unauthenticated(ToolbridgeError):
    """The caller sent no credential, or one we do not know."""


class ToolNotFound(ToolbridgeError):
    """No tool of that name exists for this caller."""


class InvalidArguments(ToolbridgeError):
    """The arguments do not satisfy the tool's input schema."""

    def __init__(self, tool: str, problems: list[tuple[str, str]]) -> None:
        listed = "; ".join(f"{path}: {message}" for path, message in problems)
        super().__init__(f"invalid arguments for {tool!r}: {listed}")
        self.problems = problems


class RateLimited(ToolbridgeError):
    """The caller made more calls than its rate limit allows; `retry_after` is in seconds."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def retry_seconds(wait: float) -> int:
    """A wait as the whole seconds `Retry-After` says (1 at least), and messages with it."""
    return max(1, math.ceil(wait))


class CredentialRequired(Forbidden):
    """A server takes each caller's own credential (`auth: {type: per_user}`), and this caller
    has stored none; the message says how to store one."""


class Conflict(ToolbridgeError):
    """A change the current state does not allow (editing through the API what the config file
    defines, ...); the message says what to do instead."""


class AlreadyExists(Conflict):
    """A create asked for an id the state store already holds."""


class PreconditionFailed(Conflict):
    """A write asked to apply only to a revision of an entry (`If-Match`) that is no longer
    the stored one: someone else changed it since it was read."""


class UpstreamUnavailable(ToolbridgeError):
    """The upstream could not be reached, or did not answer in time."""

    def __init__(
        self, server: str, message: str, *, timeout: bool = False, sent: bool = False
    ) -> None:
        super().__init__(f"upstream {server!r}: {message}")
        self.server = server
        self.reason = message
        self.timeout = timeout
        self.sent = sent
        """The request may have reached the upstream (it failed after it was sent)."""


class DestinationRefused(UpstreamUnavailable):
    """A request would go to a host the server may not reach: not its configured origin nor in
    its `allowed_hosts`, or an address that is never reached (link-local, cloud metadata)."""


class UpstreamBusy(UpstreamUnavailable):
    """The server already has its `max_concurrency` calls in flight; `retry_after` in seconds."""

    def __init__(self, server: str, message: str, *, retry_after: float) -> None:
        super().__init__(server, message)
        self.retry_after = retry_after


class ToolsBusy(ToolbridgeError):
    """As many sync local tool calls run in this process as may (those past their timeout
    still hold their thread); `retry_after` in seconds."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreUnavailable(ToolbridgeError):
    """The state store (SQLite file or PostgreSQL) cannot be reached; `action` says what failed."""

    def __init__(self, action: str, where: str, reason: str) -> None:
        super().__init__(f"could not {action}: the state store {where} is unavailable ({reason})")
        self.action = action
        self.reason = reason


class SecretKeyError(ToolbridgeError):
    """No key to encrypt a secret with, or no configured key opens a stored secret."""


class ShuttingDown(ToolbridgeError):
    """The gateway is stopping (a deploy, SIGTERM) and its grace period ended mid-request."""

    def __init__(self) -> None:
        super().__init__(
            "the gateway stopped (restarting or shutting down) before this request was answered; "
            "a call it had sent upstream may or may not have taken effect: try again, and check "
            "before repeating a POST"
        )


# The one table from errors to what callers see: HTTP status and error type (first match wins).
# app.py answers with it, turns.py and mcp.py report with it.
_TABLE: tuple[tuple[type[ToolbridgeError], int, str], ...] = (
    (BadRequest, 400, "bad_request"),
    (Unauthenticated, 401, "unauthenticated"),
    (CredentialRequired, 403, "credential_required"),
    (Forbidden, 403, "forbidden"),
    (ToolNotFound, 404, "not_found"),
    (PreconditionFailed, 412, "precondition_failed"),
    (Conflict, 409, "conflict"),
    (InvalidArguments, 422, "invalid_arguments"),
    (ConfigError, 422, "invalid_config"),
    (RateLimited, 429, "rate_limited"),
    (DestinationRefused, 502, "destination_refused"),
    (UpstreamBusy, 503, "upstream_busy"),
    (ToolsBusy, 503, "tools_busy"),
    (UpstreamUnavailable, 502, "upstream_unavailable"),
    (StoreUnavailable, 503, "store_unavailable"),
    (SecretKeyError, 503, "secret_key"),
    (ShuttingDown, 503, "shutting_down"),
    (ToolbridgeError, 500, "internal"),
)


def error_status(exc: ToolbridgeError) -> tuple[int, str]:
    """The HTTP status and error type of an error."""
    if isinstance(exc, BadRequest):
        return exc.status, "too_large" if exc.status == 413 else "bad_request"
    if isinstance(exc, UpstreamUnavailable) and exc.timeout:
        return 504, "upstream_timeout"
    return next((status, kind) for cls, status, kind in _TABLE if isinstance(exc, cls))


def error_body(exc: ToolbridgeError) -> dict[str, object]:
    """`{"error": {"type", "message"[, "problems"]}}`, the body of every error answer."""
    body: dict[str, object] = {"type": error_status(exc)[1], "message": str(exc)}
    if isinstance(exc, InvalidArguments):
        body["problems"] = [{"path": path, "message": message} for path, message in exc.problems]
    return {"error": body}


class AnswerNeeded(BaseException):
    """A local tool asked a question (`__event_call__`) the caller has not answered yet.

    Raised inside the tool by an asker that answers over several requests (MCP's input-required
    rounds): the call ends without a result, and the edge that asked returns `request` to the
    caller, who calls again with the answer. `state` is what the next round needs to replay the
    answers given so far.
    """

    def __init__(self, key: str, request: dict[str, object], state: str) -> None:
        super().__init__(key)
        self.key = key
        self.request = request
        self.state = state


QUOTED_LIMIT = 80
"""How much of a name or id a caller sent an error quotes: ids are 40 characters at most and
tool names 64, so anything longer is not one, and an answer need not carry all of it."""


def quoted(name: str) -> str:
    """`name` quoted for an error message, cut to `QUOTED_LIMIT` characters (saying how long
    it was) when longer."""
    if len(name) <= QUOTED_LIMIT:
        return repr(name)
    return f"{name[:QUOTED_LIMIT]!r}... ({len(name):,} characters)"
