"""Filters around tool calls, through `Gateway.call` in process: inlets that tidy or refuse,
outlets that redact or fail, scope, priority, Valves and UserValves, required filters, files,
loading errors and reloads.

The gateway serves the demo's notes document (its upstream a `MockUpstream`) and local tools
(`tests/fixtures/tools/faults.py`, `tests/fixtures/openwebui/notebook.py`); the filter files
are in `tests/fixtures/filters/`, written as community Open WebUI filters are.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.ticking import ticking
from toolbridge.config import Config
from toolbridge.errors import InvalidArguments
from toolbridge.gateway import Gateway
from toolbridge.local.context import CallContext
from toolbridge.policy import ANONYMOUS_ADMIN, Principal
from toolbridge.tools import ToolResult
from toolbridge.upstream.seam import MockUpstream, UpstreamRequest, UpstreamResponse

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
FILTERS = "tests/fixtures/filters"
NOTE = {"id": 1, "title": "Call ada@example.com", "body": "or bob@example.org"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Locations are shown relative to the working directory: fix it at the repository root."""
    monkeypatch.chdir(ROOT)


def answer(request: UpstreamRequest) -> UpstreamResponse:
    return UpstreamResponse(
        status=200, headers=(("content-type", "application/json"),), body=json.dumps(NOTE).encode()
    )


def gateway(*filters: dict[str, Any], base_dir: Path = ROOT) -> tuple[Gateway, MockUpstream]:
    config = Config.model_validate(
        {
            "servers": [
                {
                    "id": "notes",
                    "spec": str(ROOT / "specs/demo.yaml"),
                    "base_url": "http://notes.test",
                    "access": {"users": ["*"]},
                }
            ],
            "tools": [
                {
                    "id": "faults",
                    "path": str(ROOT / "tests/fixtures/tools/faults.py"),
                    "access": {"users": ["*"]},
                },
                {"id": "nb", "path": str(ROOT / "tests/fixtures/openwebui/notebook.py")},
            ],
            "filters": list(filters),
            "base_dir": base_dir,
        }
    )
    upstream = MockUpstream(answer)
    found = Gateway(config, upstream=upstream)
    found.load()
    return found, upstream


GUARD = {"id": "guard", "path": f"{FILTERS}/guard.py"}
REDACT = {"id": "redact", "path": f"{FILTERS}/redact_emails.py"}


async def test_inlet_tidies_and_outlet_redacts_remote_and_local_calls() -> None:
    gw, upstream = gateway(GUARD, REDACT)
    remote = await gw.call(ANONYMOUS_ADMIN, "getNote", {"noteId": 1})
    assert remote == ToolResult(
        ok=True,
        status=200,
        content_type="application/json",
        result={"id": 1, "title": "Call [email]", "body": "or [email]"},
    )
    local = await gw.call(ANONYMOUS_ADMIN, "echo", {"text": "  write to eve@example.net  "})
    assert local == ToolResult(ok=True, content_type="text/plain", result="write to [email]")
    assert len(upstream.requests) == 1


async def test_an_inlet_that_raises_refuses_the_call() -> None:
    """The caller reads the filter's message; neither the upstream nor the tool is called."""
    gw, upstream = gateway(GUARD)
    events: list[Any] = []
    refused = await gw.call(
        ANONYMOUS_ADMIN, "listNotes", {"tag": "x; DROP TABLE notes"}, on_event=events.append
    )
    assert refused == ToolResult(
        ok=False,
        content_type="text/plain",
        result="refused by filter 'guard': 'tag' mentions 'drop table', which is not allowed",
    )
    assert upstream.requests == []
    assert events == []  # refused before its emitter ran


