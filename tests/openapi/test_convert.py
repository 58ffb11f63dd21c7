"""OpenAPI operations to tools: golden tests over the feature documents in `specs/`.

Each test converts one document and compares whole values (a tool, its input schema, its
`HttpOperation`, its notes) with literals. Where the converter is known to be wrong, the test
states the right value and is marked `xfail(strict=True)` until the converter is fixed.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from toolbridge.openapi.convert import Conversion, Selection, convert
from toolbridge.openapi.documents import DocumentStore, location_to_uri
from toolbridge.openapi.servers import NO_BASE_URL
from toolbridge.tools import (
    Annotations,
    BodyPlan,
    FieldEncoding,
    HttpOperation,
    JsonSchema,
    Note,
    ParamBinding,
    SecurityScheme,
    Tool,
)
from toolbridge.upstream.request import build_request


def convert_spec(specs: Path, name: str, **options: Any) -> Conversion:
    return convert(DocumentStore(cache_dir=None), location_to_uri(str(specs / name)), **options)


def tools_by_name(conversion: Conversion) -> dict[str, Tool]:
    return {tool.name: tool for tool in conversion.tools}


def convert_text(tmp_path: Path, text: str) -> Conversion:
    """Convert a small document written inline (for cases no file in `specs/` shows)."""
    path = tmp_path / "openapi.yaml"
    path.write_text(textwrap.dedent(text))
    return convert(DocumentStore(cache_dir=None), path.as_uri())


BOOK_OUTPUT_DEFS: JsonSchema = {
    "Book": {
        "type": "object",
        "required": ["isbn", "title"],
        "properties": {
            "isbn": {"type": "string"},
            "title": {"type": "string"},
            "genre": {"type": "string"},
            "rating": {"type": "number"},
        },
    }
}
ORDER_DEFS: JsonSchema = {
    "Order": {
        "type": "object",
        "required": ["orderId", "status"],
        "properties": {
            "orderId": {"type": "string"},
            "status": {"type": "string"},
            "total": {"type": "number"},
        },
    }
}
CATEGORY_DEFS: JsonSchema = {
    "Category": {
        "description": "A tree node; children are categories themselves.",
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "children": {"type": "array", "items": {"$ref": "#/$defs/Category"}},
        },
    }
}
AUTHOR_AND_BOOK_DEFS: JsonSchema = {
    "Author": {
        "description": "Author -> Book -> Author, mutual recursion.",
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "books": {"type": "array", "items": {"$ref": "#/$defs/Book"}},
        },
    },
    "Book": {
        "type": "object",
        "required": ["title"],
        "properties": {
            "title": {"type": "string"},
            "authors": {"type": "array", "items": {"$ref": "#/$defs/Author"}},
        },
    },
}
PET_AND_OWNER_DEFS: JsonSchema = {
    "owner": {
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"type": "string"}, "phone": {"type": "string"}},
    },
    "pet": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "id": {"type": "integer", "format": "int64", "readOnly": True},
            "name": {"type": "string"},
            "species": {"type": "string", "enum": ["cat", "dog", "bird"]},
            "owner": {"$ref": "#/$defs/owner"},
        },
    },
}
SWAGGER_PET_DEFS: JsonSchema = {
    "Owner": {"type": ["object", "null"], "properties": {"name": {"type": "string"}}},
    "Pet": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "id": {"type": "integer", "format": "int64", "readOnly": True},
            "name": {"type": "string"},
            "status": {"type": "string", "enum": ["available", "pending", "sold"]},
            "nickname": {"type": ["string", "null"]},
            "owner": {"$ref": "#/$defs/Owner"},
        },
    },
}
STORE_HOURS: JsonSchema = {
    "type": "object",
    "required": ["day", "opens", "closes"],
    "properties": {
        "day": {"enum": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]},
        "opens": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
        "closes": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$"},
    },
}
STORE_PROPERTIES: JsonSchema = {
    "name": {"type": "string", "examples": ["Corner Books"]},
    "kind": {"const": "store"},
    "location": {
        "description": "[latitude, longitude]",
        "type": "array",
        "prefixItems": [
            {"type": "number", "minimum": -90, "maximum": 90},
            {"type": "number", "minimum": -180, "maximum": 180},
        ],
        "items": False,
        "minItems": 2,
    },
    "manager": {"type": ["string", "null"]},
    "openingHours": {"type": "array", "items": {"$ref": "#/$defs/Store__defs_Hours"}},
    "rating": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 5},
}
SHORT_TEXT: JsonSchema = {"type": "string", "minLength": 1, "maxLength": 120}
EVENT_PROPERTIES: JsonSchema = {
    "title": SHORT_TEXT,
    "host": SHORT_TEXT,
    "date": {"type": "string", "format": "date", "examples": ["2024-03-15"]},
    "startsAt": {"type": "string", "description": "Local time, HH:MM.", "examples": ["12:30"]},
    "on": {
        "description": "Whether the event is on (not cancelled); a key YAML 1.1 reads as true.",
        "type": "boolean",
        "default": True,
    },
    "yes": {
        "description": "Number of people who answered yes; another YAML 1.1 boolean key.",
        "type": "integer",
        "minimum": 0,
    },
    "venue": {
        "type": "object",
        "properties": {"name": SHORT_TEXT, "city": SHORT_TEXT},
        "description": "Where it happens (built with a << merge key).",
    },
    "backupVenue": {"type": "object", "properties": {"name": SHORT_TEXT, "city": SHORT_TEXT}},
}
RESPONSE_PET_DEFS: JsonSchema = {
    "Pet": {
        "type": "object",
        "required": ["name"],
        "properties": {"id": {"type": "integer", "readOnly": True}, "name": {"type": "string"}},
    }
}

# -- every document: title, version, operation count, tool names, document notes ----------


SWAGGER2_NAMES = (
    "listPets",
    "createPet",
    "post_pets_petId_photo",
    "updatePetWithForm",
    "deletePet",
)
NO_OPERATION_ID_NAMES = (
    "get_books",
    "post_books",
    "get_books_bookId",
    "delete_books_bookId",
    "patch_books_bookId",
    "get_stores_storeId_books_bookId_stock-level",
)
DOUBLE_UNDERSCORE = (
    "safe_name() joins the method and the path with two underscores (`get__books`); its "
    "docstring and every client expect `get_books`"
)


@pytest.mark.parametrize(
    ("document", "title", "version", "names", "notes"),
    [
        (
            "demo.yaml",
            "Notes (toolbridge demo service)",
            "3.1.0",
            ("listNotes", "createNote", "getNote", "deleteNote", "updateNote", "getStatus"),
            (),
        ),
        (
            "params-path-query.yaml",
            "Path and query parameters",
            "3.0.3",
            ("listBooks", "getShelvedBook", "removeShelvedBook"),
            (),
        ),
        (
            "params-header-cookie.yaml",
            "Header and cookie parameters",
            "3.0.3",
            ("listAppointments", "getAppointmentNotes"),
            (),
        ),
        (
            "params-styles.yaml",
            "Parameter styles",
            "3.0.3",
            ("searchPets", "getPetPhotos", "listOwnerPets"),
            (),
        ),
        (
            "body-json.yaml",
            "JSON request bodies",
            "3.1.0",
            ("createOrder", "replaceOrder", "createReview"),
            (),
        ),
        (
            "body-allof.yaml",
            "Composed bodies (allOf, oneOf, anyOf, discriminator)",
            "3.0.3",
            ("registerPet", "startAdoption", "donate"),
            (),
        ),
        (
            "body-form-multipart.yaml",
            "Form, multipart, text and binary bodies",
            "3.0.3",
            (
                "login",
                "uploadPetPhoto",
                "replacePetNotes",
                "uploadMicrochipDump",
                "recordVaccination",
            ),
            (),
        ),
        (
            "refs-cycles.yaml",
            "References and recursive schemas",
            "3.1.0",
            ("getCategoryTree", "replaceCategoryTree", "createAuthor", "getBook"),
            (),
        ),
        (
            "refs-multifile/api/openapi.yaml",
            "Multi-file references",
            "3.0.3",
            ("listPets", "createPet", "getPet", "deletePet"),
            (),
        ),
        pytest.param(
            "swagger2.json",
            "Swagger 2.0 (formData, collectionFormat, x-nullable, securityDefinitions)",
            "2.0",
            SWAGGER2_NAMES,
            (),
        ),
        (
            "openapi30-nullable.yaml",
            "OpenAPI 3.0 nullable, readOnly/writeOnly, deprecated",
            "3.0.3",
            ("createPet", "adoptPetLegacy"),
            (),
        ),
        (
            "openapi31-types.yaml",
            "OpenAPI 3.1 types, const, prefixItems, $defs, webhooks",
            "3.1.0",
            ("createStore", "getStore"),
            (
                Note(
                    kind="webhooks-not-tools",
                    message="1 webhook(s) describe calls the API makes, not tools; not exposed",
                ),
            ),
        ),
        pytest.param(
            "no-operation-ids.yaml",
            "Operations without operationId",
            "3.0.3",
            NO_OPERATION_ID_NAMES,
            (),
        ),
        (
            "names-long-and-clashing.yaml",
            "Long, clashing and unusual operationIds",
            "3.0.3",
            (
                "listAllAvailablePetsForAdoptionFilteredByShelterRegionS_5fa30a96",
                "pets_list",
                "pets_list_2",
                "get_pet_1_by_id",
                "op_e2467b94",
            ),
            (),
        ),
        (
            "security.yaml",
            "Security schemes and requirements",
            "3.0.3",
            (
                "getHealth",
                "listPets",
                "createPet",
                "getSalesReport",
                "syncInventory",
                "getGreeting",
            ),
            (),
        ),
        (
            "filters.yaml",
            "Tags, methods and paths for filters",
            "3.0.3",
            ("listPets", "createPet", "deletePet", "placeOrder", "getInventory", "refreshCache"),
            (),
        ),
        (
            "servers-variables.yaml",
            "Server variables and overrides",
            "3.0.3",
            ("listBooks", "getCover", "deleteCover", "searchBooks"),
            (Note(kind="no-base-url", message=NO_BASE_URL),),
        ),
        (
            "responses.yaml",
            "Response shapes",
            "3.0.3",
            (
                "getPet",
                "deletePet",
                "listPets",
                "createPet",
                "feedPet",
                "getPetBio",
                "getPetPhoto",
            ),
            (),
        ),
        (
            "messy-yaml.yaml",
            "Quirky YAML (integer codes, dates, anchors, on/yes keys)",
            "3.0.3",
            ("listEvents", "createEvent"),
            (),
        ),
        (
            "messy-refs-dangling.yaml",
            "Dangling reference (messy)",
            "3.0.3",
            ("listPets", "createPet", "getPet"),
            (),
        ),
        (
            "messy-names.yaml",
            "Duplicate operationId (messy)",
            "3.0.3",
            ("getPet", "getPet_2", "listPets"),
            (),
        ),
    ],
)
def test_document_summary(
    specs: Path,
    document: str,
    title: str,
    version: str,
    names: tuple[str, ...],
    notes: tuple[Note, ...],
) -> None:
    uri = location_to_uri(str(specs / document))
    conversion = convert(DocumentStore(cache_dir=None), uri)
    assert conversion == Conversion(
        source="api",
        uri=uri,
        title=title,
        spec_version=version,
        operations=len(names),
        tools=conversion.tools,
        notes=notes,
        security_schemes=conversion.security_schemes,
    )
    assert tuple(tool.name for tool in conversion.tools) == names


def test_security_schemes_are_read_from_3x_and_2_0(specs: Path) -> None:
    """What each declared scheme needs, so credentials can be put where the API expects them."""
    security = convert(DocumentStore(), location_to_uri(str(specs / "security.yaml")))
    assert security.security_schemes == {
        "bearerAuth": SecurityScheme(type="http", scheme="bearer"),
        "basicAuth": SecurityScheme(type="http", scheme="basic"),
        "apiKeyHeader": SecurityScheme(type="apiKey", location="header", name="X-API-Key"),
        "apiKeyQuery": SecurityScheme(type="apiKey", location="query", name="api_key"),
        "sessionCookie": SecurityScheme(type="apiKey", location="cookie", name="bo_session"),
        "oauthClient": SecurityScheme(type="oauth2"),
        "oidc": SecurityScheme(type="openIdConnect"),
    }
    swagger = convert(DocumentStore(), location_to_uri(str(specs / "swagger2.json")))
    assert swagger.security_schemes == {
        "apiKeyHeader": SecurityScheme(type="apiKey", location="header", name="X-API-Key"),
        "basicAuth": SecurityScheme(type="http", scheme="basic"),
    }


# -- params-path-query.yaml ---------------------------------------------------------------

REMOVE_SHELVED_BOOK = Tool(
    name="removeShelvedBook",
    original_name="removeShelvedBook",
    description="Take a book off a shelf",
    input_schema={
        "type": "object",
        "properties": {
            "shelfId": {
                "type": "string",
                "pattern": "^[A-Z][0-9]{2}$",
                "description": (
                    "Shelf code; this operation overrides the path-level integer with a string."
                ),
            },
            "isbn": {
                "type": "string",
                "pattern": "^97[89][0-9]{10}$",
                "description": "ISBN-13 of the book.",
            },
            "lang": {
                "type": "string",
                "default": "en",
                "description": "Language of the returned description (path-level).",
            },
            "reason": {"type": "string", "enum": ["sold", "damaged", "misplaced"]},
        },
        "required": ["shelfId", "isbn", "reason"],
        "additionalProperties": False,
    },
    annotations=Annotations(title="Take a book off a shelf", destructive=True, idempotent=True),
    source="api",
    target=HttpOperation(
        server="api",
        method="DELETE",
        path="/shelves/{shelfId}/books/{isbn}",
        base_url="https://books.example.com/v1",
        operation_id="removeShelvedBook",
        params=(
            ParamBinding(argument="shelfId", name="shelfId", location="path", required=True),
            ParamBinding(argument="isbn", name="isbn", location="path", required=True),
            ParamBinding(
                argument="lang", name="lang", location="query", style="form", explode=True
            ),
            ParamBinding(
                argument="reason",
                name="reason",
                location="query",
                required=True,
                style="form",
                explode=True,
            ),
        ),
    ),
)


def test_path_level_parameters_are_merged_and_the_operation_wins(specs: Path) -> None:
    """`removeShelvedBook` redefines the path-level `shelfId` (integer) as a string."""
    tools = tools_by_name(convert_spec(specs, "params-path-query.yaml"))
    assert tools["removeShelvedBook"] == REMOVE_SHELVED_BOOK
    assert tools["getShelvedBook"].input_schema == {
        "type": "object",
        "properties": {
            "shelfId": {
                "type": "integer",
                "format": "int64",
                "minimum": 1,
                "description": "Shelf number (path-level definition).",
            },
            "isbn": {
                "type": "string",
                "pattern": "^97[89][0-9]{10}$",
                "description": "ISBN-13 of the book.",
            },
            "lang": {
                "type": "string",
                "default": "en",
                "description": "Language of the returned description (path-level).",
            },
        },
        "required": ["shelfId", "isbn"],
        "additionalProperties": False,
    }
    assert tools["getShelvedBook"].target == HttpOperation(
        server="api",
        method="GET",
        path="/shelves/{shelfId}/books/{isbn}",
        base_url="https://books.example.com/v1",
        operation_id="getShelvedBook",
        params=(
            ParamBinding(argument="shelfId", name="shelfId", location="path", required=True),
            ParamBinding(argument="isbn", name="isbn", location="path", required=True),
            ParamBinding(
                argument="lang", name="lang", location="query", style="form", explode=True
            ),
        ),
        accept="application/json",
    )


def test_query_parameter_schemas_keep_types_formats_and_bounds(specs: Path) -> None:
    tools = tools_by_name(convert_spec(specs, "params-path-query.yaml"))
    assert tools["listBooks"].input_schema == {
        "type": "object",
        "properties": {
            "genre": {
                "type": "string",
                "enum": ["fiction", "poetry", "history", "science"],
                "description": "Only books of this genre.",
            },
            "limit": {
                "type": "integer",
                "format": "int32",
                "minimum": 1,
                "maximum": 100,
                "default": 20,
                "description": "How many books to return.",
            },
            "publishedAfter": {
                "type": "string",
                "format": "date",
                "description": "Only books published on or after this day.",
            },
            "minRating": {"type": "number", "format": "float", "minimum": 0, "maximum": 5},
            "inStock": {"type": "boolean", "default": True},
            "authors": {
                "type": "array",
                "items": {"type": "string", "minLength": 2},
                "maxItems": 5,
                "description": "Author surnames; a book matches if any author matches.",
            },
        },
        "additionalProperties": False,
    }
    assert tools["listBooks"].target == HttpOperation(
        server="api",
        method="GET",
        path="/books",
        base_url="https://books.example.com/v1",
        operation_id="listBooks",
        params=(
            ParamBinding(
                argument="genre", name="genre", location="query", style="form", explode=True
            ),
            ParamBinding(
                argument="limit", name="limit", location="query", style="form", explode=True
            ),
            ParamBinding(
                argument="publishedAfter",
                name="publishedAfter",
                location="query",
                style="form",
                explode=True,
            ),
            ParamBinding(
                argument="minRating", name="minRating", location="query", style="form", explode=True
            ),
            ParamBinding(
                argument="inStock", name="inStock", location="query", style="form", explode=True
            ),
            ParamBinding(
                argument="authors", name="authors", location="query", style="form", explode=True
            ),
        ),
        accept="application/json",
    )
    assert tools["listBooks"].output_schema == {
        "type": "array",
        "items": {"$ref": "#/$defs/Book"},
        "$defs": BOOK_OUTPUT_DEFS,
    }


# -- params-header-cookie.yaml ------------------------------------------------------------

LIST_APPOINTMENTS = Tool(
    name="listAppointments",
    original_name="listAppointments",
    description="List the caller's appointments",
    input_schema={
        "type": "object",
        "properties": {
            "X-Request-Id": {
                "type": "string",
                "format": "uuid",
                "description": "Correlation id echoed in logs.",
            },
            "clinic_session": {
                "type": "string",
                "description": "Session cookie set by the clinic's web app.",
            },
            "theme": {"type": "string", "enum": ["light", "dark"], "default": "light"},
        },
        "required": ["clinic_session"],
        "additionalProperties": False,
    },
    output_schema={
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "petName": {"type": "string"},
                "at": {"type": "string", "format": "date-time"},
            },
        },
    },
    annotations=Annotations(
        title="List the caller's appointments", read_only=True, idempotent=True
    ),
    source="api",
    target=HttpOperation(
        server="api",
        method="GET",
        path="/appointments",
        base_url="https://clinic.example.com/api",
        operation_id="listAppointments",
        params=(
            ParamBinding(argument="X-Request-Id", name="X-Request-Id", location="header"),
            ParamBinding(
                argument="clinic_session",
                name="clinic_session",
                location="cookie",
                required=True,
                style="form",
                explode=True,
            ),
            ParamBinding(
                argument="theme", name="theme", location="cookie", style="form", explode=True
            ),
        ),
        accept="application/json",
    ),
    notes=(
        Note(
            kind="header-reserved",
            message=(
                "header 'Authorization' is not an argument: credentials come from the "
                "server's config"
            ),
            where="GET /appointments",
        ),
    ),
)

GET_APPOINTMENT_NOTES = Tool(
    name="getAppointmentNotes",
    original_name="getAppointmentNotes",
    description="Read the vet's notes for an appointment",
    input_schema={
        "type": "object",
        "properties": {
            "appointmentId": {"type": "integer"},
            "version": {"type": "integer", "minimum": 1, "description": "Notes revision to read."},
            "header_version": {
                "type": "string",
                "enum": ["2023-01", "2024-06"],
                "description": "API version; same name as the query parameter, different location.",
            },
            "X-Request-Id": {"type": "string"},
            "Accept-Language": {"type": "string", "default": "en-GB"},
        },
        "required": ["appointmentId"],
        "additionalProperties": False,
    },
    annotations=Annotations(
        title="Read the vet's notes for an appointment", read_only=True, idempotent=True
    ),
    source="api",
    target=HttpOperation(
        server="api",
        method="GET",
        path="/appointments/{appointmentId}/notes",
        base_url="https://clinic.example.com/api",
        operation_id="getAppointmentNotes",
        params=(
            ParamBinding(
                argument="appointmentId", name="appointmentId", location="path", required=True
            ),
            ParamBinding(
                argument="version", name="version", location="query", style="form", explode=True
            ),
            ParamBinding(argument="header_version", name="version", location="header"),
            ParamBinding(argument="X-Request-Id", name="X-Request-Id", location="header"),
            ParamBinding(argument="Accept-Language", name="Accept-Language", location="header"),
        ),
        accept="text/plain",
    ),
    notes=(
        Note(
            kind="argument-renamed",
            message="header parameter 'version' is the argument 'header_version'",
            where="GET /appointments/{appointmentId}/notes",
        ),
    ),
)


def test_header_and_cookie_parameters_and_a_reserved_header(specs: Path) -> None:
    """`Authorization` is no argument (with a note); `X-Request-Id` and cookies are."""
    tools = tools_by_name(convert_spec(specs, "params-header-cookie.yaml"))
    assert tools["listAppointments"] == LIST_APPOINTMENTS


def test_one_name_in_query_and_header_renames_the_second(specs: Path) -> None:
    tools = tools_by_name(convert_spec(specs, "params-header-cookie.yaml"))
    assert tools["getAppointmentNotes"] == GET_APPOINTMENT_NOTES


# -- params-styles.yaml -------------------------------------------------------------------

SEARCH_PETS = Tool(
    name="searchPets",
    original_name="searchPets",
    description="Search pets with differently serialized query parameters",
    input_schema={
        "type": "object",
        "properties": {
            "species": {
                "type": "array",
                "items": {"type": "string"},
                "description": "form, explode true (default): species=cat&species=dog",
            },
            "colors": {
                "type": "array",
                "items": {"type": "string"},
                "description": "form, explode false: colors=black,white",
            },
            "tags": {
                "type": "array",
                "items": {"type": "string"},
                "description": "spaceDelimited: tags=calm%20indoor",
            },
            "ids": {
                "type": "array",
                "items": {"type": "integer"},
                "description": "pipeDelimited: ids=1|2|3",
            },
            "filter": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "minAge": {"type": "integer"},
                    "maxAge": {"type": "integer"},
                },
                "description": "deepObject: filter[name]=Rex&filter[minAge]=1",
            },
            "size": {
                "type": "object",
                "properties": {"weight": {"type": "number"}, "height": {"type": "number"}},
                "description": "form object, explode true: weight=5&height=30",
            },
            "redirect": {
                "type": "string",
                "format": "uri",
                "description": "A URL passed through with reserved characters left unescaped.",
            },
            "where": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "op": {"type": "string", "enum": ["eq", "lt", "gt"]},
                    "value": {"type": "string"},
                },
                "description": "A JSON-encoded filter expression, "
                "given by content instead of schema.",
            },
        },
        "additionalProperties": False,
    },
    output_schema={"type": "array", "items": {"type": "object"}},
    annotations=Annotations(
        title="Search pets with differently serialized query parameters",
        read_only=True,
        idempotent=True,
    ),
    source="api",
    target=HttpOperation(
        server="api",
        method="GET",
        path="/pets/search",
        base_url="https://pets.example.com",
        operation_id="searchPets",
        params=(
            ParamBinding(
                argument="species", name="species", location="query", style="form", explode=True
            ),
            ParamBinding(argument="colors", name="colors", location="query", style="form"),
            ParamBinding(argument="tags", name="tags", location="query", style="spaceDelimited"),
            ParamBinding(argument="ids", name="ids", location="query", style="pipeDelimited"),
            ParamBinding(
                argument="filter", name="filter", location="query", style="deepObject", explode=True
            ),
            ParamBinding(
                argument="size", name="size", location="query", style="form", explode=True
            ),
            ParamBinding(
                argument="redirect",
                name="redirect",
                location="query",
                style="form",
                explode=True,
                allow_reserved=True,
            ),
            ParamBinding(
                argument="where",
                name="where",
                location="query",
                style="form",
                explode=True,
                content_type="application/json",
            ),
        ),
        accept="application/json",
    ),
)


def test_every_query_style_and_a_content_parameter(specs: Path) -> None:
    """form (explode both ways), spaceDelimited, pipeDelimited, deepObject, allowReserved and
    a `content` parameter (content_type set) all land in the bindings."""
    tools = tools_by_name(convert_spec(specs, "params-styles.yaml"))
    assert tools["searchPets"] == SEARCH_PETS


@pytest.mark.parametrize(
    ("name", "target"),
    [
        (
            "getPetPhotos",
            HttpOperation(
                server="api",
                method="GET",
                path="/pets/{petIds}/photos{format}",
                base_url="https://pets.example.com",
                operation_id="getPetPhotos",
                params=(
                    ParamBinding(argument="petIds", name="petIds", location="path", required=True),
                    ParamBinding(
                        argument="format",
                        name="format",
                        location="path",
                        required=True,
                        style="label",
                    ),
                ),
                accept="application/json",
            ),
        ),
        (
            "listOwnerPets",
            HttpOperation(
                server="api",
                method="GET",
                path="/owners/{owner}/pets",
                base_url="https://pets.example.com",
                operation_id="listOwnerPets",
                params=(
                    ParamBinding(
                        argument="owner",
                        name="owner",
                        location="path",
                        required=True,
                        style="matrix",
                        explode=True,
                    ),
                ),
                accept="application/json",
            ),
        ),
    ],
)
def test_path_styles(specs: Path, name: str, target: HttpOperation) -> None:
    """simple (the default) and label in one path; matrix with explode."""
    tools = tools_by_name(convert_spec(specs, "params-styles.yaml"))
    assert tools[name].target == target


def test_object_parameters_keep_their_schema(specs: Path) -> None:
    tools = tools_by_name(convert_spec(specs, "params-styles.yaml"))
    assert tools["listOwnerPets"].input_schema == {
        "type": "object",
        "properties": {
            "owner": {
                "type": "object",
                "properties": {"first": {"type": "string"}, "last": {"type": "string"}},
                "description": "matrix, explode true: ;first=Ada;last=Lovelace",
            }
        },
        "required": ["owner"],
        "additionalProperties": False,
    }


# -- body-json.yaml -----------------------------------------------------------------------

CREATE_ORDER = Tool(
    name="createOrder",
    original_name="createOrder",
    description="Place an order",
    input_schema={
        "type": "object",
        "properties": {
            "customer": {
                "type": "object",
                "required": ["email"],
                "properties": {
                    "email": {"type": "string", "format": "email"},
                    "name": {"type": "string"},
                    "address": {
                        "type": "object",
                        "required": ["street", "city", "country"],
                        "properties": {
                            "street": {"type": "string"},
                            "city": {"type": "string"},
                            "postcode": {"type": "string"},
                            "country": {"type": "string", "minLength": 2, "maxLength": 2},
                        },
                    },
                },
            },
            "items": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["isbn", "quantity"],
                    "properties": {
                        "isbn": {"type": "string"},
                        "quantity": {"type": "integer", "minimum": 1},
                    },
                },
            },
            "giftWrap": {"type": "boolean", "default": False},
            "note": {"type": "string", "maxLength": 500},
        },
        "required": ["customer", "items"],
        "additionalProperties": False,
    },
    output_schema={"$ref": "#/$defs/Order", "$defs": ORDER_DEFS},
    annotations=Annotations(title="Place an order"),
    source="api",
    target=HttpOperation(
        server="api",
        method="POST",
        path="/orders",
        base_url="https://shop.example.com/api",
        operation_id="createOrder",
        body=BodyPlan(
            media_type="application/json",
            kind="json",
            required=True,
            fields=(
                ("customer", "customer"),
                ("items", "items"),
                ("giftWrap", "giftWrap"),
                ("note", "note"),
            ),
        ),
        accept="application/json",
    ),
)

REPLACE_ORDER = Tool(
    name="replaceOrder",
    original_name="replaceOrder",
    description=(
        "Replace an order; the body repeats the order id\n\nThe body has its "
        "own `orderId` property, which collides with the path parameter, so "
        "the body cannot be flattened into the same argument object."
    ),
    input_schema={
        "type": "object",
        "properties": {
            "orderId": {"type": "string"},
            "body": {
                "type": "object",
                "required": ["orderId", "status"],
                "properties": {
                    "orderId": {"type": "string", "description": "Must equal the id in the path."},
                    "status": {"type": "string", "enum": ["pending", "paid", "shipped"]},
                },
            },
        },
        "required": ["orderId", "body"],
        "additionalProperties": False,
    },
    output_schema={"$ref": "#/$defs/Order", "$defs": ORDER_DEFS},
    annotations=Annotations(
        title="Replace an order; the body repeats the order id", idempotent=True
    ),
    source="api",
    target=HttpOperation(
        server="api",
        method="PUT",
        path="/orders/{orderId}",
        base_url="https://shop.example.com/api",
        operation_id="replaceOrder",
        params=(ParamBinding(argument="orderId", name="orderId", location="path", required=True),),
        body=BodyPlan(media_type="application/json", kind="json", required=True, argument="body"),
        accept="application/json",
    ),
)

CREATE_REVIEW = Tool(
    name="createReview",
    original_name="createReview",
    description="Post a review as a JSON:API document",
    input_schema={
        "type": "object",
        "properties": {
            "data": {
                "type": "object",
                "required": ["type", "attributes"],
                "properties": {
                    "type": {"const": "reviews"},
                    "attributes": {
                        "type": "object",
                        "required": ["rating"],
                        "properties": {
                            "rating": {"type": "integer", "minimum": 1, "maximum": 5},
                            "text": {"type": "string"},
                        },
                    },
                },
            }
        },
        "required": ["data"],
        "additionalProperties": False,
    },
    output_schema={"type": "object"},
    annotations=Annotations(title="Post a review as a JSON:API document"),
    source="api",
    target=HttpOperation(
        server="api",
        method="POST",
        path="/reviews",
        base_url="https://shop.example.com/api",
        operation_id="createReview",
        body=BodyPlan(
            media_type="application/vnd.api+json",
            kind="json",
            required=True,
            fields=(("data", "data"),),
        ),
        accept="application/vnd.api+json",
    ),
)


def test_json_body_is_flattened_when_nothing_collides(specs: Path) -> None:
    tools = tools_by_name(convert_spec(specs, "body-json.yaml"))
    assert tools["createOrder"] == CREATE_ORDER


def test_json_body_stays_under_body_when_a_field_collides_with_a_parameter(
    specs: Path,
) -> None:
    """The body's `orderId` has the path parameter's name, so the body is one argument."""
    tools = tools_by_name(convert_spec(specs, "body-json.yaml"))
    assert tools["replaceOrder"] == REPLACE_ORDER


@pytest.mark.parametrize(
    "keywords",
    [
        {"maxProperties": 1},
        {"dependentRequired": {"a": ["b"]}},
        {"propertyNames": {"pattern": "^[a-z]+$"}},
        {"required": ["a", "team_id"]},  # Figma's putWebhook: required, and never declared
    ],
)
def test_a_body_constrained_as_a_whole_stays_one_argument(
    tmp_path: Path, keywords: dict[str, Any]
) -> None:
    """Beside the parameters its properties could no longer say it (the call sent `{}` where
    the document wants one property at least; `team_id` could not be sent at all)."""
    body = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}}
    document = {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "servers": [{"url": "https://api.example.com"}],
        "paths": {
            "/v/{id}": {
                "post": {
                    "operationId": "post",
                    "parameters": [
                        {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {**body, **keywords}}},
                    },
                    "responses": {"200": {"description": "ok"}},
                }
            }
        },
    }
    (tool,) = convert_text(tmp_path, json.dumps(document)).tools
    assert tool.input_schema == {
        "type": "object",
        "properties": {"id": {"type": "string"}, "body": {**body, **keywords}},
        "required": ["id", "body"],
        "additionalProperties": False,
    }


def test_json_api_media_type_is_json(specs: Path) -> None:
    tools = tools_by_name(convert_spec(specs, "body-json.yaml"))
    assert tools["createReview"] == CREATE_REVIEW


# -- body-allof.yaml ----------------------------------------------------------------------

REGISTER_PET = Tool(
    name="registerPet",
    original_name="registerPet",
    description="Register a pet (allOf of two components and an inline part)",
    input_schema={
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "birthDate": {"type": "string", "format": "date"},
            "createdAt": {"type": "string", "format": "date-time"},
            "shelterId": {"type": "integer"},
        },
        "required": ["name", "shelterId"],
        "additionalProperties": False,
    },
    annotations=Annotations(title="Register a pet (allOf of two components and an inline part)"),
    source="api",
    target=HttpOperation(
        server="api",
        method="POST",
        path="/pets",
        base_url="https://shelter.example.com",
        operation_id="registerPet",
        body=BodyPlan(
            media_type="application/json",
            kind="json",
            required=True,
            fields=(
                ("name", "name"),
                ("birthDate", "birthDate"),
                ("createdAt", "createdAt"),
                ("shelterId", "shelterId"),
            ),
        ),
    ),
)

DONATE = Tool(
    name="donate",
    original_name="donate",
    description="Donate money, goods, or both (anyOf)",
    input_schema={
        "type": "object",
        "properties": {
            "body": {
                "anyOf": [
                    {
                        "type": "object",
                        "required": ["amount"],
                        "properties": {
                            "amount": {"type": "number", "minimum": 1},
                            "currency": {"type": "string", "default": "EUR"},
                        },
                    },
                    {
                        "type": "object",
                        "required": ["goods"],
                        "properties": {"goods": {"type": "array", "items": {"type": "string"}}},
                    },
                ]
            }
        },
        "required": ["body"],
        "additionalProperties": False,
    },
    annotations=Annotations(title="Donate money, goods, or both (anyOf)"),
    source="api",
    target=HttpOperation(
        server="api",
        method="POST",
        path="/donations",
        base_url="https://shelter.example.com",
        operation_id="donate",
        body=BodyPlan(media_type="application/json", kind="json", required=True, argument="body"),
    ),
)

CAT_AND_DOG_DEFS: JsonSchema = {
    "Cat": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "birthDate": {"type": "string", "format": "date"},
            "petType": {"type": "string", "enum": ["cat"]},
            "indoor": {"type": "boolean"},
        },
        "required": ["name", "petType"],
    },
    "Dog": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "birthDate": {"type": "string", "format": "date"},
            "petType": {"type": "string", "enum": ["dog"]},
            "breed": {"type": "string"},
        },
        "required": ["name", "petType"],
    },
}


def test_all_of_of_two_refs_and_an_inline_part_is_merged_and_flattened(specs: Path) -> None:
    tools = tools_by_name(convert_spec(specs, "body-allof.yaml"))
    assert tools["registerPet"] == REGISTER_PET


def test_one_of_body_is_kept_under_body(specs: Path) -> None:
    tools = tools_by_name(convert_spec(specs, "body-allof.yaml"))
    tool = tools["startAdoption"]
    assert tool.target == HttpOperation(
        server="api",
        method="POST",
        path="/adoptions",
        base_url="https://shelter.example.com",
        operation_id="startAdoption",
        body=BodyPlan(media_type="application/json", kind="json", required=True, argument="body"),
    )
    assert tool.notes == ()
    assert tool.input_schema["properties"] == {
        "body": {"oneOf": [{"$ref": "#/$defs/Cat"}, {"$ref": "#/$defs/Dog"}]}
    }


def test_one_of_body_defs_hold_only_what_is_referenced(specs: Path) -> None:
    tools = tools_by_name(convert_spec(specs, "body-allof.yaml"))
    assert tools["startAdoption"].input_schema == {
        "type": "object",
        "properties": {"body": {"oneOf": [{"$ref": "#/$defs/Cat"}, {"$ref": "#/$defs/Dog"}]}},
        "required": ["body"],
        "additionalProperties": False,
        "$defs": CAT_AND_DOG_DEFS,
    }


def test_any_of_body_is_kept_under_body(specs: Path) -> None:
    tools = tools_by_name(convert_spec(specs, "body-allof.yaml"))
    assert tools["donate"] == DONATE


# -- body-form-multipart.yaml -------------------------------------------------------------

LOGIN = Tool(
    name="login",
    original_name="login",
    description="Log in with a form post",
    input_schema={
        "type": "object",
        "properties": {
            "username": {"type": "string"},
            "password": {"type": "string", "format": "password"},
            "scopes": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["username", "password"],
        "additionalProperties": False,
    },
    output_schema={"type": "object", "properties": {"token": {"type": "string"}}},
    annotations=Annotations(title="Log in with a form post"),
    source="api",
    target=HttpOperation(
        server="api",
        method="POST",
        path="/login",
        base_url="https://records.example.com",
        operation_id="login",
        body=BodyPlan(
            media_type="application/x-www-form-urlencoded",
            kind="form",
            required=True,
            fields=(("username", "username"), ("password", "password"), ("scopes", "scopes")),
            encoding=(("scopes", FieldEncoding(explode=False)),),
        ),
        accept="application/json",
    ),
)

UPLOAD_PET_PHOTO = Tool(
    name="uploadPetPhoto",
    original_name="uploadPetPhoto",
    description="Upload a photo with JSON metadata",
    input_schema={
        "type": "object",
        "properties": {
            "petId": {"type": "integer"},
            "file": {
                "type": "object",
                "description": "A file: its bytes as base64, and its name.",
                "properties": {
                    "content": {"type": "string", "contentEncoding": "base64"},
                    "filename": {"type": "string"},
                    "content_type": {"type": "string"},
                },
                "required": ["content"],
                "additionalProperties": False,
            },
            "metadata": {
                "type": "object",
                "properties": {
                    "caption": {"type": "string"},
                    "takenAt": {"type": "string", "format": "date-time"},
                },
            },
        },
        "required": ["petId", "file"],
        "additionalProperties": False,
    },
    annotations=Annotations(title="Upload a photo with JSON metadata"),
    source="api",
    target=HttpOperation(
        server="api",
        method="POST",
        path="/pets/{petId}/photos",
        base_url="https://records.example.com",
        operation_id="uploadPetPhoto",
        params=(ParamBinding(argument="petId", name="petId", location="path", required=True),),
        body=BodyPlan(
            media_type="multipart/form-data",
            kind="multipart",
            required=True,
            fields=(("file", "file"), ("metadata", "metadata")),
            encoding=(
                ("file", FieldEncoding(content_type="image/png, image/jpeg", is_file=True)),
                ("metadata", FieldEncoding(content_type="application/json")),
            ),
        ),
    ),
)

RECORD_VACCINATION = Tool(
    name="recordVaccination",
    original_name="recordVaccination",
    description=(
        "Record a vaccination, as JSON or XML (a converter should keep JSON and skip XML)"
    ),
    input_schema={
        "type": "object",
        "properties": {
            "petId": {"type": "integer"},
            "vaccine": {"type": "string"},
            "date": {"type": "string", "format": "date"},
        },
        "required": ["petId", "vaccine"],
        "additionalProperties": False,
    },
    annotations=Annotations(
        title=("Record a vaccination, as JSON or XML (a converter should keep JSON and skip XML)")
    ),
    source="api",
    target=HttpOperation(
        server="api",
        method="POST",
        path="/vaccinations",
        base_url="https://records.example.com",
        operation_id="recordVaccination",
        body=BodyPlan(
            media_type="application/json",
            kind="json",
            required=True,
            fields=(("petId", "petId"), ("vaccine", "vaccine"), ("date", "date")),
        ),
    ),
    notes=(
        Note(
            kind="media-type-skipped",
            message="request body sent as application/json; also offered as application/xml",
            where="POST /vaccinations",
        ),
    ),
)


def test_urlencoded_form_body_with_encoding(specs: Path) -> None:
    tools = tools_by_name(convert_spec(specs, "body-form-multipart.yaml"))
    assert tools["login"] == LOGIN


def test_multipart_body_turns_binary_fields_into_files(specs: Path) -> None:
    tools = tools_by_name(convert_spec(specs, "body-form-multipart.yaml"))
    assert tools["uploadPetPhoto"] == UPLOAD_PET_PHOTO


@pytest.mark.parametrize(
    ("name", "input_schema", "target"),
    [
        (
            "replacePetNotes",
            {
                "type": "object",
                "properties": {
                    "petId": {"type": "integer"},
                    "body": {"type": "string", "maxLength": 10000},
                },
                "required": ["petId", "body"],
                "additionalProperties": False,
            },
            HttpOperation(
                server="api",
                method="PUT",
                path="/pets/{petId}/notes",
                base_url="https://records.example.com",
                operation_id="replacePetNotes",
                params=(
                    ParamBinding(argument="petId", name="petId", location="path", required=True),
                ),
                body=BodyPlan(media_type="text/plain", kind="text", required=True, argument="body"),
            ),
        ),
        (
            "uploadMicrochipDump",
            {
                "type": "object",
                "properties": {
                    "petId": {"type": "integer"},
                    "body": {
                        "type": "string",
                        "contentEncoding": "base64",
                        "description": "The application/octet-stream request body: its bytes, "
                        "base64-encoded.",
                    },
                },
                "required": ["petId", "body"],
                "additionalProperties": False,
            },
            HttpOperation(
                server="api",
                method="PUT",
                path="/pets/{petId}/microchip-dump",
                base_url="https://records.example.com",
                operation_id="uploadMicrochipDump",
                params=(
                    ParamBinding(argument="petId", name="petId", location="path", required=True),
                ),
                body=BodyPlan(
                    media_type="application/octet-stream",
                    kind="binary",
                    required=True,
                    argument="body",
                ),
            ),
        ),
    ],
)
def test_text_and_octet_stream_bodies(
    specs: Path, name: str, input_schema: JsonSchema, target: HttpOperation
) -> None:
    tools = tools_by_name(convert_spec(specs, "body-form-multipart.yaml"))
    assert tools[name].input_schema == input_schema
    assert tools[name].target == target
    assert tools[name].notes == ()


def test_json_is_chosen_over_xml_with_a_note(specs: Path) -> None:
    tools = tools_by_name(convert_spec(specs, "body-form-multipart.yaml"))
    assert tools["recordVaccination"] == RECORD_VACCINATION


# -- refs-cycles.yaml ---------------------------------------------------------------------

GET_CATEGORY_TREE = Tool(
    name="getCategoryTree",
    original_name="getCategoryTree",
    description="Get a category with all its subcategories",
    input_schema={
        "type": "object",
        "properties": {
            "categoryId": {"type": "integer"},
            "depth": {
                "type": "integer",
                "minimum": 0,
                "maximum": 10,
                "default": 2,
                "description": "How many levels of subcategories to include.",
            },
        },
        "required": ["categoryId"],
        "additionalProperties": False,
    },
    output_schema={"$ref": "#/$defs/Category", "$defs": CATEGORY_DEFS},
    annotations=Annotations(
        title="Get a category with all its subcategories", read_only=True, idempotent=True
    ),
    source="api",
    target=HttpOperation(
        server="api",
        method="GET",
        path="/categories/{categoryId}",
        base_url="https://books.example.com/api",
        operation_id="getCategoryTree",
        params=(
            ParamBinding(argument="categoryId", name="categoryId", location="path", required=True),
            ParamBinding(
                argument="depth", name="depth", location="query", style="form", explode=True
            ),
        ),
        accept="application/json",
    ),
)

REPLACE_CATEGORY_TREE = Tool(
    name="replaceCategoryTree",
    original_name="replaceCategoryTree",
    description="Replace a category and its subtree",
    input_schema={
        "type": "object",
        "properties": {
            "categoryId": {"type": "integer"},
            "name": {"type": "string"},
            "children": {"type": "array", "items": {"$ref": "#/$defs/Category"}},
        },
        "required": ["categoryId", "name"],
        "additionalProperties": False,
        "$defs": CATEGORY_DEFS,
    },
    output_schema={"$ref": "#/$defs/Category", "$defs": CATEGORY_DEFS},
    annotations=Annotations(title="Replace a category and its subtree", idempotent=True),
    source="api",
    target=HttpOperation(
        server="api",
        method="PUT",
        path="/categories/{categoryId}",
        base_url="https://books.example.com/api",
        operation_id="replaceCategoryTree",
        params=(
            ParamBinding(argument="categoryId", name="categoryId", location="path", required=True),
        ),
        body=BodyPlan(
            media_type="application/json",
            kind="json",
            required=True,
            fields=(("name", "name"), ("children", "children")),
        ),
        accept="application/json",
    ),
    notes=(
        Note(
            kind="cycle",
            message="recursive schema(s) kept as references in $defs: Category",
            where="PUT /categories/{categoryId}",
        ),
    ),
)

CREATE_AUTHOR = Tool(
    name="createAuthor",
    original_name="createAuthor",
    description="Create an author together with their books",
    input_schema={
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "books": {"type": "array", "items": {"$ref": "#/$defs/Book"}},
        },
        "required": ["name"],
        "additionalProperties": False,
        "$defs": AUTHOR_AND_BOOK_DEFS,
    },
    output_schema={"$ref": "#/$defs/Author", "$defs": AUTHOR_AND_BOOK_DEFS},
    annotations=Annotations(title="Create an author together with their books"),
    source="api",
    target=HttpOperation(
        server="api",
        method="POST",
        path="/authors",
        base_url="https://books.example.com/api",
        operation_id="createAuthor",
        body=BodyPlan(
            media_type="application/json",
            kind="json",
            required=True,
            fields=(("name", "name"), ("books", "books")),
        ),
        accept="application/json",
    ),
    notes=(
        Note(
            kind="cycle",
            message="recursive schema(s) kept as references in $defs: Author, Book",
            where="POST /authors",
        ),
    ),
)


def test_refs_to_parameters_and_responses(specs: Path) -> None:
    tools = tools_by_name(convert_spec(specs, "refs-cycles.yaml"))
    assert tools["getCategoryTree"] == GET_CATEGORY_TREE


def test_self_reference_stays_a_ref_in_defs_with_a_cycle_note(specs: Path) -> None:
    """The body comes from `components/requestBodies`; its schema refers to itself."""
    tools = tools_by_name(convert_spec(specs, "refs-cycles.yaml"))
    assert tools["replaceCategoryTree"] == REPLACE_CATEGORY_TREE


def test_mutual_recursion_stays_refs_in_defs_with_a_cycle_note(specs: Path) -> None:
    tools = tools_by_name(convert_spec(specs, "refs-cycles.yaml"))
    assert tools["createAuthor"] == CREATE_AUTHOR


def test_path_item_by_ref(specs: Path) -> None:
    tools = tools_by_name(convert_spec(specs, "refs-cycles.yaml"))
    tool = tools["getBook"]
    assert tool.target == HttpOperation(
        server="api",
        method="GET",
        path="/books/{isbn}",
        base_url="https://books.example.com/api",
        operation_id="getBook",
        params=(ParamBinding(argument="isbn", name="isbn", location="path", required=True),),
        accept="application/json",
    )
    assert tool.input_schema == {
        "type": "object",
        "properties": {"isbn": {"type": "string"}},
        "required": ["isbn"],
        "additionalProperties": False,
    }
    assert tool.output_schema == {"$ref": "#/$defs/Book", "$defs": AUTHOR_AND_BOOK_DEFS}
    assert tool.notes == ()


# -- refs-multifile/ ----------------------------------------------------------------------

MULTIFILE = "refs-multifile/api/openapi.yaml"
LIST_PETS_MULTIFILE = Tool(
    name="listPets",
    original_name="listPets",
    description="List pets",
    input_schema={
        "type": "object",
        "properties": {
            "limit": {
                "type": "integer",
                "minimum": 1,
                "maximum": 50,
                "default": 10,
                "description": "Page size.",
            }
        },
        "additionalProperties": False,
    },
    output_schema={"type": "array", "items": {"$ref": "#/$defs/pet"}, "$defs": PET_AND_OWNER_DEFS},
    annotations=Annotations(title="List pets", read_only=True, idempotent=True),
    source="api",
    target=HttpOperation(
        server="api",
        method="GET",
        path="/pets",
        base_url="https://pets.example.com/v2",
        operation_id="listPets",
        params=(
            ParamBinding(
                argument="limit", name="limit", location="query", style="form", explode=True
            ),
        ),
        accept="application/json",
    ),
)


def test_refs_into_sibling_and_parent_folders_and_ref_chains(specs: Path) -> None:
    """`./parameters.yaml#/Limit`, and `#/components/schemas/Pet` -> `./schemas/pet.yaml`
    -> `./owner.yaml` (relative to pet.yaml)."""
    tools = tools_by_name(convert_spec(specs, MULTIFILE))
    assert tools["listPets"] == LIST_PETS_MULTIFILE


def test_multifile_body_ref_is_flattened(specs: Path) -> None:
    tools = tools_by_name(convert_spec(specs, MULTIFILE))
    tool = tools["createPet"]
    assert tool.input_schema == {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "species": {"type": "string", "enum": ["cat", "dog", "bird"]},
            "owner": {"$ref": "#/$defs/owner"},
        },
        "required": ["name"],
        "additionalProperties": False,
        "$defs": {
            "owner": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}, "phone": {"type": "string"}},
            }
        },
    }
    assert tool.target == HttpOperation(
        server="api",
        method="POST",
        path="/pets",
        base_url="https://pets.example.com/v2",
        operation_id="createPet",
        body=BodyPlan(
            media_type="application/json",
            kind="json",
            required=True,
            fields=(("name", "name"), ("species", "species"), ("owner", "owner")),
        ),
        accept="application/json",
    )
    assert tool.output_schema == {"$ref": "#/$defs/pet", "$defs": PET_AND_OWNER_DEFS}


@pytest.mark.parametrize(
    ("name", "target"),
    [
        (
            "getPet",
            HttpOperation(
                server="api",
                method="GET",
                path="/pets/{petId}",
                base_url="https://pets.example.com/v2",
                operation_id="getPet",
                params=(
                    ParamBinding(argument="petId", name="petId", location="path", required=True),
                ),
                accept="application/json",
            ),
        ),
        (
            "deletePet",
            HttpOperation(
                server="api",
                method="DELETE",
                path="/pets/{petId}",
                base_url="https://pets.example.com/v2",
                operation_id="deletePet",
                params=(
                    ParamBinding(argument="petId", name="petId", location="path", required=True),
                ),
            ),
        ),
    ],
)
def test_path_item_in_another_file_keeps_its_path_level_parameters(
    specs: Path, name: str, target: HttpOperation
) -> None:
    tools = tools_by_name(convert_spec(specs, MULTIFILE))
    assert tools[name].input_schema == {
        "type": "object",
        "properties": {
            "petId": {"type": "integer", "format": "int64", "description": "The pet's id."}
        },
        "required": ["petId"],
        "additionalProperties": False,
    }
    assert tools[name].target == target
    assert tools[name].notes == ()


def test_path_item_in_another_file_resolves_its_operation_refs(specs: Path) -> None:
    """The 200 response of `getPet` refs `../schemas/pet.yaml`, relative to the path item."""
    tools = tools_by_name(convert_spec(specs, MULTIFILE))
    assert tools["getPet"].output_schema == {"$ref": "#/$defs/pet", "$defs": PET_AND_OWNER_DEFS}
    assert tools["deletePet"].output_schema is None


# -- messy-refs-dangling.yaml -------------------------------------------------------------

CREATE_PET_DANGLING = Tool(
    name="createPet",
    original_name="createPet",
    description="Add a pet (its body schema is missing)",
    input_schema={
        "type": "object",
        "properties": {"body": {"description": "Unresolved reference #/components/schemas/NewPet"}},
        "required": ["body"],
        "additionalProperties": False,
    },
    annotations=Annotations(title="Add a pet (its body schema is missing)"),
    source="api",
    target=HttpOperation(
        server="api",
        method="POST",
        path="/pets",
        base_url="https://pets.example.com",
        operation_id="createPet",
        body=BodyPlan(media_type="application/json", kind="json", required=True, argument="body"),
    ),
    notes=(
        Note(
            kind="unresolved-ref",
            message=(
                "$ref '#/components/schemas/NewPet' cannot be followed (nothing at "
                "#/components/schemas/NewPet in specs/messy-refs-dangling.yaml); that "
                "part accepts any value"
            ),
            where="POST /pets",
        ),
    ),
)


def test_dangling_ref_degrades_only_its_operation(specs: Path) -> None:
    tools = tools_by_name(convert_spec(specs, "messy-refs-dangling.yaml"))
    assert tools["createPet"] == CREATE_PET_DANGLING
    assert tools["listPets"] == Tool(
        name="listPets",
        original_name="listPets",
        description="List pets",
        input_schema={"type": "object", "properties": {}, "additionalProperties": False},
        output_schema={
            "type": "array",
            "items": {"$ref": "#/$defs/Pet"},
            "$defs": {
                "Pet": {
                    "type": "object",
                    "required": ["id", "name"],
                    "properties": {"id": {"type": "integer"}, "name": {"type": "string"}},
                }
            },
        },
        annotations=Annotations(title="List pets", read_only=True, idempotent=True),
        source="api",
        target=HttpOperation(
            server="api",
            method="GET",
            path="/pets",
            base_url="https://pets.example.com",
            operation_id="listPets",
            accept="application/json",
        ),
    )
    assert tools["getPet"].notes == ()
    assert tools["getPet"].input_schema == {
        "type": "object",
        "properties": {"petId": {"type": "integer"}},
        "required": ["petId"],
        "additionalProperties": False,
    }


def test_dangling_ref_inside_a_flattened_body_is_noted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    conversion = convert_text(
        tmp_path,
        """
        openapi: 3.0.3
        info: {title: t, version: "1"}
        paths:
          /pets:
            post:
              operationId: createPet
              requestBody:
                content:
                  application/json:
                    schema: {$ref: "#/components/schemas/Pet"}
              responses: {"204": {description: ok}}
        components:
          schemas:
            Pet:
              type: object
              properties:
                name: {type: string}
                owner: {$ref: "#/components/schemas/Missing"}
        """,
    )
    (tool,) = conversion.tools
    assert tool.input_schema == {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "owner": {"description": "Unresolved reference #/components/schemas/Missing"},
        },
        "additionalProperties": False,
    }
    assert [(note.kind, note.message) for note in tool.notes] == [
        (
            "unresolved-ref",
            "$ref '#/components/schemas/Missing' cannot be followed (nothing at "
            "#/components/schemas/Missing in openapi.yaml); that part accepts any value",
        )
    ]


def test_dangling_ref_inside_a_body_kept_whole_is_noted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same dangling ref, in a body that cannot be flattened, is noted on the tool."""
    monkeypatch.chdir(tmp_path)
    conversion = convert_text(
        tmp_path,
        """
        openapi: 3.0.3
        info: {title: t, version: "1"}
        paths:
          /pets:
            post:
              operationId: createPet
              parameters: [{name: name, in: query, schema: {type: string}}]
              requestBody:
                content:
                  application/json:
                    schema: {$ref: "#/components/schemas/Pet"}
              responses: {"204": {description: ok}}
        components:
          schemas:
            Pet:
              type: object
              properties:
                name: {type: string}
                owner: {$ref: "#/components/schemas/Missing"}
        """,
    )
    (tool,) = conversion.tools
    assert tool.notes == (
        Note(
            kind="unresolved-ref",
            message="$ref '#/components/schemas/Missing' cannot be followed (nothing at "
            "#/components/schemas/Missing in openapi.yaml); that part accepts any value",
            where="openapi.yaml#/components/schemas/Pet",
        ),
    )
    assert tool.input_schema["$defs"] == {
        "Pet": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "owner": {"description": "Unresolved reference #/components/schemas/Missing"},
            },
        }
    }


