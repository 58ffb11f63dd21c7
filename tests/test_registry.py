"""Sources into one `Catalog`: ids for `--spec`, a source that is down, prefixes and filters
from the config, and names that clash across sources.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import replace
from pathlib import Path

import pytest

from toolbridge.config import Config, Selection, Server
from toolbridge.file_stamps import MISSING, stamp
from toolbridge.local.loader import LocalConversion
from toolbridge.openapi.convert import Conversion
from toolbridge.openapi.documents import DocumentStore
from toolbridge.registry import (
    Catalog,
    SourceStatus,
    build_catalog,
    load_catalog,
    load_server,
    servers_from_specs,
)
from toolbridge.tools import NAME_PATTERN, HttpOperation, Method, Note, Tool


def load(server: Server, base_dir: Path | None = None) -> SourceStatus:
    return load_server(server, DocumentStore(cache_dir=None), base_dir or Path.cwd())


def names_of(tools: Catalog | Conversion | LocalConversion | None) -> list[str]:
    assert tools is not None
    listed = tools if isinstance(tools, Catalog) else tools.tools
    return [tool.name for tool in listed]


def tool(name: str, source: str, method: Method = "GET", path: str = "/x") -> Tool:
    return Tool(
        name=name,
        original_name=name,
        description="",
        input_schema={"type": "object", "properties": {}},
        source=source,
        target=HttpOperation(
            server=source, method=method, path=path, base_url=None, operation_id=name
        ),
    )


def status(source: str, *tools: Tool) -> SourceStatus:
    """A loaded source holding exactly `tools`, for catalog tests that need no document."""
    return SourceStatus(
        id=source,
        kind="openapi",
        location=f"{source}.yaml",
        loaded_at=0.0,
        conversion=Conversion(
            source=source,
            uri=f"file:///{source}.yaml",
            title=source,
            spec_version="3.1.0",
            operations=len(tools),
            tools=tools,
        ),
    )


def down(source: str) -> SourceStatus:
    return SourceStatus(
        id=source, kind="openapi", location=f"{source}.yaml", loaded_at=0.0, error="no such file"
    )


# -- servers for --spec ----------------------------------------------------------------------


def test_servers_from_specs_are_plain_servers_named_after_their_files() -> None:
    assert servers_from_specs(["specs/demo.yaml", "https://api.example.com/v1/openapi.json"]) == (
        Server(id="demo", spec="specs/demo.yaml"),
        Server(id="openapi", spec="https://api.example.com/v1/openapi.json"),
    )


@pytest.mark.parametrize(
    ("locations", "ids"),
    [
        pytest.param(
            ["specs/demo.yaml", "other/demo.yaml", "demo.json", "specs/filters.yaml"],
            ["demo", "demo-2", "demo-3", "filters"],
            id="same-stem-numbered",
        ),
        pytest.param(
            ["https://api.example.com/v1/openapi.json?version=2", "https://example.com/"],
            ["openapi", "example"],
            id="urls",
        ),
        pytest.param(
            ["https://a.example.com/openapi.json", "https://b.example.com/openapi.json"],
            ["openapi", "openapi-2"],
            id="urls-with-the-same-name",
        ),
        pytest.param(["https://example.com/specs/"], ["specs"], id="url-folder"),
        pytest.param(["specs/messy-refs-dangling.yaml"], ["messy-refs-dangling"], id="dashes"),
        pytest.param(["api.v2.yaml", "my api.yaml"], ["api_v2", "my_api"], id="dots-spaces"),
        pytest.param(["1password.yaml"], ["api1password"], id="leading-digit"),
        pytest.param(
            [f"{'x' * 50}.yaml", f"{'x' * 50}.json"],
            ["x" * 30, f"{'x' * 30}-2"],
            id="long",
        ),
    ],
)
def test_servers_from_specs_get_unique_valid_ids(locations: list[str], ids: list[str]) -> None:
    """Ids come from the file or URL name, are valid config ids, and repeats get `-2`, `-3`."""
    servers = servers_from_specs(locations)

    assert [server.id for server in servers] == ids
    assert [server.spec for server in servers] == locations


# -- loading one source ----------------------------------------------------------------------


def test_load_server_converts_a_good_spec(specs: Path) -> None:
    before = time.time()
    loaded = load(Server(id="pets", spec="specs/filters.yaml"))
    after = time.time()

    assert before <= loaded.loaded_at <= after
    assert loaded.ok
    uri = (specs / "filters.yaml").as_uri()
    document = hashlib.sha256((specs / "filters.yaml").read_bytes()).hexdigest()
    assert replace(loaded, loaded_at=0.0, conversion=None) == SourceStatus(
        id="pets",
        kind="openapi",
        location="specs/filters.yaml",
        loaded_at=0.0,
        digest=hashlib.sha256(f"{uri}\n{document}\n".encode()).hexdigest(),
        files=(specs / "filters.yaml",),  # watched while serving
        stamps=(stamp(specs / "filters.yaml"),),  # as read: where watching starts from
    )
    assert loaded.conversion is not None
    assert replace(loaded.conversion, tools=()) == Conversion(
        source="pets",
        uri=(specs / "filters.yaml").as_uri(),
        title="Tags, methods and paths for filters",
        spec_version="3.0.3",
        operations=6,
        tools=(),
    )
    assert names_of(loaded.conversion) == [
        "listPets",
        "createPet",
        "deletePet",
        "placeOrder",
        "getInventory",
        "refreshCache",
    ]
    assert {t.source for t in loaded.conversion.tools} == {"pets"}


def test_load_server_resolves_a_relative_spec_against_base_dir(specs: Path) -> None:
    loaded = load(Server(id="pets", spec="filters.yaml"), base_dir=specs)

    assert loaded.location == "specs/filters.yaml"
    assert len(names_of(loaded.conversion)) == 6


def test_a_missing_file_is_a_down_source_not_an_exception(
    specs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The status carries the error; reporting it (log, CLI, /v1/servers) is the caller's job."""
    loaded = load(Server(id="gone", spec="specs/nope.yaml"))

    assert not loaded.ok
    assert replace(loaded, loaded_at=0.0) == SourceStatus(
        id="gone",
        kind="openapi",
        location="specs/nope.yaml",
        loaded_at=0.0,
        conversion=None,
        error="specs/nope.yaml: no such file",
        files=(specs / "nope.yaml",),  # watched: once it is there, it loads
        stamps=(MISSING,),
    )
    assert caplog.record_tuples == []


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [
        pytest.param(
            "notes.json",
            '{"title": "notes"}',
            "notes.json: expected a top-level 'openapi' (3.x) or 'swagger' (2.0) version field",
            id="json-without-version",
        ),
        pytest.param(
            "list.yaml",
            "- openapi\n- 3.1.0\n",
            "list.yaml: expected an OpenAPI document (a mapping) at the top level",
            id="yaml-list",
        ),
        pytest.param(
            "empty.yaml",
            "",
            "empty.yaml: expected an OpenAPI document (a mapping) at the top level",
            id="empty",
        ),
        pytest.param(
            "prose.yaml",
            "a: b: c\n",
            "prose.yaml: is not valid YAML at line 1, column 5: mapping values are not allowed "
            "in this context",
            id="not-yaml",
        ),
        pytest.param(
            "cut.json",
            '{"openapi": ',
            "cut.json: is not valid JSON: Expecting value: line 1 column 13 (char 12)",
            id="not-json",
        ),
        pytest.param(
            "future.yaml",
            "openapi: 4.0.0\ninfo: {title: t, version: '1'}\npaths: {}\n",
            "future.yaml: openapi '4.0.0'; expected 2.0, 3.0.x or 3.1.x",
            id="openapi-4",
        ),
        pytest.param(
            "old.yaml",
            "swagger: '1.2'\n",
            "old.yaml: swagger '1.2'; expected '2.0'",
            id="swagger-1.2",
        ),
    ],
)
def test_a_file_that_is_not_openapi_is_a_down_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, content: str, error: str
) -> None:
    (tmp_path / name).write_text(content, encoding="utf-8")
    monkeypatch.chdir(tmp_path)

    loaded = load(Server(id="docs", spec=name))

    assert replace(loaded, loaded_at=0.0) == SourceStatus(
        id="docs",
        kind="openapi",
        location=name,
        loaded_at=0.0,
        error=error,
        files=(Path.cwd() / name,),
        stamps=(stamp(Path.cwd() / name),),
    )