async def test_scope_by_source_and_tool_glob() -> None:
    only_notes = {**REDACT, "sources": ["notes"]}
    gw, _ = gateway(only_notes)
    local = await gw.call(ANONYMOUS_ADMIN, "echo", {"text": "eve@example.net"})
    assert local.result == "eve@example.net"
    assert (await gw.call(ANONYMOUS_ADMIN, "getNote", {"noteId": 1})).result["body"] == (
        "or [email]"
    )
    by_glob = {**REDACT, "tools": ["list*", "ech?"]}
    gw, _ = gateway(by_glob)
    assert (await gw.call(ANONYMOUS_ADMIN, "echo", {"text": "eve@example.net"})).result == (
        "[email]"
    )
    assert (await gw.call(ANONYMOUS_ADMIN, "getNote", {"noteId": 1})).result == NOTE


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        (1, 2, "[one]"),  # lower priority runs first and leaves the other nothing to redact
        (2, 1, "[two]"),
        (None, None, "[two]"),  # the Valves' priority (5 each), then the ids: `a` before `b`
    ],
)
async def test_priority_orders_the_filters(
    first: int | None, second: int | None, expected: str
) -> None:
    one = {
        "id": "b",
        "path": f"{FILTERS}/redact_emails.py",
        "valves": {"replacement": "[one]"},
        "priority": first,
    }
    two = {**one, "id": "a", "valves": {"replacement": "[two]"}, "priority": second}
    gw, _ = gateway(one, two)
    assert (await gw.call(ANONYMOUS_ADMIN, "echo", {"text": "eve@example.net"})).result == expected
    assert [f.filter.priority for f in gw.filters() if f.filter] == [
        5 if first is None else first,
        5 if second is None else second,
    ]


async def test_user_valves_come_from_the_caller() -> None:
    gw, _ = gateway(REDACT)
    headers = {"x-toolbridge-filter-valves": '{"redact": {"keep_domain": true}}'}
    result = await gw.call(
        ANONYMOUS_ADMIN, "echo", {"text": "eve@example.net"}, caller_headers=headers
    )
    assert result.result == "[email]@example.net"
    with pytest.raises(InvalidArguments) as caught:
        await gw.call(
            ANONYMOUS_ADMIN,
            "echo",
            {"text": "x"},
            caller_headers={"x-toolbridge-filter-valves": '{"redact": {"keep_domain": "maybe"}}'},
        )
    assert caught.value.problems == [
        (
            "$.__user__.valves.keep_domain",
            "Input should be a valid boolean, unable to interpret input",
        )
    ]


async def test_filters_get_the_call_context() -> None:
    gw, _ = gateway(GUARD)
    alice = Principal(id="alice")
    headers = {"x-toolbridge-chat-id": "chat-9"}
    await gw.call(alice, "echo", {"text": "hi"}, caller_headers=headers)
    status = gw.filters()[0]
    assert status.filter is not None
    assert status.filter.instance.seen == [
        {"tool": "echo", "user": "alice", "chat": "chat-9", "metadata_chat": "chat-9"}
    ]


