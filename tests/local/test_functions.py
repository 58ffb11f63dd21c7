"""Local Python tools: Open WebUI-style files, plain functions and modules as tools (schemas,
names, notes, frontmatter), their calls, and the bundled demo (its notes service and config).

The tool files are in `tests/fixtures/tools/`; files that must fail in one particular way are
written to `tmp_path` by the test that needs them.
"""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import orjson
import pytest
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from toolbridge.config import LocalTools
from toolbridge.demo import DEMO_SPEC, demo_config
from toolbridge.demo.service import create_demo_app
from toolbridge.errors import InvalidArguments, SourceError
from toolbridge.local.calls import call_function
from toolbridge.local.context import CallContext
from toolbridge.local.docstrings import frontmatter, parse_docstring
from toolbridge.local.loader import LocalConversion, load_tools
from toolbridge.local.requirements import install_requirements
from toolbridge.local.sources import LocalModule
from toolbridge.openapi.documents import DocumentStore
from toolbridge.registry import load_server
from toolbridge.tools import Annotations, Note, PythonFunction, Tool, ToolResult

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "tools"
WHERE = "tests/fixtures/tools"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Locations are shown relative to the working directory: fix it at the repository root."""
    monkeypatch.chdir(ROOT)


def load(path: str = "", *, module: str | None = None, **options: Any) -> LocalConversion:
    entry = LocalTools(id="t", path=path or None, module=module, **options)
    return load_tools(entry, FIXTURES)


def get(conversion: LocalConversion, name: str) -> PythonFunction:
    found = next(tool for tool in conversion.tools if tool.name == name)
    assert isinstance(found.target, PythonFunction)
    return found.target


def summary(tool: Tool) -> dict[str, Any]:
    """Everything about a tool but the callable and the model class, as plain values."""
    assert isinstance(tool.target, PythonFunction)
    return {
        "name": tool.name,
        "original_name": tool.original_name,
        "description": tool.description,
        "input_schema": tool.input_schema,
        "output_schema": tool.output_schema,
        "annotations": tool.annotations,
        "source": tool.source,
        "function": tool.target.function,
        "injected": tool.target.injected,
        "is_async": tool.target.is_async,
        "notes": tool.notes,
    }


LOCAL = Annotations()
READ_ONLY = Annotations(read_only=True)


# -- loading: what each kind of file becomes ------------------------------------------------


def test_open_webui_tools_file() -> None:
    """Public methods of `Tools` are the tools; injected parameters and `_helper` are not seen."""
    conversion = load("weather.py")
    assert [summary(tool) for tool in conversion.tools] == [
        {
            "name": "get_weather",
            "original_name": "get_weather",
            "description": "Get the current weather for a city.\n\n"
            "Says the temperature in the configured units.",
            "input_schema": {
                "type": "object",
                "properties": {
                    "city": {
                        "anyOf": [{"type": "string"}, {"type": "null"}],
                        "default": None,
                        "description": "The city; the caller's home city when left out.",
                    }
                },
                "additionalProperties": False,
            },
            "output_schema": None,
            "annotations": READ_ONLY,
            "source": "t",
            "function": "weather:Tools.get_weather",
            "injected": ("__user__", "__event_emitter__"),
            "is_async": True,
            "notes": (),
        },
        {
            "name": "forecast",
            "original_name": "forecast",
            "description": "Forecast the weather for the next days.",
            "input_schema": {
                "type": "object",
                "properties": {
                    "city": {
                        "description": "The city to forecast, by its English name.",
                        "type": "string",
                    },
                    "days": {
                        "default": 3,
                        "description": "How many days, 1 to 7.",
                        "maximum": 7,
                        "minimum": 1,
                        "type": "integer",
                    },
                },
                "required": ["city"],
                "additionalProperties": False,
            },
            "output_schema": None,
            "annotations": LOCAL,
            "source": "t",
            "function": "weather:Tools.forecast",
            "injected": ("__user__",),
            "is_async": False,
            "notes": (),
        },
    ]
    assert conversion.source == "t"
    assert conversion.location == f"{WHERE}/weather.py"
    assert conversion.notes == (
        Note(
            kind="requirement-missing",
            message="requirement 'toolbridge-test-missing-package' is not installed "
            "(toolbridge installs a file's requirements only when its entry says "
            "`install_requirements: true`)",
            where=f"{WHERE}/weather.py",
        ),
    )
    assert conversion.modules == (
        LocalModule(
            name="weather",
            location=f"{WHERE}/weather.py",
            frontmatter={
                "title": "Weather",
                "author": "toolbridge tests",
                "version": "0.3.1",
                "description": "Current weather and forecasts, made up.",
                "requirements": "pydantic>=2, toolbridge-test-missing-package",
                "licence": "MIT",
            },
        ),
    )
    assert conversion.frontmatter(get(conversion, "forecast"))["title"] == "Weather"


def test_every_parameter_type() -> None:
    """str, int, float, bool, Enum, Literal, Optional, list, dict, a nested model and a date."""
    conversion = load("kitchen.py")
    assert [tool.name for tool in conversion.tools] == ["order", "confirm", "receipt"]
    assert conversion.tools[0].input_schema == {
        "type": "object",
        "properties": {
            "item": {"description": "What to order.", "type": "string"},
            "quantity": {"description": "How many.", "type": "integer"},
            "price": {"description": "The price of one, in euros.", "type": "number"},
            "gift": {"description": "Whether to wrap it.", "type": "boolean"},
            "size": {"$ref": "#/$defs/Size", "description": "The size."},
            "crust": {
                "default": "thin",
                "description": "The crust.",
                "enum": ["thin", "thick"],
                "type": "string",
            },
            "note": {
                "anyOf": [{"type": "string"}, {"type": "null"}],
                "default": None,
                "description": "A note for the cook.",
            },
            "toppings": {
                "anyOf": [{"items": {"type": "string"}, "type": "array"}, {"type": "null"}],
                "default": None,
                "description": "Extra toppings.",
            },
            "extras": {
                "anyOf": [
                    {"additionalProperties": {"type": "integer"}, "type": "object"},
                    {"type": "null"},
                ],
                "default": None,
                "description": "Side dishes by name, with how many of each.",
            },
            "address": {
                "anyOf": [{"$ref": "#/$defs/Address"}, {"type": "null"}],
                "default": None,
                "description": "Where to deliver; pick up when left out.",
            },
            "when": {
                "anyOf": [{"format": "date", "type": "string"}, {"type": "null"}],
                "default": None,
                "description": "The delivery date.",
            },
        },
        "required": ["item", "quantity", "price", "gift", "size"],
        "additionalProperties": False,
        "$defs": {
            "Address": {
                "properties": {
                    "street": {"type": "string"},
                    "zip_code": {"pattern": "^[0-9]{5}$", "type": "string"},
                    "floor": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None},
                },
                "required": ["street", "zip_code"],
                "type": "object",
            },
            "Size": {"enum": ["small", "large"], "type": "string"},
        },
    }
    assert conversion.tools[1].output_schema == {
        "description": "An order as the kitchen keeps it.",
        "properties": {"item": {"type": "string"}, "quantity": {"type": "integer"}},
        "required": ["item", "quantity"],
        "type": "object",
    }
    assert conversion.tools[2].output_schema is None


def test_plain_functions_file() -> None:
    """Without `Tools`, the file's own public functions are the tools (not imported ones)."""
    conversion = load("plain.py")
    assert [summary(tool) for tool in conversion.tools] == [
        {
            "name": "add",
            "original_name": "add",
            "description": "Add two numbers.",
            "input_schema": {
                "type": "object",
                "properties": {
                    "a": {"description": "The first number.", "type": "integer"},
                    "b": {
                        "default": 1,
                        "description": "The second number, one unless given.",
                        "type": "integer",
                    },
                },
                "required": ["a"],
                "additionalProperties": False,
            },
            "output_schema": None,
            "annotations": READ_ONLY,
            "source": "t",
            "function": "plain:add",
            "injected": (),
            "is_async": False,
            "notes": (),
        },
        {
            "name": "shout",
            "original_name": "shout",
            "description": "Shout",
            "input_schema": {
                "type": "object",
                "properties": {"text": {"type": "string"}},
                "required": ["text"],
                "additionalProperties": False,
            },
            "output_schema": None,
            "annotations": LOCAL,
            "source": "t",
            "function": "plain:shout",
            "injected": (),
            "is_async": True,
            "notes": (),
        },
        {
            "name": "echo",
            "original_name": "echo",
            "description": "Echo the text and the JSON given.",
            "input_schema": {
                "type": "object",
                "properties": {
                    "text": {"type": "string"},
                    "json": {
                        "anyOf": [
                            {"additionalProperties": True, "type": "object"},
                            {"type": "null"},
                        ],
                        "default": None,
                    },
                },
                "required": ["text"],
                "additionalProperties": False,
            },
            "output_schema": None,
            "annotations": LOCAL,
            "source": "t",
            "function": "plain:echo",
            "injected": (),
            "is_async": False,
            "notes": (
                Note(
                    kind="parameter-hidden",
                    message="*extra is not offered: the model passes named arguments only",
                    where="python plain:echo",
                ),
                Note(
                    kind="parameter-hidden",
                    message="'_trace' is private (leading `_`): it keeps its default",
                    where="python plain:echo",
                ),
                Note(
                    kind="parameter-hidden",
                    message="**options is not offered: the model passes named arguments only",
                    where="python plain:echo",
                ),
            ),
        },
    ]
    assert conversion.notes == ()