# -- swagger2.json ------------------------------------------------------------------------

SWAGGER_LIST_PETS = Tool(
    name="listPets",
    original_name="listPets",
    description="List pets",
    input_schema={
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"type": "string"}, "description": "tags=a,b"},
            "status": {
                "type": "array",
                "items": {"type": "string", "enum": ["available", "pending", "sold"]},
                "description": "status=a&status=b",
            },
            "ids": {
                "type": "array",
                "items": {"type": "integer", "format": "int64"},
                "description": "ids=1|2",
            },
            "limit": {"type": "integer", "default": 20, "minimum": 1, "maximum": 100},
        },
        "additionalProperties": False,
    },
    output_schema={"type": "array", "items": {"$ref": "#/$defs/Pet"}, "$defs": SWAGGER_PET_DEFS},
    annotations=Annotations(title="List pets", read_only=True, idempotent=True),
    source="api",
    target=HttpOperation(
        server="api",
        method="GET",
        path="/pets",
        base_url="https://petstore.example.com/v1",
        operation_id="listPets",
        params=(
            ParamBinding(argument="tags", name="tags", location="query", style="form"),
            ParamBinding(
                argument="status", name="status", location="query", style="form", explode=True
            ),
            ParamBinding(argument="ids", name="ids", location="query", style="pipeDelimited"),
            ParamBinding(
                argument="limit", name="limit", location="query", style="form", explode=True
            ),
        ),
        accept="application/json",
        security=(("apiKeyHeader",),),
    ),
)


