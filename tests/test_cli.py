"""The `toolbridge` command, called in-process as `cli.main([...])`: `tools` and `check`, their
text and JSON output, and the exit codes 0 (usable), 1 (a source is down), 2 (operator error).

Every test caches parsed documents in its own temporary folder (TOOLBRIDGE_CACHE_DIR). One
test runs the installed package in a subprocess, to prove the entry point works.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import orjson
import pytest

from toolbridge import __version__
from toolbridge.cli import main
from toolbridge.demo.service import create_demo_app
from toolbridge.formats.render import FORMATS, Format
from toolbridge.serve.loopback import LoopbackServer

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("TOOLBRIDGE_CACHE_DIR", str(path))
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `toolbridge ARGS`, with timings shown as `0.00 s`."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, re.sub(r"in \d+\.\d\d s$", "in 0.00 s", err, flags=re.MULTILINE)


def run_json(capsysbinary: pytest.CaptureFixture[bytes], *args: str) -> tuple[int, Any]:
    code = main(list(args))
    out, err = capsysbinary.readouterr()
    assert err == b""
    return code, orjson.loads(out)


def write_config(folder: Path, text: str) -> Path:
    """A config in `folder` beside a copy of `specs/filters.yaml` under `folder/specs/`."""
    (folder / "specs").mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "specs" / "filters.yaml", folder / "specs" / "filters.yaml")
    path = folder / "toolbridge.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


DEMO_TABLE = """\
listNotes   GET /notes                                List notes
createNote  POST /notes                               Create a note
getNote     GET /notes/{noteId}                       Get one note
deleteNote  DELETE /notes/{noteId}                    Delete a note
updateNote  PATCH /notes/{noteId}                     Update a note
getStatus   GET /status                               Service status
6 tools
"""

DEMO_SERVED_TABLE = """\
listNotes     GET /notes                                List notes
createNote    POST /notes                               Create a note
getNote       GET /notes/{noteId}                       Get one note
deleteNote    DELETE /notes/{noteId}                    Delete a note
updateNote    PATCH /notes/{noteId}                     Update a note
getStatus     GET /status                               Service status
now           python clock:Tools.now                    Tell the current date and time.
days_between  python clock:Tools.days_between           Count the days from one date to another.
convert_time  python clock:Tools.convert_time           Convert a date and time from one timezone to another.
9 tools
"""  # noqa: E501 -- the table as printed
"""The demo `serve` runs without a config: the notes API and the clock tool."""

DEMO_NAMES = ["listNotes", "createNote", "getNote", "deleteNote", "updateNote", "getStatus"]

UNRESOLVED_BODY = "Unresolved reference #/components/schemas/NewPet"
UNRESOLVED_REF = (
    "$ref '#/components/schemas/NewPet' cannot be followed (nothing at "
    "#/components/schemas/NewPet in specs/messy-refs-dangling.yaml); that part accepts any value"
)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])

    assert (exited.value.code, capsys.readouterr().out) == (0, f"toolbridge {__version__}\n")


# -- tools -------------------------------------------------------------------------------------


def test_tools_prints_a_table(specs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "tools", "--spec", "specs/demo.yaml") == (0, DEMO_TABLE, "")


def name_in(fmt: Format, tool: dict[str, Any]) -> str:
    name: str = tool["function"]["name"] if fmt == "openai" else tool["name"]
    return name


@pytest.mark.parametrize("fmt", FORMATS)
def test_tools_json_is_the_tools_body_in_each_format(
    specs: Path, capsysbinary: pytest.CaptureFixture[bytes], fmt: Format
) -> None:
    code, body = run_json(
        capsysbinary, "tools", "--spec", "specs/demo.yaml", "--json", "--format", fmt
    )

    assert (code, list(body)) == (0, ["tools"])
    assert [name_in(fmt, tool) for tool in body["tools"]] == DEMO_NAMES


def test_tools_json_defaults_to_openai(
    specs: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    code, body = run_json(
        capsysbinary, "tools", "--spec", "specs/messy-refs-dangling.yaml", "--json"
    )

    assert (code, body["tools"][2]) == (
        0,
        {
            "type": "function",
            "function": {
                "name": "getPet",
                "description": "Get one pet",
                "parameters": {
                    "type": "object",
                    "properties": {"petId": {"type": "integer"}},
                    "required": ["petId"],
                    "additionalProperties": False,
                },
            },
        },
    )


def test_tools_strict_makes_openai_schemas_strict_where_they_can_be(
    specs: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """`createPet`'s body is an unresolved reference (any value), so it cannot be strict."""
    code, body = run_json(
        capsysbinary, "tools", "--spec", "specs/messy-refs-dangling.yaml", "--json", "--strict"
    )

    assert (code, body) == (
        0,
        {
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "listPets",
                        "description": "List pets",
                        "parameters": {
                            "type": "object",
                            "properties": {},
                            "required": [],
                            "additionalProperties": False,
                        },
                        "strict": True,
                    },
                },
                {
                    "type": "function",
                    "function": {
                        "name": "createPet",
                        "description": "Add a pet (its body schema is missing)",
                        "parameters": {
                            "type": "object",
                            "properties": {"body": {"description": UNRESOLVED_BODY}},
                            "required": ["body"],
                            "additionalProperties": False,
                        },
                        "strict": False,
                    },
                },
                {
                    "type": "function",
                    "function": {
                        "name": "getPet",
                        "description": "Get one pet",
                        "parameters": {
                            "type": "object",
                            "properties": {"petId": {"type": "integer"}},
                            "required": ["petId"],
                            "additionalProperties": False,
                        },
                        "strict": True,
                    },
                },
            ]
        },
    )