def test_folder() -> None:
    """Each file is its own module; a file that fails is a note, and names stay unique."""
    conversion = load(".")
    assert conversion.location == WHERE
    assert [tool.name for tool in conversion.tools] == [
        *("explode", "silent_failure", "slow", "slow_sync", "ask", "report", "point"),
        *("nothing", "echo", "weather", "order", "confirm", "receipt", "add", "shout"),
        *("echo_2", "get_weather", "forecast"),
    ]
    assert [module.name for module in conversion.modules] == [
        *("faults", "kitchen", "plain", "weather"),
    ]
    assert conversion.tools[15].notes[-1] == Note(
        kind="name-deduplicated",
        message="'echo' is also the name of an earlier operation; this one is 'echo_2'",
        where="python plain:echo",
    )
    assert conversion.notes == (
        Note(
            kind="module-failed",
            message=f"tools 't': {WHERE}/broken.py:6: cannot be imported: ModuleNotFoundError: "
            "No module named 'toolbridge_missing_dependency' "
            "(requirements not installed: toolbridge-missing-dependency)",
            where=f"{WHERE}/broken.py",
        ),
        Note(
            kind="module-failed",
            message=f"tools 't': {WHERE}/unschemable.py: unschemable:Tools.connect: "
            "parameter 'sock': its type socket.socket has no JSON schema",
            where=f"{WHERE}/unschemable.py",
        ),
        Note(
            kind="requirement-missing",
            message="requirement 'toolbridge-test-missing-package' is not installed "
            "(toolbridge installs a file's requirements only when its entry says "
            "`install_requirements: true`)",
            where=f"{WHERE}/weather.py",
        ),
    )


def test_an_import_its_requirements_do_not_name_is_said_and_a_module_name_counts(
    tmp_path: Path,
) -> None:
    """`bs4` is the module of beautifulsoup4 (installed): not reported as missing."""
    (tmp_path / "needs.py").write_text(
        '"""\nrequirements: bs4\n"""\nimport bs4\nimport toolbridge_not_there\n'
    )
    with pytest.raises(SourceError) as caught:
        load_tools(LocalTools(id="t", path="needs.py"), tmp_path)
    assert str(caught.value) == (
        f"tools 't': {tmp_path}/needs.py:5: cannot be imported: ModuleNotFoundError: No module "
        "named 'toolbridge_not_there' (its frontmatter `requirements` do not name "
        "'toolbridge_not_there')"
    )


def test_prefix_and_valves() -> None:
    """`prefix` names the tools; valves fill `Valves`, and keys no model takes are noted."""
    conversion = load("weather.py", prefix="wx", valves={"units": "imperial", "typo": 1})
    assert [tool.name for tool in conversion.tools] == ["wx_get_weather", "wx_forecast"]
    assert [tool.original_name for tool in conversion.tools] == ["get_weather", "forecast"]
    assert conversion.notes[-1] == Note(
        kind="valves-unused",
        message="valves 'typo' are not fields of any Valves model; they are ignored",
        where=f"{WHERE}/weather.py",
    )
    assert get(conversion, "wx_get_weather").func.__self__.valves.units == "imperial"


@pytest.mark.parametrize(
    ("module", "names", "function"),
    [
        ("tests.fixtures.tools.plain", ["add", "shout", "echo"], "tests.fixtures.tools.plain:add"),
        ("tests.fixtures.tools.plain:add", ["add"], "tests.fixtures.tools.plain:add"),
    ],
)
def test_module_entries(module: str, names: list[str], function: str) -> None:
    conversion = load(module=module)
    assert conversion.location == module
    assert [tool.name for tool in conversion.tools] == names
    assert get(conversion, "add").function == function
    assert conversion.modules[0].frontmatter == {"title": "Plain functions", "version": "2"}