def test_swagger2_collection_formats_host_base_path_and_schemes(specs: Path) -> None:
    """csv, multi and pipes become form, form+explode and pipeDelimited; https is chosen."""
    tools = tools_by_name(convert_spec(specs, "swagger2.json"))
    assert tools["listPets"] == SWAGGER_LIST_PETS


def test_swagger2_body_parameter_and_x_nullable(specs: Path) -> None:
    tools = tools_by_name(convert_spec(specs, "swagger2.json"))
    tool = tools["createPet"]
    assert tool.input_schema == {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "status": {"type": "string", "enum": ["available", "pending", "sold"]},
            "nickname": {"type": ["string", "null"]},
            "owner": {"$ref": "#/$defs/Owner"},
        },
        "required": ["name"],
        "additionalProperties": False,
        "$defs": {
            "Owner": {"type": ["object", "null"], "properties": {"name": {"type": "string"}}}
        },
    }
    assert tool.target == HttpOperation(
        server="api",
        method="POST",
        path="/pets",
        base_url="https://petstore.example.com/v1",
        operation_id="createPet",
        body=BodyPlan(
            media_type="application/json",
            kind="json",
            required=True,
            fields=(
                ("name", "name"),
                ("status", "status"),
                ("nickname", "nickname"),
                ("owner", "owner"),
            ),
        ),
        accept="application/json",
        security=(("apiKeyHeader",),),
    )
    assert tool.output_schema == {"$ref": "#/$defs/Pet", "$defs": SWAGGER_PET_DEFS}