def test_tools_with_two_specs_prefixes_the_later_clashing_names(
    specs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(
        capsys, "tools", "--spec", "specs/filters.yaml", "--spec", "specs/messy-refs-dangling.yaml"
    ) == (
        0,
        """\
listPets                       GET /pets                                 List pets
createPet                      POST /pets                                Add a pet (tagged pets and admin)
deletePet                      DELETE /pets/{petId}                      Delete a pet
placeOrder                     POST /store/orders                        Order a pet
getInventory                   GET /store/inventory                      Stock counts by status
refreshCache                   PUT /admin/cache                          Refresh the server cache (untagged, under /admin)
messy_refs_dangling_listPets   GET /pets                                 List pets
messy_refs_dangling_createPet  POST /pets                                Add a pet (its body schema is missing)
getPet                         GET /pets/{petId}                         Get one pet
9 tools
""",  # noqa: E501
        "",
    )


def test_tools_with_the_same_spec_twice_names_the_second_source_demo_2(
    specs: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    code, body = run_json(
        capsysbinary, "tools", "--spec", "specs/demo.yaml", "--spec", "specs/demo.yaml", "--json"
    )

    assert (code, [tool["function"]["name"] for tool in body["tools"]]) == (
        0,
        [*DEMO_NAMES, *(f"demo_2_{name}" for name in DEMO_NAMES)],
    )


def test_tools_with_a_down_source_prints_the_others_and_exits_1(
    specs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "tools", "--spec", "specs/nope.yaml", "--spec", "specs/demo.yaml") == (
        1,
        DEMO_TABLE,
        "toolbridge: source 'nope' is down: specs/nope.yaml: no such file\n",
    )


def test_a_down_source_is_reported_once_on_stderr(
    specs: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without pytest's log capture the root logger has no handler, as in a real run."""
    monkeypatch.setattr(logging.root, "handlers", [])

    assert run(capsys, "tools", "--spec", "specs/nope.yaml") == (
        1,
        "no tools\n",
        "toolbridge: source 'nope' is down: specs/nope.yaml: no such file\n",
    )


def test_tools_with_no_sources_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("servers: []\n")

    assert run(capsys, "tools", "-c", str(path)) == (0, "no tools\n", "")


# -- check -------------------------------------------------------------------------------------

SEARCH_TOKENS = (
    "search mode (3 tools): openai 307 · openai-responses 308 · anthropic 288 · gemini 264 · "
    "mcp 392\n"
)


SEARCH_MODE_TOKENS = dict(zip(FORMATS, (307, 308, 288, 264, 392), strict=True))
DANGLING_TOKENS = dict(zip(FORMATS, (138, 139, 119, 99, 230), strict=True))
DEMO_TOKENS = dict(zip(FORMATS, (581, 583, 542, 460, 751), strict=True))
DEMO_CHANGE = (
    "the body wants at least 1 of its fields given; the API checks that, not the gateway (they "
    "are arguments of their own here)"
)
"""The demo's one change: updateNote's PATCH body says `minProperties: 1`."""
DEMO_CHANGE_LINES = (
    "  1 change: body-constraint-unchecked 1\n"
    f"    PATCH /notes/{{noteId}}  [updateNote]  body-constraint-unchecked: {DEMO_CHANGE}\n"
)


def tokens(*numbers: int, source: bool = True) -> str:
    """The estimated-tokens line `check` prints for a source, or (source=False) the catalog."""
    counts = " · ".join(f"{fmt} {n:,}" for fmt, n in zip(FORMATS, numbers, strict=True))
    if source:
        return f"  estimated tokens: {counts}\n"
    return f"tool definitions, estimated tokens (o200k_base, about 4.55 bytes a token): {counts}\n"


DANGLING_REPORT = f"""\
messy-refs-dangling  specs/messy-refs-dangling.yaml  'Dangling reference (messy)' (OpenAPI 3.0.3)
  3 operations -> 3 tools
{tokens(138, 139, 119, 99, 230)}{{validation}}  1 change: unresolved-ref 1
    POST /pets  [createPet]  unresolved-ref: {UNRESOLVED_REF}

{tokens(138, 139, 119, 99, 230, source=False)}{SEARCH_TOKENS}summary: 1 source, 3 operations, 3 tools, 1 change (unresolved-ref 1), 0 spec validation findings; usable
"""  # noqa: E501


@pytest.mark.parametrize(
    ("args", "out", "err"),
    [
        pytest.param(
            ["specs/messy-refs-dangling.yaml", "--no-validate"],
            DANGLING_REPORT.format(validation=""),
            "loading messy-refs-dangling from specs/messy-refs-dangling.yaml ...\n"
            "loaded messy-refs-dangling: 3 tools in 0.00 s\n",
            id="no-validate",
        ),
        pytest.param(
            ["specs/messy-refs-dangling.yaml"],
            DANGLING_REPORT.format(validation="  spec validation: valid\n"),
            "loading messy-refs-dangling from specs/messy-refs-dangling.yaml ...\n"
            "loaded messy-refs-dangling: 3 tools in 0.00 s\n"
            "validating messy-refs-dangling ...\n",
            id="validated",
        ),
        pytest.param(
            ["specs/messy-names.yaml"],
            f"""\
messy-names  specs/messy-names.yaml  'Duplicate operationId (messy)' (OpenAPI 3.0.3)
  3 operations -> 3 tools
{tokens(134, 135, 115, 82, 239)}  spec validation: 1 finding(s)
    - Operation ID 'getPet' for 'get' in '/pets/by-name/{{name}}' is not unique
  1 change: name-deduplicated 1
    GET /pets/by-name/{{name}}  [getPet_2]  name-deduplicated: 'getPet' is also the name of an earlier operation; this one is 'getPet_2'

{tokens(134, 135, 115, 82, 239, source=False)}{SEARCH_TOKENS}summary: 1 source, 3 operations, 3 tools, 1 change (name-deduplicated 1), 1 spec validation finding; usable
""",  # noqa: E501
            "loading messy-names from specs/messy-names.yaml ...\n"
            "loaded messy-names: 3 tools in 0.00 s\n"
            "validating messy-names ...\n",
            id="validation-finding",
        ),
    ],
)
def test_check_reports_each_source_then_a_summary(
    specs: Path, capsys: pytest.CaptureFixture[str], args: list[str], out: str, err: str
) -> None:
    """The report goes to stdout and progress to stderr; findings do not make a source down."""
    assert run(capsys, "check", "--spec", *args) == (0, out, err)


def test_check_json_is_the_whole_report(
    specs: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """Nothing goes to stderr; only the validation's duration varies from run to run."""
    code, report = run_json(
        capsysbinary, "check", "--spec", "specs/messy-refs-dangling.yaml", "--json"
    )
    seconds = report["sources"][0]["validation"].pop("seconds")

    assert isinstance(seconds, float)
    assert seconds >= 0
    assert (code, report) == (
        0,
        {
            "sources": [
                {
                    "id": "messy-refs-dangling",
                    "kind": "openapi",
                    "location": "specs/messy-refs-dangling.yaml",
                    "ok": True,
                    "error": None,
                    "title": "Dangling reference (messy)",
                    "spec_version": "3.0.3",
                    "operations": 3,
                    "tools": 3,
                    "filtered": 0,
                    "notes": [],
                    "changes": [
                        {
                            "tool": "createPet",
                            "kind": "unresolved-ref",
                            "message": UNRESOLVED_REF,
                            "where": "POST /pets",
                        }
                    ],
                    "changes_by_kind": {"unresolved-ref": 1},
                    "validation": {"ran": True, "valid": True, "findings": []},
                    "tokens": DANGLING_TOKENS,
                }
            ],
            "filters": [],
            "catalog_notes": [],
            "toolsets": [],
            "findings": [],
            "tokens": DANGLING_TOKENS,
            "search_tokens": SEARCH_MODE_TOKENS,
            "warnings": [],
            "summary": {
                "sources": 1,
                "down": [],
                "operations": 3,
                "tools": 3,
                "changes": 1,
                "changes_by_kind": {"unresolved-ref": 1},
                "validation_findings": 0,
                "filters_down": [],
                "usable": True,
                "no_calls": [],
                "refused_calls": [],
            },
        },
    )


def test_check_json_with_a_down_source_exits_1(
    specs: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    code, report = run_json(
        capsysbinary,
        "check",
        "--spec",
        "specs/nope.yaml",
        "--spec",
        "specs/demo.yaml",
        "--json",
        "--no-validate",
    )

    assert (code, report) == (
        1,
        {
            "sources": [
                {
                    "id": "nope",
                    "kind": "openapi",
                    "location": "specs/nope.yaml",
                    "ok": False,
                    "error": "specs/nope.yaml: no such file",
                },
                {
                    "id": "demo",
                    "kind": "openapi",
                    "location": "specs/demo.yaml",
                    "ok": True,
                    "error": None,
                    "title": "Notes (toolbridge demo service)",
                    "spec_version": "3.1.0",
                    "operations": 6,
                    "tools": 6,
                    "filtered": 0,
                    "notes": [],
                    "changes": [
                        {
                            "tool": "updateNote",
                            "kind": "body-constraint-unchecked",
                            "message": DEMO_CHANGE,
                            "where": "PATCH /notes/{noteId}",
                        }
                    ],
                    "changes_by_kind": {"body-constraint-unchecked": 1},
                    "validation": {"ran": False, "valid": None, "findings": []},
                    "tokens": DEMO_TOKENS,
                },
            ],
            "filters": [],
            "catalog_notes": [],
            "toolsets": [],
            "findings": [],
            "tokens": DEMO_TOKENS,
            "search_tokens": SEARCH_MODE_TOKENS,
            "warnings": [],
            "summary": {
                "sources": 2,
                "down": ["nope"],
                "operations": 6,
                "tools": 6,
                "changes": 1,
                "changes_by_kind": {"body-constraint-unchecked": 1},
                "validation_findings": 0,
                "filters_down": [],
                "usable": False,
                "no_calls": [],
                "refused_calls": [],
            },
        },
    )


def test_check_with_a_down_source_reports_it_and_exits_1(
    specs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(
        capsys, "check", "--spec", "specs/nope.yaml", "--spec", "specs/demo.yaml", "--no-validate"
    ) == (
        1,
        f"""\
nope  specs/nope.yaml  DOWN: specs/nope.yaml: no such file

demo  specs/demo.yaml  'Notes (toolbridge demo service)' (OpenAPI 3.1.0)
  6 operations -> 6 tools
{tokens(581, 583, 542, 460, 751)}{DEMO_CHANGE_LINES}
{tokens(581, 583, 542, 460, 751, source=False)}{SEARCH_TOKENS}summary: 2 sources, 6 operations, 6 tools, 1 change (body-constraint-unchecked 1), 0 spec validation findings; NOT usable: down: nope
""",  # noqa: E501
        "loading nope from specs/nope.yaml ...\n"
        "loaded nope: FAILED in 0.00 s\n"
        "loading demo from specs/demo.yaml ...\n"
        "loaded demo: 6 tools in 0.00 s\n",
    )


def test_a_server_whose_tls_files_cannot_be_used_is_down_for_check_and_tools_as_for_serve(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.pem").write_text("garbage\n")
    config = tmp_path / "toolbridge.yaml"
    config.write_text(
        f"servers:\n  - id: pets\n    spec: {ROOT}/specs/demo.yaml\n    ca_file: bad.pem\n"
        f"  - id: more\n    spec: {ROOT}/specs/demo.yaml\n    prefix: more\n"
        "    client_cert: nope.pem\n"
    )
    bad_ca = (
        f"server 'pets': ca_file: {tmp_path}/bad.pem holds no PEM certificate "
        "(NO_CERTIFICATE_OR_CRL_FOUND)"
    )
    no_cert = (
        f"server 'more': client_cert: cannot read {tmp_path}/nope.pem: No such file or directory"
    )
    code, out, _ = run(capsys, "check", "-c", str(config), "--no-validate")
    assert (code, out.split("\n\n")[:2]) == (
        1,
        [
            f"pets  {ROOT}/specs/demo.yaml  DOWN: {bad_ca}",
            f"more  {ROOT}/specs/demo.yaml  DOWN: {no_cert}",
        ],
    )
    assert run(capsys, "tools", "-c", str(config)) == (
        1,
        "no tools\n",
        f"toolbridge: source 'pets' is down: {bad_ca}\n"
        f"toolbridge: source 'more' is down: {no_cert}\n",
    )


def test_check_says_which_key_a_document_gives_twice_and_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "pets.yaml"
    spec.write_text(
        "openapi: 3.0.3\ninfo: {title: t, version: '1'}\nservers: [{url: 'http://x'}]\n"
        "paths:\n  /pets:\n    get: {operationId: listPets}\n    get: {operationId: listAll}\n"
    )
    code, out, _ = run(capsys, "check", "--spec", str(spec), "--no-validate")
    line = (
        "  duplicate-key: key 'get' is given twice in one mapping (lines 6 and 7): the value at "
        f"line 7 is read, the one at line 6 dropped [{spec}#/paths/~1pets]"
    )
    lines = out.splitlines()
    assert (code, lines[1], lines[3:5]) == (
        0,
        "  1 operation -> 1 tool",
        [line, "  no tool changed"],  # not "nothing changed or lost": an operation was
    )


def test_check_prints_what_a_document_chose_on_one_line_and_without_reordering(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A path with a line break cannot forge a line of the report, nor a bidirectional
    override reorder what the terminal shows."""
    spec = tmp_path / "forge.yaml"
    spec.write_text(
        "openapi: 3.0.3\ninfo: {title: t, version: '1'}\nservers: [{url: 'http://x'}]\n"
        'paths:\n  "/x\\nsummary: forged \\u202e":\n    get: {}\n'
    )
    code, out, _ = run(capsys, "check", "--spec", str(spec), "--no-validate")
    assert (code, out.splitlines()[4]) == (
        0,
        "    GET /x\\nsummary: forged \\u202e  [get_x_summary_forged]  name-derived: "
        "no operationId: named 'get_x_summary_forged' from its method and path",
    )


def test_check_with_two_specs_lists_the_name_clashes(
    specs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys,
        "check",
        "--spec",
        "specs/filters.yaml",
        "--spec",
        "specs/messy-refs-dangling.yaml",
        "--no-validate",
    )

    assert (code, out) == (
        0,
        f"""\
filters  specs/filters.yaml  'Tags, methods and paths for filters' (OpenAPI 3.0.3)
  6 operations -> 6 tools
{tokens(252, 255, 214, 139, 445)}  nothing changed or lost

messy-refs-dangling  specs/messy-refs-dangling.yaml  'Dangling reference (messy)' (OpenAPI 3.0.3)
  3 operations -> 3 tools
{tokens(147, 148, 128, 107, 239)}  1 change: unresolved-ref 1
    POST /pets  [createPet]  unresolved-ref: {UNRESOLVED_REF}

catalog: name-clash: 'listPets' is already a tool of source 'filters'; the one of source 'messy-refs-dangling' is 'messy_refs_dangling_listPets' (give server 'messy-refs-dangling' a `prefix` to choose its names)
catalog: name-clash: 'createPet' is already a tool of source 'filters'; the one of source 'messy-refs-dangling' is 'messy_refs_dangling_createPet' (give server 'messy-refs-dangling' a `prefix` to choose its names)
{tokens(398, 402, 341, 246, 684, source=False)}{SEARCH_TOKENS}summary: 2 sources, 9 operations, 9 tools, 3 changes (name-clash 2, unresolved-ref 1), 0 spec validation findings; usable
""",  # noqa: E501
    )


# -- config files ------------------------------------------------------------------------------


FILTERED_CONFIG = """\
servers:
  - id: pets
    spec: specs/filters.yaml
    prefix: pets
    include: {tags: [pets, store]}
    exclude: {methods: [POST]}
  - id: admin
    spec: specs/filters.yaml
    base_url: https://admin.example.com
    include: {paths: ["/admin/*", "/pets/*"]}
"""

FILTERED_TABLE = """\
pets_listPets      GET /pets                                 List pets
pets_getInventory  GET /store/inventory                      Stock counts by status
deletePet          DELETE /pets/{petId}                      Delete a pet
refreshCache       PUT /admin/cache                          Refresh the server cache (untagged, under /admin)
4 tools
"""  # noqa: E501


def test_a_config_file_applies_prefix_include_and_exclude(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Specs are found relative to the config file, whatever the working directory."""
    path = write_config(tmp_path / "conf", FILTERED_CONFIG)
    monkeypatch.chdir(tmp_path)

    assert run(capsys, "tools", "-c", str(path)) == (0, FILTERED_TABLE, "")
    assert run(capsys, "check", "--config", str(path), "--no-validate") == (
        0,
        f"""\
pets  conf/specs/filters.yaml  'Tags, methods and paths for filters' (OpenAPI 3.0.3)
  6 operations -> 2 tools (4 filtered out)
{tokens(73, 74, 60, 26, 131)}  nothing changed or lost

admin  conf/specs/filters.yaml  'Tags, methods and paths for filters' (OpenAPI 3.0.3)
  6 operations -> 2 tools (4 filtered out)
{tokens(88, 89, 75, 50, 159)}  nothing changed or lost

{tokens(161, 163, 135, 76, 290, source=False)}{SEARCH_TOKENS}summary: 2 sources, 12 operations, 4 tools, 0 changes, 0 spec validation findings; usable
""",  # noqa: E501
        "loading pets from specs/filters.yaml ...\n"
        "loaded pets: 2 tools in 0.00 s\n"
        "loading admin from specs/filters.yaml ...\n"
        "loaded admin: 2 tools in 0.00 s\n",
    )


@pytest.mark.parametrize(
    ("args", "out"),
    [
        pytest.param(["tools"], FILTERED_TABLE, id="tools"),
        pytest.param(
            ["check", "--no-validate"],
            f"""\
pets  specs/filters.yaml  'Tags, methods and paths for filters' (OpenAPI 3.0.3)
  6 operations -> 2 tools (4 filtered out)
{tokens(73, 74, 60, 26, 131)}  nothing changed or lost

admin  specs/filters.yaml  'Tags, methods and paths for filters' (OpenAPI 3.0.3)
  6 operations -> 2 tools (4 filtered out)
{tokens(88, 89, 75, 50, 159)}  nothing changed or lost

{tokens(161, 163, 135, 76, 290, source=False)}{SEARCH_TOKENS}summary: 2 sources, 12 operations, 4 tools, 0 changes, 0 spec validation findings; usable
""",  # noqa: E501
            id="check",
        ),
    ],
)
def test_toolbridge_yaml_in_the_working_directory_is_the_default(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    out: str,
) -> None:
    write_config(tmp_path, FILTERED_CONFIG)
    monkeypatch.chdir(tmp_path)

    code, printed, _ = run(capsys, *args)

    assert (code, printed) == (0, out)


@pytest.mark.parametrize(
    ("args", "out"),
    [
        pytest.param(["tools"], DEMO_SERVED_TABLE, id="tools"),
        pytest.param(["call", "getStatus"], None, id="call"),
        pytest.param(["check", "--no-validate"], None, id="check"),
    ],
)
def test_without_a_config_or_spec_every_command_uses_the_demo_and_says_so(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    out: str | None,
) -> None:
    """As `serve` does: the bundled demo, its notes API on a loopback port while it runs."""
    monkeypatch.chdir(tmp_path)

    code, printed, err = run(capsys, *args)

    said = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", err.splitlines()[0])
    assert (code, said) == (
        0,
        "toolbridge: no toolbridge.yaml here and no -c or --spec: using the bundled demo "
        "(its notes API runs on http://127.0.0.1:PORT)",
    )
    if out is not None:
        assert printed == out
    elif args[0] == "call":
        assert orjson.loads(printed)["ok"] is True
    else:
        assert "summary: 2 sources" in printed


@pytest.mark.parametrize("command", ["tools", "check"])
@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "servers:\n  - id: pets\n    spec: a.yaml\n    prefx: p\n",
            "bad.yaml:4: servers[0].prefx: unknown key 'prefx'",
            id="unknown-key",
        ),
        pytest.param(
            "servers:\n  - id: pets\n    spec: ${PETS_SPEC}\n",
            "bad.yaml:3: servers[0].spec: environment variable PETS_SPEC is not set "
            "(write ${PETS_SPEC:-default} to give a default)",
            id="unset-variable",
        ),
        pytest.param(
            "servers: [\n",
            "bad.yaml:2: not valid YAML: expected the node content, but found '<stream end>'",
            id="invalid-yaml",
        ),
        pytest.param(
            "servers:\n  - spec: a.yaml\n",
            "bad.yaml:2: servers[0]: required key 'id' is missing",
            id="missing-key",
        ),
    ],
)
def test_a_config_error_exits_2_with_the_message_on_stderr(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
    text: str,
    message: str,
) -> None:
    """The message is the ConfigError's, after `toolbridge: `, with no traceback."""
    (tmp_path / "bad.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PETS_SPEC", raising=False)

    assert run(capsys, command, "-c", "bad.yaml") == (2, "", f"toolbridge: {message}\n")


@pytest.mark.parametrize("command", ["tools", "check"])
def test_a_missing_config_file_exits_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
) -> None:
    monkeypatch.chdir(tmp_path)

    assert run(capsys, command, "-c", "missing.yaml") == (
        2,
        "",
        "toolbridge: missing.yaml: cannot be read: No such file or directory\n",
    )


def test_a_config_reads_variables_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_config(
        tmp_path, "servers:\n  - {id: pets, spec: '${SPECS_DIR}/filters.yaml', prefix: p}\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SPECS_DIR", "specs")

    assert run(capsys, "tools") == (
        0,
        """\
p_listPets      GET /pets                                 List pets
p_createPet     POST /pets                                Add a pet (tagged pets and admin)
p_deletePet     DELETE /pets/{petId}                      Delete a pet
p_placeOrder    POST /store/orders                        Order a pet
p_getInventory  GET /store/inventory                      Stock counts by status
p_refreshCache  PUT /admin/cache                          Refresh the server cache (untagged, under /admin)
6 tools
""",  # noqa: E501
        "",
    )


def test_a_config_that_is_not_utf8_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "toolbridge.yaml").write_bytes(b"servers:\n  - id: caf\xe9\n")
    monkeypatch.chdir(tmp_path)

    code, out, err = run(capsys, "check")

    assert (code, out, err.startswith("toolbridge: toolbridge.yaml: ")) == (2, "", True)


def test_config_and_spec_cannot_be_given_together(
    specs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["tools", "-c", "toolbridge.yaml", "--spec", "specs/demo.yaml"])

    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "toolbridge tools: error: argument --spec: not allowed with argument -c/--config"
    )


# -- the installed entry point -----------------------------------------------------------------


def test_python_dash_m_toolbridge_runs_the_cli() -> None:
    """`python -m toolbridge` in a fresh interpreter: the package and its `__main__` work."""
    done = subprocess.run(
        [sys.executable, "-m", "toolbridge", "tools", "--spec", "specs/demo.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert (done.returncode, done.stdout, done.stderr) == (0, DEMO_TABLE, "")


# -- call --------------------------------------------------------------------------------------


def test_call_dry_run_prints_the_request_as_curl_with_secrets_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLBRIDGE_CACHE_DIR", str(tmp_path / "cache"))
    config = tmp_path / "toolbridge.yaml"
    config.write_text(
        f"servers:\n  - id: notes\n    spec: {ROOT}/specs/demo.yaml\n"
        "    base_url: http://127.0.0.1:9/api\n"
        "    auth: {type: bearer, token: very-secret-token}\n"
    )
    code = main(["call", "getNote", "--args", '{"noteId": 7}', "-c", str(config), "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert "http://127.0.0.1:9/api/notes/7" in out
    assert "very-secret-token" not in out
    assert "***" in out


def test_call_runs_the_tool_and_exits_by_outcome(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLBRIDGE_CACHE_DIR", str(tmp_path / "cache"))
    with LoopbackServer(create_demo_app()) as demo:
        config = tmp_path / "toolbridge.yaml"
        config.write_text(
            f"servers:\n  - id: notes\n    spec: {ROOT}/specs/demo.yaml\n    base_url: {demo.url}\n"
        )
        ok = main(["call", "getNote", "--args", '{"noteId": 1}', "-c", str(config)])
        ok_out = json.loads(capsys.readouterr().out)
        missing = main(["call", "getNote", "--args", '{"noteId": 999}', "-c", str(config)])
        missing_out = json.loads(capsys.readouterr().out)
        invalid = main(["call", "getNote", "--args", '{"noteId": "x"}', "-c", str(config)])
        invalid_err = capsys.readouterr().err
    assert (ok, ok_out["ok"], ok_out["result"]["title"]) == (0, True, "Welcome")
    assert (missing, missing_out["status"]) == (1, 404)
    assert invalid == 2
    assert invalid_err.startswith("toolbridge: invalid arguments for 'getNote'")


def test_what_tool_files_print_goes_to_stderr_and_stdout_stays_the_answer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "chatty.py").write_text(
        "print('loading chatty')\n"
        "class Tools:\n"
        "    def add(self, a: int, b: int) -> int:\n"
        '        """Add."""\n'
        "        print('adding', a, b)\n"
        "        return a + b\n"
    )
    config = tmp_path / "toolbridge.yaml"
    config.write_text("tools:\n  - id: chatty\n    path: chatty.py\n")
    called = main(["call", "add", "--args", '{"a": 1, "b": 2}', "-c", str(config)])
    call_out, call_err = capsys.readouterr()
    listed = main(["tools", "--json", "-c", str(config)])
    tools_out, tools_err = capsys.readouterr()
    assert (called, json.loads(call_out)["result"], call_err) == (
        0,
        3,
        "loading chatty\nadding 1 2\n",
    )
    assert (listed, [t["function"]["name"] for t in json.loads(tools_out)["tools"]], tools_err) == (
        0,
        ["add"],
        "loading chatty\n",
    )


# -- check --as --------------------------------------------------------------------------------

ACCESS_CONFIG = """\
auth:
  api_keys:
    - {user: alice, key: alice-key-0123456789, groups: [support]}
    - {user: ops, key: ops-key-0123456789, admin: true}
servers:
  - id: notes
    spec: %s/specs/demo.yaml
    access: {groups: [support], methods: [GET]}
  - id: shop
    spec: %s/specs/filters.yaml
"""


@pytest.mark.parametrize(
    ("argv", "code", "out"),
    [
        (
            ["--as", "alice"],
            0,
            "listNotes  (notes)\ngetNote  (notes)\ngetStatus  (notes)\nalice sees 3 of 12 tools\n",
        ),
        (
            ["--as", "alice", "getNote"],
            0,
            "getNote: allowed for alice: source 'notes' access[0] allows it\n",
        ),
        (
            ["--as", "alice", "deleteNote"],
            1,
            "deleteNote: denied for alice: no grant of source 'notes' matches\n",
        ),
        (
            ["--as", "alice", "listPets"],
            1,
            "listPets: denied for alice: source 'shop' has no `access`: admins only\n",
        ),
        (["--as", "ops", "listPets"], 0, "listPets: allowed for ops: admins may use every tool\n"),
    ],
)
def test_check_as_a_user_says_what_they_see_and_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, out: str
) -> None:
    config = tmp_path / "toolbridge.yaml"
    config.write_text(ACCESS_CONFIG % (ROOT, ROOT))
    assert (main(["check", "-c", str(config), *argv]), capsys.readouterr().out) == (code, out)


def test_check_as_an_unknown_user_names_the_users(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "toolbridge.yaml"
    config.write_text(ACCESS_CONFIG % (ROOT, ROOT))
    assert main(["check", "-c", str(config), "--as", "bob"]) == 2
    assert capsys.readouterr().err == (
        "toolbridge: --as bob: no such user in auth.api_keys (users: alice, ops)\n"
    )


def test_check_reports_local_tools_with_their_frontmatter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    config = tmp_path / "toolbridge.yaml"
    config.write_text(
        f"tools:\n  - id: clock\n    path: {ROOT}/src/toolbridge/demo/tools/clock.py\n"
    )
    assert main(["check", "-c", str(config)]) == 0
    assert capsys.readouterr().out == (
        "clock  src/toolbridge/demo/tools/clock.py  'Clock' (Python tools)\n"
        "  3 operations -> 3 tools\n"
        + tokens(283, 284, 264, 228, 363)
        + "  src/toolbridge/demo/tools/clock.py: 'Clock' (version 1.0.0, author toolbridge)\n"
        "  nothing changed or lost\n"
        "\n"
        + tokens(283, 284, 264, 228, 363, source=False)
        + SEARCH_TOKENS
        + "summary: 1 source, 3 operations, 3 tools, 0 changes, 0 spec validation findings; "
        "usable\n"
    )


def test_check_says_when_a_source_is_for_admins_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    config = tmp_path / "toolbridge.yaml"
    config.write_text(ACCESS_CONFIG % (ROOT, ROOT))
    assert main(["check", "-c", str(config), "--no-validate"]) == 0
    out = capsys.readouterr().out
    shop = out[out.index("shop  ") :]
    assert "  admins-only: no `access`: only admins see and call these tools\n" in shop
    assert "admins-only" not in out[: out.index("shop  ")]  # notes has access


def test_check_reports_the_filters_and_one_that_cannot_load_makes_it_not_usable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    (tmp_path / "switch.py").write_text(
        "class Filter:\n    toggle = True\n    def inlet(self, body): return body\n"
    )
    config = tmp_path / "toolbridge.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            servers:
              - id: notes
                spec: {ROOT}/specs/demo.yaml
            filters:
              - id: redact
                path: {ROOT}/tests/fixtures/filters/redact_emails.py
              - id: switch
                path: switch.py
              - id: more
                path: {ROOT}/tests/fixtures/filters/wants_more.py
              - id: audit
                path: audit.py
                required: true
            """
        )
    )
    code, out, _ = run(capsys, "check", "-c", str(config), "--no-validate")
    filters = out[out.index("filter redact") : out.index("tool definitions")]
    assert (code, filters, out.splitlines()[-1]) == (
        1,
        "filter redact  tests/fixtures/filters/redact_emails.py  loaded\n"
        f"filter switch  {tmp_path}/switch.py  switched off (`toggle = True`; `switched_on: true` "
        "runs it)\n"
        "filter more  tests/fixtures/filters/wants_more.py  loaded, but inlet: parameter "
        "'options' has no default, and the host fills only the call ('body') and Open WebUI's "
        "`__name__` parameters: every run of it will fail\n"
        f"filter audit  {tmp_path}/audit.py  DOWN: filters 'audit': {tmp_path}/audit.py: no such "
        "file\n\n",
        "summary: 1 source, 6 operations, 6 tools, 1 change (body-constraint-unchecked 1), 0 spec "
        "validation findings; NOT usable: down: filter audit",
    )


def test_check_reports_toolsets_what_selects_nothing_by_line_and_a_token_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr("toolbridge.report.WARN_TOKENS", 250)
    config = tmp_path / "toolbridge.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            servers:
              - id: notes
                spec: {ROOT}/specs/demo.yaml
            toolsets:
              - id: reading
                include: {{methods: [GET]}}
              - id: finder
                include: {{sources: [notez]}}
                discovery: search
            """
        )
    )
    code, out, _ = run(capsys, "check", "-c", str(config), "--no-validate")
    tail = out.split(DEMO_CHANGE_LINES + "\n", 1)[1]
    assert (code, tail) == (
        0,
        tokens(581, 583, 542, 460, 751, source=False)
        + "toolset reading (3 tools, list): openai 209 · openai-responses 210 · anthropic 190 · "
        "gemini 150 · mcp 292\n"
        "toolset finder (0 tools, search): openai 307 · openai-responses 308 · anthropic 288 · "
        "gemini 264 · mcp 392\n"
        + SEARCH_TOKENS
        + f"finding: {config}:8: toolsets[1].include.sources[0]: no source 'notez' in the config "
        "(sources: notes)\n"
        f"finding: {config}:7: toolsets[1]: toolset 'finder' holds no tools\n"
        "warning: the tool definitions take about 751 tokens in the mcp format, more than 250: "
        "give models a few tools at a time, with toolsets (`toolsets:` in the config, served at "
        "/toolsets/{id}/mcp and /toolsets/{id}/openapi.json) or search mode (`?mode=search`, or "
        "`discovery: search` on a toolset: three tools, about 392 tokens)\n"
        "warning: toolset reading's tool definitions take about 292 tokens in the mcp format, "
        "more than 250: narrow its `include`, or give it `discovery: search`\n"
        "summary: 1 source, 6 operations, 6 tools, 1 change (body-constraint-unchecked 1), 0 "
        "spec validation findings; usable\n",
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            "audit: {file: no-such-folder/calls.jsonl}",
            "audit.file: cannot open {dir}/no-such-folder/calls.jsonl: its folder "
            "{dir}/no-such-folder does not exist",
        ),
        ("audit: {file: .}", "audit.file: cannot open {dir}: it is a folder"),
        (
            "auth: {jwt: {jwks: keys.json}}",
            "auth.jwt.jwks: cannot read keys from {dir}/keys.json: [Errno 2] No such file or "
            "directory: '{dir}/keys.json'",
        ),
    ],
    ids=["audit-folder-missing", "audit-a-folder", "jwks-missing"],
)
def test_check_refuses_what_a_start_would_refuse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], settings: str, message: str
) -> None:
    """What `serve` opens or reads besides sources (the audit file, the JWT keys): `check`
    refuses it as a start would, creating nothing."""
    path = tmp_path / "toolbridge.yaml"
    path.write_text(f"{settings}\ntools: []\n")
    expected = "toolbridge: " + message.format(dir=tmp_path) + "\n"
    assert run(capsys, "check", "-c", str(path)) == (2, "", expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toolbridge.yaml"]


def test_rotate_secrets_where_there_is_no_store_makes_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run in the wrong folder, it would have made a new store and said all was re-encrypted."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TOOLBRIDGE_SECRET_KEY", "k" * 32)
    assert run(capsys, "rotate-secrets") == (
        2,
        "",
        f"toolbridge: no state store at {tmp_path}/toolbridge-state.db: nothing to re-encrypt "
        "(run it beside the gateway's toolbridge.yaml, or give -c FILE)\n",
    )
    assert list(tmp_path.iterdir()) == []