async def test_a_failing_outlet_passes_the_result_on_unfiltered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Its changes before it raised are not kept: it worked on a copy."""
    gw, _ = gateway({"id": "shaky", "path": f"{FILTERS}/shaky.py"})
    fine = await gw.call(ANONYMOUS_ADMIN, "echo", {"text": "calm"})
    assert fine.result == {"wrapped": "calm"}
    with caplog.at_level(logging.ERROR, logger="toolbridge.filters.chain"):
        failed = await gw.call(
            ANONYMOUS_ADMIN, "whoami", {}, caller_headers={"x-toolbridge-chat-id": "boom"}
        )
    assert failed.ok
    assert failed.result["chat_id"] == "boom"
    assert "touched" not in failed.result
    (logged,) = [r.getMessage() for r in caplog.records]  # its traceback made in its thread
    assert (logged.splitlines()[0], logged.splitlines()[-1]) == (
        "filter shaky failed on whoami; the result goes on unfiltered",
        "RuntimeError: shaky outlet gave up",
    )


async def test_a_required_outlet_that_fails_withholds_the_result() -> None:
    gw, _ = gateway({"id": "shaky", "path": f"{FILTERS}/shaky.py", "required": True})
    withheld = await gw.call(ANONYMOUS_ADMIN, "echo", {"text": "boom@example.com"})
    assert withheld == ToolResult(
        ok=False,
        content_type="text/plain",
        result="the result was withheld: filter 'shaky' could not check it (RuntimeError)",
    )


async def test_a_filter_that_cannot_load() -> None:
    """Skipped when optional (the others still run); calls refused while a required one is
    down."""
    missing = {"id": "gone", "path": f"{FILTERS}/no_such_filter.py"}
    gw, _ = gateway(missing, REDACT)
    assert [(s.entry.id, s.error) for s in gw.filters()] == [
        ("gone", f"filters 'gone': {FILTERS}/no_such_filter.py: no such file"),
        ("redact", None),
    ]
    assert (await gw.call(ANONYMOUS_ADMIN, "echo", {"text": "a@b.co"})).result == "[email]"
    gw, upstream = gateway({**missing, "required": True})
    refused = await gw.call(ANONYMOUS_ADMIN, "getNote", {"noteId": 1})
    assert refused == ToolResult(
        ok=False,
        content_type="text/plain",
        result=f"refused: filter 'gone' is not loaded (filters 'gone': {FILTERS}/"
        "no_such_filter.py: no such file)",
    )
    assert upstream.requests == []


async def test_a_file_handler_takes_the_files() -> None:
    gw, _ = gateway({"id": "keeper", "path": f"{FILTERS}/file_keeper.py"})
    headers = {"x-toolbridge-files": '[{"id": "f1", "name": "a.pdf"}]'}
    seen = await gw.call(ANONYMOUS_ADMIN, "whoami", {}, caller_headers=headers)
    assert (seen.result["files"], seen.result["metadata"]["files"]) == ([], [])
    status = gw.filters()[0]
    assert status.filter is not None
    assert status.filter.instance.files == [{"id": "f1", "name": "a.pdf"}]


@pytest.mark.parametrize(
    ("source", "valves", "message"),
    [
        ("class Nothing: ...\n", {}, ": has no `class Filter` (an Open WebUI filter function)"),
        (
            "class Filter:\n    def outlet(self, body): return body\n",
            {"x": 1},
            ": valves are given, but the Filter has no Valves model",
        ),
        (
            "from pydantic import BaseModel\n"
            "class Filter:\n"
            "    class Valves(BaseModel):\n        mask: str = '*'\n        level: int = 1\n"
            "    def outlet(self, body): return body\n",
            {"valves": {"mask": "#"}, "mask": "#"},
            ": valves 'valves' are not fields of the Filter's Valves (it has: level, mask)",
        ),
        (
            "from pydantic import BaseModel\n"
            "class Filter:\n"
            "    class Valves(BaseModel):\n        priority: str = 'high'\n"
            "    def __init__(self): self.valves = self.Valves()\n"
            "    def outlet(self, body): return body\n",
            {},
            ": priority must be a number, found a string",
        ),
        (
            "from open_webui.models.users import Users\n",
            {},
            ":1: needs the Open WebUI application: `from open_webui.models.users import Users` "
            "imports Open WebUI's own code, which exists only inside Open WebUI; toolbridge runs "
            "tool files without it",
        ),
    ],
)
def test_loading_errors(tmp_path: Path, source: str, valves: dict[str, Any], message: str) -> None:
    (tmp_path / "f.py").write_text(source)
    gw, _ = gateway({"id": "f", "path": "f.py", "valves": valves}, base_dir=tmp_path)
    assert [s.error for s in gw.filters()] == [f"filters 'f': {tmp_path}/f.py{message}"]


@pytest.mark.parametrize(
    ("source", "has"),
    [
        (
            "    def stream(self, event): return event\n",
            "only `stream`, which tool calls have none of",
        ),
        ("    pass\n", "neither `inlet` nor `outlet`"),
    ],
)
async def test_a_filter_with_nothing_for_tool_calls_loads_and_does_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, source: str, has: str
) -> None:
    """As Open WebUI loads it (a `stream` filter is for chat streams): not a source down."""
    (tmp_path / "f.py").write_text("class Filter:\n" + source)
    gw, _ = gateway({"id": "f", "path": "f.py"}, base_dir=tmp_path)
    answer = await gw.call(ANONYMOUS_ADMIN, "echo", {"text": "hi"})
    assert ([s.error for s in gw.filters()], answer.result) == ([None], "hi")
    assert f"{tmp_path}/f.py: the Filter has {has}: it does nothing here" in caplog.text


async def test_a_handler_with_a_parameter_the_host_cannot_fill_fails_when_it_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """As in Open WebUI, the filter loads and its other handler works."""
    (tmp_path / "f.py").write_text(
        "class Filter:\n"
        "    def inlet(self, body):\n"
        "        body['arguments']['text'] = body['arguments']['text'].upper()\n"
        "        return body\n"
        "    def outlet(self, body, response): return body\n"
    )
    gw, _ = gateway({"id": "f", "path": "f.py", "tools": ["echo"]}, base_dir=tmp_path)
    result = await gw.call(ANONYMOUS_ADMIN, "echo", {"text": "hi"})
    assert ([s.error for s in gw.filters()], result) == (
        [None],
        ToolResult(ok=True, content_type="text/plain", result="HI"),
    )
    assert (
        f"filters 'f': {tmp_path}/f.py: outlet: parameter 'response' has no default, and the "
        "host fills only the call ('body') and Open WebUI's `__name__` parameters: every run of "
        "it will fail"
    ) in caplog.messages


TOGGLE = (
    "class Filter:\n"
    "    def __init__(self): self.toggle = True\n"
    "    def inlet(self, body): raise Exception('the switch is on')\n"
)


@pytest.mark.parametrize(("switched_on", "refused"), [(False, False), (True, True)])
async def test_a_toggle_filter_runs_only_when_its_entry_switches_it_on(
    tmp_path: Path, switched_on: bool, refused: bool
) -> None:
    (tmp_path / "switch.py").write_text(TOGGLE)
    entry = {"id": "switch", "path": "switch.py", "switched_on": switched_on}
    gw, _ = gateway(entry, base_dir=tmp_path)
    result = await gw.call(ANONYMOUS_ADMIN, "echo", {"text": "hi"})
    expected = (
        ToolResult(
            ok=False,
            content_type="text/plain",
            result="refused by filter 'switch': the switch is on",
        )
        if refused
        else ToolResult(ok=True, content_type="text/plain", result="hi")
    )
    status = gw.filters()[0]
    assert (result, status.error, status.filter is not None and status.filter.off) == (
        expected,
        None,
        not switched_on,
    )


async def test_a_chat_filter_reads_the_chat_the_caller_sent(tmp_path: Path) -> None:
    """Open WebUI filters are written for chat requests: `messages`, `model`, `metadata`."""
    (tmp_path / "chat.py").write_text(
        "class Filter:\n"
        "    def inlet(self, body, __user__):\n"
        "        self.seen = (body['model'], body['messages'], body['metadata']['chat_id'],\n"
        "                     sorted(__user__))\n"
        "        if len(body['messages']) > 1:\n"
        "            raise Exception('this chat is long: start a new one')\n"
        "        return body\n"
    )
    gw, _ = gateway({"id": "chat", "path": "chat.py"}, base_dir=tmp_path)
    plain = await gw.call(ANONYMOUS_ADMIN, "echo", {"text": "hi"})
    loaded = gw.filters()[0].filter
    assert loaded is not None
    first_seen = loaded.instance.seen
    messages = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    context = CallContext(
        messages=tuple(messages), chat_id="c1", model={"id": "llama3", "name": "Llama 3"}
    )
    long = await gw.call(ANONYMOUS_ADMIN, "echo", {"text": "hi"}, context=context)
    assert (plain.result, first_seen, long, loaded.instance.seen) == (
        "hi",
        (None, [], None, ["email", "groups", "id", "name", "role"]),
        ToolResult(
            ok=False,
            content_type="text/plain",
            result="refused by filter 'chat': this chat is long: start a new one",
        ),
        ("llama3", messages, "c1", ["email", "groups", "id", "name", "role"]),
    )


async def test_a_filter_that_raises_says_what_it_raised(tmp_path: Path) -> None:
    (tmp_path / "f.py").write_text(
        "class Filter:\n    def inlet(self, body): return body['options']['think']\n"
    )
    gw, _ = gateway({"id": "f", "path": "f.py"}, base_dir=tmp_path)
    assert await gw.call(ANONYMOUS_ADMIN, "echo", {"text": "hi"}) == ToolResult(
        ok=False,
        content_type="text/plain",
        result="refused by filter 'f': KeyError: 'options' (if the filter read it from the call: "
        "the call has tool, source, arguments, model, messages, metadata)",
    )


async def test_a_filter_whose_error_has_no_text_or_that_finds_no_thread_is_said_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error whose own `__str__` fails is named by its type (it was a 500); a sync handler
    runs in the threads local tools run in, and when none is free the call is refused as busy
    (503), not in the filter's name."""
    from toolbridge.errors import ToolsBusy
    from toolbridge.local import calls

    (tmp_path / "f.py").write_text(
        "class Mute(Exception):\n"
        "    def __str__(self):\n"
        "        raise RuntimeError('no text')\n"
        "class Filter:\n"
        "    def inlet(self, body):\n"
        "        raise Mute()\n"
    )
    gw, _ = gateway({"id": "f", "path": "f.py"}, base_dir=tmp_path)
    assert await gw.call(ANONYMOUS_ADMIN, "echo", {"text": "hi"}) == ToolResult(
        ok=False, content_type="text/plain", result="refused by filter 'f': Mute"
    )
    monkeypatch.setattr(calls, "THREADS", calls.ToolThreads(limit=0))
    monkeypatch.setattr("toolbridge.filters.chain.THREADS", calls.THREADS)
    with pytest.raises(ToolsBusy):
        await gw.call(ANONYMOUS_ADMIN, "echo", {"text": "hi"})
    await asyncio.sleep(0)  # (counted on the loop's next turn)
    assert 'toolbridge_tool_calls_total{outcome="busy",tool="echo"} 1.0' in (
        gw.metrics.exposition().decode()
    )