def test_swagger2_form_data_with_a_file_is_a_multipart_body(specs: Path) -> None:
    conversion = convert_spec(specs, "swagger2.json")
    (tool,) = [t for t in conversion.tools if t.original_name == "POST /pets/{petId}/photo"]
    assert tool.input_schema == {
        "type": "object",
        "properties": {
            "petId": {"type": "integer", "format": "int64"},
            "file": {
                "type": "object",
                "description": "The image.",
                "properties": {
                    "content": {"type": "string", "contentEncoding": "base64"},
                    "filename": {"type": "string"},
                    "content_type": {"type": "string"},
                },
                "required": ["content"],
                "additionalProperties": False,
            },
            "caption": {"type": "string"},
        },
        "required": ["petId", "file"],
        "additionalProperties": False,
    }
    assert tool.target == HttpOperation(
        server="api",
        method="POST",
        path="/pets/{petId}/photo",
        base_url="https://petstore.example.com/v1",
        operation_id=None,
        params=(ParamBinding(argument="petId", name="petId", location="path", required=True),),
        body=BodyPlan(
            media_type="multipart/form-data",
            kind="multipart",
            required=True,
            fields=(("file", "file"), ("caption", "caption")),
            encoding=(("file", FieldEncoding(is_file=True)),),
        ),
        security=(("apiKeyHeader",),),
    )
    assert tool.annotations == Annotations(
        title="Upload a pet photo (no operationId; formData with a file)"
    )