def test_each_file_is_its_own_module() -> None:
    """Two entries loading the same file get two modules, and the file's globals are its own."""
    first, second = load("weather.py"), load("weather.py", valves={"units": "imperial"})
    one, two = get(first, "get_weather").func.__self__, get(second, "get_weather").func.__self__
    assert type(one) is not type(two)
    assert (one.valves.units, two.valves.units) == ("metric", "imperial")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"path": "missing.py"}, f"tools 't': {WHERE}/missing.py: no such file or folder"),
        ({}, "tools 't': give exactly one of `path` or `module`"),
        (
            {"path": "plain.py", "module": "tests.fixtures.tools.plain"},
            "tools 't': give exactly one of `path` or `module`",
        ),
        (
            {"path": "broken.py"},
            f"tools 't': {WHERE}/broken.py:6: cannot be imported: ModuleNotFoundError: No module "
            "named 'toolbridge_missing_dependency' "
            "(requirements not installed: toolbridge-missing-dependency)",
        ),
        (
            {"path": "unschemable.py"},
            f"tools 't': {WHERE}/unschemable.py: unschemable:Tools.connect: parameter 'sock': "
            "its type socket.socket has no JSON schema",
        ),
        (
            {"module": "tests.fixtures.tools.nowhere"},
            "tools 't': module 'tests.fixtures.tools.nowhere' cannot be imported: "
            "ModuleNotFoundError: No module named 'tests.fixtures.tools.nowhere'",
        ),
        (
            {"module": "tests.fixtures.tools.plain:nowhere"},
            "tools 't': tests.fixtures.tools.plain: has no function 'nowhere'",
        ),
        (
            {"path": "weather.py", "valves": {"units": "kelvin", "api_key": 3}},
            f"tools 't': {WHERE}/weather.py: valves.units: Input should be 'metric' or "
            "'imperial'; valves.api_key: Input should be a valid string",
        ),
    ],
)
def test_source_errors(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(SourceError) as caught:
        load_tools(LocalTools(id="t", **entry), FIXTURES)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def broken(:\n    pass\n", "{file}:1: invalid Python: invalid syntax"),
        (
            "raise RuntimeError('no network here')\n",
            "{file}:1: cannot be imported: RuntimeError: no network here",
        ),
        ("import sys\nsys.exit(3)\n", "{file}:2: cannot be imported: SystemExit: 3"),
        (
            "class Tools:\n    def __init__(self, token):\n        self.token = token\n",
            "{file}: Tools() failed: TypeError: Tools.__init__() missing 1 required positional "
            "argument: 'token'",
        ),
        (
            "def lookup(city: 'Nowhere') -> str:\n    return city\n",
            "{file}: snippet:lookup: cannot read its signature: NameError: name 'Nowhere' is not "
            "defined",
        ),
        (
            "from pydantic import BaseModel, Field\n"
            "class Inner(BaseModel):\n"
            "    x: int = Field(alias='bad name')\n"
            "def nest(inner: Inner) -> None: ...\n",
            "{file}: snippet:nest: property 'bad name' does not match ^[A-Za-z0-9_.-]{{1,64}}$",
        ),
    ],
)
def test_module_errors(tmp_path: Path, source: str, message: str) -> None:
    """A file that cannot become tools is a SourceError naming the file and the cause."""
    file = tmp_path / "snippet.py"
    file.write_text(source)
    with pytest.raises(SourceError) as caught:
        load_tools(LocalTools(id="t", path=str(file)), tmp_path)
    assert str(caught.value) == "tools 't': " + message.format(file=file)


CORNERS = '''
import typing
from typing import Annotated, Any

import typing_extensions
from pydantic import Field


class Marker:
    def __repr__(self) -> str:
        return "MARKER"


class Point(typing_extensions.TypedDict):
    x: int
    y: int


class OldPoint(typing.TypedDict):
    x: int


def corners(
    a: str = None,
    b: Annotated[int, Field(description="B.")] = None,
    c: Any = None,
    e: int = Field(2, ge=0, description="E."),
    größe: int = 1,
    marker: Any = Marker(),
) -> OldPoint:
    """Corner cases.

    :param a: A.
    :param b: Not used: the Annotated description wins.
    :param e: E, from the docstring: it wins over Field's, as in Open WebUI.
    """
    return {"x": 1}


def point() -> Point:
    return {"x": 1, "y": 2}


def wordy() -> None:
    """WORDS"""
'''


async def test_schema_corner_cases(tmp_path: Path) -> None:
    """`x: str = None` admits null, descriptions from `Field` win, and what cannot be kept is
    noted: a renamed argument, a default without JSON, an output schema, a long description."""
    (tmp_path / "snippet.py").write_text(CORNERS.replace("WORDS", "word " * 300))
    conversion = load_tools(LocalTools(id="t", path="snippet.py"), tmp_path)
    corners, point, wordy = conversion.tools
    assert corners.input_schema == {
        "type": "object",
        "properties": {
            "a": {
                "anyOf": [{"type": "string"}, {"type": "null"}],
                "default": None,
                "description": "A.",
            },
            "b": {
                "anyOf": [{"type": "integer"}, {"type": "null"}],
                "default": None,
                "description": "B.",
            },
            "c": {"default": None},
            "e": {
                "default": 2,
                "description": "E, from the docstring: it wins over Field's, as in Open WebUI.",
                "minimum": 0,
                "type": "integer",
            },
            "groe": {"default": 1, "type": "integer"},
            "marker": {},
        },
        "additionalProperties": False,
    }
    assert corners.notes == (
        Note(
            kind="argument-renamed",
            message="python parameter 'größe' is the argument 'groe'",
            where="python snippet:corners",
        ),
        Note(
            kind="output-schema-skipped",
            message="no output schema: PydanticUserError: Please use `typing_extensions.TypedDict` "
            "instead of `typing.TypedDict` on Python < 3.12.",
            where="python snippet:corners",
        ),
        Note(
            kind="schema-warning",
            message="Default value MARKER is not JSON serializable; excluding default from JSON "
            "schema [non-serializable-default]",
            where="python snippet:corners",
        ),
    )
    assert point.output_schema == {
        "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}},
        "required": ["x", "y"],
        "type": "object",
    }
    assert (len(wordy.description), wordy.description[-2:]) == (1020, "d\u2026")
    assert wordy.notes == (
        Note(
            kind="description-shortened",
            message="description cut from 1499 to 1024 characters",
            where="python snippet:wordy",
        ),
    )
    result = await call_function(get(conversion, "corners"), {"groe": 3})
    assert result == ToolResult(ok=True, content_type="application/json", result={"x": 1})
    # The parameter's own name is not an argument: dropped, as every unknown argument is.
    result = await call_function(get(conversion, "corners"), {"größe": "x"})
    assert result == ToolResult(ok=True, content_type="application/json", result={"x": 1})


