"""The plain values every other module exchanges: a tool, how to reach it, what was changed.

Nothing here does I/O or knows about any client format. A `Tool` carries its canonical
input schema (JSON Schema 2020-12, self-contained: local `$defs` only) and a `target` that
says exactly where each argument goes when the tool is called.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

JsonObject = dict[str, Any]
JsonSchema = dict[str, Any]
ParamLocation = Literal["path", "query", "header", "cookie"]
BodyKind = Literal["json", "ndjson", "form", "multipart", "text", "binary"]
Method = Literal["GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"]

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"
"""Tool names every client format accepts (the strictest of OpenAI, Anthropic, Gemini, MCP)."""

HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
"""A header field name: an RFC 9110 token (`fullmatch` it). Anything else, a space, a colon, a
line break, a letter past ASCII, could end the field or the head where it is written."""
UNSENDABLE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
"""Control characters (tab aside): in a header value they would split or corrupt the request."""


CONNECTION_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "expect",
    }
)
"""Headers of the gateway's own connection to the upstream: where it goes (Host), how the body
is framed, the hop-by-hop ones (RFC 9110 7.6.1) and `Expect` (the body is sent at once, never
after asking). Neither a document's argument nor a config's static header sets them."""

RESERVED_HEADERS = CONNECTION_HEADERS | {
    "authorization",
    "proxy-authorization",
    "cookie",
    "content-type",
    "accept",
}
"""Headers the gateway sets itself (credentials, the connection, what the body and Accept
imply): never tool arguments, and never taken from arguments when a request is built."""

PROPERTY_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
"""Argument names every client format accepts (Anthropic's rule is the strictest)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Note:
    """One change or loss made while turning a source into tools."""

    kind: str
    """A stable slug: `name-changed`, `media-type-skipped`, `cycle`, `unresolved-ref`, ..."""
    message: str
    """What happened, for a person."""
    where: str = ""
    """The operation (`GET /pets/{id}`) or document location the note is about."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ParamBinding:
    """Where one argument goes in the HTTP request: a path, query, header or cookie parameter."""

    argument: str
    """The property name in the tool's input schema."""
    name: str
    """The parameter name in the HTTP request."""
    location: ParamLocation
    required: bool = False
    style: str = "simple"
    """OpenAPI serialization style: simple, label, matrix, form, spaceDelimited, ..."""
    explode: bool = False
    allow_reserved: bool = False
    content_type: str | None = None
    """Set when the parameter is described by `content` rather than `schema` (sent encoded)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldEncoding:
    """How one field of a form or multipart body is encoded (OpenAPI `encoding`)."""

    content_type: str | None = None
    style: str = "form"
    explode: bool = True
    is_file: bool = False
    """A multipart part sent as a file: the argument carries base64 content and a filename."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BodyPlan:
    """How the request body is built from the arguments."""

    media_type: str
    kind: BodyKind
    required: bool = False
    argument: str | None = None
    """The one property that holds the whole body; None when the body's fields are flattened."""
    fields: tuple[tuple[str, str], ...] = ()
    """When flattened: (argument name, body field name) pairs, in schema order."""
    encoding: tuple[tuple[str, FieldEncoding], ...] = ()
    """Per body field (by field name), for form and multipart bodies."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpOperation:
    """An OpenAPI operation: everything needed to build its HTTP request from arguments."""

    server: str
    """The id of the source the operation came from."""
    method: Method
    path: str
    """The path template, as in the document (`/pets/{petId}`)."""
    base_url: str | None
    """The resolved server URL (scheme, host, base path); None when the document has none."""
    operation_id: str | None
    params: tuple[ParamBinding, ...] = ()
    body: BodyPlan | None = None
    accept: str | None = None
    """The `Accept` header derived from the documented responses."""
    required_headers: tuple[tuple[str, str], ...] = ()
    """Reserved headers the document requires (`content-length`, `content-type`, lowercased),
    with the value to send when the request has none of its own: the gateway sends them."""
    security: tuple[tuple[str, ...], ...] = ()
    """Alternatives (OR) of security scheme names that must all apply (AND)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PythonFunction:
    """A local Python callable: a method of an Open WebUI-style `Tools` class, or a function."""

    tool_id: str
    """The id of the config's `tools` entry it came from."""
    function: str
    """The qualified name of the callable (`Tools.get_weather`, `module.func`)."""
    func: Any
    """The bound method or function to call."""
    arguments_model: Any
    """The pydantic model (a class) that validates and converts the model-visible arguments."""
    injected: tuple[str, ...] = ()
    """The host-provided parameters it takes (`__user__`, `__event_emitter__`, ...)."""
    is_async: bool = False
    timeout: float = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Annotations:
    """Behaviour hints for clients (MCP's tool annotations), derived from the HTTP method."""

    title: str | None = None
    read_only: bool = False
    destructive: bool = False
    idempotent: bool = False
    open_world: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Tool:
    """One tool, in canonical form, as every renderer and invoker sees it."""

    name: str
    """Unique within the catalog and valid for every client format."""
    original_name: str
    """What the name was derived from (operationId, or `METHOD /path`) before any change."""
    description: str
    input_schema: JsonSchema
    """A JSON Schema 2020-12 object schema; references point into its own `$defs`."""
    output_schema: JsonSchema | None = None
    output_promised: bool = False
    """Whether clients may be promised that successful answers fit `output_schema` (MCP's
    `outputSchema`): local tools' declared return models, and an OpenAPI server's tools only
    with `output_schema: publish` (APIs do not always answer as their documents say)."""
    annotations: Annotations = field(default_factory=Annotations)
    tags: tuple[str, ...] = ()
    source: str = ""
    """The id of the source (server or local tools entry) the tool came from."""
    target: HttpOperation | PythonFunction
    deprecated: bool = False
    notes: tuple[Note, ...] = ()
    """Every change or loss made while converting this tool."""

    @property
    def where(self) -> str:
        """Where the tool leads, for people: `GET /pets/{id}` or `python Tools.lookup`."""
        if isinstance(self.target, HttpOperation):
            return f"{self.target.method} {self.target.path}"
        return f"python {self.target.function}"

    @property
    def http(self) -> HttpOperation:
        """The HTTP target; raises TypeError for a local tool."""
        if not isinstance(self.target, HttpOperation):
            raise TypeError(f"tool {self.name!r} is a local Python tool, not an HTTP operation")
        return self.target


@dataclass(frozen=True, slots=True, kw_only=True)
class SecurityScheme:
    """A security scheme as the document declares it (what credential goes where)."""

    type: str
    """apiKey, http, oauth2, openIdConnect or mutualTLS."""
    location: str | None = None
    """For apiKey: header, query or cookie."""
    name: str | None = None
    """For apiKey: the header, query parameter or cookie name."""
    scheme: str | None = None
    """For http: bearer, basic, ..."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Embed:
    """Something a tool made for the person to see rather than for the model to read: an HTML
    view (an Open WebUI `HTMLResponse` with `Content-Disposition: inline`)."""

    content_type: str
    content: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Cut:
    """An array, a string or an object a result budget shortened: where, and how many items,
    characters or keys it kept and left out."""

    path: str
    """A JSON path into the result: `$`, `$.data`, `$.items[0].lines`."""
    kept: int
    left_out: int
    unit: Literal["items", "characters", "keys"] = "items"
    """`items` of an array, `characters` of a string (`$`: the answer became its JSON text,
    cut), `keys` of an object left out whole (`kept` 0); an array left out whole is `items`."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Shaped:
    """What a result budget (`result: {select, max_bytes}`) did to an answer."""

    selected: str | None = None
    """The JMESPath expression the answer was reduced to, when one applied."""
    size: int
    """The answer's size in bytes (compact JSON, or text) after selection, before any cut."""
    max_bytes: int | None = None
    cuts: tuple[Cut, ...] = ()
    """The arrays and strings shortened to fit, largest first (the first 16 of them)."""
    more_cuts: int = 0
    """How many more were shortened than `cuts` lists."""
    text_cut: bool = False
    """Strings were shortened too (or, as a last resort, the answer became its cut JSON text)."""

    @property
    def cut(self) -> bool:
        return bool(self.cuts) or self.text_cut


TextForm = Literal["json", "not_json", "too_deep"] | None
"""What a text result of a JSON answer is (`ToolResult.text_form`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolResult:
    """What a call returned: also an upstream 4xx/5xx, which the model should see."""

    ok: bool
    status: int | None = None
    """The upstream HTTP status; None for local tools."""
    content_type: str | None = None
    result: Any = None
    """JSON as parsed, text as text, binary as {"base64", "size", "content_type"}."""
    truncated: bool = False
    """The upstream answer was longer than the size cap and was cut."""
    text_form: TextForm = None
    """What a text `result` of a JSON answer is, when it is not a parsed JSON string: `json`,
    the answer's JSON text passed on unparsed (integers past 64 bits, nesting too deep);
    `not_json`, the body of an answer that says it is JSON but is not; `too_deep`, one nested
    deeper than the gateway reads JSON (1,024 levels), which may or may not be JSON."""
    embeds: tuple[Embed, ...] = ()
    """Views for the person (HTML); `result` is then what the model reads about them."""
    shaped: Shaped | None = None
    """What a result budget did to the answer; None when none applies."""
    headers: tuple[tuple[str, str], ...] = ()
    """The upstream's response headers a model may need to go on (`answers.KEPT_HEADERS`: the
    next page, where a created thing is, its version, when to retry), names in lower case."""
