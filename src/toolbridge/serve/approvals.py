"""Approved versions of `on_change: hold` sources, kept in the state store across restarts.

A held source serves the version an admin approved, never the document as it is now, until
the new one is approved: also after a restart. So each approved version (the first one a
source is loaded with counts as approved) is written to the store's `documents` (its packed
conversion, `openapi.packing`, under the digest of the documents it came from), and a process
that starts finds there what was approved last: when the documents read now differ from it,
the approved version is served and the new one held, as if nothing had restarted.

What a read trusts: the state store (the operator's database, as for registered sources).
An entry that cannot be read (written by a toolbridge whose packing format differs) is
reported with a warning, and the source's documents as read now become its approved version:
the upgrade, an operator's act, counts as approving them.
"""

from __future__ import annotations

import logging

import orjson

from toolbridge.errors import ToolbridgeError
from toolbridge.gateway import Gateway
from toolbridge.openapi.convert import Conversion
from toolbridge.openapi.packing import PackError, pack, unpack
from toolbridge.state.store import Store

logger = logging.getLogger(__name__)

MAGIC = b"toolbridge-approved\n"
GATEWAY = "gateway"
"""Who approved a source's first version (the store's `approved_by`)."""


def encode(digest: str, conversion: Conversion) -> bytes:
    """An approved version as the store keeps it: its digest, then its packed conversion."""
    return MAGIC + orjson.dumps({"digest": digest}) + b"\n" + pack(conversion)


def decode(data: bytes) -> tuple[str, Conversion]:
    """(digest, conversion) of what `encode` made; PackError when the bytes are not that."""
    digest, rest = _head(data)
    return digest, unpack(data[rest:])


def _head(data: bytes) -> tuple[str, int]:
    """An entry's digest, and where its packed conversion starts; PackError if it has none."""
    if not data.startswith(MAGIC):
        raise PackError("not an approved version of toolbridge's")
    newline = data.find(b"\n", len(MAGIC))
    try:
        digest = orjson.loads(data[len(MAGIC) : newline])["digest"]
    except (orjson.JSONDecodeError, LookupError, TypeError) as exc:
        raise PackError(f"malformed head: {exc}") from None
    if not isinstance(digest, str):
        raise PackError("malformed head: the digest is not a string")
    return digest, newline + 1


async def restore(gateway: Gateway, store: Store) -> list[str]:
    """At start: serve each held source's approved version where its documents changed while
    the gateway was down (the new version waits for approval). The ids of those restored."""
    restored = []
    for server in gateway.config.servers:
        if server.on_change != "hold":
            continue
        current = gateway.approved().get(server.id)
        stored = await store.documents.approved(server.id)
        if current is None or stored is None:
            continue
        try:
            digest, conversion = decode(stored.content)
        except PackError as exc:
            logger.warning(
                "source %s: its approved version in the state store cannot be read (%s); the "
                "documents as they are now become its approved version",
                server.id,
                exc,
            )
            continue
        if digest == current:
            continue
        await gateway.restore(server.id, conversion, digest)
        logger.warning(
            "source %s: its documents changed while the gateway was down (sha256 %s); serving "
            "the version %s approved (sha256 %s) until the new one is approved",
            server.id,
            current[:12],
            stored.version.approved_by,
            digest[:12],
        )
        restored.append(server.id)
    return restored


async def keep(gateway: Gateway, store: Store, kept: dict[str, str], *, by: str = GATEWAY) -> None:
    """Write each held source's approved version to the store, where it is not there yet.

    `kept`: the digest known to be stored, per source (this process's memory of what it read
    and wrote), so that a reload reads the store only for sources it has not seen yet.
    """
    sources = {s.id: s for s in gateway.catalog.sources}
    for ident, digest in gateway.approved().items():
        status = sources.get(ident)
        if kept.get(ident) == digest or status is None:
            continue
        if not isinstance(status.conversion, Conversion):
            continue
        try:
            stored = await store.documents.approved(ident)
            if stored is None or _stored_digest(stored.content) != digest:
                await store.documents.approve(ident, encode(digest, status.conversion), by=by)
            kept[ident] = digest
        except PackError as exc:
            logger.warning("source %s: its approved version cannot be stored (%s)", ident, exc)
        except ToolbridgeError as exc:
            logger.warning("source %s: its approved version was not stored: %s", ident, exc)


async def newer_in_store(gateway: Gateway, store: Store) -> dict[str, str]:
    """The digest the store has as approved, per held source where it is not the one served
    here (an approval this process did not hear of: see `retention`)."""
    found = {}
    for ident, digest in gateway.approved().items():
        stored = await store.documents.approved(ident)
        stored_digest = _stored_digest(stored.content) if stored is not None else None
        if stored_digest is not None and stored_digest != digest:
            found[ident] = stored_digest
    return found


def _stored_digest(content: bytes) -> str | None:
    try:
        return _head(content)[0]
    except PackError:
        return None
