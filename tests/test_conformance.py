"""Conformance over the corpus: the requests we build validate against the document itself.

For a deterministic sample of operations of every document in MANIFEST.tsv (and every one whose
body is multipart or binary), arguments are
generated from the tool's input schema, `request.build_request` builds the request (with dummy
credentials for the operation's first security alternative), and openapi-core, reading the
original document, validates it: route, parameters, body and security. Swagger 2.0 documents,
which openapi-core cannot read, are reported as not checked. Failures that the document itself,
openapi-core, or an already reported converter bug explains are listed in KNOWN, each with its
reason; anything else fails. The last test prints the table of rates per document.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import random
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import jsonschema_rs
import pytest
from hypothesis import find, settings
from hypothesis import strategies as st
from openapi_core import Config, OpenAPI
from openapi_core.casting.schemas import (
    oas30_write_schema_casters_factory,
    oas31_schema_casters_factory,
)
from openapi_core.datatypes import RequestParameters
from openapi_core.deserializing.media_types.util import json_loads, plain_loads
from openapi_core.deserializing.styles import StyleDeserializersFactory, style_deserializers
from openapi_core.templating.paths.finders import APICallPathFinder
from werkzeug.datastructures import Headers, ImmutableMultiDict

from tests.corpus import CORPUS, ROWS
from toolbridge.arguments import ArgumentValidator
from toolbridge.errors import InvalidArguments
from toolbridge.openapi.convert import Conversion, convert
from toolbridge.openapi.documents import DocumentStore, cache_dir_from, location_to_uri
from toolbridge.tools import HttpOperation, JsonSchema, Tool
from toolbridge.upstream.request import build_request
from toolbridge.upstream.seam import AuthParts, UpstreamRequest

pytestmark = pytest.mark.corpus

SAMPLE = 25
"""Operations checked per document, spread evenly over the document."""
PLACEHOLDER_HOST = "https://api.example.test"
MAX_DEPTH = 5


@dataclass(frozen=True)
class Known:
    """Failures explained elsewhere: by the document, by openapi-core, or by a reported bug."""

    file: str
    tools: str
    """A regex over the tool names it covers (full match)."""
    problem: str
    """A regex that each of openapi-core's complaints about those tools matches."""
    kind: str
    """`spec` (the document is wrong), `oracle` (openapi-core is), `converter` (ours, reported),
    `generator` (this test's argument generator cannot satisfy the schema)."""
    reason: str


MULTIPART_READING = (
    "openapi-core's multipart reading hands parts to the validator as bytes (a file part is "
    "no 'string', a JSON part no 'object') and does not cast text parts to their schema's type"
)