def test_folder_of_nothing(tmp_path: Path) -> None:
    (tmp_path / "_private.py").write_text("def hidden() -> None: ...\n")
    conversion = load_tools(LocalTools(id="t", path="."), tmp_path)
    assert conversion.tools == ()
    assert conversion.notes == (
        Note(kind="no-tools", message="no public function to offer", where=str(tmp_path)),
    )


# -- docstrings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("docstring", "expected"),
    [
        (None, ("", {})),
        ("Just a line.", ("Just a line.", {})),
        (
            """Paragraphs are unwrapped,
            lists are not:

            - one
            - two
              continued
            """,
            ("Paragraphs are unwrapped, lists are not:\n\n- one\n- two\n  continued", {}),
        ),
        (
            """Find a book.

            Searches the catalogue.

            :param title: Words of the title.
            :param int year: The year,
                or none.
            :type year: int
            :returns: The books.
            """,
            (
                "Find a book.\n\nSearches the catalogue.",
                {"title": "Words of the title.", "year": "The year, or none."},
            ),
        ),
        (
            """Find a book.

            Args:
                title (str): Words of the
                    title.
                year: The year.
                **filters: More filters.

            Returns:
                books: not a parameter.
            """,
            (
                "Find a book.",
                {"title": "Words of the title.", "year": "The year.", "filters": "More filters."},
            ),
        ),
        (
            """Find a book.

            Parameters
            ----------
            title : str
                Words of the title.
            """,
            ("Find a book.", {}),
        ),
    ],
)
def test_parse_docstring(docstring: str | None, expected: tuple[str, dict[str, str]]) -> None:
    assert parse_docstring(docstring) == expected


def test_frontmatter() -> None:
    text = """
    title: My Tool
    Author: someone
    requirements: requests, beautifulsoup4>=4.12
    This line is prose.
    """
    assert frontmatter(text) == {
        "title": "My Tool",
        "author": "someone",
        "requirements": "requests, beautifulsoup4>=4.12",
    }
    assert frontmatter(None) == {}


# -- calls -----------------------------------------------------------------------------------


async def test_arguments_arrive_as_their_types() -> None:
    """A nested model arrives as the model, an enum as the enum, a date as a date."""
    fn = get(load("kitchen.py"), "order")
    arguments = {
        "item": "pizza",
        "quantity": 2,
        "price": 9.5,
        "gift": False,
        "size": "large",
        "toppings": ["olives"],
        "extras": {"salad": 1},
        "address": {"street": "Rue 1", "zip_code": "75001"},
        "when": "2025-05-01",
    }
    assert await call_function(fn, arguments) == ToolResult(
        ok=True,
        content_type="application/json",
        result={
            "item": "str",
            "quantity": "int",
            "price": "float",
            "gift": "bool",
            "size": "Size",
            "crust": "str",
            "note": "NoneType",
            "toppings": "list",
            "extras": "dict",
            "address": "Address",
            "when": "date",
        },
    )


async def test_invalid_arguments() -> None:
    fn = get(load("kitchen.py"), "order")
    arguments = {
        "quantity": "two",
        "price": 1,
        "gift": True,
        "size": "huge",
        "toppings": ["olives", None],
        "address": {"street": "Rue 1", "zip_code": "1"},
        "coupon": "FREE",
    }
    with pytest.raises(InvalidArguments) as caught:
        await call_function(fn, arguments)
    assert caught.value.problems == [
        ("$.item", "Field required"),
        ("$.quantity", "Input should be a valid integer, unable to parse string as an integer"),
        ("$.size", "Input should be 'small' or 'large'"),
        ("$.toppings[1]", "Input should be a valid string"),
        ("$.address.zip_code", "String should match pattern '^[0-9]{5}$'"),
    ]  # `coupon`, unknown, is dropped (with a log line), as Open WebUI drops it
    with pytest.raises(InvalidArguments) as caught:
        await call_function(fn, ["pizza"])  # type: ignore[arg-type]
    assert caught.value.problems == [("$", "expected an object, found an array")]


async def test_async_tool_with_user_valves_and_events() -> None:
    fn = get(load("weather.py", valves={"api_key": "k"}), "get_weather")
    events: list[Any] = []
    result = await call_function(
        fn, {}, user={"id": "u1", "name": "Ada", "valves": {"home": "Lyon"}}, on_event=events.append
    )
    assert result == ToolResult(
        ok=True,
        content_type="text/plain",
        result="Lyon: sunny, 21 °C (asked by Ada, key set: True)",
    )
    assert events == [
        {"type": "status", "data": {"description": "asking about Lyon", "done": False}}
    ]


EMITTING = """
import asyncio
import inspect


class Tools:
    async def tell(self, text: str, __event_emitter__=None) -> list:
        \"\"\"Tell it, as Open WebUI tools do: a task that emits beside the work.\"\"\"
        await asyncio.create_task(__event_emitter__({"type": "status", "data": {"text": text}}))
        return [asyncio.iscoroutinefunction(__event_emitter__),
                inspect.iscoroutinefunction(__event_emitter__)]

    def tell_now(self, text: str, __event_emitter__=None) -> bool:
        \"\"\"Tell it from a sync tool: the event goes as it is called.\"\"\"
        __event_emitter__({"type": "status", "data": {"text": text}})
        return inspect.iscoroutinefunction(__event_emitter__)
"""


async def test_an_async_tool_gets_an_async_emitter_and_a_sync_one_a_plain_function(
    tmp_path: Path,
) -> None:
    (tmp_path / "emitting.py").write_text(EMITTING)
    conversion = load_tools(LocalTools(id="t", path="emitting.py"), tmp_path)
    events: list[Any] = []
    told = await call_function(get(conversion, "tell"), {"text": "a"}, on_event=events.append)
    now = await call_function(get(conversion, "tell_now"), {"text": "b"}, on_event=events.append)
    assert (told.result, now.result, events) == (
        [True, True],
        False,
        [{"type": "status", "data": {"text": "a"}}, {"type": "status", "data": {"text": "b"}}],
    )


async def test_user_valves_defaults_and_errors() -> None:
    fn = get(load("weather.py"), "forecast")
    result = await call_function(fn, {"city": "Oslo", "days": 5})
    assert result.result == [
        {"day": 1, "city": "Oslo", "sky": "clear"},
        {"day": 2, "city": "Oslo", "sky": "clear"},
        {"day": 3, "city": "Oslo", "sky": "clear"},
    ]
    with pytest.raises(InvalidArguments) as caught:
        await call_function(fn, {"city": "Oslo"}, user={"valves": {"max_days": 0}})
    assert caught.value.problems == [
        ("$.__user__.valves.max_days", "Input should be greater than or equal to 1")
    ]


