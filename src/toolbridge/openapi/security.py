"""Security in an OpenAPI document: the schemes it declares and the requirements operations state.

Read as plain values: the declared schemes by name (`$ref`s followed), each operation's
alternatives of scheme names, and where its API keys go, so those parameters are not arguments.
Supplying credentials is the upstream seam's job (`upstream.credentials`), not this module's.
"""

from __future__ import annotations

from typing import Any

from toolbridge.openapi.definitions import Version
from toolbridge.openapi.references import References, RefError
from toolbridge.tools import SecurityScheme


def slot_name(location: str, name: str) -> str:
    """How a parameter or API key is compared with others in its location (headers ignore case)."""
    return name.lower() if location == "header" else name


def declared(
    document: dict[str, Any], version: Version, refs: References, uri: str
) -> dict[str, dict[str, Any]]:
    """The schemes the document declares, by name, `$ref`s followed ({} for one not readable)."""
    schemes = _declared_mapping(document, version)
    return {
        str(name): _scheme(schemes, str(name), refs, uri)
        for name in (schemes if isinstance(schemes, dict) else ())
    }


def requirements(
    operation: dict[str, Any], document: dict[str, Any]
) -> tuple[tuple[str, ...], ...]:
    """The operation's security alternatives (its own, else the document's), as scheme names."""
    raw = operation.get("security", document.get("security"))
    if not isinstance(raw, list):
        return ()
    return tuple(
        tuple(str(k) for k in requirement) for requirement in raw if isinstance(requirement, dict)
    )


def api_key_slots(
    alternatives: tuple[tuple[str, ...], ...], schemes: dict[str, dict[str, Any]]
) -> set[tuple[str, str]]:
    """Where the apiKey schemes among `alternatives` put their keys: (location, slot name)."""
    slots: set[tuple[str, str]] = set()
    for alternative in alternatives:
        for scheme_name in alternative:
            scheme = schemes.get(scheme_name) or {}
            if scheme.get("type") == "apiKey" and isinstance(scheme.get("name"), str):
                location = str(scheme.get("in"))
                slots.add((location, slot_name(location, scheme["name"])))
    return slots


def security_schemes(schemes: dict[str, dict[str, Any]]) -> dict[str, SecurityScheme]:
    """The declared schemes as `SecurityScheme`s (what credential goes where), typed ones only."""
    out = {}
    for name, raw in schemes.items():
        kind = raw.get("type")
        if not isinstance(kind, str):
            continue
        if kind == "basic":  # Swagger 2.0
            kind, raw = "http", {"scheme": "basic"}
        out[name] = SecurityScheme(
            type=kind,
            location=_text(raw.get("in")),
            name=_text(raw.get("name")),
            scheme=(_text(raw.get("scheme")) or "").lower() or None,
        )
    return out


def _declared_mapping(document: dict[str, Any], version: Version) -> Any:
    if version == "2.0":
        return document.get("securityDefinitions")
    components = document.get("components")
    return components.get("securitySchemes") if isinstance(components, dict) else None


def _scheme(schemes: dict[str, Any], name: str, refs: References, uri: str) -> dict[str, Any]:
    scheme = schemes.get(name)
    if isinstance(scheme, dict) and "$ref" in scheme:
        try:
            scheme = refs.follow(scheme["$ref"], uri)[0]
        except RefError:
            scheme = None
    return scheme if isinstance(scheme, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
