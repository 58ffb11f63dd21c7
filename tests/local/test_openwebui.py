"""Open WebUI tool files as Open WebUI runs them: schemas (inherited methods, `Field` defaults,
mixed docstrings), lenient arguments, every injected name with and without the caller's values,
`__event_call__` and its fallback, rich results, and the files that cannot run here.

The tool files are in `tests/fixtures/openwebui/`, written in the style of community tools.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import pytest

from toolbridge.config import LocalTools
from toolbridge.errors import SourceError
from toolbridge.local import imports
from toolbridge.local.calls import call_function
from toolbridge.local.context import CallContext, context_from_headers, oauth_token
from toolbridge.local.loader import LocalConversion, load_tools
from toolbridge.local.results import VIEW_NOTE
from toolbridge.tools import Embed, Note, PythonFunction, ToolResult

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "openwebui"
WHERE = "tests/fixtures/openwebui"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def load(path: str, **options: Any) -> LocalConversion:
    return load_tools(LocalTools(id="t", path=path, **options), FIXTURES)


def get(conversion: LocalConversion, name: str) -> PythonFunction:
    found = next(tool for tool in conversion.tools if tool.name == name)
    assert isinstance(found.target, PythonFunction)
    return found.target


# -- schemas as Open WebUI makes them --------------------------------------------------------


def test_schemas_of_a_community_style_file() -> None:
    """Own methods, then inherited ones; a documented `Field(...)` is optional (and its
    docstring text wins); `:param` lines inside `Args:` keep their text; every `__name__`
    parameter is the host's, known to Open WebUI or not."""
    conversion = load("notebook.py")
    assert [
        (tool.name, tool.target.function, tool.input_schema, tool.description, tool.notes)
        for tool in conversion.tools
        if isinstance(tool.target, PythonFunction)
    ] == [
        (
            "add_note",
            "notebook:Tools.add_note",
            {
                "type": "object",
                "properties": {
                    "text": {
                        "anyOf": [{"type": "string"}, {"type": "null"}],
                        "default": None,
                        "description": "What to remember.",
                    },
                    "pinned": {
                        "default": False,
                        "description": "Keep it at the top.",
                        "type": "boolean",
                    },
                },
                "additionalProperties": False,
            },
            "Add a note to this chat's notebook.",
            (),
        ),
        (
            "whoami",
            "notebook:Tools.whoami",
            {"type": "object", "properties": {}, "additionalProperties": False},
            "Report everything the host passed in.",
            (),
        ),
        (
            "count_words",
            "notebook:Tools.count_words",
            {
                "type": "object",
                "properties": {
                    "text": {"description": "The text.", "type": "string"},
                    "limit": {
                        "default": 100,
                        "description": "Stop counting here.",
                        "type": "integer",
                    },
                },
                "required": ["text"],
                "additionalProperties": False,
            },
            "Count the words of a text.",
            (
                Note(
                    kind="parameter-hidden",
                    message="'_cache_size' is private (leading `_`): it keeps its default",
                    where="python notebook:Tools.count_words",
                ),
            ),
        ),
        (
            "list_notes",
            "notebook:Tools.list_notes",
            {"type": "object", "properties": {}, "additionalProperties": False},
            "List the notes of this chat.",
            (),
        ),
    ]
    assert get(conversion, "whoami").injected == (
        *("__user__", "__metadata__", "__messages__", "__files__", "__model__", "__chat_id__"),
        *("__message_id__", "__session_id__", "__oauth_token__", "__request__", "__id__"),
        *("__task__", "__tools__"),
    )
    assert conversion.modules[0].frontmatter["title"] == "Chat Notebook"


def test_private_parameter_without_default_is_an_argument(tmp_path: Path) -> None:
    """Open WebUI offers every parameter whose name does not start with `__`."""
    (tmp_path / "tool.py").write_text(
        "class Tools:\n"
        "    def find(self, _query: str, __chat_id__: str, __other__) -> str:\n"
        "        '''Find.'''\n"
        "        return f'{_query} {__chat_id__} {__other__}'\n"
    )
    conversion = load_tools(LocalTools(id="t", path="tool.py"), tmp_path)
    assert conversion.tools[0].input_schema == {
        "type": "object",
        "properties": {"_query": {"type": "string"}},
        "required": ["_query"],
        "additionalProperties": False,
    }
    assert get(conversion, "find").injected == ("__chat_id__", "__other__")


