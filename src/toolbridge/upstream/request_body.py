"""A request's body as its `BodyPlan` says: JSON, a form, multipart (files as base64
`{content, filename}`), NDJSON, text in the plan's charset, or binary from base64.

The body alone: where parameters go and which headers win is `request`'s business.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from typing import Any

from toolbridge.http_values import header_problem
from toolbridge.json_text import dumps
from toolbridge.tools import BodyPlan, FieldEncoding, HttpOperation
from toolbridge.upstream.media_types import CHARSET, is_json_type
from toolbridge.upstream.styles import (
    Pairs,
    Unsendable,
    kind_of,
    query_enc,
    styled_pairs,
    text_of,
    whole_numbers,
)

_URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")


def build_body(
    op: HttpOperation, arguments: Mapping[str, Any], problems: list[tuple[str, str]]
) -> tuple[bytes | None, str | None]:
    plan = op.body
    if plan is None:
        return None, None
    bound = {b.argument for b in op.params}  # a parameter's argument never goes in the body
    if plan.argument is not None:
        value = arguments.get(plan.argument)
        if value is None:
            return None, None
        where = f"$.{plan.argument}"
    else:
        present = [(a, f) for a, f in plan.fields if a in arguments and a not in bound]
        if not present and not plan.required:
            return None, None
        value = {f: arguments[a] for a, f in present}
        where = "$"
    try:
        return _encode_body(plan, value, where)
    except Unsendable as exc:
        problems.append((exc.where or where, exc.message))
        return None, None


def _encode_body(plan: BodyPlan, value: Any, where: str) -> tuple[bytes, str]:
    media_type = plan.media_type
    match plan.kind:
        case "json":
            concrete = media_type if "*" not in media_type else "application/json"
            return _json(value, where), concrete
        case "form":
            fields = _fields(value, where)
            return _form(fields, dict(plan.encoding)).encode("ascii"), media_type
        case "multipart":
            fields = _fields(value, where)
            body, boundary = _multipart(fields, dict(plan.encoding), where)
            return body, f"multipart/form-data; boundary={boundary}"
        case "ndjson":
            if not isinstance(value, list | tuple):
                raise Unsendable(where, "expected a list of records for this body")
            lines = [_json(item, f"{where}[{i}]") for i, item in enumerate(value)]
            return b"".join(line + b"\n" for line in lines), media_type
        case "text":
            if isinstance(value, dict | list | tuple):
                raise Unsendable(where, "expected text for this body, found a JSON structure")
            return _encoded_text(text_of(value), media_type, where)
        case "binary":
            concrete = media_type if "*" not in media_type else "application/octet-stream"
            return _base64(value, where), concrete


def _encoded_text(text: str, media_type: str, where: str) -> tuple[bytes, str]:
    """Text in the charset the media type names, else UTF-8 (said so for text/* types)."""
    match = CHARSET.search(media_type)
    if match is None:
        suffix = "; charset=utf-8" if media_type.lower().startswith("text/") else ""
        return text.encode("utf-8"), media_type + suffix
    charset = match.group(1)
    try:
        return text.encode(charset), media_type
    except LookupError as exc:
        raise Unsendable(where, f"the body's charset {charset!r} is unknown") from exc
    except UnicodeEncodeError as exc:
        where_in = f"character {exc.start}"
        raise Unsendable(where, f"cannot be sent as {charset}: {where_in} is not in it") from exc


def _fields(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Unsendable(where, f"expected an object of form fields, found {kind_of(value)}")
    return {k: v for k, v in value.items() if v is not None}


def _form(fields: Mapping[str, Any], encoding: Mapping[str, FieldEncoding]) -> str:
    enc = query_enc(False)
    pairs: Pairs = []
    for name, value in fields.items():
        rule = encoding.get(name, FieldEncoding())
        pairs.extend(styled_pairs(name, value, rule.style, rule.explode, rule.content_type, enc))
    return "&".join(f"{k}={v}" for k, v in pairs)


def _multipart(
    fields: Mapping[str, Any], encoding: Mapping[str, FieldEncoding], where: str
) -> tuple[bytes, str]:
    parts: list[bytes] = []
    for name, value in fields.items():
        rule = encoding.get(name, FieldEncoding())
        path = f"{where}.{name}" if where != "$" else f"$.{name}"
        many = isinstance(value, list | tuple)
        items = list(value) if many else [value]
        if rule.is_file:
            for i, item in enumerate(items):
                where_item = f"{path}[{i}]" if many else path
                parts.append(_file_part(name, item, where_item, _one_type(rule.content_type)))
        elif rule.content_type is not None and is_json_type(rule.content_type):
            parts.append(_part(name, _json(value, path), rule.content_type))
        else:
            parts.extend(_value_part(name, item, rule.content_type, path) for item in items)
    boundary = "toolbridge-" + hashlib.blake2b(b"".join(parts), digest_size=16).hexdigest()
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + part for part in parts)
    return body + b"--" + boundary.encode() + b"--\r\n", boundary


def _one_type(content_type: str | None) -> str | None:
    """The media type a file part is sent as when the caller says none: the first concrete one
    its `encoding.contentType` lists (`image/png, image/jpeg`: one the document allows), else
    None (`image/*`)."""
    for listed in (content_type or "").split(","):
        if listed.strip() and "*" not in listed:
            return listed.strip()
    return None


def _file_part(name: str, value: Any, where: str, declared: str | None = None) -> bytes:
    """A file part: its content type as the caller gives it, else the document's for the field
    (`_one_type`), else `application/octet-stream`."""
    if not isinstance(value, dict) or "content" not in value:
        raise Unsendable(where, f"expected a file {{content, filename}}, found {kind_of(value)}")
    content = _base64(value["content"], f"{where}.content")
    filename = value.get("filename") or name
    content_type = value.get("content_type") or declared or "application/octet-stream"
    if not isinstance(filename, str) or not isinstance(content_type, str):
        raise Unsendable(where, "filename and content_type must be strings")
    problem = header_problem(content_type)
    if problem is not None:
        raise Unsendable(f"{where}.content_type", problem)
    return _part(name, content, content_type, filename)


def _value_part(name: str, value: Any, content_type: str | None, where: str) -> bytes:
    if isinstance(value, dict | list | tuple):
        return _part(name, _json(value, where), content_type or "application/json")
    return _part(name, text_of(value).encode("utf-8"), content_type)


def _part(
    name: str, content: bytes, content_type: str | None, filename: str | None = None
) -> bytes:
    disposition = f'form-data; name="{_disposition_text(name)}"'
    if filename is not None:
        disposition += f'; filename="{_disposition_text(filename)}"'
    head = f"Content-Disposition: {disposition}\r\n"
    if content_type:
        head += f"Content-Type: {content_type}\r\n"
    return head.encode("utf-8") + b"\r\n" + content + b"\r\n"


def _disposition_text(text: str) -> str:
    """As browsers escape field and file names in multipart/form-data (the HTML standard)."""
    return text.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _json(value: Any, where: str) -> bytes:
    try:
        return dumps(whole_numbers(value))
    except TypeError as exc:
        raise Unsendable(where, f"cannot be sent as JSON: {exc}") from exc


def _base64(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise Unsendable(where, f"expected base64 text, found {kind_of(value)}")
    # Line-wrapped (MIME), unpadded and URL-safe base64 are all common: accept each, strictly.
    compact = "".join(value.split()).translate(_URLSAFE_TO_STANDARD)
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Unsendable(where, f"is not valid base64 ({exc})") from exc