def test_export_and_rotate_secrets_read_the_config_given_or_say_why_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mistyped -c is an error, as for every other command (it fell back to the folder's
    default store, making one, and exported nothing with exit 0); a store not there is not
    made, and nothing is exported from it."""
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "nope.yaml"
    given = tmp_path / "toolbridge.yaml"
    given.write_text("state: {url: 'sqlite:///store/state.db'}\n")
    assert [
        run(capsys, "export", "-c", str(missing)),
        run(capsys, "rotate-secrets", "-c", str(missing)),
        run(capsys, "export", "-c", str(given)),
    ] == [
        (2, "", f"toolbridge: {missing}: cannot be read: No such file or directory\n"),
        (2, "", f"toolbridge: {missing}: cannot be read: No such file or directory\n"),
        (2, "", f"toolbridge: no state store at {tmp_path}/store/state.db: nothing to export\n"),
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toolbridge.yaml"]


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--port", "80000", "expected a port from 0 to 65535, found 80000"),
        ("--port", "-1", "expected a port from 0 to 65535, found -1"),
        ("--port", "http", "expected a port number, found 'http'"),
        ("--workers", "0", "expected 1 to 64 workers, found 0"),
        ("--workers", "-3", "expected 1 to 64 workers, found -3"),
        ("--workers", "many", "expected a number of workers, found 'many'"),
    ],
)
def test_serve_refuses_a_port_or_a_number_of_workers_it_would_not_run(
    capsys: pytest.CaptureFixture[str], option: str, value: str, message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", option, value])
    assert exited.value.code == 2
    assert capsys.readouterr().err.endswith(f"argument {option}: {message}\n")


def test_check_reports_the_notes_a_result_budget_gives_the_tools(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the gateway's tools carry them: a tool whose answers are cut promises no schema."""
    monkeypatch.chdir(ROOT)
    config = tmp_path / "toolbridge.yaml"
    config.write_text(
        f"servers:\n  - id: notes\n    spec: {ROOT}/specs/demo.yaml\n"
        "    result: {max_bytes: 1000}\n"
    )
    code, report = run_json(capsysbinary, "check", "-c", str(config), "--no-validate", "--json")
    assert (code, report["summary"]["changes_by_kind"]) == (
        0,
        {"output-schema-dropped": 5, "body-constraint-unchecked": 1},
    )


