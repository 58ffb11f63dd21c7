"""Who is calling: credentials (API keys; JWTs later) turned into a `Principal`.

This answers only "who is this?"; `policy.py` answers "may they?". Keys are compared as
SHA-256 digests in constant time, and every key is compared, so timing says nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import logging

from .config import Auth
from .errors import Unauthenticated
from .policy import ANONYMOUS_ADMIN, Principal

logger = logging.getLogger(__name__)


class Authenticator:
    """Maps the `Authorization` header of a request to a principal."""

    def __init__(self, auth: Auth | None) -> None:
        self.open = auth is None
        self._keys: list[tuple[bytes, Principal]] = []
        for entry in auth.api_keys if auth else ():
            if entry.key:
                digest = hashlib.sha256(entry.key.encode()).digest()
            elif entry.key_sha256:
                digest = bytes.fromhex(entry.key_sha256)
            else:
                continue
            principal = Principal(
                id=entry.user, name=entry.user, groups=frozenset(entry.groups), admin=entry.admin
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
        presented = hashlib.sha256(token.strip().encode()).digest()
        found: Principal | None = None
        for digest, principal in self._keys:
            if hmac.compare_digest(digest, presented) and found is None:
                found = principal
        if found is None:
            raise Unauthenticated("unknown API key")
        return found