KNOWN = (
    # -- the converter (reported; remove each entry when its fix lands) --
    # -- this test's own argument generator --
    # -- the documents --
    Known(
        "opensearch/spec/namespaces/_core.yaml",
        r"msearch_template_\d+",
        "is valid under each of",
        "spec",
        "the ndjson records are a `oneOf` of a header and a body whose branches overlap: a "
        "header matches both, which the API takes and the gateway (reading oneOf as anyOf) "
        "sends; openapi-core reads the document's oneOf strictly",
    ),
    Known(
        "spotify/official-spotify-open-api.yml",
        "upload-custom-playlist-cover",
        "is not a 'byte'|is not of type 'string'",
        "spec",
        "an image/jpeg body declared `format: byte` (base64 text): the gateway sends the bytes "
        "the media type names, as for xero's attachments",
    ),
    Known(
        "digitalocean/specification/DigitalOcean-public.v2.yaml",
        "inference_upload_batch_file",
        "route: PathNotFound",
        "spec",
        "`PUT /<upload_url>` stands for a presigned upload URL, not a path of the API",
    ),
    Known(
        "xero/xero_accounting.yaml",
        "\\w+AttachmentByFileName",
        "is not a 'byte'|is not of type 'string'",
        "spec",
        "an application/octet-stream body declared `format: byte` (base64 text) where the API "
        "takes the raw bytes",
    ),
    Known(
        "xero/xero_accounting.yaml",
        "getCreditNoteAttachmentByFileName",
        "AttachmentID",
        "spec",
        "`/CreditNotes/{CreditNoteID}/Attachments/{FileName}` and `.../{AttachmentID}` are the "
        "same template: the request is routed to the other operation",
    ),
    Known(
        "meilisearch/open-api.yaml",
        "tasks_get",
        "Missing required path parameter",
        "spec",
        "`/tasks/:taskUid` is not a template: the declared path parameter has no place",
    ),
    Known(
        "meilisearch/open-api.yaml",
        "indexes_documents_get",
        "Missing required path parameter",
        "spec",
        "the path parameter's schema is `type: any`, which openapi-core cannot read",
    ),
    Known(
        "adyen/TerminalAPI-v1.json",
        "post_cardreaderapdu",
        "generator",
        "spec",
        "`format: byte` with `pattern: ^.{1,1}$`: no base64 text is one character long",
    ),
    Known(
        "box/openapi.json",
        "get_search",
        "mdfilters",
        "spec",
        "an array of objects in a form query parameter: OpenAPI defines no serialization for "
        "it (each object is sent as JSON)",
    ),
    # -- openapi-core --
    Known(
        "openai/openapi.yaml",
        "createTranscription|createTranslation|createVoiceConsent|createVoice|createFile"
        "|createImageVariation|create-realtime-call|addUploadPart|Createcontentprovenancecheck"
        "|CreateVideoCharacter",
        "Request body validation error: Value \\{",
        "oracle",
        MULTIPART_READING,
    ),
    Known(
        "together/openapi.yaml",
        "post_files_upload|audio-transcriptions|audio-translations",
        "Request body validation error: Value \\{",
        "oracle",
        MULTIPART_READING,
    ),
    Known(
        "square/api.json",
        "UpdateCatalogImage|CreateDisputeEvidenceFile|CreateInvoiceAttachment",
        "Request body validation error: Value \\{",
        "oracle",
        MULTIPART_READING,
    ),
    Known(
        "asana/asana_oas.yaml",
        "createAttachmentForObject",
        "is not of type 'boolean'",
        "oracle",
        MULTIPART_READING,
    ),
    Known(
        "atlassian/jira-platform-swagger.v3.json",
        "addAttachment",
        "Value \\{\\} not valid for schema of type string",
        "oracle",
        "a multipart body whose schema is one binary string: openapi-core reads parts only by "
        "the properties of an object schema, so it finds none (`{}`)",
    ),
    Known(
        "okta/management-minimal.yaml",
        "publishSecurityEventTokens",
        "is not of type 'string'",
        "oracle",
        "openapi-core reads an application/secevent+jwt body as bytes, which its `type: string` "
        "schema refuses",
    ),
    Known(
        "discord/openapi.json",
        "create_guild_sticker",
        "oracle crashed: TypeError: Expected a string value, got <class 'list'>",
        "oracle",
        "openapi-core crashes reading this multipart body (its `tags` part)",
    ),
    Known(
        "temporal/openapiv3.yaml",
        ".*",
        "route: KeyError",
        "oracle",
        "openapi-core formats paths with str.format, which fails on dotted parameter names "
        "(`{deployment.series_name}`)",
    ),
    Known(
        "readme-oas-examples/3.1/security.json",
        "post_anything_mutualTLS",
        "KeyError: 'mutualTLS'",
        "oracle",
        "openapi-core has no provider for the mutualTLS security scheme",
    ),
    Known(
        "readme-oas-examples/3.0/parameters-style.yaml",
        "form_data_.*|formData_.*",
        "a bytes-like object is required|to array type: b'",
        "oracle",
        "openapi-core applies `encoding.style` to multipart parts (bytes) and fails; OpenAPI "
        "3.0 says style applies to application/x-www-form-urlencoded only",
    ),
    Known(
        "mistral/openapi-public-doc.yaml",
        "files_api_routes_upload_file|audio_api_v1_transcriptions_post(_stream)?"
        "|libraries_documents_upload_v1",
        "is not of type 'string'|is not valid under any|does not match",
        "oracle",
        "openapi-core's OpenAPI 3.1 multipart reading hands binary parts, and parts whose "
        "schema has no plain `type`, to the validator as bytes",
    ),
    Known(
        "redocly-openapi-starter/openapi/openapi.yaml",
        "createMenuItem",
        "discriminating property|'category' is a required property",
        "oracle",
        "openapi-core cannot choose a oneOf branch of a multipart body (parts are still text)",
    ),
)