def test_check_says_which_sources_have_calls_it_would_refuse(tmp_path: Path) -> None:
    """A document that sends calls where the config does not allow them (`destination-refused`):
    counted among the changes, and named in the summary line."""
    import io
    from dataclasses import replace

    from toolbridge.config import Server
    from toolbridge.openapi.convert import Conversion
    from toolbridge.openapi.documents import DocumentStore
    from toolbridge.registry import build_catalog, load_server
    from toolbridge.report import check_report, print_check
    from toolbridge.tools import Note

    store = DocumentStore(cache_dir=None)
    server = Server.model_validate({"id": "notes", "spec": str(ROOT / "specs" / "demo.yaml")})
    status = load_server(server, store, ROOT)
    assert isinstance(status.conversion, Conversion)
    refused = Note(kind="destination-refused", message="the calls of 6 tools ... are refused")
    conversion = replace(status.conversion, notes=(*status.conversion.notes, refused))
    report = check_report(
        build_catalog([replace(status, conversion=conversion)]), store, validate=False
    )
    out = io.StringIO()
    print_check(report, out)
    assert (report["summary"]["refused_calls"], report["summary"]["changes_by_kind"]) == (
        ["notes"],
        {"body-constraint-unchecked": 1, "destination-refused": 1},
    )
    assert out.getvalue().splitlines()[-1] == (
        "summary: 1 source, 6 operations, 6 tools, 2 changes (body-constraint-unchecked 1, "
        "destination-refused 1), 0 spec "
        "validation findings; usable; calls refused (destination-refused, see `allowed_hosts`): "
        "notes"
    )


