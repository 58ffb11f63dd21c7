"""The call log across reloads: a moved `audit.file` is closed, and no line is lost."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from tests.conftest import ROOT
from toolbridge.calllog import CallLog, open_audit_file
from toolbridge.config import Config
from toolbridge.gateway import Gateway
from toolbridge.policy import ANONYMOUS_ADMIN
from toolbridge.upstream.seam import MockUpstream, UpstreamResponse

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_a_retired_log_writes_out_closes_its_file_and_passes_later_lines_on() -> None:
    old_stream, new_stream = io.BytesIO(), io.BytesIO()
    old = CallLog(old_stream, owned=True)
    new = CallLog(new_stream, max_delay=0)
    old.record({"tool": "a"})  # buffered: no loop here, so written at once
    old.retire(new)
    old.record({"tool": "late"})  # a call that started under the old config ends now
    new.flush()
    assert (old_stream.closed, [json.loads(x)["tool"] for x in new_stream.getvalue().split()]) == (
        True,
        ["late"],
    )


def open_logs(folder: Path) -> list[str]:
    """The files of `folder` this process holds open."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder)):
            found.append(Path(target).name)
    return sorted(found)


async def test_moving_the_audit_file_back_and_forth_leaves_one_open(tmp_path: Path) -> None:
    """Forty reloads that changed `audit.file` left forty files open, one per reload."""
    names = iter(["b.jsonl", "a.jsonl"] * 10)
    spec = {"id": "notes", "spec": str(ROOT / "specs/demo.yaml"), "base_url": "http://n.test"}

    def config(name: str) -> Config:
        return Config.model_validate(
            {"servers": [spec], "audit": {"file": name}, "base_dir": tmp_path}
        )

    def answer(request: object) -> UpstreamResponse:
        return UpstreamResponse(status=200, headers=(("content-type", "application/json"),))

    gateway = Gateway(
        config("a.jsonl"), upstream=MockUpstream(answer), reread=lambda: config(next(names))
    )
    async with gateway:
        for _ in range(20):
            await gateway.call(ANONYMOUS_ADMIN, "getStatus", {})
            await gateway.reload()
        await gateway.call(ANONYMOUS_ADMIN, "getStatus", {})
        held = open_logs(tmp_path)
    lines = [
        *(tmp_path / "a.jsonl").read_text().splitlines(),
        *(tmp_path / "b.jsonl").read_text().splitlines(),
    ]
    assert (held, len(lines)) == (["a.jsonl"], 21)


def test_a_rotated_log_file_is_opened_anew_at_its_path(tmp_path: Path) -> None:
    """logrotate renames the file (or removes it): later lines go to a new file at the path,
    not into the renamed one, nor into a removed one, lost."""
    path = tmp_path / "calls.jsonl"
    log = open_audit_file(path)
    log.record({"n": 1})
    log.flush()
    path.rename(tmp_path / "calls.jsonl.1")
    log.record({"n": 2})
    log.flush()
    path.unlink()
    log.record({"n": 3})
    log.flush()
    log.retire(None)

    def numbers(file: Path) -> list[int]:
        return [json.loads(line)["n"] for line in file.read_text().splitlines()]

    assert (numbers(tmp_path / "calls.jsonl.1"), numbers(path)) == ([1], [3])
