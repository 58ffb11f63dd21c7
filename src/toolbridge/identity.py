"""Who is calling: credentials (API keys, JWTs) turned into a `Principal`.

This answers only "who is this?"; `policy.py` answers "may they?". Keys are compared as
SHA-256 digests in constant time, and every key is compared, so timing says nothing. JWTs are
checked with PyJWT: only the algorithms the configured key allows (HS256 for a secret, RS256 or
ES256 for JWKS keys, so `alg: none` and algorithm confusion are refused), signature, expiry
(with a small leeway), issuer and audience.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import re
import threading
import time
from pathlib import Path
from typing import Any

from toolbridge.config import Auth, Jwt
from toolbridge.errors import ConfigError, Unauthenticated
from toolbridge.policy import ANONYMOUS_ADMIN, Principal

logger = logging.getLogger(__name__)

MAX_USER_CHARS = 320
"""The longest user name a caller may have: the state store keeps user ids of up to this."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Authenticator:
    """Maps the `Authorization` header of a request to a principal."""

    def __init__(self, auth: Auth | None, *, base_dir: Path | None = None) -> None:
        self.open = auth is None
        self.jwt = JwtVerifier(auth.jwt, base_dir or Path.cwd()) if auth and auth.jwt else None
        self._keys: list[tuple[bytes, Principal]] = []
        for entry in auth.api_keys if auth else ():
            if entry.key:
                digest = hashlib.sha256(entry.key.encode()).digest()
            elif entry.key_sha256:
                digest = bytes.fromhex(entry.key_sha256)
            else:
                continue
            principal = Principal(
                id=entry.user,
                name=entry.name or entry.user,
                email=entry.email,
                groups=frozenset(entry.groups),
                admin=entry.admin,
            )
            self._keys.append((digest, principal))

    def authenticate(self, authorization: str | None) -> Principal:
        if self.open:
            return ANONYMOUS_ADMIN
        if not authorization:
            raise Unauthenticated("send Authorization: Bearer <api key>")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("expected Authorization: Bearer <api key>")
        token = token.strip()
        presented = hashlib.sha256(token.encode()).digest()
        found: Principal | None = None
        for digest, principal in self._keys:
            if hmac.compare_digest(digest, presented) and found is None:
                found = principal
        if found is not None:
            return found
        if self.jwt is not None and token.count(".") == 2:
            return self.jwt.verify(token)
        raise Unauthenticated("unknown API key")


class JwtVerifier:
    """Checks bearer JWTs against the configured key, issuer and audience.

    PyJWT (and the cryptography it loads) is imported when one is made: a gateway without
    JWTs does not pay its tenth of a second at start.
    """

    def __init__(self, config: Jwt, base_dir: Path) -> None:
        import jwt

        self.config = config
        self._remote: RemoteKeys | None = None
        self._keys: dict[str, Any] = {}
        if config.secret is not None:
            self.algorithms = ["HS256"]
        else:
            self.algorithms = ["RS256", "ES256"]
            source = config.jwks or ""
            if source.startswith(("http://", "https://")):
                self._remote = RemoteKeys(source)
            else:
                path = Path(source) if Path(source).is_absolute() else base_dir / source
                try:
                    keys = jwt.PyJWKSet.from_json(path.read_text(encoding="utf-8"))
                except (OSError, jwt.PyJWKSetError) as exc:
                    raise ConfigError(
                        f"auth.jwt.jwks: cannot read keys from {path}: {exc}"
                    ) from exc
                self._keys = {key.key_id or "": key.key for key in keys.keys}

    def verify(self, token: str) -> Principal:
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"not a valid JWT: {exc}") from None
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            accepted = ", ".join(self.algorithms)
            raise Unauthenticated(f"JWT algorithm {algorithm!r} is not accepted ({accepted})")
        try:
            claims = jwt.decode(
                token,
                self._key(token, header),
                algorithms=self.algorithms,
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway,
                options={"require": ["exp"], "verify_aud": self.config.audience is not None},
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"JWT refused: {exc}") from None
        user = claims.get(self.config.user_claim)
        if not isinstance(user, str) or not user:
            raise Unauthenticated(f"JWT has no {self.config.user_claim!r} claim naming the user")
        if len(user) > MAX_USER_CHARS or _CONTROL.search(user):
            why = (
                f"over {MAX_USER_CHARS} characters"
                if len(user) > MAX_USER_CHARS
                else "control characters"
            )
            raise Unauthenticated(
                f"JWT's {self.config.user_claim!r} claim is no user name this gateway keeps: {why}"
            )
        groups = claims.get(self.config.groups_claim) or []
        groups = (
            frozenset(g for g in groups if isinstance(g, str))
            if isinstance(groups, list)
            else frozenset()
        )
        return Principal(
            id=user,
            name=claims.get("name") if isinstance(claims.get("name"), str) else user,
            email=claims.get("email") if isinstance(claims.get("email"), str) else None,
            groups=groups,
            admin=self.config.admin_group is not None and self.config.admin_group in groups,
            token_expires_at=claims["exp"] if isinstance(claims.get("exp"), int) else None,
        )

    def _key(self, token: str, header: dict[str, Any]) -> Any:
        if self.config.secret is not None:
            return self.config.secret
        kid = header.get("kid") or ""
        keys = self._remote.keys(kid) if self._remote is not None else self._keys
        key = keys.get(kid) or (next(iter(keys.values())) if len(keys) == 1 else None)
        if key is None:
            raise Unauthenticated(f"JWT signing key {kid!r} is not among the configured keys")
        return key


