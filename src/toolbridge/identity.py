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
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolbridge.config import Auth, Jwt
from toolbridge.errors import ConfigError, Unauthenticated
from toolbridge.policy import ANONYMOUS_ADMIN, Principal

if TYPE_CHECKING:
    import jwt

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
        self._client: jwt.PyJWKClient | None = None
        self._keys: dict[str, Any] = {}
        if config.secret is not None:
            self.algorithms = ["HS256"]
        else:
            self.algorithms = ["RS256", "ES256"]
            source = config.jwks or ""
            if source.startswith(("http://", "https://")):
                # Keys are fetched once and cached; an unknown `kid` fetches them again.
                self._client = jwt.PyJWKClient(source, cache_keys=True, lifespan=600, timeout=5)
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
        import jwt

        if self.config.secret is not None:
            return self.config.secret
        if self._client is not None:
            try:
                return self._client.get_signing_key_from_jwt(token).key
            except jwt.PyJWTError as exc:
                raise Unauthenticated(f"JWT signing key not found: {exc}") from None
        kid = header.get("kid") or ""
        key = self._keys.get(kid) or (
            next(iter(self._keys.values())) if len(self._keys) == 1 else None
        )
        if key is None:
            raise Unauthenticated(f"JWT signing key {kid!r} is not among the configured keys")
        return key