@pytest.mark.parametrize(
    ("file", "message"),
    [
        (
            "needs_owui.py",
            "tools 't': tests/fixtures/openwebui/needs_owui.py:8: needs the Open WebUI "
            "application: `from open_webui.models.chats import Chats` imports Open WebUI's own "
            "code, which exists only inside Open WebUI; toolbridge runs tool files without it",
        ),
        (
            "summarizer_pipe.py",
            "tools 't': tests/fixtures/openwebui/summarizer_pipe.py: defines `class Pipe`, an "
            "Open WebUI Function, not a `class Tools`: it has no tools to offer",
        ),
    ],
)
def test_files_that_are_no_tools_here(file: str, message: str) -> None:
    with pytest.raises(SourceError) as caught:
        load(file)
    assert str(caught.value) == message


def test_a_filter_file_in_tools_says_where_it_belongs(tmp_path: Path) -> None:
    (tmp_path / "f.py").write_text(
        "class Filter:\n    def inlet(self, body):\n        return body\n"
    )
    with pytest.raises(SourceError) as caught:
        load_tools(LocalTools(id="t", path="f.py"), tmp_path)
    assert str(caught.value).endswith(
        "defines `class Filter`, an Open WebUI Function, not a `class Tools`: it has no tools to "
        "offer (load it as a `filters` entry)"
    )


def test_legacy_open_webui_import(tmp_path: Path) -> None:
    """`from utils.misc import ...` is Open WebUI's old spelling of `open_webui.utils`."""
    (tmp_path / "old.py").write_text("import json\nfrom utils.misc import get_last_user_message\n")
    with pytest.raises(SourceError) as caught:
        load_tools(LocalTools(id="t", path="old.py"), tmp_path)
    assert "needs the Open WebUI application: `from utils.misc import get_last_user_message` " in (
        str(caught.value)
    )
    assert "old.py:2: needs the Open WebUI application" in str(caught.value)