@pytest.mark.parametrize("command", ["serve", "export"])
def test_a_malformed_secret_key_is_one_line_before_anything_starts(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
) -> None:
    """`serve` said it in a worker's 35-line startup traceback."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TOOLBRIDGE_SECRET_KEY", "not-a-key")
    (tmp_path / "toolbridge.yaml").write_text("state: {url: 'sqlite:///state.db'}\n")
    assert run(capsys, command) == (
        2,
        "",
        "toolbridge: TOOLBRIDGE_SECRET_KEY: key 1 of 1 is not a Fernet key (expected 32 bytes "
        "in url-safe base64, 44 characters)\n",
    )


def test_what_a_document_says_is_printed_never_obeyed_by_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A path template holding ESC sequences cleared the screen or rewrote lines of `check`."""
    document = {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "servers": [{"url": "http://127.0.0.1:9"}],
        "paths": {
            "/a\x1b[2J\x1b]0;owned\x07\r": {
                "get": {"operationId": "a", "responses": {"200": {"description": "ok"}}}
            }
        },
    }
    (tmp_path / "api.json").write_text(json.dumps(document))
    code, out, _ = run(capsys, "tools", "--spec", str(tmp_path / "api.json"))
    (row,) = [line for line in out.splitlines() if " a " in f" {line} "]
    assert (code, "\x1b" in out, "\\x1b[2J\\x1b]0;owned\\x07\\x0d" in row) == (0, False, True)