class RemoteKeys:
    """The signing keys of a JWKS URL, fetched in a thread of their own, never by a request.

    What it trusts: the URL (the operator's config) and the key set it answers. A token names
    its `kid`; one the set lacks asks for the set again (as a rotation needs), at most once per
    `COOLDOWN` seconds whatever callers send, and the request that asked is answered at once
    with the keys there are: a slow or down key server, or junk tokens, cannot hold requests
    (PyJWKClient fetched on the event loop, 5 s per junk token, every other request waiting).
    The set is fetched again every `LIFESPAN` seconds too, the same way. The first fetch is
    waited for when the keys are made (a start or a reload, off the event loop), up to
    `FIRST_WAIT`.
    """

    TIMEOUT = 5.0
    """One fetch, in all."""
    FIRST_WAIT = 6.0
    LIFESPAN = 600.0
    COOLDOWN = 30.0

    def __init__(self, url: str) -> None:
        self.url = url
        self._keys: dict[str, Any] = {}
        self._fetched_at = -math.inf
        self._next_fetch = -math.inf
        self._lock = threading.Lock()
        self._fetching: threading.Thread | None = None
        first = self._fetch_soon()
        if first is not None:
            first.join(self.FIRST_WAIT)

    def keys(self, kid: str) -> dict[str, Any]:
        """The keys as fetched last; a fetch is started (not waited for) when `kid` is not
        among them or they are older than LIFESPAN."""
        keys = self._keys
        if kid not in keys or time.monotonic() - self._fetched_at > self.LIFESPAN:
            self._fetch_soon()
        return keys

    def _fetch_soon(self) -> threading.Thread | None:
        with self._lock:
            now = time.monotonic()
            if (self._fetching is not None and self._fetching.is_alive()) or now < self._next_fetch:
                return None
            self._next_fetch = now + self.COOLDOWN
            thread = threading.Thread(target=self._fetch, name="toolbridge-jwks", daemon=True)
            self._fetching = thread
        thread.start()
        return thread

    def _fetch(self) -> None:
        import jwt

        try:
            client = jwt.PyJWKClient(
                self.url, cache_keys=False, cache_jwk_set=False, timeout=self.TIMEOUT
            )
            found = client.get_jwk_set(refresh=True)
        except (jwt.PyJWTError, OSError, ValueError) as exc:
            logger.warning(
                "auth.jwt.jwks: cannot fetch the signing keys (%s); next try in %g s",
                exc,
                self.COOLDOWN,
            )
            return
        self._keys = {key.key_id or "": key.key for key in found.keys}
        self._fetched_at = time.monotonic()