def test_a_package_open_webui_provides_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without `toolbridge[openwebui]`, a file importing bs4 says where bs4 would come from."""
    monkeypatch.setitem(sys.modules, "bs4", None)  # as if beautifulsoup4 were not installed
    monkeypatch.setattr(imports, "installed", lambda name: name != "beautifulsoup4")
    (tmp_path / "scrape.py").write_text("from bs4 import BeautifulSoup\n")
    with pytest.raises(SourceError) as caught:
        load_tools(LocalTools(id="t", path="scrape.py"), tmp_path)
    assert str(caught.value).endswith(
        "cannot be imported: ModuleNotFoundError: import of bs4 halted; None in sys.modules "
        "(Open WebUI provides it: pip install 'toolbridge[openwebui]')"
    )


# -- arguments ------------------------------------------------------------------------------


async def test_arguments_are_lenient(caplog: pytest.LogCaptureFixture) -> None:
    """A number where text is expected is text; unknown arguments are dropped, with a log line;
    a documented `Field(...)` left out is None."""
    conversion = load("notebook.py")
    with caplog.at_level(logging.INFO, logger="toolbridge.local.calls"):
        counted = await call_function(
            get(conversion, "count_words"),
            {"text": 12345, "colour": "red", "mood\nERROR forged": 1},
        )
    assert counted == ToolResult(ok=True, content_type="application/json", result=1)
    assert [r.getMessage() for r in caplog.records] == [
        "local tool notebook:Tools.count_words: unknown arguments dropped: 'colour', "
        "'mood\\nERROR forged'"
    ]
    nothing = await call_function(get(conversion, "add_note"), {})
    assert nothing == ToolResult(ok=True, content_type="text/plain", result="Nothing to note.")


# -- injected names -------------------------------------------------------------------------

USER = {"id": "u1", "name": "Ada", "email": "ada@example.com", "role": "user", "groups": []}
EMPTY = {
    "user": USER,
    "metadata": {
        "user_id": "u1",
        "chat_id": None,
        "message_id": None,
        "session_id": None,
        "files": [],
        "model": None,
    },
    "messages": [],
    "files": [],
    "model": None,
    "chat_id": None,
    "message_id": None,
    "session_id": None,
    "oauth_token": None,
    "request": None,
    "id": "t",
    "task": None,
    "tools": None,
}


async def test_every_injected_name_has_its_empty_value() -> None:
    result = await call_function(get(load("notebook.py"), "whoami"), {}, user=USER)
    assert result == ToolResult(ok=True, content_type="application/json", result=EMPTY)


async def test_every_injected_name_gets_what_the_caller_sent() -> None:
    """Headers give ids, metadata, files and the model; the conversation and the token come
    with the call; `user_id` is always the caller's; the request view holds no credential."""
    headers = {
        "Authorization": "Bearer eyJ.caller.token",
        "Cookie": "session=canary-cookie-value",
        "X-Api-Key": "canary-api-key",
        "X-Toolbridge-User-Valves": '{"signature": "canary-valve"}',
        "X-OpenWebUI-Chat-Id": "chat-7",
        "X-Toolbridge-Message-Id": "msg-3",
        "X-Toolbridge-Session-Id": "sess-1",
        "X-Toolbridge-Model": "gpt-test",
        "X-Toolbridge-Metadata": '{"user_id": "mallory", "tool_ids": ["t"], "chat_id": "other"}',
        "X-Toolbridge-Files": '[{"type": "file", "id": "f1", "name": "a.pdf"}]',
        "User-Agent": "pytest",
    }
    context = context_from_headers(
        headers,
        url="http://gw.test/v1/tools/whoami/call?debug=1",
        oauth_token=oauth_token(headers["Authorization"], 1_900_000_000),
    ).updated({"messages": [{"role": "user", "content": "hi"}]}, "$")
    result = await call_function(get(load("notebook.py"), "whoami"), {}, user=USER, context=context)
    files = [{"type": "file", "id": "f1", "name": "a.pdf"}]
    model = {"id": "gpt-test", "name": "gpt-test"}
    assert result.result == {
        "user": USER,
        "metadata": {
            "user_id": "u1",
            "tool_ids": ["t"],
            "chat_id": "chat-7",
            "message_id": "msg-3",
            "session_id": "sess-1",
            "files": files,
            "model": model,
        },
        "messages": [{"role": "user", "content": "hi"}],
        "files": files,
        "model": model,
        "chat_id": "chat-7",
        "message_id": "msg-3",
        "session_id": "sess-1",
        "oauth_token": {
            "access_token": "eyJ.caller.token",
            "token_type": "Bearer",
            "expires_at": 1_900_000_000,
        },
        "request": {
            "method": "POST",
            "url": "http://gw.test/v1/tools/whoami/call?debug=1",
            "path": "/v1/tools/whoami/call",
            "base_url": "http://gw.test/",
            "headers": {"x-openwebui-chat-id": "chat-7", "user-agent": "pytest"},
            "cookies": {},
        },
        "id": "t",
        "task": None,
        "tools": None,
    }
    shown = str(result.result["request"])
    for canary in ("canary-cookie-value", "canary-api-key", "canary-valve", "caller.token"):
        assert canary not in shown


def test_oauth_token_only_for_tokens_that_expire() -> None:
    assert oauth_token("Bearer api-key", None) is None
    assert oauth_token(None, 5) is None
    assert oauth_token("Basic abc", 5) is None
    assert oauth_token("Bearer a.b.c", 5) == {
        "access_token": "a.b.c",
        "token_type": "Bearer",
        "expires_at": 5,
    }


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        (
            {"x-toolbridge-metadata": "[1]"},
            "the x-toolbridge-metadata header: expected a JSON object, found an array",
        ),
        (
            {"x-toolbridge-files": "{"},
            "the x-toolbridge-files header is not valid JSON: "
            "unexpected end of data: line 1 column 2 (char 1)",
        ),
        (
            {"x-toolbridge-model": '{"id":'},
            "the x-toolbridge-model header is not valid JSON: "
            "unexpected end of data: line 1 column 7 (char 6)",
        ),
        (
            {"x-toolbridge-chat-id": "x" * 1025},
            "the x-toolbridge-chat-id header: expected a string of at most 1024 characters",
        ),
        (
            {"x-toolbridge-files": "[" + "0," * 140_000 + "0]"},
            "the x-toolbridge-files header is over 262144 bytes",
        ),
    ],
)
def test_context_headers_of_the_wrong_shape(headers: dict[str, str], message: str) -> None:
    from toolbridge.errors import BadRequest

    with pytest.raises(BadRequest) as caught:
        context_from_headers(headers)
    assert str(caught.value) == message