def test_a_folder_is_a_down_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "specs").mkdir()
    monkeypatch.chdir(tmp_path)

    loaded = load(Server(id="docs", spec="specs"))

    assert loaded.error == "specs: is a directory, expected an OpenAPI document"


# -- prefixes and filters from the config ------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "names", "filtered"),
    [
        pytest.param(
            {"prefix": "pets"},
            [
                "pets_listPets",
                "pets_createPet",
                "pets_deletePet",
                "pets_placeOrder",
                "pets_getInventory",
                "pets_refreshCache",
            ],
            0,
            id="prefix",
        ),
        pytest.param(
            {"include": {"tags": ["pets"]}}, ["listPets", "createPet"], 4, id="include-tag"
        ),
        pytest.param(
            {"include": {"operations": ["*Pet*"]}},
            ["listPets", "createPet", "deletePet"],
            3,
            id="include-operation-glob",
        ),
        pytest.param(
            {"include": {"methods": ["get"]}},
            ["listPets", "getInventory"],
            4,
            id="include-method-any-case",
        ),
        pytest.param(
            {"include": {"paths": ["/store/*"]}},
            ["placeOrder", "getInventory"],
            4,
            id="include-path-glob",
        ),
        pytest.param(
            {"include": {"tags": ["pets", "store"], "methods": ["GET"]}},
            ["listPets", "getInventory"],
            4,
            id="include-every-criterion-any-value",
        ),
        pytest.param(
            {"exclude": {"tags": ["admin"]}},
            ["listPets", "placeOrder", "getInventory", "refreshCache"],
            2,
            id="exclude-tag",
        ),
        pytest.param(
            {"include": {"paths": ["/pets*"]}, "exclude": {"methods": ["DELETE"]}},
            ["listPets", "createPet"],
            4,
            id="include-then-exclude",
        ),
        pytest.param(
            {"prefix": "p", "include": {"operations": ["p_get*"]}},
            ["p_getInventory"],
            5,
            id="operation-glob-on-prefixed-name",
        ),
        pytest.param(
            {"prefix": "shop", "include": {"tags": ["store"]}, "exclude": {"methods": ["POST"]}},
            ["shop_getInventory"],
            5,
            id="prefix-include-exclude",
        ),
        pytest.param({"include": {"tags": ["nothing"]}}, [], 6, id="include-matching-nothing"),
    ],
)
def test_prefix_include_and_exclude_from_the_config(
    specs: Path, fields: dict[str, object], names: list[str], filtered: int
) -> None:
    server = Server.model_validate({"id": "filters", "spec": "specs/filters.yaml", **fields})

    conversion = load(server).conversion

    assert isinstance(conversion, Conversion)
    assert (names_of(conversion), conversion.operations, conversion.filtered) == (
        names,
        6,
        filtered,
    )


