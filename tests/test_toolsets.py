"""Toolsets from the config: what they select, their config errors, and what `check` finds."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from toolbridge.config import Config
from toolbridge.config_file import load_config
from toolbridge.errors import ConfigError
from toolbridge.formats.render import render
from toolbridge.openapi.documents import DocumentStore
from toolbridge.registry import build_catalog, load_sources
from toolbridge.tools import HttpOperation, Tool
from toolbridge.toolsets import build_toolsets, described, findings

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "toolbridge.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_toolsets_select_by_source_tag_method_and_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    path = write(
        tmp_path,
        f"""\
        servers:
          - {{id: notes, spec: {ROOT}/specs/demo.yaml}}
          - {{id: shop, spec: {ROOT}/specs/body-json.yaml, prefix: shop}}
        toolsets:
          - id: writes
            include: {{sources: [notes], methods: [POST, PATCH]}}
          - id: named
            include: {{tools: ["shop_*Order", getStatus]}}
            descriptions: {{getStatus: "Is it up?"}}
        """,
    )
    config = load_config(path, {})
    catalog = build_catalog(load_sources(config, DocumentStore(), {}))
    toolsets = build_toolsets(config, catalog)
    assert {k: list(v.tools) for k, v in toolsets.items()} == {
        "writes": ["createNote", "updateNote"],
        "named": ["getStatus", "shop_createOrder", "shop_replaceOrder"],
    }
    assert toolsets["named"].tools["getStatus"].description == "Is it up?"
    assert findings(config, catalog) == []
    # What MCP shows besides the description: the title, made of it, in both places.
    shown = render(toolsets["named"].tools["getStatus"], "mcp")
    assert (shown["title"], shown["annotations"]["title"], shown["description"]) == (
        "Is it up?",
        "Is it up?",
        "Is it up?",
    )


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("Lists the notes.\nPinned ones first.", "Lists the notes."),
        ("  \n", None),
        ("x" * 121, None),
    ],
)
def test_an_overrides_title_is_its_first_line_when_short(text: str, title: str | None) -> None:
    target = HttpOperation(server="s", method="GET", path="/t", base_url=None, operation_id="t")
    tool = Tool(
        name="t", original_name="t", description="d", input_schema={"type": "object"}, target=target
    )
    assert described(tool, text).annotations.title == title


def test_what_selects_nothing_is_a_finding_with_its_key_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    path = write(
        tmp_path,
        f"""\
        servers:
          - id: notes
            spec: {ROOT}/specs/demo.yaml
            tools: {{listNotez: {{result: {{max_bytes: 1000}}}}}}
        toolsets:
          - id: typo
            include: {{sources: [notez], tags: [nothing], tools: ["zz*"]}}
            descriptions: {{getNote: x}}
        """,
    )
    config = load_config(path, {})
    catalog = build_catalog(load_sources(config, DocumentStore(), {}))
    assert [(f.path, f.message) for f in findings(config, catalog)] == [
        (
            "toolsets[0].include.sources[0]",
            "no source 'notez' in the config (sources: notes)",
        ),
        ("toolsets[0].include.tags[0]", "'nothing' matches no tool of the selected sources"),
        ("toolsets[0].include.tools[0]", "'zz*' matches no tool of the selected sources"),
        ("toolsets[0].descriptions.getNote", "no tool 'getNote' in toolset 'typo'"),
        ("toolsets[0]", "toolset 'typo' holds no tools"),
        (
            "servers[0].tools.listNotez",
            "no tool named 'listNotez' (by name or operationId) in 'notes'",
        ),
    ]


@pytest.mark.parametrize(
    ("toolsets", "message"),
    [
        (
            "  - {id: a}\n  - {id: a}\n",
            ":3: toolsets[1].id: toolset id 'a' is used twice",
        ),
        (
            "  - {id: a, include: {servers: [x]}}\n",
            ":2: toolsets[0].include.servers: unknown key 'servers'",
        ),
        (
            "  - {id: a, discovery: browse}\n",
            ":2: toolsets[0].discovery: Input should be 'list' or 'search' (found a string)",
        ),
        (
            "  - {id: a, include: {methods: [FETCH]}}\n",
            ":2: toolsets[0].include.methods[0]: unknown HTTP method 'FETCH'",
        ),
        (
            "  - id: a\n    include:\n      sources: []\n",
            ":4: toolsets[0].include.sources: expected one value at least, found an empty list "
            "(else leave it out)",
        ),
    ],
)
def test_a_toolset_that_cannot_work_is_a_config_error(
    tmp_path: Path, toolsets: str, message: str
) -> None:
    path = tmp_path / "toolbridge.yaml"
    path.write_text("toolsets:\n" + toolsets)
    with pytest.raises(ConfigError) as raised:
        load_config(path, {})
    assert str(raised.value).startswith(f"{path}{message}")


def test_a_toolset_id_may_be_the_id_of_a_source() -> None:
    config = Config.model_validate(
        {"servers": [{"id": "x", "spec": "a.yaml"}], "toolsets": [{"id": "x"}]}
    )
    assert [t.id for t in config.toolsets] == ["x"]


def test_two_entries_for_one_tool_are_a_finding_naming_the_one_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By its name and by its operationId: one entry is used whole (its `max_bytes` too), the
    other not at all."""
    monkeypatch.chdir(ROOT)
    path = write(
        tmp_path,
        f"""\
        servers:
          - id: notes
            spec: {ROOT}/specs/demo.yaml
            prefix: n
            tools:
              listNotes: {{result: {{max_bytes: 1000}}}}
              n_listNotes: {{result: {{select: "[0]"}}}}
              getNote: {{result: {{max_bytes: 2000}}}}
        """,
    )
    config = load_config(path, {})
    catalog = build_catalog(load_sources(config, DocumentStore(), {}))
    assert [(f.path, f.message) for f in findings(config, catalog)] == [
        (
            "servers[0].tools.n_listNotes",
            "'listNotes' names the same tool as 'n_listNotes'; only the entry 'n_listNotes' is "
            "used",
        )
    ]


def test_a_description_override_is_bounded_as_a_documents_and_check_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    long = "Lists the notes. " + "word " * 400
    path = write(
        tmp_path,
        f"""\
        servers:
          - {{id: notes, spec: {ROOT}/specs/demo.yaml}}
        toolsets:
          - id: reading
            descriptions: {{listNotes: "{long}\\u200b"}}
        """,
    )
    config = load_config(path, {})
    catalog = build_catalog(load_sources(config, DocumentStore(), {}))
    shown = render(build_toolsets(config, catalog)["reading"].tools["listNotes"], "mcp")
    assert (len(shown["description"]), shown["description"][-6:], shown["title"]) == (
        1022,
        " word\u2026",
        "listNotes",  # a first line past 120 characters is no title: clients show the name
    )
    assert [(f.path, f.message) for f in findings(config, catalog)] == [
        (
            "toolsets[0].descriptions.listNotes",
            "the description is 2,018 characters; its clients get the first 1,024, as of a "
            "document's",
        )
    ]