async def test_notes_are_kept_per_chat() -> None:
    """The memory-tool case: notes keyed on the chat id no longer collapse into one."""
    conversion = load("notebook.py")
    add, notes = get(conversion, "add_note"), get(conversion, "list_notes")
    user = {**USER, "valves": {"signature": "-- Ada"}}
    for chat, text in (("c1", "buy milk"), ("c2", "call Bob"), ("c1", "water plants")):
        context = CallContext(chat_id=chat)
        await call_function(add, {"text": text}, user=user, context=context)
    listed = [
        (await call_function(notes, {}, context=CallContext(chat_id=chat))).result
        for chat in ("c1", "c2", "c3")
    ]
    assert listed == ["buy milk -- Ada\nwater plants -- Ada", "call Bob -- Ada", "No notes yet."]


# -- __event_call__ -------------------------------------------------------------------------


class Asker:
    """Answers questions from a script, and remembers what was asked."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.asked: list[Any] = []

    async def __call__(self, event: Any) -> Any:
        self.asked.append(event)
        return self.answers.pop(0)


async def test_event_call_is_none_when_nobody_can_answer() -> None:
    """The tool's own fallback runs, instead of the call failing."""
    result = await call_function(get(load("danger_zone.py"), "delete_file"), {"name": "a.txt"})
    assert result.result == "Not deleted: nobody could confirm deleting a.txt."


async def test_event_call_asks_the_caller() -> None:
    fn = get(load("danger_zone.py"), "delete_file")
    events: list[Any] = []
    asker = Asker(True, "cleanup")
    result = await call_function(
        fn, {"name": "a.txt"}, context=CallContext(ask=asker), on_event=events.append
    )
    assert result.result == "Deleted a.txt (cleanup)."
    assert [event["type"] for event in asker.asked] == ["confirmation", "input"]
    assert events == [{"type": "status", "data": {"description": "deleted a.txt", "done": True}}]
    refused = await call_function(fn, {"name": "b.txt"}, context=CallContext(ask=Asker(False)))
    assert refused.result == "Kept b.txt: the user said no."


async def test_a_sync_tool_waits_for_the_answer() -> None:
    """A sync tool runs in a thread: its `__event_call__` returns the answer itself."""
    fn = get(load_tools(LocalTools(id="t", path="faults.py"), ROOT / "tests/fixtures/tools"), "ask")
    assert (await call_function(fn, {})).result == "nobody to ask"
    answered = await call_function(fn, {}, context=CallContext(ask=Asker(True)))
    assert answered.result == "the user said True"