def test_swagger2_missing_operation_id_is_named_from_method_and_path(specs: Path) -> None:
    conversion = convert_spec(specs, "swagger2.json")
    (tool,) = [t for t in conversion.tools if t.original_name == "POST /pets/{petId}/photo"]
    assert tool.name == "post_pets_petId_photo"
    assert tool.notes == (
        Note(
            kind="name-derived",
            message="no operationId: named 'post_pets_petId_photo' from its method and path",
            where="POST /pets/{petId}/photo",
        ),
    )


def test_swagger2_urlencoded_form_data(specs: Path) -> None:
    tools = tools_by_name(convert_spec(specs, "swagger2.json"))
    tool = tools["updatePetWithForm"]
    assert tool.input_schema == {
        "type": "object",
        "properties": {
            "petId": {"type": "integer", "format": "int64"},
            "name": {"type": "string"},
            "status": {"type": "string", "enum": ["available", "pending", "sold"]},
        },
        "required": ["petId"],
        "additionalProperties": False,
    }
    assert tool.target == HttpOperation(
        server="api",
        method="POST",
        path="/pets/{petId}",
        base_url="https://petstore.example.com/v1",
        operation_id="updatePetWithForm",
        params=(ParamBinding(argument="petId", name="petId", location="path", required=True),),
        body=BodyPlan(
            media_type="application/x-www-form-urlencoded",
            kind="form",
            fields=(("name", "name"), ("status", "status")),
        ),
        accept="application/json",
        security=(("apiKeyHeader",),),
    )
    assert tool.output_schema == {"$ref": "#/$defs/Pet", "$defs": SWAGGER_PET_DEFS}


def test_swagger2_header_parameter_and_overridden_security(specs: Path) -> None:
    tools = tools_by_name(convert_spec(specs, "swagger2.json"))
    assert tools["deletePet"] == Tool(
        name="deletePet",
        original_name="deletePet",
        description="Delete a pet (basic auth only)",
        input_schema={
            "type": "object",
            "properties": {
                "petId": {"type": "integer", "format": "int64"},
                "X-Reason": {"type": "string"},
            },
            "required": ["petId"],
            "additionalProperties": False,
        },
        annotations=Annotations(
            title="Delete a pet (basic auth only)", destructive=True, idempotent=True
        ),
        source="api",
        target=HttpOperation(
            server="api",
            method="DELETE",
            path="/pets/{petId}",
            base_url="https://petstore.example.com/v1",
            operation_id="deletePet",
            params=(
                ParamBinding(argument="petId", name="petId", location="path", required=True),
                ParamBinding(argument="X-Reason", name="X-Reason", location="header"),
            ),
            security=(("basicAuth",),),
        ),
    )


# -- openapi30-nullable.yaml --------------------------------------------------------------

NULLABLE_OWNER = {
    "description": "The owner, or null for a pet still in the shelter.",
    "type": ["object", "null"],
    "properties": {
        "name": {"type": "string"},
        "email": {"type": ["string", "null"], "format": "email"},
    },
    "required": ["name"],
}
SIZE = {
    "type": ["string", "null"],
    "enum": ["small", "medium", "large", None],
    "description": "Null means unknown; 3.0.3 requires null in the enum for it to be allowed.",
}
ADOPT_PET_LEGACY = Tool(
    name="adoptPetLegacy",
    original_name="adoptPetLegacy",
    description=(
        "(Deprecated) Adopt a pet (old flow)\n\nDeprecated; kept only for old "
        "clients, adoptions now go through the shelter desk."
    ),
    input_schema={
        "type": "object",
        "properties": {"petId": {"type": "integer"}},
        "required": ["petId"],
        "additionalProperties": False,
    },
    annotations=Annotations(title="Adopt a pet (old flow)"),
    source="api",
    target=HttpOperation(
        server="api",
        method="POST",
        path="/pets/{petId}/adopt",
        base_url="https://adopt.example.com",
        operation_id="adoptPetLegacy",
        params=(ParamBinding(argument="petId", name="petId", location="path", required=True),),
    ),
    deprecated=True,
)


def test_nullable_becomes_a_type_array_and_read_only_is_left_out(specs: Path) -> None:
    tools = tools_by_name(convert_spec(specs, "openapi30-nullable.yaml"))
    tool = tools["createPet"]
    assert tool.input_schema == {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "nickname": {"type": ["string", "null"], "description": "Null clears the nickname."},
            "size": SIZE,
            "weightKg": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 200},
            "adoptionFee": {"type": ["number", "null"], "minimum": 0},
            "owner": NULLABLE_OWNER,
            "microchipPin": {
                "type": "string",
                "writeOnly": True,
                "description": "Sent when registering, never returned.",
            },
        },
        "required": ["name", "size"],
        "additionalProperties": False,
    }
    assert tool.target == HttpOperation(
        server="api",
        method="POST",
        path="/pets",
        base_url="https://adopt.example.com",
        operation_id="createPet",
        body=BodyPlan(
            media_type="application/json",
            kind="json",
            required=True,
            fields=(
                ("name", "name"),
                ("nickname", "nickname"),
                ("size", "size"),
                ("weightKg", "weightKg"),
                ("adoptionFee", "adoptionFee"),
                ("owner", "owner"),
                ("microchipPin", "microchipPin"),
            ),
        ),
        accept="application/json",
    )


