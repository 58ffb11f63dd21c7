"""`$ref`s followed across the documents of one source: where a reference points, and what is there.

Knows JSON pointers and which documents a source may reach (files, and for URL sources the URLs
on its destinations: the document's origin and the server's `allowed_hosts`); it does not know
what a schema is (`definitions` and `keywords` translate what it finds).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

from toolbridge.errors import DocumentError
from toolbridge.openapi.documents import DocumentStore, resolve_pointer, uri_to_display
from toolbridge.schemas import json_kind, pointer_token
from toolbridge.upstream.destinations import Destinations

MAX_REF_CHAIN = 32
DOCUMENT_SUFFIXES = (".json", ".yaml", ".yml")
"""What a file `$ref` may name: a document, not any file of the host (`/etc/passwd`, a key, a
`.env`), whichever folder it is in (multi-file documents climb out of their own: Azure's refer
to `../../../../../common-types/...`)."""


def _defragged(uri: str) -> str:
    """`urldefrag(uri)[0]`, without parsing a URI that has no fragment (the usual case)."""
    return uri if "#" not in uri else urldefrag(uri)[0]


class RefError(Exception):
    """A `$ref` that cannot be followed; the message says why."""


class References:
    """Follows `$ref`s across the documents of one source (files and, for URL sources, URLs)."""

    def __init__(
        self, store: DocumentStore, root_uri: str, destinations: Destinations | None = None
    ) -> None:
        """`destinations`: where remote documents may be fetched from (without it, the root
        document's origin only)."""
        self.store = store
        self.root_uri = root_uri
        self.remote_allowed = urlsplit(root_uri).scheme in ("http", "https")
        self.destinations = destinations or Destinations.of("document", [root_uri])
        self._located: dict[tuple[str, str], tuple[str, str]] = {}
        self._followed: dict[tuple[str, str], tuple[Any, str, str]] = {}

    def locate(self, ref: Any, base_uri: str) -> tuple[str, str]:
        """The (document URI, JSON pointer) a `$ref` names, relative to `base_uri`."""
        if not isinstance(ref, str):
            raise RefError(f"a $ref must be a string, found {json_kind(ref)}")
        key = (ref, base_uri)
        located = self._located.get(key)
        if located is None:
            located = self._locate(ref, base_uri)
            self._located[key] = located
        return located

    def _locate(self, ref: str, base_uri: str) -> tuple[str, str]:
        if ref.startswith("#"):
            return _defragged(base_uri), unquote(ref[1:])
        target = urljoin(base_uri, ref)
        uri, fragment = urldefrag(target)
        scheme = urlsplit(uri).scheme
        if scheme in ("http", "https") and not self.remote_allowed:
            raise RefError("remote reference not followed for a document read from a file")
        if scheme in ("http", "https"):
            refusal = self.destinations.refusal(uri)
            if refusal is not None:
                raise RefError(f"remote reference not followed: {refusal}")
        if scheme == "file" and urlsplit(base_uri).scheme != "file":
            raise RefError("a document read from a URL may not refer to local files")
        if scheme == "file" and not uri.lower().endswith(DOCUMENT_SUFFIXES):
            raise RefError(
                f"a file reference must name a .json, .yaml or .yml document, found {ref!r}"
            )
        return uri, unquote(fragment)

    def follow(self, ref: Any, base_uri: str) -> tuple[Any, str, str]:
        """Follow a `$ref` (and any chain of pure `$ref`s) to (value, document URI, pointer).

        Each reference is followed once; its answer is kept (documents do not change while a
        source is converted), so a parameter that 1,000 operations name costs one lookup.
        """
        key = (ref, base_uri) if isinstance(ref, str) else None
        found = self._followed.get(key) if key is not None else None
        if found is None:
            found = self._follow(ref, base_uri)
            if key is not None:
                self._followed[key] = found
        return found

    def _follow(self, ref: Any, base_uri: str) -> tuple[Any, str, str]:
        uri, pointer = self.locate(ref, base_uri)
        for _ in range(MAX_REF_CHAIN):
            try:
                document = self.store.get(uri)
            except DocumentError as exc:
                raise RefError(str(exc)) from exc
            try:
                value = resolve_pointer(document.data, pointer)
            except KeyError:
                raise RefError(f"nothing at #{pointer} in {uri_to_display(uri)}") from None
            if isinstance(value, dict) and "$ref" in value and len(value) == 1:
                uri, pointer = self.locate(value["$ref"], uri)
                continue
            return value, uri, pointer
        raise RefError(f"a chain of more than {MAX_REF_CHAIN} references")


def outside_refs(data: Any) -> Iterator[tuple[str, str]]:
    """(JSON pointer, `$ref`) of each reference in a parsed document to something other than
    itself (another file, or a URL), in document order."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        pointer, node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and not ref.startswith("#"):
                yield pointer or "/", ref
            items = [(f"{pointer}/{pointer_token(str(k))}", v) for k, v in node.items()]
        elif isinstance(node, list):
            items = [(f"{pointer}/{i}", v) for i, v in enumerate(node)]
        else:
            continue
        stack.extend(reversed(items))