READS_AS_DICT = """
import datetime
import enum

from pydantic import BaseModel


class Address(BaseModel):
    city: str


class Size(enum.Enum):
    SMALL = "small"


class Tools:
    def deliver(self, address: Address) -> str:
        return address["city"]

    def order(self, size: Size) -> str:
        return size.upper()

    def plan(self, when: datetime.date) -> str:
        return when.split("-")[0]

    def count(self, n: int) -> str:
        return n.upper()
"""


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        (
            "deliver",
            {"address": {"city": "Paris"}},
            "TypeError: 'Address' object is not subscriptable (the argument 'address' arrived "
            "as Address, as its annotation says; Open WebUI passes the JSON value as it came: "
            "annotate it `dict` or `str` for that)",
        ),
        (
            "order",
            {"size": "small"},
            "AttributeError: 'Size' object has no attribute 'upper' (the argument 'size' "
            "arrived as Size, as its annotation says; Open WebUI passes the JSON value as it "
            "came: annotate it `dict` or `str` for that)",
        ),
        (
            "plan",
            {"when": "2026-12-07"},
            "AttributeError: 'datetime.date' object has no attribute 'split' (the argument "
            "'when' arrived as date, as its annotation says; Open WebUI passes the JSON value "
            "as it came: annotate it `dict` or `str` for that)",
        ),
        ("count", {"n": 3}, "AttributeError: 'int' object has no attribute 'upper'"),
    ],
)
async def test_a_file_reading_a_typed_argument_as_json_is_told_why_it_failed(
    tmp_path: Path, tool: str, arguments: dict[str, Any], expected: str
) -> None:
    """Open WebUI passes a model's, an Enum's or a date's JSON value; here the annotation's
    type arrives: a file that reads the JSON value fails, and its error says what arrived."""
    (tmp_path / "typed.py").write_text(READS_AS_DICT)
    fn = get(load_tools(LocalTools(id="t", path="typed.py"), tmp_path), tool)
    assert await call_function(fn, arguments) == ToolResult(
        ok=False, content_type="text/plain", result=expected
    )


MISBEHAVING = """
import asyncio
import time


class SlowText:
    def __str__(self) -> str:
        time.sleep(3)
        return "slow"


class BadText:
    def __str__(self) -> str:
        raise RuntimeError("no text")


class SlowError(Exception):
    def __str__(self) -> str:
        time.sleep(3)
        return "slow"


class BadError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text")


class Stop(BaseException):
    pass


class SlowLength(str):
    def __len__(self) -> int:
        time.sleep(3)
        return super().__len__()


class Tools:
    def returns_blocking_coroutine(self) -> object:
        async def later() -> str:
            time.sleep(3)
            return "late"
        return later()

    async def returns_a_coroutine(self) -> object:
        async def later() -> str:
            return "done"
        return later()

    def returns_slow_text(self) -> object:
        return SlowText()

    async def raises_slowly(self) -> str:
        raise SlowError()

    def returns_bad_text(self) -> object:
        return BadText()

    def raises_bad_text(self) -> str:
        raise BadError()

    def raises_its_own_base_exception(self) -> str:
        raise Stop("stopped")

    async def raises_generator_exit(self) -> str:
        raise GeneratorExit()

    def returns_text_of_its_own_kind(self) -> str:
        return SlowLength("long text")
"""


@pytest.mark.parametrize(
    ("tool", "ok", "expected"),
    [
        ("returns_blocking_coroutine", False, "timed out after 1 s"),
        ("returns_a_coroutine", True, "done"),
        ("returns_slow_text", False, "timed out after 1 s"),
        ("raises_slowly", False, "timed out after 1 s"),
        (
            "returns_bad_text",
            False,
            "the tool's answer cannot be sent: its RuntimeError when made text",
        ),
        ("raises_bad_text", False, "BadError"),
        ("raises_its_own_base_exception", False, "Stop: stopped"),
        ("raises_generator_exit", False, "GeneratorExit"),
        ("returns_text_of_its_own_kind", True, "long text"),
    ],
)
async def test_what_a_tool_returns_or_raises_is_made_a_result_off_the_loop_in_its_time(
    tmp_path: Path, tool: str, ok: bool, expected: str
) -> None:
    """A returned coroutine is awaited, and the text of a returned object or a raised error
    made, where the tool runs and under its timeout: a slow one never holds the gateway's
    loop (they ran on it, each for as long as it took); one that fails is the call's failure."""
    import asyncio
    import time

    from toolbridge.local.runner import TOOL_LOOP

    await TOOL_LOOP.run("free", asyncio.sleep(0))  # a case before may have held it a while
    (tmp_path / "misbehaving.py").write_text(MISBEHAVING)
    entry = LocalTools(id="t", path="misbehaving.py", timeout=1)
    fn = get(load_tools(entry, tmp_path), tool)
    gaps: list[float] = []

    async def tick() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.02)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(tick())
    result = await call_function(fn, {})
    ticking.cancel()
    assert (result.ok, result.result) == (ok, expected)
    assert type(result.result) is str  # a plain copy: a `str` of the tool's own kind is its code
    assert max(gaps, default=0) < 0.5