def test_base_url_from_the_config_replaces_the_documents_server(specs: Path) -> None:
    server = Server(
        id="filters",
        spec="specs/filters.yaml",
        base_url="https://staging.example.com/v2",
        include=Selection(operations=("listPets",)),
    )

    conversion = load(server).conversion

    assert conversion is not None
    assert [t.target for t in conversion.tools] == [
        HttpOperation(
            server="filters",
            method="GET",
            path="/pets",
            base_url="https://staging.example.com/v2",
            operation_id="listPets",
        )
    ]


def test_load_catalog_reads_every_server_of_a_config_relative_to_its_folder(specs: Path) -> None:
    config = Config(
        servers=(
            Server(
                id="pets", spec="filters.yaml", prefix="pets", include=Selection(tags=("pets",))
            ),
            Server(id="gone", spec="nope.yaml"),
            Server(id="notes", spec="demo.yaml", include=Selection(methods=("GET",))),
        ),
        base_dir=specs,
    )

    catalog = load_catalog(config, DocumentStore(cache_dir=None))

    assert names_of(catalog) == [
        "pets_listPets",
        "pets_createPet",
        "listNotes",
        "getNote",
        "getStatus",
    ]
    assert [(s.id, s.location, s.error) for s in catalog.sources] == [
        ("pets", "specs/filters.yaml", None),
        ("gone", "specs/nope.yaml", "specs/nope.yaml: no such file"),
        ("notes", "specs/demo.yaml", None),
    ]


# -- the catalog -------------------------------------------------------------------------------