async def test_a_handler_that_changes_the_call_in_place_and_returns_nothing_changed_it(
    tmp_path: Path,
) -> None:
    """As in Open WebUI, which hands a handler the request itself: a redacting outlet that
    forgets `return body` must not let the address through (nor an inlet's edit be lost)."""
    (tmp_path / "f.py").write_text(
        "class Filter:\n"
        "    def inlet(self, body):\n"
        "        body['arguments']['text'] = body['arguments']['text'].strip()\n"
        "    def outlet(self, body):\n"
        "        body['result'] = body['result'].replace('bob@example.com', '[email]')\n"
    )
    gw, _ = gateway({"id": "f", "path": "f.py"}, base_dir=tmp_path)
    answer = await gw.call(ANONYMOUS_ADMIN, "echo", {"text": "  mail bob@example.com  "})
    assert answer == ToolResult(ok=True, content_type="text/plain", result="mail [email]")


async def test_reload_takes_an_edit_and_keeps_the_last_good_version(tmp_path: Path) -> None:
    shutil.copy(ROOT / FILTERS / "redact_emails.py", tmp_path / "redact.py")
    gw, _ = gateway({"id": "redact", "path": "redact.py"}, base_dir=tmp_path)
    text = (tmp_path / "redact.py").read_text()
    (tmp_path / "redact.py").write_text(text.replace('default="[email]"', 'default="[hidden]"'))
    await gw.reload(frozenset({"redact"}))
    assert (await gw.call(ANONYMOUS_ADMIN, "echo", {"text": "a@b.co"})).result == "[hidden]"
    (tmp_path / "redact.py").write_text(text + "\ndef broken(:\n")
    await gw.reload(frozenset({"redact"}))
    (status,) = gw.filters()
    assert status.error == (
        f"filters 'redact': {tmp_path}/redact.py:44: invalid Python: invalid syntax"
    )
    assert (await gw.call(ANONYMOUS_ADMIN, "echo", {"text": "a@b.co"})).result == "[hidden]"