async def test_injected_values_and_sync_events() -> None:
    fn = get(load("faults.py"), "report")
    events: list[Any] = []
    context = CallContext(metadata={"chat_id": "c1"})
    result = await call_function(fn, {}, context=context, user={"id": "u"}, on_event=events.append)
    assert result == ToolResult(
        ok=True,
        content_type="application/json",
        result={
            "metadata": {
                "chat_id": "c1",
                "user_id": "u",
                "message_id": None,
                "session_id": None,
                "files": [],
                "model": None,
            },
            "id": "t",
            "messages": [],
            "files": [],
            "request": None,
            "model": None,
        },
    )
    assert events == [
        {"type": "message", "data": {"content": "half way"}},
        {"type": "citation", "data": {"point": {"x": 1, "y": 2}}},
    ]
    # Without a sink, events are dropped and the tool still runs.
    assert (await call_function(fn, {})).ok


@pytest.mark.parametrize(
    ("name", "arguments", "expected"),
    [
        ("faults.py:explode", {"message": "boom"}, "ValueError: boom"),
        ("faults.py:silent_failure", {}, "RuntimeError"),
    ],
)
async def test_raising_tool_is_a_result(
    name: str, arguments: dict[str, Any], expected: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The caller sees `Type: message`; the traceback goes to the log only."""
    path, _, tool = name.partition(":")
    fn = get(load(path), tool)
    with caplog.at_level(logging.ERROR, logger="toolbridge.local.calls"):
        result = await call_function(fn, arguments)
    assert result == ToolResult(ok=False, content_type="text/plain", result=expected)
    assert [(r.getMessage(), r.exc_info is not None) for r in caplog.records] == [
        (f"local tool faults:Tools.{tool} raised", True)
    ]


@pytest.mark.parametrize("tool", ["slow", "slow_sync"])
async def test_timeout(tool: str) -> None:
    """A call that outlives `fn.timeout` answers at the timeout; the tool's thread is abandoned."""
    fn = get(load("faults.py"), tool)
    result = await call_function(dataclasses.replace(fn, timeout=0.05), {"seconds": 0.5})
    assert result == ToolResult(
        ok=False, content_type="text/plain", result="timed out after 0.05 s"
    )
    assert await call_function(dataclasses.replace(fn, timeout=10), {"seconds": 0}) == ToolResult(
        ok=True, content_type="text/plain", result="done"
    )


@pytest.mark.parametrize(
    ("name", "arguments", "content_type", "expected"),
    [
        ("kitchen.py:confirm", {"item": "tea"}, "application/json", {"item": "tea", "quantity": 1}),
        ("kitchen.py:receipt", {"total": 12.5}, "text/plain", "Receipt: 12.50 EUR"),
        ("faults.py:point", {}, "application/json", {"x": 3, "y": 4}),
        ("faults.py:nothing", {}, "application/json", None),
        ("plain.py:add", {"a": 2}, "application/json", 3),
        ("plain.py:shout", {"text": "hi"}, "text/plain", "HI"),
        (
            "plain.py:echo",
            {"text": "hi", "json": {"a": [1]}},
            "application/json",
            {"text": "hi", "json": {"a": [1]}, "trace": False},
        ),
    ],
)
async def test_results(
    name: str, arguments: dict[str, Any], content_type: str, expected: Any
) -> None:
    """Text stays text; models, dataclasses and JSON values are JSON; anything else is str()."""
    path, _, tool = name.partition(":")
    result = await call_function(get(load(path), tool), arguments)
    assert result == ToolResult(ok=True, content_type=content_type, result=expected)


def test_an_answer_that_cannot_be_made_json_is_a_failed_call() -> None:
    """A dict that holds itself: the tool ran, its answer failed (not the gateway, a 500)."""
    from toolbridge.local.results import function_result

    looped: dict[str, Any] = {}
    looped["self"] = looped
    assert function_result(looped) == ToolResult(
        ok=False,
        content_type="text/plain",
        result="the tool's answer cannot be sent: ValueError: Circular reference detected (id "
        "repeated)",
    )


# -- the bundled demo ------------------------------------------------------------------------


def test_demo_config_loads() -> None:
    """The demo's two sources load: six notes operations and the clock's three tools."""
    config = demo_config("http://127.0.0.1:9999")
    status = load_server(config.servers[0], DocumentStore(cache_dir=None), config.base_dir)
    assert status.error is None
    assert status.conversion is not None
    assert [(t.name, t.http.base_url) for t in status.conversion.tools] == [
        (name, "http://127.0.0.1:9999")
        for name in ("listNotes", "createNote", "getNote", "deleteNote", "updateNote", "getStatus")
    ]
    clock = load_tools(config.tools[0], config.base_dir)
    assert clock.notes == ()
    assert [summary(t) for t in clock.tools] == [
        {
            "name": "now",
            "original_name": "now",
            "description": "Tell the current date and time.\n\nAnswers in the caller's timezone "
            "when they set one, else in the server's. Use it whenever the answer depends on "
            "today's date or the time of day.",
            "input_schema": {"type": "object", "properties": {}, "additionalProperties": False},
            "output_schema": None,
            "annotations": READ_ONLY,
            "source": "clock",
            "function": "clock:Tools.now",
            "injected": ("__user__",),
            "is_async": False,
            "notes": (),
        },
        {
            "name": "days_between",
            "original_name": "days_between",
            "description": "Count the days from one date to another.\n\n"
            "The answer is negative when `end` comes before `start`.",
            "input_schema": {
                "type": "object",
                "properties": {
                    "start": {"description": "The first date, as YYYY-MM-DD.", "type": "string"},
                    "end": {"description": "The second date, as YYYY-MM-DD.", "type": "string"},
                },
                "required": ["start", "end"],
                "additionalProperties": False,
            },
            "output_schema": None,
            "annotations": READ_ONLY,
            "source": "clock",
            "function": "clock:Tools.days_between",
            "injected": (),
            "is_async": False,
            "notes": (),
        },
        {
            "name": "convert_time",
            "original_name": "convert_time",
            "description": "Convert a date and time from one timezone to another.",
            "input_schema": {
                "type": "object",
                "properties": {
                    "time": {
                        "description": "The date and time, as YYYY-MM-DDTHH:MM (ISO 8601), "
                        "without an offset.",
                        "type": "string",
                    },
                    "to_timezone": {
                        "description": "The timezone to convert to, an IANA name such as "
                        '"Asia/Tokyo".',
                        "type": "string",
                    },
                    "from_timezone": {
                        "default": "UTC",
                        "description": "The timezone `time` is in.",
                        "type": "string",
                    },
                },
                "required": ["time", "to_timezone"],
                "additionalProperties": False,
            },
            "output_schema": None,
            "annotations": READ_ONLY,
            "source": "clock",
            "function": "clock:Tools.convert_time",
            "injected": (),
            "is_async": False,
            "notes": (),
        },
    ]
    assert clock.modules[0].frontmatter == {
        "title": "Clock",
        "author": "toolbridge",
        "version": "1.0.0",
        "description": "The current date and time in any timezone, and the days between two dates.",
    }


async def test_demo_clock_calls() -> None:
    clock = load_tools(demo_config("http://x").tools[0], DEMO_SPEC.parent)
    berlin = load_tools(
        LocalTools(id="clock", path="tools/clock.py", valves={"timezone": "Europe/Berlin"}),
        DEMO_SPEC.parent,
    )
    now = (await call_function(get(clock, "now"), {})).result
    assert now["timezone"] == "UTC"
    assert datetime.fromisoformat(now["datetime"]).utcoffset() is not None
    mine = await call_function(get(berlin, "now"), {}, user={"valves": {"timezone": "Asia/Tokyo"}})
    assert mine.result["timezone"] == "Asia/Tokyo"
    assert (await call_function(get(berlin, "now"), {})).result["timezone"] == "Europe/Berlin"
    days = await call_function(
        get(clock, "days_between"), {"start": "2025-01-01", "end": "2025-03-01"}
    )
    assert days == ToolResult(ok=True, content_type="application/json", result=59)
    converted = await call_function(
        get(clock, "convert_time"), {"time": "2025-06-01T12:00", "to_timezone": "Asia/Tokyo"}
    )
    assert converted == ToolResult(
        ok=True, content_type="text/plain", result="2025-06-01T21:00+09:00"
    )
    with pytest.raises(SourceError) as caught:
        load_tools(
            LocalTools(id="clock", path="tools/clock.py", valves={"timezone": "Mars/Base"}),
            DEMO_SPEC.parent,
        )
    assert str(caught.value).endswith(
        "valves.timezone: Value error, unknown timezone 'Mars/Base' "
        "(expected an IANA name such as 'Europe/Paris')"
    )


class _Request:
    """An httpx2 request as openapi-core reads one."""

    def __init__(self, request: httpx2.Request) -> None:
        url = urlsplit(str(request.url))
        self.host_url = f"{url.scheme}://{url.netloc}"
        self.path = url.path
        self.method = request.method.lower()
        self.body: bytes | None = request.content or None
        self.content_type = request.headers.get("content-type", "")
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(list(request.url.params.multi_items())),
            header=Headers(list(request.headers.items())),
            cookie=ImmutableMultiDict(),
        )