def test_the_later_source_of_a_clashing_name_is_prefixed_with_its_id(specs: Path) -> None:
    """Both documents have `listPets` and `createPet`: the second source's tools are renamed,
    each with a `name-clash` note on the tool and on the catalog; a down source in between
    changes nothing."""
    first = load(Server(id="filters", spec="specs/filters.yaml"))
    gone = load(Server(id="gone", spec="specs/nope.yaml"))
    second = load(Server(id="messy-refs-dangling", spec="specs/messy-refs-dangling.yaml"))

    catalog = build_catalog([first, gone, second])

    clash_list = Note(
        kind="name-clash",
        message="'listPets' is already a tool of source 'filters'; "
        "the one of source 'messy-refs-dangling' is 'messy_refs_dangling_listPets' "
        "(give server 'messy-refs-dangling' a `prefix` to choose its names)",
        where="GET /pets",
    )
    clash_create = Note(
        kind="name-clash",
        message="'createPet' is already a tool of source 'filters'; "
        "the one of source 'messy-refs-dangling' is 'messy_refs_dangling_createPet' "
        "(give server 'messy-refs-dangling' a `prefix` to choose its names)",
        where="POST /pets",
    )
    assert names_of(catalog) == [
        "listPets",
        "createPet",
        "deletePet",
        "placeOrder",
        "getInventory",
        "refreshCache",
        "messy_refs_dangling_listPets",
        "messy_refs_dangling_createPet",
        "getPet",
    ]
    assert catalog.notes == (clash_list, clash_create)
    assert catalog.sources == (first, gone, second)
    renamed = catalog.get("messy_refs_dangling_listPets")
    assert renamed is not None
    assert (renamed.source, renamed.original_name, renamed.notes) == (
        "messy-refs-dangling",
        "listPets",
        (clash_list,),
    )
    renamed_create = catalog.get("messy_refs_dangling_createPet")
    assert renamed_create is not None
    assert [n.kind for n in renamed_create.notes] == ["unresolved-ref", "name-clash"]
    kept = catalog.get("listPets")
    assert kept is not None
    assert (kept.source, kept.notes) == ("filters", ())


def test_the_catalog_maps_names_to_tools_in_source_order() -> None:
    a_x, a_y, b_z = tool("x", "a"), tool("y", "a"), tool("z", "b")

    catalog = build_catalog([status("a", a_x, a_y), down("c"), status("b", b_z)])

    assert catalog == Catalog(
        tools={"x": a_x, "y": a_y, "z": b_z},
        sources=(status("a", a_x, a_y), down("c"), status("b", b_z)),
        notes=(),
    )
    assert (len(catalog), list(catalog)) == (3, [a_x, a_y, b_z])
    assert (catalog.get("z"), catalog.get("w")) == (b_z, None)


def test_an_empty_catalog() -> None:
    catalog = build_catalog([down("a")])

    assert (len(catalog), list(catalog), catalog.get("x"), catalog.notes) == (0, [], None, ())


LONG = "x" * 64
LONG_RENAMED = f"{'b' * 40}_{'x' * 14}_7ce10097"
LONG_ID = "b" * 40
HINT = " (give server {!r} a `prefix` to choose its names)"


@pytest.mark.parametrize(
    ("sources", "names", "messages"),
    [
        pytest.param(
            [status("a", tool("x", "a")), status("b", tool("x", "b")), status("c", tool("x", "c"))],
            ["x", "b_x", "c_x"],
            [
                "'x' is already a tool of source 'a'; the one of source 'b' is 'b_x'"
                f"{HINT.format('b')}",
                "'x' is already a tool of source 'a'; the one of source 'c' is 'c_x'"
                f"{HINT.format('c')}",
            ],
            id="three-sources",
        ),
        pytest.param(
            [status("a", tool("x", "a"), tool("b_x", "a")), status("b", tool("x", "b"))],
            ["x", "b_x", "b_x_2"],
            [
                "'x' is already a tool of source 'a'; the one of source 'b' is 'b_x_2'"
                f"{HINT.format('b')}"
            ],
            id="prefixed-name-taken",
        ),
        pytest.param(
            [
                status("pets-v1", tool("list", "pets-v1")),
                status("pets-v2", tool("list", "pets-v2")),
            ],
            ["list", "pets_v2_list"],
            [
                "'list' is already a tool of source 'pets-v1'; the one of source 'pets-v2' is "
                "'pets_v2_list' (give server 'pets-v2' a `prefix` to choose its names)"
            ],
            id="dashes-in-the-id",
        ),
        pytest.param(
            [
                status("a", tool("x", "a")),
                replace(status("clock", tool("x", "clock")), kind="python"),
            ],
            ["x", "clock_x"],
            [
                "'x' is already a tool of source 'a'; the one of source 'clock' is 'clock_x' "
                "(give tools entry 'clock' a `prefix` to choose its names)"
            ],
            id="a-tools-entry",
        ),
        pytest.param(
            [status("a", tool(LONG, "a")), status("b" * 40, tool(LONG, "b" * 40))],
            [LONG, LONG_RENAMED],
            [
                f"{LONG!r} is already a tool of source 'a'; the one of source {LONG_ID!r} is "
                f"{LONG_RENAMED!r} (give server {LONG_ID!r} a `prefix` to choose its names)"
            ],
            id="long-name-gets-a-hash",
        ),
    ],
)
def test_clashing_names_become_unique_valid_names(
    sources: list[SourceStatus], names: list[str], messages: list[str]
) -> None:
    catalog = build_catalog(sources)

    assert names_of(catalog) == names
    assert [(n.kind, n.message) for n in catalog.notes] == [("name-clash", m) for m in messages]
    assert all(re.match(NAME_PATTERN, name) for name in names)