async def test_a_filters_secret_valves_are_redacted_like_a_tools(tmp_path: Path) -> None:
    """Valves secret by name (in the entry and in the Valves model) or by type (`SecretStr`):
    the secrets the gateway redacts from answers and logs, as a tool's are."""
    (tmp_path / "guard.py").write_text(
        "from pydantic import BaseModel, SecretStr\n"
        "class Filter:\n"
        "    class Valves(BaseModel):\n"
        "        admin_token: str = ''\n"
        "        other: SecretStr = SecretStr('canary-filter-str-2')\n"
        "        plain: str = 'not-a-secret-3'\n"
        "    def inlet(self, body):\n"
        "        raise Exception(f'said {self.valves.admin_token} and '\n"
        "                        f'{self.valves.other.get_secret_value()}')\n"
    )
    entry = {"id": "guard", "path": "guard.py", "valves": {"admin_token": "canary-filter-1"}}
    gw, _ = gateway(entry, base_dir=tmp_path)
    refused = await gw.call(ANONYMOUS_ADMIN, "echo", {"text": "hi"})
    assert gw.secrets.text(str(refused.result)) == (
        "refused by filter 'guard': said [redacted] and [redacted]"
    )
    assert gw.secrets.text("not-a-secret-3") == "not-a-secret-3"


