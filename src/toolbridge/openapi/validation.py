"""Spec validation for `toolbridge check`, with openapi-spec-validator.

It is slow on large documents (seconds), so it is never on the load path: a document that
fails validation still converts, and these findings go in the report beside the notes.

What it trusts: nothing of the document. The validator would follow `$ref`s itself (urllib and
requests, any URL or file, no deadline): it is given `read` instead, which answers only with
the documents the conversion already read under the source's rules (destinations, sizes, time);
any other reference stops the validation and is said.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from openapi_spec_validator import (
    OpenAPIV2SpecValidator,
    OpenAPIV30SpecValidator,
    OpenAPIV31SpecValidator,
)

MAX_FINDINGS = 50


def validate_document(
    document: Any, uri: str, spec_version: str, read: Callable[[str], Any]
) -> list[str]:
    """Up to MAX_FINDINGS messages saying where the document breaks the OpenAPI specification.
    `read(uri)` gives a document its `$ref`s name (raising for one it may not)."""
    if spec_version.startswith("2"):
        validator_class: Any = OpenAPIV2SpecValidator
    elif spec_version.startswith("3.0"):
        validator_class = OpenAPIV30SpecValidator
    else:
        validator_class = OpenAPIV31SpecValidator
    refused: list[str] = []

    def confined_read(ref_uri: str) -> Any:
        try:
            return read(ref_uri)
        except Exception:
            refused.append(ref_uri)
            raise

    # Every scheme the validator knows (`<all_urls>` is its fallback) goes to `read`.
    handlers = dict.fromkeys(("<all_urls>", "http", "https", "file"), confined_read)
    confined = type("Confined", (validator_class,), {"resolver_handlers": handlers})
    findings: list[str] = []
    try:
        validator = confined(document, base_uri=uri)
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
        if ref and refused:
            detail += " (not followed: the conversion did not read that document)"
        findings.append(f"validation stopped: {detail[:300]}")
    return findings