def test_nullable_output_schema_drops_write_only_and_holds_only_referenced_defs(
    specs: Path,
) -> None:
    tools = tools_by_name(convert_spec(specs, "openapi30-nullable.yaml"))
    assert tools["createPet"].output_schema == {
        "$ref": "#/$defs/Pet",
        "$defs": {
            "Pet": {
                "type": "object",
                "required": ["name", "size"],
                "properties": {
                    "id": {"type": "integer", "readOnly": True},
                    "name": {"type": "string"},
                    "nickname": {
                        "type": ["string", "null"],
                        "description": "Null clears the nickname.",
                    },
                    "size": SIZE,
                    "weightKg": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 200},
                    "adoptionFee": {"type": ["number", "null"], "minimum": 0},
                    "owner": NULLABLE_OWNER,
                },
            }
        },
    }


@pytest.mark.parametrize(
    ("document", "name"),
    [
        ("openapi30-nullable.yaml", "createPet"),
        ("refs-multifile/api/openapi.yaml", "createPet"),
        ("swagger2.json", "createPet"),
        ("responses.yaml", "createPet"),
        ("no-operation-ids.yaml", "POST /books"),
    ],
)
def test_read_only_fields_left_out_of_a_flattened_ref_body_are_noted(
    specs: Path, document: str, name: str
) -> None:
    conversion = convert_spec(specs, document)
    (tool,) = [t for t in conversion.tools if name in (t.name, t.original_name)]
    assert "id" not in tool.input_schema["properties"]
    assert ("read-only-omitted", "read-only properties left out of the request: id") in [
        (note.kind, note.message) for note in tool.notes
    ]


def test_read_only_fields_left_out_of_an_inline_body_are_noted(tmp_path: Path) -> None:
    conversion = convert_text(
        tmp_path,
        """
        openapi: 3.0.3
        info: {title: t, version: "1"}
        paths:
          /pets:
            post:
              operationId: createPet
              requestBody:
                required: true
                content:
                  application/json:
                    schema:
                      type: object
                      required: [id, name]
                      properties:
                        id: {type: integer, readOnly: true}
                        name: {type: string}
              responses: {"204": {description: ok}}
        """,
    )
    (tool,) = conversion.tools
    assert tool.input_schema == {
        "type": "object",
        "properties": {"name": {"type": "string"}},
        "required": ["name"],
        "additionalProperties": False,
    }
    assert tool.notes == (
        Note(
            kind="read-only-omitted",
            message="read-only properties left out of the request: id",
            where="POST /pets",
        ),
    )


def test_deprecated_operation(specs: Path) -> None:
    tools = tools_by_name(convert_spec(specs, "openapi30-nullable.yaml"))
    assert tools["adoptPetLegacy"] == ADOPT_PET_LEGACY


def test_nullable_enum_without_null_gains_none(tmp_path: Path) -> None:
    """3.0: `nullable: true` admits null even when the enum does not list it."""
    conversion = convert_text(
        tmp_path,
        """
        openapi: 3.0.3
        info: {title: t, version: "1"}
        paths:
          /pets:
            get:
              operationId: listPets
              parameters:
                - name: size
                  in: query
                  schema: {type: string, enum: [small, large], nullable: true}
                - name: owner
                  in: query
                  schema: {$ref: "#/components/schemas/Owner"}
              responses: {"204": {description: ok}}
        components:
          schemas:
            Owner: {type: string, nullable: true, enum: [ada, bob]}
        """,
    )
    (tool,) = conversion.tools
    assert tool.input_schema == {
        "type": "object",
        "properties": {
            "size": {"type": ["string", "null"], "enum": ["small", "large", None]},
            "owner": {"$ref": "#/$defs/Owner"},
        },
        "additionalProperties": False,
        "$defs": {"Owner": {"type": ["string", "null"], "enum": ["ada", "bob", None]}},
    }


# -- openapi31-types.yaml -----------------------------------------------------------------

CREATE_STORE = Tool(
    name="createStore",
    original_name="createStore",
    description="Open a store",
    input_schema={
        "type": "object",
        "properties": STORE_PROPERTIES,
        "required": ["name", "kind", "location"],
        "additionalProperties": False,
        "$defs": {"Store__defs_Hours": STORE_HOURS},
    },
    output_schema={
        "$ref": "#/$defs/Store",
        "$defs": {
            "Store": {
                "type": "object",
                "required": ["name", "kind", "location"],
                "properties": STORE_PROPERTIES,
            },
            "Store__defs_Hours": STORE_HOURS,
        },
    },
    annotations=Annotations(title="Open a store"),
    source="api",
    target=HttpOperation(
        server="api",
        method="POST",
        path="/stores",
        base_url="https://stores.example.com",
        operation_id="createStore",
        body=BodyPlan(
            media_type="application/json",
            kind="json",
            required=True,
            fields=(
                ("name", "name"),
                ("kind", "kind"),
                ("location", "location"),
                ("manager", "manager"),
                ("openingHours", "openingHours"),
                ("rating", "rating"),
            ),
        ),
        accept="application/json",
    ),
)


def test_openapi31_type_arrays_const_prefix_items_and_component_defs(specs: Path) -> None:
    tools = tools_by_name(convert_spec(specs, "openapi31-types.yaml"))
    assert tools["createStore"] == CREATE_STORE
    assert tools["getStore"].input_schema == {
        "type": "object",
        "properties": {"storeId": {"type": "string", "examples": ["ams-001"]}},
        "required": ["storeId"],
        "additionalProperties": False,
    }


# -- names --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "original_name", "notes"),
    [
        (
            "listAllAvailablePetsForAdoptionFilteredByShelterRegionS_5fa30a96",
            "listAllAvailablePetsForAdoptionFilteredByShelterRegionSpeciesAgeAndVaccinationStatus",
            (
                Note(
                    kind="name-changed",
                    message="'listAllAvailablePetsForAdoptionFilteredByShelterRegion"
                    "SpeciesAgeAndVaccinationStatus' is too long; the tool is named "
                    "'listAllAvailablePetsForAdoptionFilteredByShelterRegionS_5fa30a96'",
                    where="GET /adoptable-pets",
                ),
            ),
        ),
        (
            "pets_list",
            "pets/list",
            (
                Note(
                    kind="name-changed",
                    message="'pets/list' is not a valid tool name; the tool is named 'pets_list'",
                    where="GET /pets",
                ),
            ),
        ),
        (
            "pets_list_2",
            "pets.list",
            (
                Note(
                    kind="name-deduplicated",
                    message=(
                        "'pets_list' is also the name of an earlier operation; this one is "
                        "'pets_list_2'"
                    ),
                    where="GET /pets/summary",
                ),
            ),
        ),
        (
            "get_pet_1_by_id",
            "get pet #1 by id",
            (
                Note(
                    kind="name-changed",
                    message=(
                        "'get pet #1 by id' is not a valid tool name; the tool is named "
                        "'get_pet_1_by_id'"
                    ),
                    where="GET /pets/{petId}",
                ),
            ),
        ),
        (
            "op_e2467b94",
            "ペット検索",
            (
                Note(
                    kind="name-changed",
                    message="'ペット検索' is not a valid tool name; "
                    "the tool is named 'op_e2467b94'",
                    where="GET /pets/search",
                ),
            ),
        ),
    ],
)
def test_long_clashing_and_unusual_operation_ids(
    specs: Path, name: str, original_name: str, notes: tuple[Note, ...]
) -> None:
    tools = tools_by_name(convert_spec(specs, "names-long-and-clashing.yaml"))
    assert tools[name].original_name == original_name
    assert tools[name].http.operation_id == original_name
    assert tools[name].notes == notes


def test_duplicate_operation_ids_are_deduplicated_in_document_order(specs: Path) -> None:
    tools = tools_by_name(convert_spec(specs, "messy-names.yaml"))
    assert [(t.name, t.original_name, t.http.path, t.notes) for t in tools.values()] == [
        ("getPet", "getPet", "/pets/{petId}", ()),
        (
            "getPet_2",
            "getPet",
            "/pets/by-name/{name}",
            (
                Note(
                    kind="name-deduplicated",
                    message="'getPet' is also the name of an earlier operation; "
                    "this one is 'getPet_2'",
                    where="GET /pets/by-name/{name}",
                ),
            ),
        ),
        ("listPets", "listPets", "/pets", ()),
    ]


def test_operations_without_operation_id_keep_method_and_path(specs: Path) -> None:
    conversion = convert_spec(specs, "no-operation-ids.yaml")
    assert [
        (t.original_name, t.http.operation_id, t.description, t.annotations)
        for t in conversion.tools
    ] == [
        (
            "GET /books",
            None,
            "List books",
            Annotations(title="List books", read_only=True, idempotent=True),
        ),
        ("POST /books", None, "Add a book", Annotations(title="Add a book")),
        (
            "GET /books/{bookId}",
            None,
            "Get a book",
            Annotations(title="Get a book", read_only=True, idempotent=True),
        ),
        (
            "DELETE /books/{bookId}",
            None,
            "DELETE /books/{bookId}",
            Annotations(destructive=True, idempotent=True),
        ),
        (
            "PATCH /books/{bookId}",
            None,
            "Change a book's stock count",
            Annotations(title="Change a book's stock count"),
        ),
        (
            "GET /stores/{storeId}/books/{bookId}/stock-level",
            None,
            "GET /stores/{storeId}/books/{bookId}/stock-level",
            Annotations(read_only=True, idempotent=True),
        ),
    ]


def test_operation_without_operation_id_and_with_path_parameters(specs: Path) -> None:
    conversion = convert_spec(specs, "no-operation-ids.yaml")
    tool = conversion.tools[-1]
    assert tool.input_schema == {
        "type": "object",
        "properties": {"storeId": {"type": "string"}, "bookId": {"type": "integer"}},
        "required": ["storeId", "bookId"],
        "additionalProperties": False,
    }
    assert tool.target == HttpOperation(
        server="api",
        method="GET",
        path="/stores/{storeId}/books/{bookId}/stock-level",
        base_url="https://inventory.example.com",
        operation_id=None,
        params=(
            ParamBinding(argument="storeId", name="storeId", location="path", required=True),
            ParamBinding(argument="bookId", name="bookId", location="path", required=True),
        ),
        accept="application/json",
    )
    assert tool.output_schema == {"type": "integer"}


def test_operations_without_operation_id_are_named_method_underscore_path(specs: Path) -> None:
    conversion = convert_spec(specs, "no-operation-ids.yaml")
    assert [(t.name, t.notes[0]) for t in conversion.tools] == [
        (
            name,
            Note(
                kind="name-derived",
                message=f"no operationId: named {name!r} from its method and path",
                where=t.original_name,
            ),
        )
        for name, t in zip(NO_OPERATION_ID_NAMES, conversion.tools, strict=True)
    ]
    # The one with a body also says that the read-only id is not an argument.
    assert [t.notes[1:] for t in conversion.tools if len(t.notes) > 1] == [
        (
            Note(
                kind="read-only-omitted",
                message="read-only properties left out of the request: id",
                where="specs/no-operation-ids.yaml#/components/schemas/Book",
            ),
        )
    ]


# -- filters.yaml -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "names"),
    [
        ({"include": Selection(tags=("pets",))}, ["listPets", "createPet"]),
        (
            {"exclude": Selection(tags=("admin",))},
            ["listPets", "placeOrder", "getInventory", "refreshCache"],
        ),
        ({"include": Selection(methods=("get",))}, ["listPets", "getInventory"]),
        ({"include": Selection(paths=("/store/*",))}, ["placeOrder", "getInventory"]),
        ({"include": Selection(paths=("/pets*",))}, ["listPets", "createPet", "deletePet"]),
        (
            {"include": Selection(operations=("*Pet*",))},
            ["listPets", "createPet", "deletePet"],
        ),
        (
            {"include": Selection(tags=("pets", "store"), methods=("POST",))},
            ["createPet", "placeOrder"],
        ),
        (
            {"exclude": Selection(paths=("/admin/*",))},
            ["listPets", "createPet", "deletePet", "placeOrder", "getInventory"],
        ),
        (
            {
                "include": Selection(tags=("pets", "store")),
                "exclude": Selection(methods=("POST",)),
            },
            ["listPets", "getInventory"],
        ),
        ({"include": Selection(tags=("nobody",))}, []),
        (
            {"prefix": "shop"},
            [
                "shop_listPets",
                "shop_createPet",
                "shop_deletePet",
                "shop_placeOrder",
                "shop_getInventory",
                "shop_refreshCache",
            ],
        ),
        ({"prefix": "shop", "include": Selection(operations=("listPets",))}, ["shop_listPets"]),
    ],
)
def test_include_and_exclude_filters(
    specs: Path, options: dict[str, Any], names: list[str]
) -> None:
    conversion = convert_spec(specs, "filters.yaml", **options)
    assert [tool.name for tool in conversion.tools] == names
    assert conversion.operations == 6
    assert conversion.filtered == 6 - len(names)