async def test_a_callers_secret_filter_user_valves_are_redacted_from_its_call_alone(
    tmp_path: Path,
) -> None:
    """As a tool's secret UserValves are: from the call's answer, never added to the gateway's
    secrets (another caller could otherwise make any word one)."""
    (tmp_path / "keyed.py").write_text(
        "from pydantic import BaseModel\n"
        "class Filter:\n"
        "    class UserValves(BaseModel):\n"
        "        api_key: str = ''\n"
        "    def outlet(self, body, __user__):\n"
        "        body['result'] += ' with ' + __user__['valves'].api_key\n"
        "        return body\n"
    )
    gw, _ = gateway({"id": "keyed", "path": "keyed.py"}, base_dir=tmp_path)
    headers = {"x-toolbridge-filter-valves": '{"keyed": {"api_key": "canary-filter-user-1"}}'}
    said = await gw.call(ANONYMOUS_ADMIN, "echo", {"text": "hi"}, caller_headers=headers)
    assert (said.result, gw.secrets.text("canary-filter-user-1")) == (
        "hi with [redacted]",
        "canary-filter-user-1",
    )


async def test_an_async_handler_that_blocks_is_timed_out_and_the_gateways_loop_turns(
    tmp_path: Path,
) -> None:
    """Async inlets and outlets run on the tools' loop, as async tools do: `time.sleep` there
    blocks only that loop, the filter's `timeout` holds, and the gateway's loop turns on."""
    (tmp_path / "slow.py").write_text(
        "import time\n"
        "class Filter:\n"
        "    async def inlet(self, body):\n"
        "        time.sleep(1.5)\n"
        "        return body\n"
    )
    gw, _ = gateway({"id": "slow", "path": "slow.py", "timeout": 0.3}, base_dir=tmp_path)
    async with ticking() as ticks:
        refused = await gw.call(ANONYMOUS_ADMIN, "echo", {"text": "hi"})
    assert refused == ToolResult(
        ok=False,
        content_type="text/plain",
        result="refused by filter 'slow': it did not answer within 0.3 s",
    )
    assert ticks.took < 1.2
    assert ticks.count >= 3


OWN_CODE_FILTER = """\
import threading

RAN_ON = []


class Refusal(Exception):
    def __str__(self):
        RAN_ON.append(("__str__", threading.current_thread().name))
        return "not today"


class Answer(dict):
    def get(self, key, default=None):
        RAN_ON.append(("get", threading.current_thread().name))
        return super().get(key, default)


class Filter:
    def inlet(self, call: dict) -> dict:
        if call["arguments"].get("text") == "refuse":
            raise Refusal()
        return Answer(call)

    async def outlet(self, result: dict) -> dict:
        raise Refusal()
"""


async def test_what_a_filter_returns_or_raises_is_read_where_it_ran_not_on_the_gateways_loop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception's `__str__`, a dict of the filter's own kind: the filter's code, run in its
    thread (a sync handler) or on the tools' loop (an async one), like a tool's; a slow one
    would have held every caller."""
    (tmp_path / "own.py").write_text(OWN_CODE_FILTER)
    gw, _ = gateway({"id": "own", "path": str(tmp_path / "own.py")})
    with caplog.at_level(logging.ERROR, logger="toolbridge.filters.chain"):
        refused = await gw.call(ANONYMOUS_ADMIN, "echo", {"text": "refuse"})
        passed = await gw.call(ANONYMOUS_ADMIN, "echo", {"text": "fine"})
    (status,) = gw.filters()
    assert status.filter is not None
    ran_on = sys.modules[type(status.filter.instance).__module__].RAN_ON
    assert (refused.result, passed.result, {what for what, _ in ran_on}) == (
        "refused by filter 'own': not today",
        "fine",
        {"__str__", "get"},
    )
    assert threading.current_thread().name not in {thread for _, thread in ran_on}
    assert caplog.messages[-1].splitlines()[-1].endswith(".Refusal: not today")
