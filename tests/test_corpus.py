"""The acceptance run over the shared corpus of real OpenAPI documents.

For every document in MANIFEST.tsv, as a user would run it: `toolbridge check --spec F` exits 0,
and `toolbridge tools --spec F --format X --json` yields exactly one tool per operation for
each of the five formats, with valid and unique names, and schemas that are valid JSON Schema
2020-12 and accepted by that provider (tests/providers.py encodes each provider's rules).
"""

from __future__ import annotations

import os
import re
from typing import Any

import orjson
import pytest

from tests import providers
from tests.corpus import CORPUS, MISSING, ROWS
from toolbridge import cli
from toolbridge.formats.render import FORMATS
from toolbridge.openapi.convert import convert
from toolbridge.openapi.documents import DocumentStore, cache_dir_from, location_to_uri

pytestmark = pytest.mark.corpus

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")


def _run(capsysbinary: pytest.CaptureFixture[bytes], *argv: str) -> tuple[int, bytes]:
    code = cli.main(list(argv))
    return code, capsysbinary.readouterr().out


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """One parse cache for the whole session, so each YAML document is parsed once."""
    monkeypatch.setenv("TOOLBRIDGE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


def test_the_shared_corpus_is_there() -> None:
    """Every corpus test is one per document: without the corpus there are none, and this says
    why (the run fails; the tests that need no corpus still run)."""
    assert MISSING is None, MISSING
    assert len(ROWS) == 42


@pytest.mark.parametrize("row", ROWS, ids=[r["file"] for r in ROWS])
def test_check_exits_zero(row: dict[str, str], capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    """`toolbridge check --spec F --json` succeeds and reports every operation as a tool."""
    code, out = _run(capsysbinary, "check", "--spec", str(CORPUS / row["file"]), "--json")
    assert code == 0
    report = orjson.loads(out)
    (source,) = report["sources"]
    expected = int(row["operations"])
    assert (source["ok"], source["operations"], source["tools"]) == (True, expected, expected)
    assert source["validation"]["ran"] is True
    assert report["summary"]["usable"] is True


@pytest.mark.parametrize("row", ROWS, ids=[r["file"] for r in ROWS])
def test_tools_in_every_format(
    row: dict[str, str], capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """Each format lists one tool per operation, validly and uniquely named, provider-accepted."""
    expected = int(row["operations"])
    names_by_format: dict[str, list[str]] = {}
    problems: list[str] = []
    for fmt in FORMATS:
        code, out = _run(
            capsysbinary, "tools", "--spec", str(CORPUS / row["file"]), "--format", fmt, "--json"
        )
        assert code == 0
        tools: list[dict[str, Any]] = orjson.loads(out)["tools"]
        assert len(tools) == expected
        names = [_name(fmt, tool) for tool in tools]
        assert len(set(names)) == len(names)
        assert all(NAME.match(name) for name in names)
        names_by_format[fmt] = names
        for tool in tools:
            problems.extend(f"{fmt} {_name(fmt, tool)}: {p}" for p in providers.check(fmt, tool))
    assert problems[:20] == []
    assert all(names == names_by_format["openai"] for names in names_by_format.values())


@pytest.mark.parametrize("row", ROWS, ids=[r["file"] for r in ROWS])
def test_canonical_schemas_are_valid(row: dict[str, str]) -> None:
    """Every canonical input and output schema is valid JSON Schema 2020-12 and self-contained."""
    store = DocumentStore(cache_dir=cache_dir_from(os.environ))
    conversion = convert(store, location_to_uri(str(CORPUS / row["file"])))
    problems = []
    for tool in conversion.tools:
        problems.extend(providers.schema_problems(tool.input_schema, f"{tool.name} input"))
        if tool.output_schema is not None:
            problems.extend(providers.schema_problems(tool.output_schema, f"{tool.name} output"))
    assert problems[:10] == []


def _name(fmt: str, tool: dict[str, Any]) -> str:
    name = tool["function"]["name"] if fmt == "openai" else tool["name"]
    assert isinstance(name, str)
    return name