def test_source_base_url_and_prefix_options(specs: Path) -> None:
    conversion = convert_spec(
        specs,
        "filters.yaml",
        source="petstore",
        base_url="http://127.0.0.1:9000",
        prefix="shop",
        include=Selection(operations=("deletePet",)),
    )
    assert conversion.tools == (
        Tool(
            name="shop_deletePet",
            original_name="deletePet",
            description="Delete a pet",
            input_schema={
                "type": "object",
                "properties": {"petId": {"type": "integer"}},
                "required": ["petId"],
                "additionalProperties": False,
            },
            annotations=Annotations(title="Delete a pet", destructive=True, idempotent=True),
            tags=("admin",),
            source="petstore",
            target=HttpOperation(
                server="petstore",
                method="DELETE",
                path="/pets/{petId}",
                base_url="http://127.0.0.1:9000",
                operation_id="deletePet",
                params=(
                    ParamBinding(argument="petId", name="petId", location="path", required=True),
                ),
            ),
        ),
    )


def test_tags_are_kept_on_tools(specs: Path) -> None:
    conversion = convert_spec(specs, "filters.yaml")
    assert [(tool.name, tool.tags) for tool in conversion.tools] == [
        ("listPets", ("pets",)),
        ("createPet", ("pets", "admin")),
        ("deletePet", ("admin",)),
        ("placeOrder", ("store",)),
        ("getInventory", ("store",)),
        ("refreshCache", ()),
    ]


# -- servers-variables.yaml ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "base_url"),
    [
        ("listBooks", "https://eu.books.example.com:443/v2"),
        ("getCover", "https://covers.books.example.com"),
        ("deleteCover", "https://prod-admin.books.example.com/covers-admin"),
        ("searchBooks", None),
    ],
)
def test_server_variables_and_path_and_operation_servers(
    specs: Path, name: str, base_url: str | None
) -> None:
    """Variables take their defaults; the operation's servers beat the path's, which beat the
    document's. A relative URL in a document read from a file names no host: no base URL."""
    tools = tools_by_name(convert_spec(specs, "servers-variables.yaml"))
    assert tools[name].http.base_url == base_url


def test_relative_server_urls_resolve_against_the_document_url(specs: Path) -> None:
    url = "https://books.example.com/docs/v2/openapi.yaml"
    raw = (specs / "servers-variables.yaml").read_bytes()
    store = DocumentStore(fetch={url: raw}.__getitem__, cache_dir=None)
    conversion = convert(store, url)
    assert [(tool.name, tool.http.base_url) for tool in conversion.tools] == [
        ("listBooks", "https://eu.books.example.com:443/v2"),
        ("getCover", "https://covers.books.example.com"),
        ("deleteCover", "https://prod-admin.books.example.com/covers-admin"),
        ("searchBooks", "https://books.example.com/docs/search-service"),
    ]


USERINFO_SERVERS = """
openapi: 3.0.3
info: {title: Userinfo, version: "1"}
servers: [{url: "https://svc-user:S3cr3t-in-doc@api.example.com/v1"}]
paths:
  /things:
    get: {operationId: listThings, responses: {"200": {description: ok}}}
    servers: [{url: "http://{who}@other.example.com", variables: {who: {default: "u:p"}}}]
  /items:
    get: {operationId: listItems, responses: {"200": {description: ok}}}
"""


def test_a_server_urls_user_and_password_are_left_out(tmp_path: Path) -> None:
    """A document's userinfo is never sent; kept, notes and listings would show it."""
    conversion = convert_text(tmp_path, USERINFO_SERVERS)
    assert [(t.name, t.http.base_url) for t in conversion.tools] == [
        ("listThings", "http://other.example.com"),
        ("listItems", "https://api.example.com/v1"),
    ]


def test_configured_base_url_replaces_every_server(specs: Path) -> None:
    conversion = convert_spec(specs, "servers-variables.yaml", base_url="http://127.0.0.1:8080")
    assert {tool.http.base_url for tool in conversion.tools} == {"http://127.0.0.1:8080"}


def test_image_response_sets_accept(specs: Path) -> None:
    tools = tools_by_name(convert_spec(specs, "servers-variables.yaml"))
    assert tools["getCover"].http.accept == "image/jpeg"
    assert tools["getCover"].output_schema is None


# -- responses.yaml -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "output_schema", "accept"),
    [
        (
            "getPet",
            {
                "type": "object",
                "required": ["id", "name"],
                "properties": {"id": {"type": "integer"}, "name": {"type": "string"}},
            },
            "application/json",
        ),
        ("deletePet", None, None),
        (
            "listPets",
            {"type": "array", "items": {"$ref": "#/$defs/Pet"}, "$defs": RESPONSE_PET_DEFS},
            "application/json",
        ),
        ("createPet", {"$ref": "#/$defs/Pet", "$defs": RESPONSE_PET_DEFS}, "application/json"),
        (
            "feedPet",
            {"type": "object", "properties": {"fedAt": {"type": "string", "format": "date-time"}}},
            "application/json",
        ),
        ("getPetBio", None, "text/plain"),
        ("getPetPhoto", None, "image/png"),
    ],
)
def test_responses_give_output_schema_and_accept(
    specs: Path, name: str, output_schema: JsonSchema | None, accept: str | None
) -> None:
    """200 object, 201 by $ref, 204 empty, only 2XX (default ignored), text, array, image."""
    tools = tools_by_name(convert_spec(specs, "responses.yaml"))
    assert tools[name].output_schema == output_schema
    assert tools[name].http.accept == accept
    read_only = Note(
        kind="read-only-omitted",
        message="read-only properties left out of the request: id",
        where="specs/responses.yaml#/components/schemas/Pet",
    )
    assert tools[name].notes == ((read_only,) if name == "createPet" else ())


# -- security.yaml ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "security"),
    [
        ("getHealth", ()),
        ("listPets", (("bearerAuth",),)),
        ("createPet", (("apiKeyHeader",), ("apiKeyQuery",))),
        ("getSalesReport", (("basicAuth", "sessionCookie"),)),
        ("syncInventory", (("oauthClient",), ("oidc",))),
        ("getGreeting", ((), ("bearerAuth",))),
    ],
)
def test_security_requirements(
    specs: Path, name: str, security: tuple[tuple[str, ...], ...]
) -> None:
    """Global, overridden, none (`[]`), OR (two requirements), AND (one with two schemes),
    optional (`{}` is the empty requirement)."""
    tools = tools_by_name(convert_spec(specs, "security.yaml"))
    assert tools[name].http.security == security


# -- messy-yaml.yaml ----------------------------------------------------------------------


def test_quirky_yaml_reaches_the_tools_as_yaml_1_2_reads_it(specs: Path) -> None:
    """`on`/`yes` stay property names, `no` an enum string, dates and 12:30 strings, anchors
    and the `<<` merge are expanded, integer response codes are found."""
    tools = tools_by_name(convert_spec(specs, "messy-yaml.yaml"))
    assert tools["createEvent"].input_schema == {
        "type": "object",
        "properties": EVENT_PROPERTIES,
        "required": ["title", "date"],
        "additionalProperties": False,
    }
    assert tools["listEvents"].input_schema == {
        "type": "object",
        "properties": {
            "from": {"type": "string", "format": "date", "default": "2020-01-01"},
            "country": {"type": "string", "enum": ["se", "no", "dk", "fi"]},
        },
        "additionalProperties": False,
    }
    assert tools["listEvents"].output_schema == {
        "type": "array",
        "items": {"$ref": "#/$defs/Event"},
        "$defs": {
            "Event": {
                "type": "object",
                "required": ["title", "date"],
                "properties": EVENT_PROPERTIES,
            }
        },
    }


# -- multipart bodies that are one file, or a oneOf ------------------------------------------

FILE_ARGUMENT = {
    "type": "object",
    "description": "The attachment.",
    "properties": {
        "content": {"type": "string", "contentEncoding": "base64"},
        "filename": {"type": "string"},
        "content_type": {"type": "string"},
    },
    "required": ["content"],
    "additionalProperties": False,
}


def test_a_multipart_body_that_is_a_binary_string_is_one_file(tmp_path: Path) -> None:
    """Jira's addAttachment (and codat's upload): the tool takes a file, sent as part `file`."""
    conversion = convert_text(
        tmp_path,
        """\
        openapi: 3.0.3
        info: {title: Attachments, version: "1"}
        paths:
          /issues/{key}/attachments:
            post:
              operationId: addAttachment
              parameters:
                - {name: key, in: path, required: true, schema: {type: string}}
              requestBody:
                required: true
                content:
                  multipart/form-data:
                    schema: {type: string, format: binary, description: The attachment.}
              responses: {"200": {description: ok}}
        """,
    )
    (tool,) = conversion.tools
    assert tool.input_schema == {
        "type": "object",
        "properties": {"key": {"type": "string"}, "file": FILE_ARGUMENT},
        "required": ["key", "file"],
        "additionalProperties": False,
    }
    assert tool.http.body == BodyPlan(
        media_type="multipart/form-data",
        kind="multipart",
        required=True,
        fields=(("file", "file"),),
        encoding=(("file", FieldEncoding(is_file=True)),),
    )
    assert [n for n in tool.notes if n.kind == "multipart-file"] == [
        Note(
            kind="multipart-file",
            message="the multipart/form-data body is one binary string: the `file` argument "
            "({content (base64), filename, content_type}) is sent as the file part 'file'",
            where="POST /issues/{key}/attachments",
        )
    ]


def test_multipart_file_fields_under_one_of_take_files(tmp_path: Path) -> None:
    """redocly's createMenuItem: each branch's `photo` is a file; the definitions stay as they
    are for their other uses (here, the response)."""
    conversion = convert_text(
        tmp_path,
        """\
        openapi: 3.1.0
        info: {title: Menu, version: "1"}
        paths:
          /menu:
            post:
              operationId: createMenuItem
              requestBody:
                required: true
                content:
                  multipart/form-data:
                    schema:
                      oneOf:
                        - $ref: "#/components/schemas/Drink"
                        - $ref: "#/components/schemas/Cake"
              responses:
                "201":
                  description: created
                  content:
                    application/json: {schema: {$ref: "#/components/schemas/Drink"}}
        components:
          schemas:
            Drink:
              type: object
              required: [name]
              properties:
                name: {type: string}
                photo: {type: [string, "null"], format: binary}
            Cake:
              type: object
              properties:
                calories: {type: number}
                photo: {type: string, format: binary}
        """,
    )
    (tool,) = conversion.tools
    photo = {**FILE_ARGUMENT, "description": "A file: its bytes as base64, and its name."}
    assert tool.input_schema == {
        "type": "object",
        "properties": {
            "body": {
                "oneOf": [
                    {
                        "type": "object",
                        "required": ["name"],
                        "properties": {"name": {"type": "string"}, "photo": photo},
                    },
                    {
                        "type": "object",
                        "properties": {"calories": {"type": "number"}, "photo": photo},
                    },
                ]
            }
        },
        "required": ["body"],
        "additionalProperties": False,
    }
    assert tool.output_schema is not None
    assert tool.output_schema["$defs"]["Drink"]["properties"]["photo"] == {
        "type": ["string", "null"],
        "format": "binary",
    }
    assert tool.http.body == BodyPlan(
        media_type="multipart/form-data",
        kind="multipart",
        required=True,
        argument="body",
        encoding=(("photo", FieldEncoding(is_file=True)),),
    )
    assert [n.message for n in tool.notes if n.kind == "multipart-file"] == [
        "the multipart/form-data body's file fields (photo) take {content (base64), filename, "
        "content_type} in every branch of its oneOf"
    ]


# -- reserved headers the document requires -------------------------------------------------

RESERVED_REQUIRED = """\
openapi: 3.0.3
info: {title: Reserved, version: "1"}
paths:
  /things/{id}:
    delete:
      operationId: deleteThing
      parameters:
        - {name: id, in: path, required: true, schema: {type: string}}
        - {name: Content-Length, in: header, required: true, schema: {type: integer}}
      responses: {"204": {description: gone}}
    get:
      operationId: getThing
      parameters:
        - {name: id, in: path, required: true, schema: {type: string}}
        - name: Accept
          in: header
          required: true
          schema: {type: string, enum: [application/vnd.thing+json]}
      responses: {"200": {description: the thing}}
    put:
      operationId: touchThing
      parameters:
        - {name: id, in: path, required: true, schema: {type: string}}
        - name: Content-Type
          in: header
          required: true
          schema: {type: string, enum: [application/json]}
        - {name: Accept, in: header, required: false, schema: {type: string}}
      requestBody:
        content:
          application/json: {schema: {type: object, properties: {note: {type: string}}}}
      responses: {"204": {description: touched}}
"""