class _Response:
    def __init__(self, response: httpx2.Response) -> None:
        self.data = response.content
        self.status_code = response.status_code
        self.content_type = response.headers.get("content-type", "")
        self.headers = Headers(list(response.headers.items()))


async def test_demo_service() -> None:
    """Every operation of the notes service, each exchange validated against its document."""
    spec = OpenAPI.from_file_path(str(DEMO_SPEC))
    app = create_demo_app(clock=lambda: datetime(2025, 2, 1, 12, 0, tzinfo=UTC))
    transport = httpx2.ASGITransport(app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1:8901") as client:

        async def send(method: str, path: str, **options: Any) -> tuple[int, Any]:
            response = await client.request(method, path, **options)
            spec.validate_response(_Request(response.request), _Response(response))
            return response.status_code, response.json() if response.content else None

        welcome = {
            "id": 1,
            "title": "Welcome",
            "body": "This is the toolbridge demo. Ask for your notes, add one, or pin what "
            "matters.",
            "tags": ["demo"],
            "pinned": True,
            "created_at": "2025-01-06T09:00:00Z",
            "updated_at": "2025-01-06T09:00:00Z",
        }
        groceries = {
            "id": 2,
            "title": "Groceries",
            "body": "Milk, eggs, coffee.",
            "tags": ["shopping"],
            "pinned": False,
            "created_at": "2025-01-07T18:30:00Z",
            "updated_at": "2025-01-07T18:30:00Z",
        }
        assert await send("GET", "/status") == (
            200,
            {"status": "ok", "notes": 3, "version": "1.0.0"},
        )
        status, notes = await send("GET", "/notes")
        assert (status, [n["id"] for n in notes]) == (200, [1, 3, 2])
        assert await send("GET", "/notes", params={"tag": "shopping"}) == (200, [groceries])
        assert await send("GET", "/notes/1") == (200, welcome)

        created = await send("POST", "/notes", json={"title": "Call Bob", "tags": ["todo"]})
        stamp = "2025-02-01T12:00:00Z"
        bob = {"id": 4, "title": "Call Bob", "body": "", "tags": ["todo"], "pinned": False}
        assert created == (201, {**bob, "created_at": stamp, "updated_at": stamp})
        status, notes = await send("GET", "/notes")
        assert [n["id"] for n in notes] == [1, 4, 3, 2]

        changed = await send("PATCH", "/notes/2", json={"pinned": True, "body": "Milk."})
        assert changed == (
            200,
            {**groceries, "pinned": True, "body": "Milk.", "updated_at": stamp},
        )
        assert await send("DELETE", "/notes/3") == (204, None)
        assert await send("GET", "/notes/3") == (404, {"error": "there is no note with id '3'"})
        assert await send("DELETE", "/notes/3") == (404, {"error": "there is no note with id '3'"})
        assert await send("PATCH", "/notes/9", json={"title": "x"}) == (
            404,
            {"error": "there is no note with id '9'"},
        )
        assert await send("GET", "/status") == (
            200,
            {"status": "ok", "notes": 3, "version": "1.0.0"},
        )

        invalid: list[tuple[str, str, dict[str, Any], str]] = [
            ("POST", "/notes", {"json": {"body": "no title"}}, "title: Field required"),
            (
                "POST",
                "/notes",
                {"json": {"title": "", "pinned": "yes", "colour": "red"}},
                "title: String should have at least 1 character; pinned: Input should be a "
                "valid boolean; colour: Extra inputs are not permitted",
            ),
            ("POST", "/notes", {"content": b"{not json"}, "the body is not valid JSON"),
            ("POST", "/notes", {"json": ["a list"]}, "the body must be a JSON object"),
            ("PATCH", "/notes/1", {"json": {}}, "give at least one of title, body, tags, pinned"),
            (
                "PATCH",
                "/notes/1",
                {"json": {"tags": "one"}},
                "tags: Input should be a valid array",
            ),
        ]
        for method, path, options, error in invalid:
            assert await send(method, path, **options) == (422, {"error": error})

    # Outside the document: unknown paths and methods answer in the same error shape.
    async with httpx2.AsyncClient(transport=transport, base_url="http://demo") as client:
        missing = await client.get("/nowhere")
        assert (missing.status_code, missing.json()) == (404, {"error": "Not Found"})
        wrong = await client.put("/status")
        assert (wrong.status_code, wrong.json()) == (405, {"error": "Method Not Allowed"})


async def test_demo_apps_are_independent() -> None:
    """Each app starts from the same seeded notes; nothing is shared between apps."""
    for _ in range(2):
        transport = httpx2.ASGITransport(create_demo_app())
        async with httpx2.AsyncClient(transport=transport, base_url="http://demo") as client:
            assert (await client.delete("/notes/1")).status_code == 204
            status = (await client.get("/status")).json()
        assert status == {"status": "ok", "notes": 2, "version": "1.0.0"}


def test_install_requirements_installs_only_package_specifiers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opt-in; pip options, URLs and paths are refused, and `--` keeps the rest from being read
    as options."""
    tool = tmp_path / "needs.py"
    tool.write_text(
        '"""\ntitle: Needs\nrequirements: pytest, surely-not-installed-pkg[extra]>=1.0, '
        '--index-url=http://evil.test, ./local, git+https://x.test/y\n"""\n\n'
        "def ping() -> str:\n    return 'pong'\n"
    )
    ran: list[list[str]] = []

    def fake_run(command: list[str], **options: Any) -> subprocess.CompletedProcess[str]:
        ran.append(command)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    notes = install_requirements(tool)
    assert ran == [
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
            "--",
            "surely-not-installed-pkg[extra]>=1.0",
        ]
    ]
    assert [(n.kind, n.message) for n in notes] == [
        (
            "requirement-refused",
            "requirement '--index-url=http://evil.test' is not a package specifier; not installed",
        ),
        ("requirement-refused", "requirement './local' is not a package specifier; not installed"),
        (
            "requirement-refused",
            "requirement 'git+https://x.test/y' is not a package specifier; not installed",
        ),
    ]


