"""Spec validation for `toolbridge check`, with openapi-spec-validator.

It is slow on large documents (seconds), so it is never on the load path: a document that
fails validation still converts, and these findings go in the report beside the notes.
"""

from __future__ import annotations

from typing import Any

from openapi_spec_validator import (
    OpenAPIV2SpecValidator,
    OpenAPIV30SpecValidator,
    OpenAPIV31SpecValidator,
)

MAX_FINDINGS = 50


def validate_document(document: Any, uri: str, spec_version: str) -> list[str]:
    """Up to MAX_FINDINGS messages saying where the document breaks the OpenAPI specification."""
    if spec_version.startswith("2"):
        validator_class: Any = OpenAPIV2SpecValidator
    elif spec_version.startswith("3.0"):
        validator_class = OpenAPIV30SpecValidator
    else:
        validator_class = OpenAPIV31SpecValidator
    findings: list[str] = []
    try:
        validator = validator_class(document, base_uri=uri)
        for error in validator.iter_errors():
            path = "/".join(str(p) for p in getattr(error, "absolute_path", ()) or ())
            message = str(getattr(error, "message", error)).splitlines()[0][:300]
            findings.append(f"#/{path}: {message}" if path else message)
            if len(findings) >= MAX_FINDINGS:
                findings.append(f"(stopped after {MAX_FINDINGS} findings)")
                break
    except Exception as exc:
        ref = getattr(exc, "ref", None)
        detail = f"cannot resolve {ref!r}" if ref else f"{type(exc).__name__}: {exc}"
        findings.append(f"validation stopped: {detail[:300]}")
    return findings