CONNECTION_HEADERS_DECLARED = """\
openapi: 3.0.3
info: {title: Connection headers, version: "1"}
paths:
  /things:
    post:
      operationId: sendThing
      parameters:
        - {name: X-Trace, in: header, schema: {type: string}}
        - {name: Host, in: header, schema: {type: string}}
        - {name: TE, in: header, schema: {type: string, enum: [trailers]}}
        - {name: Upgrade, in: header, schema: {type: string}}
        - {name: Keep-Alive, in: header, schema: {type: string}}
        - {name: Expect, in: header, schema: {type: string, enum: [100-continue]}}
      requestBody:
        content:
          application/json: {schema: {type: object}}
      responses: {"204": {description: sent}}
"""


def test_headers_of_the_connection_a_document_declares_are_no_arguments(tmp_path: Path) -> None:
    """Host, the hop-by-hop headers and Expect are the gateway's own connection's: a model that
    set `Upgrade` or `Expect: 100-continue` could change how the upstream reads the request."""
    tool = tools_by_name(convert_text(tmp_path, CONNECTION_HEADERS_DECLARED))["sendThing"]
    connection = "it belongs to the gateway's own connection to the upstream, which sets it"
    assert (
        list(tool.input_schema["properties"]),
        [b.name for b in tool.http.params],
        [n.message for n in tool.notes if n.kind == "header-reserved"],
    ) == (
        ["X-Trace", "body"],
        ["X-Trace"],
        [
            "header 'Host' is not an argument: the gateway sets it from the server's URL",
            f"header 'TE' is not an argument: {connection}",
            f"header 'Upgrade' is not an argument: {connection}",
            f"header 'Keep-Alive' is not an argument: {connection}",
            "header 'Expect' is not an argument: the gateway sends a request's body at once, "
            "without asking first",
        ],
    )


HOSTILE_HEADER_NAMES = """
openapi: 3.0.3
info: {title: Header names, version: "1"}
paths:
  /things:
    get:
      operationId: listThings
      parameters:
        - {name: "X-Trace: 1\\r\\nX-Injected: yes", in: header, schema: {type: string}}
        - {name: "X-Request-Id\\r\\nHost: admin.internal", in: header, schema: {type: string}}
        - {name: "Authorization ", in: header, schema: {type: string}}
        - {name: "Transfer-Encoding:", in: header, schema: {type: string}}
        - {name: "Content-Length\\t", in: header, schema: {type: string}}
        - {name: " Cookie", in: header, schema: {type: string}}
        - {name: "X-Lang\\u017f", in: header, schema: {type: string}}
        - {name: "X-Fine_header.1", in: header, schema: {type: string}}
      responses: {"200": {description: ok}}
"""


def test_a_header_parameter_whose_name_is_no_header_name_is_left_out(tmp_path: Path) -> None:
    """A document names headers; a name that could end the field or the request head (a line
    break, a colon, a space) would let it write headers of its choosing beside the
    operator's credentials."""
    tool = tools_by_name(convert_text(tmp_path, HOSTILE_HEADER_NAMES))["listThings"]
    expected = [
        f"header parameter {name!r} is not a header name (an RFC 9110 token: letters, digits "
        "and !#$%&'*+-.^_`|~); left out"
        for name in (
            "X-Trace: 1\r\nX-Injected: yes",
            "X-Request-Id\r\nHost: admin.internal",
            "Authorization ",
            "Transfer-Encoding:",
            "Content-Length\t",
            " Cookie",
            "X-Lang\u017f",
        )
    ]
    assert (
        [n.message for n in tool.notes if n.kind == "invalid-parameter"],
        list(tool.input_schema["properties"]),
    ) == (expected, ["X-Fine_header.1"])


def test_reserved_headers_the_document_requires_are_sent_by_the_gateway(tmp_path: Path) -> None:
    """Content-Length, Content-Type and Accept are never arguments; when the document requires
    one, every request carries a correct value (Prism refuses a bodiless DELETE without the
    Content-Length its document requires)."""
    tools = tools_by_name(convert_text(tmp_path, RESERVED_REQUIRED))
    delete, get, put = tools["deleteThing"], tools["getThing"], tools["touchThing"]
    assert (delete.http.required_headers, delete.http.accept) == ((("content-length", "0"),), None)
    assert (get.http.required_headers, get.http.accept) == ((), "application/vnd.thing+json")
    assert (put.http.required_headers, put.http.accept) == (
        (("content-type", "application/json"),),
        None,
    )
    assert [n.message for n in put.notes if n.kind == "header-reserved"] == [
        "header 'Content-Type' is not an argument: the gateway sets it from the request body; "
        "the document requires it, so the gateway always sends it",
        "header 'Accept' is not an argument: the gateway sets it from the documented responses",
    ]
    base = "http://api.test"
    sent = [
        build_request(delete.http, {"id": "a"}, base_url=base),
        build_request(get.http, {"id": "a"}, base_url=base),
        build_request(put.http, {"id": "a"}, base_url=base),
        build_request(put.http, {"id": "a", "note": "n"}, base_url=base),
    ]
    assert [(r.method, r.headers, r.body) for r in sent] == [
        ("DELETE", (), b""),
        ("GET", (("Accept", "application/vnd.thing+json"),), None),
        ("PUT", (("Content-Type", "application/json"),), b""),
        ("PUT", (("Content-Type", "application/json"),), b'{"note":"n"}'),
    ]


def test_multipart_file_fields_by_reference_or_nullable_take_files(tmp_path: Path) -> None:
    """mistral's `file: {$ref: File}` (File a binary string), and `anyOf: [File, null]`."""
    conversion = convert_text(
        tmp_path,
        """\
        openapi: 3.1.0
        info: {title: Upload, version: "1"}
        paths:
          /documents:
            post:
              operationId: upload
              requestBody:
                required: true
                content:
                  multipart/form-data:
                    schema:
                      type: object
                      required: [file]
                      properties:
                        file: {$ref: "#/components/schemas/File"}
                        cover:
                          anyOf: [{$ref: "#/components/schemas/File"}, {type: "null"}]
              responses: {"201": {description: created}}
        components:
          schemas:
            File: {type: string, format: binary, description: The document.}
        """,
    )
    (tool,) = conversion.tools
    assert tool.input_schema["properties"] == {
        "file": {**FILE_ARGUMENT, "description": "The document."},
        "cover": {**FILE_ARGUMENT, "description": "A file: its bytes as base64, and its name."},
    }
    assert tool.http.body is not None
    assert tool.http.body.encoding == (
        ("file", FieldEncoding(is_file=True)),
        ("cover", FieldEncoding(is_file=True)),
    )


def test_a_parameter_without_a_name_is_left_out_with_a_note(tmp_path: Path) -> None:
    conversion = convert_text(
        tmp_path,
        """\
        openapi: 3.0.3
        info: {title: t, version: "1"}
        paths:
          /items:
            get:
              operationId: listItems
              parameters:
                - {in: query, schema: {type: string}}
                - {name: 5, in: query}
                - just text
                - {name: limit, in: query, schema: {type: integer}}
              responses: {"200": {description: ok}}
        """,
    )
    (tool,) = conversion.tools
    assert list(tool.input_schema["properties"]) == ["limit"]
    assert [n.message for n in tool.notes if n.kind == "invalid-parameter"] == [
        "a parameter (in: query) with no `name`; expected an object with a string `name`; left out",
        "a parameter (in: query) with a `name` that is a number; expected an object with a "
        "string `name`; left out",
        "a parameter with a string; expected an object with a string `name`; left out",
    ]


REFUSED_FILE = (
    "$ref 'host/{0}' cannot be followed (a file reference must name a .json, .yaml or .yml "
    "document, found 'host/{0}'); that part accepts any value"
)


@pytest.mark.parametrize(
    ("target", "note"),
    [
        # any file of the host: not read
        ("secret", REFUSED_FILE.format("secret")),
        ("keys.pem", REFUSED_FILE.format("keys.pem")),
        # a document that holds no schema: said by kind, its text never quoted
        ("value.yaml", "a schema must be an object, found a string"),
    ],
)
def test_a_file_reference_reads_documents_only_and_never_quotes_them(
    tmp_path: Path, target: str, note: str
) -> None:
    """A document on disk (a vendor's, say) may name any file of the host in a `$ref`: what
    its notes said went to every caller of its tools (`GET /v1/tools/{name}`)."""
    (tmp_path / "host").mkdir()
    (tmp_path / "host" / target).write_text("sk-live-CANARY-0987654321\n")
    conversion = convert_text(
        tmp_path,
        f"""\
        openapi: 3.0.3
        info: {{title: t, version: "1"}}
        paths:
          /a:
            post:
              operationId: a
              requestBody:
                content:
                  application/json:
                    schema: {{$ref: "host/{target}"}}
              responses: {{"200": {{description: ok}}}}
        """,
    )
    (tool,) = conversion.tools
    assert ("CANARY" in repr(conversion), [n.message for n in tool.notes]) == (False, [note])


def test_operations_no_request_can_reach_or_spelled_as_no_method_are_said(
    tmp_path: Path,
) -> None:
    """They vanished without a word (the dot path's tools were listed, and every call was a
    422 blaming the caller's arguments)."""
    conversion = convert_text(
        tmp_path,
        """\
        openapi: 3.0.3
        info: {title: t, version: "1"}
        servers: [{url: "https://api.example"}]
        paths:
          /a/../../b:
            get: {operationId: climbs, responses: {"200": {description: ok}}}
          /c:
            GET: {operationId: shouted, responses: {"200": {description: ok}}}
            post: {operationId: kept, responses: {"200": {description: ok}}}
        """,
    )
    assert (
        [t.name for t in conversion.tools],
        [(n.where, n.message) for n in conversion.notes],
    ) == (
        ["kept"],
        [
            (
                "/a/../../b",
                "the path holds a `.` or `..` segment, which URLs resolve away: no request can "
                "reach it; its operations are left out",
            ),
            ("GET /c", "'GET' is no operation: methods are lower case ('get'); left out"),
        ],
    )


def test_a_swagger2_header_list_is_sent_with_its_collection_format(tmp_path: Path) -> None:
    conversion = convert_text(
        tmp_path,
        """\
        swagger: "2.0"
        info: {title: t, version: "1"}
        host: api.example
        paths:
          /h:
            get:
              operationId: h
              parameters:
                - {name: X-Pipes, in: header, type: array, items: {type: string},
                   collectionFormat: pipes}
                - {name: X-Ssv, in: header, type: array, items: {type: string},
                   collectionFormat: ssv}
                - {name: X-Tsv, in: header, type: array, items: {type: string},
                   collectionFormat: tsv}
                - {name: X-Csv, in: header, type: array, items: {type: string}}
              responses: {"200": {description: ok}}
        """,
    )
    (tool,) = conversion.tools
    assert isinstance(tool.target, HttpOperation)
    arguments = {name: ["a", "b"] for name in tool.input_schema["properties"]}
    request = build_request(tool.target, arguments, base_url="https://api.example")
    sent = {k: v for k, v in request.headers if k.startswith("X-")}
    assert (sent, conversion.notes, tool.notes) == (
        {"X-Pipes": "a|b", "X-Ssv": "a b", "X-Tsv": "a\tb", "X-Csv": "a,b"},
        (),
        (),
    )


def test_a_style_no_location_has_and_a_body_beside_form_fields_are_said(tmp_path: Path) -> None:
    """Both went without a word: the style read as the default, the form fields dropped."""
    three = convert_text(
        tmp_path,
        """\
        openapi: 3.0.3
        info: {title: t, version: "1"}
        servers: [{url: "https://api.example"}]
        paths:
          /a:
            get:
              operationId: a
              parameters:
                - {name: q, in: query, style: bogus, schema: {type: array, items: {type: string}}}
                - {name: p, in: query, style: pipeDelimited, schema: {type: array}}
              responses: {"200": {description: ok}}
        """,
    )
    (tmp_path / "two").mkdir()
    two = convert_text(
        tmp_path / "two",
        """\
        swagger: "2.0"
        info: {title: t, version: "1"}
        host: api.example
        paths:
          /b:
            post:
              operationId: b
              parameters:
                - {name: body, in: body, schema: {type: object}}
                - {name: f, in: formData, type: string, required: true}
              responses: {"200": {description: ok}}
        """,
    )
    assert [n.message for t in (*three.tools, *two.tools) for n in t.notes] == [
        "style 'bogus' of 'q' is none of a query parameter's (form, spaceDelimited, "
        "pipeDelimited, tabDelimited, deepObject); sent as 'form'",
        "formData parameter(s) 'f' left out: a Swagger 2.0 operation takes a body or form "
        "fields, not both; the body is sent",
    ]


def test_an_api_key_scheme_no_request_can_carry_is_said(tmp_path: Path) -> None:
    conversion = convert_text(
        tmp_path,
        """\
        openapi: 3.0.3
        info: {title: t, version: "1"}
        servers: [{url: "https://api.example"}]
        components:
          securitySchemes:
            bad: {type: apiKey, in: header, name: "X-Key: injected"}
            good: {type: apiKey, in: header, name: X-Key}
        paths: {}
        """,
    )
    assert [n.message for n in conversion.notes] == [
        "apiKey scheme 'bad' puts its key in header 'X-Key: injected', where no request can "
        "carry one: it takes no key"
    ]