async def test_a_method_behind_a_decorator_object_is_a_tool(tmp_path: Path) -> None:
    """`functools.lru_cache` makes a method an object (not a function), which Open WebUI offers
    as it offers any method: so does the gateway, by the function it wraps."""
    from toolbridge.local.loader import load_tools

    (tmp_path / "t.py").write_text(
        "import functools\n\n"
        "class Tools:\n"
        "    @functools.lru_cache(maxsize=8)\n"
        "    def cached(self, n: int) -> int:\n"
        '        """Double n."""\n'
        "        return n * 2\n"
    )
    (tool,) = load_tools(LocalTools(id="t", path="t.py"), tmp_path).tools
    assert (tool.name, tool.description, tool.input_schema["properties"]) == (
        "cached",
        "Double n.",
        {"n": {"type": "integer"}},
    )
    assert isinstance(tool.target, PythonFunction)
    assert (await call_function(tool.target, {"n": 4})).result == 8


def test_an_entry_that_installs_notes_each_refused_requirement_once(tmp_path: Path) -> None:
    """Not again as `requirement-missing` (toolbridge installs them when asked): this entry asks."""
    from toolbridge.local.loader import load_tools

    (tmp_path / "needs.py").write_text(
        '"""\ntitle: Needs\nrequirements: ./local\n"""\n\ndef ping() -> str:\n    return "pong"\n'
    )
    entry = LocalTools(id="needs", path="needs.py", install_requirements=True)
    plain = LocalTools(id="needs", path="needs.py")
    installing = load_tools(entry, tmp_path).notes
    not_installing = load_tools(plain, tmp_path).notes
    assert ([n.kind for n in installing], [n.kind for n in not_installing]) == (
        ["requirement-refused"],
        ["requirement-missing"],
    )


def test_an_entry_timeout_applies_to_its_tools() -> None:
    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "tools"
    entry = LocalTools(id="w", path=str(fixtures / "weather.py"), timeout=2.5)
    conversion = load_tools(entry, Path.cwd())
    assert {t.target.timeout for t in conversion.tools if isinstance(t.target, PythonFunction)} == {
        2.5
    }


def test_a_file_whose_top_level_does_not_finish_is_refused_in_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """`while True: ...` at the top level would hold the start (or the admin request) forever:
    after IMPORT_TIMEOUT the file is refused and what loads it goes on. It is said in the log
    while it runs; while it still runs, loading it again (each reload) refuses it at once."""
    from toolbridge.local import imports

    monkeypatch.setattr(imports, "IMPORT_TIMEOUT", 0.3)
    monkeypatch.setattr(imports, "SLOW_IMPORT", 0.1)
    file = tmp_path / "stuck.py"
    file.write_text("import time\ntime.sleep(3)\ndef late() -> str:\n    return 'late'\n")
    with (
        caplog.at_level(logging.WARNING, logger="toolbridge.local.imports"),
        pytest.raises(SourceError) as caught,
    ):
        load_tools(LocalTools(id="t", path=str(file)), tmp_path)
    with pytest.raises(SourceError) as again:  # a reload: not run again, nor waited for
        load_tools(LocalTools(id="t", path=str(file)), tmp_path)
    assert (str(caught.value), str(again.value), caplog.messages) == (
        f"tools 't': {file}: its top level did not finish within 0.3 s (it still runs, in a "
        "thread of its own, until the gateway restarts)",
        f"tools 't': {file}: its top level did not finish within 0.3 s when it was loaded "
        "before, and still runs: it is not run again until it changes or the gateway restarts",
        [f"tools 't': {file}: its top level has run 0.1 s; it is given up at 0.3 s"],
    )
    name = "toolbridge-load-_toolbridge_tools_t__stuck"
    assert [t.name for t in threading.enumerate() if t.name == name] == [name]  # the first only
    file.write_text("def fine() -> str:\n    return 'fine'\n")
    assert [
        tool.name for tool in load_tools(LocalTools(id="t", path=str(file)), tmp_path).tools
    ] == ["fine"]


def test_a_file_the_starting_process_found_stuck_is_not_run_again_in_a_worker(
    tmp_path: Path,
) -> None:
    """`serve --workers` checks the config first, then each worker loads it: a file whose top
    level outlived its time in the check is refused at once in each worker (it waited 60 s
    in each); the same file edited runs."""
    import json

    from toolbridge.file_stamps import stamp
    from toolbridge.local import imports

    file = tmp_path / "stuck_in_check.py"
    file.write_text("def fine() -> str:\n    return 'fine'\n")
    sent = json.dumps([("import", str(file), stamp(file))])  # what the check hands on
    imports.taken_as_stuck(json.loads(sent))
    with pytest.raises(SourceError) as caught:
        load_tools(LocalTools(id="w", path=str(file)), tmp_path)
    file.write_text("def fine() -> str:\n    return 'edited'\n")
    edited = load_tools(LocalTools(id="w", path=str(file)), tmp_path)
    assert (str(caught.value), [t.name for t in edited.tools]) == (
        f"tools 'w': {file}: its top level did not finish within 60 s when it was loaded "
        "before, and still runs: it is not run again until it changes or the gateway restarts",
        ["fine"],
    )


