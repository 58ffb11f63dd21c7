"""Finding the outside programs the tests use (tests/externals.py); installing them is what the
first run of the Prism and MCP 1.x tests does, on every fresh machine and in CI."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests import externals


def test_a_configured_program_is_used_as_it_is() -> None:
    python = Path(sys.executable)
    assert externals.prism({"TOOLBRIDGE_PRISM": str(python)}) == python
    assert externals.mcp1_python({"TOOLBRIDGE_MCP1_PYTHON": str(python)}) == python


@pytest.mark.parametrize(
    ("find", "variable"),
    [(externals.prism, "TOOLBRIDGE_PRISM"), (externals.mcp1_python, "TOOLBRIDGE_MCP1_PYTHON")],
)
def test_a_configured_program_that_is_not_there_says_so(
    find: object, variable: str, tmp_path: Path
) -> None:
    missing = tmp_path / "nothing"
    with pytest.raises(externals.Unavailable) as caught:
        find({variable: str(missing)})  # type: ignore[operator]
    assert str(caught.value) == f"{variable}={missing} is not an executable"


def test_a_failed_install_says_what_was_run_and_what_it_said() -> None:
    with pytest.raises(externals.Unavailable) as caught:
        externals._run([sys.executable, "-c", "import sys; sys.exit('no network')"], "npm ...")
    assert str(caught.value) == "`npm ...` exited with 1: no network"