def test_a_renamed_tool_never_takes_a_name_its_own_source_uses() -> None:
    catalog = build_catalog(
        [status("a", tool("x", "a")), status("b", tool("x", "b"), tool("b_x", "b", path="/y"))]
    )

    assert names_of(catalog) == ["x", "b_x_2", "b_x"]


def test_a_clash_note_names_both_sources_and_suggests_a_prefix() -> None:
    catalog = build_catalog([status("a", tool("x", "a")), status("b", tool("x", "b"))])

    assert catalog.notes == (
        Note(
            kind="name-clash",
            message="'x' is already a tool of source 'a'; the one of source 'b' is 'b_x' "
            "(give server 'b' a `prefix` to choose its names)",
            where="GET /x",
        ),
    )


def fetched(source: str, *tools: Tool) -> SourceStatus:
    """A source whose document was fetched from a URL."""
    return replace(status(source, *tools), location=f"https://{source}.example/openapi.json")


def local(source: str, *tools: Tool) -> SourceStatus:
    return replace(status(source, *tools), kind="python", location=f"tools/{source}.py")


@pytest.mark.parametrize(
    ("sources", "names", "messages"),
    [
        pytest.param(
            [fetched("remote", tool("whoami", "remote")), local("mine", tool("whoami", "mine"))],
            ["remote_whoami", "whoami"],
            [
                "'whoami' is already a tool of source 'mine'; the one of source 'remote' is "
                f"'remote_whoami'{HINT.format('remote')}"
            ],
            id="a-url-document-never-takes-a-local-tools-name",
        ),
        pytest.param(
            [fetched("remote", tool("search", "remote")), status("file", tool("search", "file"))],
            ["remote_search", "search"],
            [
                "'search' is already a tool of source 'file'; the one of source 'remote' is "
                f"'remote_search'{HINT.format('remote')}"
            ],
            id="a-url-document-never-takes-a-file-documents-name",
        ),
        pytest.param(
            [status("a", tool("search", "a")), status("b", tool("SEARCH", "b"))],
            ["search", "b_SEARCH"],
            [
                "'SEARCH' is already a tool of source 'a' ('search': names ignore case); the one "
                f"of source 'b' is 'b_SEARCH'{HINT.format('b')}"
            ],
            id="names-ignore-case",
        ),
        pytest.param(
            [fetched("u1", tool("x", "u1")), fetched("u2", tool("X", "u2"))],
            ["x", "u2_X"],
            [
                "'X' is already a tool of source 'u1' ('x': names ignore case); the one of "
                f"source 'u2' is 'u2_X'{HINT.format('u2')}"
            ],
            id="between-url-documents-config-order-decides",
        ),
    ],
)
def test_trusted_sources_keep_their_names(
    sources: list[SourceStatus], names: list[str], messages: list[str]
) -> None:
    """Local tools and file documents claim names before documents fetched from URLs; the
    catalog still lists tools in config order."""
    catalog = build_catalog(sources)

    assert names_of(catalog) == names
    assert [(n.kind, n.message) for n in catalog.notes] == [("name-clash", m) for m in messages]


def test_a_renamed_tool_takes_no_name_held_in_another_case() -> None:
    catalog = build_catalog(
        [status("a", tool("x", "a"), tool("B_X", "a", path="/y")), status("b", tool("x", "b"))]
    )

    assert names_of(catalog) == ["x", "B_X", "b_x_2"]