def test_a_module_whose_import_does_not_finish_is_refused_in_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `module:` entry is imported as a file is run: bounded, and not again while it runs."""
    from toolbridge.local import imports

    monkeypatch.setattr(imports, "IMPORT_TIMEOUT", 0.3)
    (tmp_path / "toolbridge_slow_module.py").write_text("import time\ntime.sleep(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = LocalTools(id="m", module="toolbridge_slow_module")
    with pytest.raises(SourceError) as caught:
        load_tools(entry, tmp_path)
    with pytest.raises(SourceError) as again:
        load_tools(entry, tmp_path)
    assert (str(caught.value), str(again.value)) == (
        "tools 'm': module 'toolbridge_slow_module': its import did not finish within 0.3 s (it "
        "still runs, in a thread of its own, until the gateway restarts)",
        "tools 'm': module 'toolbridge_slow_module': its import did not finish within 0.3 s when "
        "it was loaded before, and still runs: it is not run again until it changes or the "
        "gateway restarts",
    )


def test_a_tools_or_filter_class_whose_init_does_not_finish_is_refused_in_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`Tools()` and `Filter()` are the file's own code too: one that never returns would hold
    the start, each reload, or an admin upload's answer for ever."""
    from toolbridge.config import Config, FilterEntry
    from toolbridge.filters.loader import FilterCache, load_filters
    from toolbridge.local import imports

    monkeypatch.setattr(imports, "IMPORT_TIMEOUT", 0.3)
    tools = tmp_path / "stuck_tools.py"
    tools.write_text(
        "import time\nclass Tools:\n    def __init__(self):\n        time.sleep(2)\n"
        "    def late(self) -> str:\n        return 'late'\n"
    )
    filters = tmp_path / "stuck_filter.py"
    filters.write_text(
        "import time\nclass Filter:\n    def __init__(self):\n        time.sleep(2)\n"
        "    def inlet(self, body: dict) -> dict:\n        return body\n"
    )
    with pytest.raises(SourceError) as tools_refused:
        load_tools(LocalTools(id="t", path=str(tools)), tmp_path)
    with pytest.raises(SourceError) as again:
        load_tools(LocalTools(id="t", path=str(tools)), tmp_path)
    config = Config(filters=(FilterEntry(id="f", path=str(filters)),), base_dir=tmp_path)
    (filter_refused,) = load_filters(config, FilterCache())
    assert (str(tools_refused.value), filter_refused.error, str(again.value)) == (
        f"tools 't': {tools}: Tools() did not finish within 0.3 s (it still runs, in a thread "
        "of its own, until the gateway restarts)",
        f"filters 'f': {filters}: Filter() did not finish within 0.3 s (it still runs, in a "
        "thread of its own, until the gateway restarts)",
        f"tools 't': {tools}: Tools() did not finish within 0.3 s when it was loaded before, "
        "and still runs: it is not run again until it changes or the gateway restarts",
    )


async def test_a_file_that_takes_the_current_loop_at_its_top_level_loads_and_runs(
    tmp_path: Path,
) -> None:
    """As in Open WebUI, where the top level runs inside the server's running loop: the file
    gets the loop its async tools run on (its top level runs in a thread of its own)."""
    from toolbridge.local.calls import call_function
    from toolbridge.tools import PythonFunction, ToolResult

    file = tmp_path / "looper.py"
    file.write_text(
        "import asyncio\n"
        "LOOP = asyncio.get_event_loop()\n"
        "class Tools:\n"
        "    async def same_loop(self) -> bool:\n"
        "        return asyncio.get_running_loop() is LOOP\n"
    )
    tool = load_tools(LocalTools(id="t", path=str(file)), tmp_path).tools[0]
    assert isinstance(tool.target, PythonFunction)
    assert await call_function(tool.target, {}) == ToolResult(
        ok=True, content_type="application/json", result=True
    )


ANSWERS_OF_EVERY_KIND = """\
import asyncio
import itertools
import math


class Tools:
    def streamed(self) -> str:
        yield "Hello, "
        yield "world"

    def rows(self) -> list:
        yield {"id": 1}
        yield {"id": 2}

    def endless(self) -> str:
        for n in itertools.count():
            yield "x"

    def broken(self) -> str:
        yield "half"
        raise RuntimeError("the feed went away")

    async def streamed_later(self) -> str:
        for word in ("async ", "pieces"):
            await asyncio.sleep(0)
            yield word

    def text_bytes(self) -> bytes:
        return "caf\\u00e9".encode()

    def binary(self) -> bytes:
        return bytes([0, 255, 1])

    def not_a_number(self) -> dict:
        return {"ratio": math.nan, "ok": 1}
"""


async def test_generators_bytes_and_nan_answers_are_what_they_hold(tmp_path: Path) -> None:
    """A generator is read to its end (capped: one may never end; what it raises fails the
    call), bytes are their text or base64, NaN is null: never `<generator object ...>`."""
    from toolbridge.local import results

    (tmp_path / "kinds.py").write_text(ANSWERS_OF_EVERY_KIND)
    conversion = load_tools(LocalTools(id="k", path="kinds.py"), tmp_path)

    async def answer(name: str) -> tuple[bool, Any]:
        result = await call_function(get(conversion, name), {})
        return result.ok, result.result

    endless_ok, endless = await answer("endless")
    assert {
        name: await answer(name)
        for name in ("streamed", "rows", "broken", "streamed_later", "text_bytes", "binary")
    } == {
        "streamed": (True, "Hello, world"),
        "rows": (True, [{"id": 1}, {"id": 2}]),
        "broken": (False, "RuntimeError: the feed went away"),
        "streamed_later": (True, "async pieces"),
        "text_bytes": (True, "café"),
        "binary": (True, {"base64": "AP8B"}),
    }
    assert (endless_ok, endless) == (
        True,
        "x" * results.MAX_PIECES
        + f"… (the tool's generator was stopped after {results.MAX_PIECES} pieces)",
    )
    nan = await call_function(get(conversion, "not_a_number"), {})
    assert orjson.loads(orjson.dumps(nan.result)) == {"ratio": None, "ok": 1}