THREADED = """
import threading

RELEASE = threading.Event()
TOGETHER = threading.Barrier(50, timeout=5)


class Tools:
    def hang(self) -> str:
        RELEASE.wait(10)
        return "released"

    def meet(self) -> str:
        TOGETHER.wait()
        return "met"
"""


async def test_sync_tools_have_threads_of_their_own_and_a_cap_past_their_timeouts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """50 calls at once all run (anyio's shared pool runs 40, and the gateway's own work takes
    from it); a tool that never returns holds its thread past its timeout, and once the cap
    is reached the next call is refused as busy, until those threads end."""
    import asyncio

    from toolbridge.errors import ToolsBusy
    from toolbridge.local import calls

    (tmp_path / "threaded.py").write_text(THREADED)
    loaded = load_tools(LocalTools(id="t", path="threaded.py", timeout=0.2), tmp_path)
    meet = get(load_tools(LocalTools(id="m", path="threaded.py", timeout=8), tmp_path), "meet")
    met = await asyncio.gather(*(call_function(meet, {}) for _ in range(50)))
    assert {(r.ok, r.result) for r in met} == {(True, "met")}

    monkeypatch.setattr(calls, "THREADS", calls.ToolThreads(limit=2))
    hang = get(loaded, "hang")
    burst = await asyncio.gather(
        *(call_function(hang, {}) for _ in range(6)), return_exceptions=True
    )  # a place is taken as a call is made, not as its thread starts: a burst cannot pass it
    first = [r for r in burst if isinstance(r, ToolResult)]
    assert [type(r).__name__ for r in burst if not isinstance(r, ToolResult)] == ["ToolsBusy"] * 4
    with pytest.raises(ToolsBusy) as refused:
        await call_function(hang, {})
    sys.modules[hang.func.__module__].RELEASE.set()
    for _ in range(100):
        if calls.THREADS.running == 0:
            break
        await asyncio.sleep(0.05)
    after = await call_function(hang, {})
    assert [r.result for r in first] == ["timed out after 0.2 s"] * 2
    assert (str(refused.value), refused.value.retry_after) == (
        "busy: 2 calls of this process's sync local tools are running (those past their "
        "timeout too); try again in 1 s",
        1.0,
    )
    assert (after.ok, after.result) == (True, "released")


# -- rich results ---------------------------------------------------------------------------

CHART = (
    '<html><body><div style="width:10px;background:teal">1</div>'
    '<div style="width:30px;background:teal">3</div></body></html>'
)


@pytest.mark.parametrize(
    ("tool", "expected"),
    [
        (
            "bar_chart",
            ToolResult(
                ok=True,
                content_type="text/plain",
                result=VIEW_NOTE,
                embeds=(Embed(content_type="text/html", content=CHART),),
            ),
        ),
        (
            "bar_chart_with_summary",
            ToolResult(
                ok=True,
                content_type="application/json",
                result={"bars": 2, "largest": 3},
                embeds=(Embed(content_type="text/html", content=CHART),),
            ),
        ),
        (
            "described_chart",
            ToolResult(
                ok=True,
                content_type="text/plain",
                result="A chart of 2 bars is on screen.",
                embeds=(Embed(content_type="text/html", content=CHART),),
            ),
        ),
        ("page_source", ToolResult(ok=True, content_type="text/html", result=CHART)),
    ],
)
async def test_rich_results(tool: str, expected: ToolResult) -> None:
    """An inline HTMLResponse is a view for the person; the model reads its context (or a note
    that a view was made); a response that is not inline is its body."""
    assert await call_function(get(load("charts.py"), tool), {"values": [1, 3]}) == expected


async def test_rich_results_that_fail_or_are_text() -> None:
    charts = load("charts.py")
    assert await call_function(get(charts, "broken_chart"), {}) == ToolResult(
        ok=False,
        content_type="text/plain",
        result="the view answered HTTP 404",
        embeds=(Embed(content_type="text/html", content="<p>no data</p>"),),
    )
    assert await call_function(get(charts, "plain"), {}) == ToolResult(
        ok=True, content_type="text/plain", result="just text"
    )
