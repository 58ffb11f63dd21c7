"""The README's console examples are real: each `$ toolbridge ...` block prints what it shows.

Blocks that elide output with `...` are run too, and must succeed.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from toolbridge import cli

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```console\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
"""The `toolbridge` examples; the curl tour runs in tests/e2e/test_e2e_serve.py."""


@pytest.mark.parametrize("block", BLOCKS, ids=[b.splitlines()[0][2:50] for b in BLOCKS])
def test_console_example(
    block: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(README.parent)
    command, _, shown = block.partition("\n")
    argv = shlex.split(command.removeprefix("$ "))
    assert argv[0] == "toolbridge"
    assert cli.main(argv[1:]) == 0
    out = capsys.readouterr().out
    if "..." not in shown:
        assert out == shown