@dataclass
class Row:
    """One document's line in the conformance table."""

    file: str
    version: str
    sampled: int = 0
    passed: int = 0
    known: dict[str, int] = field(default_factory=dict)
    """Failures explained by KNOWN, by kind."""
    failures: list[str] = field(default_factory=list)
    not_checked: str = ""


TABLE: dict[str, Row] = {}
"""Filled by the per-document tests, printed by the last test of this module."""


# -- arguments from an input schema ---------------------------------------------------------


class Generator:
    """Deterministic arguments for an input schema: required and some optional properties."""

    def __init__(self, schema: JsonSchema, seed: str) -> None:
        self.defs: dict[str, Any] = schema.get("$defs") or {}
        self.rng = random.Random(hashlib.sha256(seed.encode()).digest())
        self.validators: dict[int, Any] = {}

    def value(self, schema: Any, depth: int = 0) -> Any:
        schema = self._resolve(schema)
        if not isinstance(schema, dict):
            return "x"
        if "const" in schema:
            return schema["const"]
        enum = [v for v in schema.get("enum") or () if v is not None]
        if enum:
            return enum[self.rng.randrange(len(enum))]
        if "allOf" in schema:
            return self.value(self._merged(schema), depth)
        for key in ("oneOf", "anyOf"):
            branches = [b for b in schema.get(key) or () if not self._is_null(b)]
            if branches:
                return self._one_of(schema, key, branches, depth)
        match self._type(schema):
            case "object":
                return self._object(schema, depth)
            case "array":
                return self._array(schema, depth)
            case "integer":
                return int(self._number(schema, integer=True))
            case "number":
                return self._number(schema, integer=False)
            case "boolean":
                return self.rng.random() < 0.5
            case "null":
                return None
            case _:
                return self._string(schema)

    def _one_of(self, schema: dict[str, Any], key: str, branches: list[Any], depth: int) -> Any:
        """A value of one branch (tried from a random start) that the whole schema accepts."""
        rest = {k: v for k, v in schema.items() if k != key}
        start = self.rng.randrange(len(branches))
        value: Any = None
        for i in range(len(branches)):
            chosen = self._resolve(branches[(start + i) % len(branches)])
            if not isinstance(chosen, dict):
                continue
            value = self.value({**rest, **chosen}, depth)
            if self._valid(schema, value):
                break
        return value

    def _valid(self, schema: dict[str, Any], value: Any) -> bool:
        key = id(schema)
        if key not in self.validators:
            self.validators[key] = jsonschema_rs.validator_for({**schema, "$defs": self.defs})
        return bool(self.validators[key].is_valid(value))

    def _resolve(self, schema: Any) -> Any:
        for _ in range(32):
            if not (isinstance(schema, dict) and isinstance(schema.get("$ref"), str)):
                return schema
            target = self.defs.get(schema["$ref"].rsplit("/", 1)[-1], {})
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **rest} if isinstance(target, dict) else target
        return schema

    def _merged(self, schema: dict[str, Any]) -> dict[str, Any]:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            part = self._resolve(part)
            if not isinstance(part, dict):
                continue
            if "allOf" in part:
                part = self._merged(part)
            for key, value in part.items():
                if key == "properties":
                    merged["properties"] = {**merged.get("properties", {}), **value}
                elif key == "required":
                    merged["required"] = [*merged.get("required", []), *value]
                else:
                    merged.setdefault(key, value)
        return merged

    def _is_null(self, schema: Any) -> bool:
        schema = self._resolve(schema)
        return isinstance(schema, dict) and schema.get("type") == "null"

    def _type(self, schema: dict[str, Any]) -> str:
        kind = schema.get("type")
        if isinstance(kind, list):
            kinds = [k for k in kind if k != "null"]
            kind = kinds[0] if kinds else "null"
        if isinstance(kind, str):
            return kind
        if "properties" in schema:
            return "object"
        if "items" in schema:
            return "array"
        return "string"

    def _object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        properties = schema.get("properties") or {}
        required = [r for r in schema.get("required") or () if isinstance(r, str)]
        optional = [p for p in properties if p not in required]
        chosen = list(required)
        if depth < MAX_DEPTH:
            chosen += [p for p in optional if self.rng.random() < 0.4]
            if not chosen and optional:  # an empty object tests little
                chosen.append(optional[self.rng.randrange(len(optional))])
        low, high = schema.get("minProperties"), schema.get("maxProperties")
        if isinstance(low, int):
            chosen += [p for p in optional if p not in chosen][: max(0, low - len(chosen))]
        if isinstance(high, int):
            chosen = chosen[: max(high, len(required))]
        extra = schema.get("additionalProperties", {})
        return {
            name: self.value(properties.get(name, extra if extra is not False else {}), depth + 1)
            for name in chosen
        }

    def _array(self, schema: dict[str, Any], depth: int) -> list[Any]:
        low = int(schema.get("minItems") or 0)
        high = schema.get("maxItems")
        count = max(low, 1 if depth < MAX_DEPTH else 0)
        count = min(count, high) if isinstance(high, int) else count
        items = schema.get("items", {})
        prefix = schema.get("prefixItems") or []
        out = [self.value(sub, depth + 1) for sub in prefix[:count]]
        while len(out) < count:
            item = self.value(items, depth + 1)
            if schema.get("uniqueItems") and item in out:
                break
            out.append(item)
        return out

    def _number(self, schema: dict[str, Any], *, integer: bool) -> float:
        low = schema.get("minimum")
        high = schema.get("maximum")
        ex_low = schema.get("exclusiveMinimum")
        ex_high = schema.get("exclusiveMaximum")
        if isinstance(ex_low, int | float) and not isinstance(ex_low, bool):
            low = ex_low + 1
        if isinstance(ex_high, int | float) and not isinstance(ex_high, bool):
            high = ex_high - 1
        value: float = low if isinstance(low, int | float) else 1
        if isinstance(high, int | float) and value > high:
            value = high
        step = schema.get("multipleOf")
        if isinstance(step, int | float) and step > 0:
            value = (int(value // step) + (1 if value % step else 0)) * step
        return int(value) if integer else value

    def _string(self, schema: dict[str, Any]) -> str:
        pattern = schema.get("pattern")
        encoded = schema.get("contentEncoding") == "base64" or schema.get("format") == "byte"
        if isinstance(pattern, str) and not encoded:
            matched = _matching(pattern, schema.get("minLength"), schema.get("maxLength"))
            if matched is not None:
                return matched
        if schema.get("contentEncoding") == "base64" or schema.get("format") in ("byte", "binary"):
            return base64.b64encode(b"toolbridge").decode()
        formatted = _FORMATS.get(str(schema.get("format")))
        if formatted is not None:
            return formatted
        low = int(schema.get("minLength") or 0)
        high = schema.get("maxLength")
        # Characters that need percent-encoding somewhere (a server decodes them before
        # openapi-core splits styled values, so no delimiter of any style is among them).
        text = "tb" + "x" * self.rng.randrange(1, 6) + "/?#&+@%"
        text = text.ljust(low, "x")
        return text[:high] if isinstance(high, int) else text


_FORMATS = {
    "date": "2024-01-02",
    "date-time": "2024-01-02T03:04:05Z",
    "time": "03:04:05Z",
    "email": "user@example.com",
    "uuid": "123e4567-e89b-12d3-a456-426614174000",
    "uri": "https://example.com/a",
    "url": "https://example.com/a",
    "uri-reference": "https://example.com/a",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
}


@functools.cache
def _matching(pattern: str, low: int | None, high: int | None) -> str | None:
    """The simplest string the pattern matches (hypothesis, derandomized), or None."""
    low = low or 0
    try:
        strategy = st.from_regex(pattern, fullmatch=False, alphabet=st.characters(codec="ascii"))
        found: str = find(
            strategy,
            lambda s: len(s) >= low and (not isinstance(high, int) or len(s) <= high),
            settings=settings(database=None, derandomize=True, max_examples=200),
        )
    except Exception:  # an ECMA-only regex, or nothing short enough: fall back
        return None
    return found


# -- credentials that satisfy the operation's first security alternative ------------------


def dummy_auth(op: HttpOperation, conversion: Conversion) -> AuthParts:
    headers: list[tuple[str, str]] = []
    query: list[tuple[str, str]] = []
    cookies: list[tuple[str, str]] = []
    for name in op.security[0] if op.security else ():
        scheme = conversion.security_schemes.get(name)
        if scheme is None:
            continue
        if scheme.type == "apiKey" and scheme.name:
            where = {"header": headers, "query": query, "cookie": cookies}.get(
                scheme.location or "", headers
            )
            where.append((scheme.name, "test-key"))
        elif scheme.type == "http" and scheme.scheme == "basic":
            headers.append(("Authorization", "Basic dXNlcjpwYXNz"))
        elif scheme.type == "http" and scheme.scheme not in (None, "bearer"):
            headers.append(("Authorization", f"{scheme.scheme} test-credential"))
        else:
            headers.append(("Authorization", "Bearer test-token"))
    return AuthParts(headers=tuple(headers), query=tuple(query), cookies=tuple(cookies))


# -- openapi-core as the oracle -----------------------------------------------------------


@dataclass
class OracleRequest:
    """openapi-core's Request protocol over a built request, as a server would see it."""

    host_url: str
    path: str
    method: str
    parameters: RequestParameters
    body: bytes | None
    content_type: str


def oracle_request(request: UpstreamRequest, path_variables: dict[str, str]) -> OracleRequest:
    url = urlsplit(request.url)
    # openapi-core splits spaceDelimited values on a literal "%20" after decoding (its quirk):
    # keep that one escape, decode the rest as a server would.
    query = []
    for pair in url.query.split("&") if url.query else ():
        key, _, value = pair.partition("=")
        query.append((unquote(key), unquote(value.replace("%20", "%2520"))))
    headers = Headers(list(request.headers))
    cookies: list[tuple[str, str]] = []
    for pair in (headers.get("Cookie") or "").split(";"):
        if "=" in pair:
            name, value = pair.strip().split("=", 1)
            cookies.append((name, unquote(value)))
    return OracleRequest(
        host_url=f"{url.scheme}://{url.netloc}",
        path=url.path,
        method=request.method.lower(),
        parameters=RequestParameters(
            query=ImmutableMultiDict(query),
            header=headers,
            cookie=ImmutableMultiDict(cookies),
            path=path_variables,
        ),
        body=request.body,
        content_type=(headers.get("Content-Type") or "").lower(),
    )


def path_variables(spec: OpenAPI, request: UpstreamRequest) -> dict[str, str]:
    """The path parameters as a server decodes them, under every name openapi-core looks up.

    openapi-core matches the raw path, but leaves the values percent-encoded and looks matrix
    and label values up as `;name`/`.name` (RFC 6570 operators in the template): give it each.
    """
    url = request.url.split("?", 1)[0]
    found = APICallPathFinder(spec.spec).find(request.method.lower(), url)
    out: dict[str, str] = {}
    for name, raw in found.path_result.variables.items():
        value = unquote(raw)
        for key in (name, f";{name}", f";{name}*", f".{name}", f".{name}*"):
            out[key] = value
    return out


class MediaTypes(dict[str, Any]):
    """Deserializers for every JSON (`+json`) and text media type, which openapi-core lacks.

    openapi-core parses only application/json and application/vnd.api+json as JSON and reads
    other types as bytes; it looks its extra deserializers up with `in` and `[]`.
    """

    def __contains__(self, mimetype: object) -> bool:
        return isinstance(mimetype, str) and (
            _is_json(mimetype) or mimetype.startswith("text/") or mimetype in NDJSON
        )

    def __getitem__(self, mimetype: str) -> Any:
        if mimetype in NDJSON:
            return ndjson_loads
        return json_loads if _is_json(mimetype) else plain_loads


NDJSON = ("application/x-ndjson", "application/jsonl", "application/jsonlines")


def ndjson_loads(value: bytes, **parameters: str) -> list[Any]:
    """One JSON document per line, as the gateway sends ndjson bodies."""
    return [json.loads(line) for line in value.splitlines() if line.strip()]


def _is_json(mimetype: str) -> bool:
    return mimetype.endswith(("+json", "/json"))


def deep_object_loads(
    explode: bool, name: str, schema_type: str, location: Mapping[str, Any]
) -> Any:
    """deepObject as Stripe and Rails read it: `a[b][c]=v` nests, `a[0]=v` indexes arrays.

    openapi-core's own reads one level of objects only. A parameter whose schema also allows a
    scalar (Stripe's `anyOf: [object, integer]`) may arrive plainly as `a=v`.
    """
    keys = [k for k in location if k.startswith(name + "[")]
    if not keys:
        return location[name]  # KeyError: absent, as openapi-core expects
    root: dict[str, Any] = {}
    for key in keys:
        path = re.findall(r"\[([^\]]*)\]", key[len(name) :])
        node = root
        for step in path[:-1]:
            node = node.setdefault(step, {})
        node[path[-1]] = location[key]
    return _arrays(root)


def _arrays(node: Any) -> Any:
    """Objects whose keys are 0, 1, 2, ... were arrays."""
    if not isinstance(node, dict):
        return node
    items = {k: _arrays(v) for k, v in node.items()}
    if items and all(k.isdigit() for k in items):
        return [items[k] for k in sorted(items, key=int)]
    return items


def load_oracle(path: Path, data: Any) -> OpenAPI | str:
    """openapi-core reading the original document, or why it cannot."""
    if not isinstance(data, dict) or "openapi" not in data:
        return "Swagger 2.0: openapi-core reads OpenAPI 3.x only"
    casters = (
        oas30_write_schema_casters_factory
        if str(data["openapi"]).startswith("3.0")
        else oas31_schema_casters_factory
    )
    styles = StyleDeserializersFactory(
        casters, style_deserializers={**style_deserializers, "deepObject": deep_object_loads}
    )
    config = Config(
        # None skips validating the document (openapi-core checks for it; its annotation omits
        # it): `toolbridge check` reports validity, here we want the requests checked.
        spec_validator_cls=None,  # type: ignore[arg-type]
        extra_media_type_deserializers=MediaTypes(),
        style_deserializers_factory=styles,
    )
    try:
        return OpenAPI.from_dict(data, base_uri=path.resolve().as_uri(), config=config)
    except Exception as exc:  # any failure to load means "not checked", with the reason
        return f"openapi-core cannot load it: {type(exc).__name__}: {exc}"[:200]


def check(spec: OpenAPI, request: UpstreamRequest) -> list[str]:
    """openapi-core's complaints about the request (empty when it conforms)."""
    with warnings.catch_warnings():
        # Deprecated parameters and oauth2 schemes it cannot check only warn: not our problem.
        warnings.simplefilter("ignore")
        try:
            variables = path_variables(spec, request)
        except Exception as exc:
            return [f"route: {type(exc).__name__}: {exc}"]
        oracle = oracle_request(request, variables)
        try:
            return [_describe(error) for error in spec.request_validator.iter_errors(oracle)]
        except Exception as exc:  # openapi-core itself failed on this operation
            return [f"oracle crashed: {type(exc).__name__}: {exc}"]


def _describe(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    cause = error.__cause__
    while cause is not None:
        text += f" <- {type(cause).__name__}: {cause}"
        details = getattr(cause, "schema_errors", None)
        if details:
            text += " [" + "; ".join(str(getattr(d, "message", d))[:160] for d in details) + "]"
        cause = cause.__cause__
    return text[:600]


# -- the test ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> DocumentStore:
    """One parse cache for the module: TOOLBRIDGE_CACHE_DIR, or a session folder."""
    cache = cache_dir_from(os.environ) if "TOOLBRIDGE_CACHE_DIR" in os.environ else None
    return DocumentStore(cache_dir=cache or tmp_path_factory.getbasetemp() / "cache")


def sample(tools: tuple[Tool, ...]) -> list[Tool]:
    """SAMPLE operations spread evenly over the document, and every one whose body is multipart
    or binary (files are where requests most often go wrong)."""
    if len(tools) <= SAMPLE:
        return list(tools)
    spread = [tools[i * len(tools) // SAMPLE] for i in range(SAMPLE)]
    chosen = {id(tool) for tool in spread}
    files = [t for t in tools if id(t) not in chosen and _carries_files(t)]
    return spread + files


def _carries_files(tool: Tool) -> bool:
    body = tool.http.body
    return body is not None and body.kind in ("multipart", "binary")


def base_url_for(op: HttpOperation) -> str:
    """The document's server when it is an absolute URL, else a placeholder host and its path."""
    url = op.base_url or ""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.netloc and "{" not in parts.netloc:
        return url
    return PLACEHOLDER_HOST + (parts.path if url.startswith("/") else "")


def conform(tool: Tool, conversion: Conversion, spec: OpenAPI) -> list[str]:
    op = tool.http
    arguments = generated(tool)
    if isinstance(arguments, str):
        return [arguments]
    try:
        request = build_request(
            op, arguments, base_url=base_url_for(op), auth=dummy_auth(op, conversion)
        )
    except InvalidArguments as exc:
        return [f"build_request: {exc}"]
    return check(spec, request)


def generated(tool: Tool) -> dict[str, Any] | str:
    """Arguments for the tool that the gateway accepts (as `ArgumentValidator` reads the input
    schema: `oneOf` as `anyOf`), or why the generator found none."""
    arguments = Generator(tool.input_schema, tool.name).value(tool.input_schema)
    try:
        return ArgumentValidator(tool).check(arguments)
    except InvalidArguments as exc:
        return f"generator: arguments fail the input schema: {exc.problems[:2]}"


@pytest.mark.parametrize("row", ROWS, ids=[r["file"] for r in ROWS])
def test_requests_conform(row: dict[str, str], store: DocumentStore) -> None:
    """Every sampled operation's built request passes openapi-core's request validation."""
    path = CORPUS / row["file"]
    uri = location_to_uri(str(path))
    conversion = convert(store, uri)
    line = Row(file=row["file"], version=row["openapi_version"])
    TABLE[row["file"]] = line
    spec = load_oracle(path, store.get(uri).data)
    if isinstance(spec, str):
        line.not_checked = spec
        return
    for tool in sample(conversion.tools):
        line.sampled += 1
        problems = conform(tool, conversion, spec)
        known = explained(row["file"], tool.name, problems)
        if not problems:
            line.passed += 1
        elif known is not None:
            line.known[known.kind] = line.known.get(known.kind, 0) + 1
            USED.add(known)
        else:
            line.failures.append(f"{tool.name} ({tool.where}): {' | '.join(problems)}")
    assert line.failures == []


USED: set[Known] = set()
"""The KNOWN entries that explained a failure in this run."""


def explained(file: str, tool: str, problems: list[str]) -> Known | None:
    """The KNOWN entry that accounts for every one of these problems, if there is one."""
    for known in KNOWN:
        matches = known.file == file and re.fullmatch(known.tools, tool)
        if matches and all(re.search(known.problem, problem) for problem in problems):
            return known
    return None


def test_report(capsys: pytest.CaptureFixture[str]) -> None:
    """Print the conformance rate per document; no KNOWN entry of a document that ran is stale.

    It runs last and reads what the per-document tests recorded. The rate is over the sampled
    operations whose failures are not explained by KNOWN (spec, oracle or reported converter
    bug); the known columns count those by kind.
    """
    head = f"{'document':<50} {'ver':<5} {'sample':>6} {'pass':>5} {'spec':>5} {'oracle':>6}"
    lines = [f"{head} {'conv':>5}  rate"]
    for file, line in TABLE.items():
        k = line.known
        explained_count = sum(k.values())
        checked = line.sampled - explained_count
        rate = f"{100 * line.passed / checked:.0f}%" if checked else "-"
        lines.append(
            f"{file[-50:]:<50} {line.version:<5} {line.sampled:>6} {line.passed:>5} "
            f"{k.get('spec', 0):>5} {k.get('oracle', 0):>6} {k.get('converter', 0):>5}  "
            + (f"not checked: {line.not_checked}" if line.not_checked else rate)
        )
    with capsys.disabled():
        print("\n\nconformance of built requests (openapi-core)\n" + "\n".join(lines))
    stale = [k for k in KNOWN if k.file in TABLE and k not in USED]
    assert [f"{k.file} {k.tools}: {k.reason}" for k in stale] == []