def test_call_as_a_caller_of_a_per_user_server_says_where_their_credential_is(
    specs: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "toolbridge.yaml"
    config.write_text(
        "auth: {api_keys: [{user: alice, key: alice-key-0123456789}]}\n"
        f"servers:\n  - id: notes\n    spec: {specs / 'demo.yaml'}\n"
        "    base_url: http://127.0.0.1:9\n    auth: {type: per_user}\n"
        "    access: {users: [alice]}\n"
    )
    code, out, err = run(capsys, "call", "listNotes", "-c", str(config), "--as", "alice")
    assert (code, out, err) == (
        2,
        "",
        "toolbridge: server 'notes' takes each caller's own credential, and 'alice' has stored "
        "none: this process reads no per-user state (the gateway's `state` store holds it: call "
        "the tool through the gateway, as that caller)\n",
    )


def test_a_reload_the_other_replicas_were_not_told_of_says_so() -> None:
    """`toolbridge reload` printed only the workers' count: an operator relying on it would
    not know to reload the other replicas."""
    import io

    from toolbridge.report import print_changes

    out = io.StringIO()
    answer = {
        "applied": True,
        "sources": [],
        "tools": {"count": 3},
        "workers": {"total": 2, "applied": 2},
        "replicas": {"told": False, "reason": "could not record a reload change: (...)"},
    }
    print_changes(answer, out)
    assert out.getvalue() == (
        "workers: 2 of 2 applied it\n"
        "other replicas NOT told: could not record a reload change: (...)\n"
        "nothing changed: 3 tools in all\n"
    )
