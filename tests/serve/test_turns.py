"""One model turn's tool calls (`POST /v1/tool_calls`): each API family's shapes in and out, order
and concurrency, per-call failures as answers, and payloads that are no turn at all.

The gateway serves specs/demo.yaml over a MockUpstream and the demo's clock tools, with access
rules: alice may use the notes service's GET operations and `days_between`, nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import orjson
import pytest
from google.genai import types as genai

from toolbridge.config import Config
from toolbridge.errors import BadRequest, UpstreamUnavailable
from toolbridge.gateway import Gateway
from toolbridge.policy import ANONYMOUS_ADMIN, Principal
from toolbridge.serve.turns import MAX_CALLS, run_turn
from toolbridge.upstream.seam import MockUpstream, UpstreamRequest, UpstreamResponse

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
ALICE = Principal(id="alice", name="alice", groups=frozenset({"support"}))
NOTE = {"id": 1, "title": "Welcome"}
END_OF_DATA = "unexpected end of data: line 1 column 12 (char 11)"
JSON = (("Content-Type", "application/json"),)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Notes:
    """The notes service: note 1 exists, 13 is unreachable, 14 does not answer in time.

    Note 2 answers only once note 3 has been asked for, so calls run one after the other hang.
    """

    def __init__(self) -> None:
        self.third_asked = anyio.Event()

    async def __call__(self, request: UpstreamRequest) -> UpstreamResponse:
        path = urlsplit(request.url).path
        match request.method, path:
            case "GET", "/v1/notes":
                return UpstreamResponse(status=200, headers=JSON, body=orjson.dumps([NOTE]))
            case "GET", "/v1/notes/1":
                return UpstreamResponse(status=200, headers=JSON, body=orjson.dumps(NOTE))
            case "GET", "/v1/notes/2":
                await self.third_asked.wait()
                return UpstreamResponse(status=200, headers=JSON, body=b'{"id": 2}')
            case "GET", "/v1/notes/3":
                self.third_asked.set()
                return UpstreamResponse(status=200, headers=JSON, body=b'{"id": 3}')
            case "GET", "/v1/notes/13":
                raise UpstreamUnavailable("notes", "connection refused")
            case "GET", "/v1/notes/14":
                raise UpstreamUnavailable("notes", "no answer within 30 s", timeout=True)
            case "GET", "/v1/status":
                return UpstreamResponse(
                    status=200, headers=(("Content-Type", "text/plain"),), body=b"up"
                )
            case "DELETE", _:
                return UpstreamResponse(status=204)
        return UpstreamResponse(status=404, headers=JSON, body=b'{"error": "no note"}')


@pytest.fixture
def gateway() -> Gateway:
    config = Config.model_validate(
        {
            "auth": {"api_keys": [{"user": "alice", "key": "alice-key-1", "groups": ["support"]}]},
            "servers": [
                {
                    "id": "notes",
                    "spec": "specs/demo.yaml",
                    "base_url": "http://notes.test/v1",
                    "access": {"groups": ["support"], "methods": ["GET"]},
                }
            ],
            "tools": [
                {
                    "id": "clock",
                    "path": "src/toolbridge/demo/tools/clock.py",
                    "access": {"users": ["alice"], "tools": ["days_between"]},
                }
            ],
            "base_dir": ROOT,
        }
    )
    gateway = Gateway(config, upstream=MockUpstream(Notes()))
    gateway.load()
    return gateway


def chat_call(id: str, name: str, arguments: Any) -> dict[str, Any]:
    return {"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}


def tool_message(id: str, content: Any) -> dict[str, Any]:
    text = content if isinstance(content, str) else orjson.dumps(content).decode()
    return {"role": "tool", "tool_call_id": id, "content": text}


def not_found(name: str) -> dict[str, Any]:
    return {"ok": False, "error": {"type": "not_found", "message": f"no tool named {name!r}"}}


def invalid(name: str, *problems: tuple[str, str]) -> dict[str, Any]:
    listed = "; ".join(f"{path}: {message}" for path, message in problems)
    return {
        "ok": False,
        "error": {
            "type": "invalid_arguments",
            "message": f"invalid arguments for {name!r}: {listed}",
            "problems": [{"path": path, "message": message} for path, message in problems],
        },
    }


# -- OpenAI Chat Completions ---------------------------------------------------------------------

ASSISTANT = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        chat_call("call_1", "listNotes", "{}"),
        chat_call("call_2", "getNote", '{"noteId": 7}'),
        chat_call("call_3", "deleteNote", {"noteId": 1}),
        chat_call("call_4", "getStatus", ""),
        chat_call("call_5", "days_between", '{"start": "2024-01-01", "end": "2024-03-01"}'),
    ],
}
ANSWER = {
    "messages": [
        tool_message("call_1", [NOTE]),
        tool_message("call_2", {"ok": False, "status": 404, "result": {"error": "no note"}}),
        tool_message("call_3", {"ok": True, "status": 204}),
        tool_message("call_4", "up"),
        tool_message("call_5", "60"),
    ]
}


async def test_chat_tool_calls_are_answered_with_tool_messages_in_order(gateway: Gateway) -> None:
    """A result is the answer alone when the call succeeded; the envelope when it did not."""
    assert await run_turn(gateway, ANONYMOUS_ADMIN, ASSISTANT) == ANSWER


@pytest.mark.parametrize(
    "payload",
    [
        ASSISTANT["tool_calls"],
        {"id": "chatcmpl-1", "choices": [{"index": 0, "message": ASSISTANT}]},
    ],
    ids=["the tool_calls array", "a whole completion"],
)
async def test_chat_tool_calls_alone_or_in_a_completion(gateway: Gateway, payload: Any) -> None:
    assert await run_turn(gateway, ANONYMOUS_ADMIN, payload) == ANSWER


async def test_calls_run_concurrently(gateway: Gateway) -> None:
    """Note 2 answers only after note 3 was asked for: one after the other, this would hang."""
    calls = [chat_call("a", "getNote", '{"noteId": 2}'), chat_call("b", "getNote", '{"noteId": 3}')]
    with anyio.fail_after(5):
        answer = await run_turn(gateway, ALICE, calls)
    assert answer == {"messages": [tool_message("a", {"id": 2}), tool_message("b", {"id": 3})]}


async def test_a_call_that_cannot_run_is_an_answer_for_that_call(gateway: Gateway) -> None:
    calls = [
        chat_call("1", "noSuchTool", "{}"),
        chat_call("2", "deleteNote", '{"noteId": 1}'),  # not for alice: as if it did not exist
        chat_call("3", "now", "{}"),  # nor this one
        chat_call("4", "getNote", '{"noteId": '),
        chat_call("5", "getNote", '{"noteId": 0, "extra": true}'),
        chat_call("6", "getNote", '{"noteId": 13}'),
        chat_call("7", "getNote", '{"noteId": 14}'),
        chat_call("8", "days_between", '{"start": "soon", "end": "2024-03-01"}'),
        chat_call("9", "noSuchTool", "not json"),
        chat_call("10", "getNote", '{"noteId": 1}'),
    ]
    assert await run_turn(gateway, ALICE, calls) == {
        "messages": [
            tool_message("1", not_found("noSuchTool")),
            tool_message("2", not_found("deleteNote")),
            tool_message("3", not_found("now")),
            tool_message(
                "4",
                invalid(
                    "getNote",
                    ("$", "the arguments are not valid JSON: " + END_OF_DATA),
                ),
            ),
            tool_message(
                "5",
                invalid(
                    "getNote",
                    ("$", "Additional properties are not allowed ('extra' was unexpected)"),
                    ("$.noteId", "0 is less than the minimum of 1"),
                ),
            ),
            tool_message(
                "6",
                {
                    "ok": False,
                    "error": {
                        "type": "upstream_unavailable",
                        "message": "upstream 'notes': connection refused",
                    },
                },
            ),
            tool_message(
                "7",
                {
                    "ok": False,
                    "error": {
                        "type": "upstream_timeout",
                        "message": "upstream 'notes': no answer within 30 s",
                    },
                },
            ),
            tool_message(
                "8",
                {
                    "ok": False,
                    "status": None,
                    "result": "ValueError: Invalid isoformat string: 'soon'",
                },
            ),
            tool_message("9", not_found("noSuchTool")),
            tool_message("10", NOTE),
        ]
    }


# -- OpenAI Responses ----------------------------------------------------------------------------


async def test_responses_function_calls_are_answered_with_function_call_outputs(
    gateway: Gateway,
) -> None:
    """Reasoning and message items beside the calls are left alone."""
    response = {
        "id": "resp_1",
        "object": "response",
        "output": [
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_a",
                "name": "getNote",
                "arguments": '{"noteId": 1}',
            },
            {
                "type": "function_call",
                "id": "fc_2",
                "call_id": "call_b",
                "name": "getNote",
                "arguments": '{"noteId": 9}',
            },
            {"type": "message", "role": "assistant", "content": []},
        ],
    }
    assert await run_turn(gateway, ALICE, response) == {
        "items": [
            {
                "type": "function_call_output",
                "call_id": "call_a",
                "output": '{"id":1,"title":"Welcome"}',
            },
            {
                "type": "function_call_output",
                "call_id": "call_b",
                "output": '{"ok":false,"status":404,"result":{"error":"no note"}}',
            },
        ]
    }


async def test_in_a_whole_input_only_the_calls_without_output_run(gateway: Gateway) -> None:
    """A client may send the `input` it is about to send: answered calls are not run again."""
    request = {
        "model": "gpt-5",
        "input": [
            {"role": "user", "content": "Delete note 1, then list the notes."},
            {
                "type": "function_call",
                "call_id": "call_a",
                "name": "deleteNote",
                "arguments": '{"noteId": 1}',
            },
            {
                "type": "function_call_output",
                "call_id": "call_a",
                "output": '{"ok":true,"status":204}',
            },
            {"type": "function_call", "call_id": "call_b", "name": "listNotes", "arguments": "{}"},
        ],
    }
    upstream = gateway.upstream
    assert isinstance(upstream, MockUpstream)
    assert await run_turn(gateway, ANONYMOUS_ADMIN, request) == {
        "items": [
            {
                "type": "function_call_output",
                "call_id": "call_b",
                "output": '[{"id":1,"title":"Welcome"}]',
            }
        ]
    }
    assert [(r.method, r.url) for r in upstream.requests] == [("GET", "http://notes.test/v1/notes")]


async def test_one_function_call_item_alone(gateway: Gateway) -> None:
    item = {"type": "function_call", "call_id": "c", "name": "getStatus", "arguments": "{}"}
    answer = {"items": [{"type": "function_call_output", "call_id": "c", "output": "up"}]}
    assert await run_turn(gateway, ALICE, item) == answer


# -- Anthropic -------------------------------------------------------------------------------------


async def test_anthropic_tool_use_blocks_are_answered_with_one_user_message(
    gateway: Gateway,
) -> None:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_1", "name": "getNote", "input": {"noteId": 1}},
            {"type": "tool_use", "id": "toolu_2", "name": "getNote", "input": {"noteId": 9}},
            {"type": "tool_use", "id": "toolu_3", "name": "now", "input": {}},
        ],
        "stop_reason": "tool_use",
    }
    result = {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "content": '{"id":1,"title":"Welcome"}',
        "is_error": False,
    }
    assert await run_turn(gateway, ALICE, message) == {
        "messages": [
            {
                "role": "user",
                "content": [
                    result,
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_2",
                        "content": '{"ok":false,"status":404,"result":{"error":"no note"}}',
                        "is_error": True,
                    },
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_3",
                        "content": orjson.dumps(not_found("now")).decode(),
                        "is_error": True,
                    },
                ],
            }
        ]
    }
    blocks = message["content"]
    assert isinstance(blocks, list)
    single = await run_turn(gateway, ALICE, blocks[1])
    assert (await run_turn(gateway, ALICE, blocks[:2]), single) == (
        {"messages": [{"role": "user", "content": [result]}]},
        {"messages": [{"role": "user", "content": [result]}]},
    )


async def test_gemini_function_calls_are_answered_with_function_responses(
    gateway: Gateway,
) -> None:
    """Gemini reads each call's answer as an object: `output`, or `error` for a failed call."""
    content = {
        "role": "model",
        "parts": [
            {"text": "Let me look."},
            {"functionCall": {"id": "call-1", "name": "getNote", "args": {"noteId": 1}}},
            {"functionCall": {"name": "getNote", "args": {"noteId": 9}}},  # ids are optional
            {"function_call": {"name": "getStatus"}},  # as the Python SDK dumps a part
        ],
    }
    found = {
        "id": "call-1",
        "name": "getNote",
        "response": {"output": '{"id":1,"title":"Welcome"}'},
    }
    missing = {
        "name": "getNote",
        "response": {"error": '{"ok":false,"status":404,"result":{"error":"no note"}}'},
    }
    status = {"name": "getStatus", "response": {"output": "up"}}
    answer = {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"functionResponse": found},
                    {"functionResponse": missing},
                    {"functionResponse": status},
                ],
            }
        ]
    }
    response = {"candidates": [{"content": content, "finishReason": "STOP"}]}
    parts = content["parts"]
    assert isinstance(parts, list)
    assert (
        await run_turn(gateway, ALICE, content),
        await run_turn(gateway, ALICE, response),
        await run_turn(gateway, ALICE, parts[1]),
    ) == (answer, answer, {"contents": [{"role": "user", "parts": [{"functionResponse": found}]}]})


async def test_in_a_gemini_conversation_only_the_calls_without_a_response_run(
    gateway: Gateway,
) -> None:
    contents = [
        {"role": "user", "parts": [{"text": "Show note 1, then the status."}]},
        {
            "role": "model",
            "parts": [
                {"functionCall": {"id": "a", "name": "getNote", "args": {"noteId": 1}}},
                {"functionCall": {"name": "getStatus", "args": {}}},
                {"functionCall": {"id": "c", "name": "getNote", "args": {"noteId": 9}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"id": "a", "name": "getNote", "response": {"output": "1"}}},
                {"functionResponse": {"name": "getStatus", "response": {"output": "up"}}},
            ],
        },
    ]
    answer = await run_turn(gateway, ALICE, {"contents": contents})
    assert answer == {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {
                        "functionResponse": {
                            "id": "c",
                            "name": "getNote",
                            "response": {
                                "error": '{"ok":false,"status":404,"result":{"error":"no note"}}'
                            },
                        }
                    }
                ],
            }
        ]
    }


@pytest.mark.parametrize(
    ("calls", "responses", "run"),
    [
        # `Part.from_function_response(name=...)` gives no id: it answers its call by name.
        ([("c1", "getStatus")], [(None, "getStatus")], []),
        ([(None, "getStatus")], [("r1", "getStatus")], []),  # and the other way round
        # One response answers one call: the second of two calls of a name still runs.
        ([(None, "getStatus"), (None, "getStatus")], [(None, "getStatus")], [1]),
        ([("a", "getStatus"), ("b", "getStatus")], [("b", "getStatus")], [0]),
        ([("a", "getStatus"), (None, "getStatus")], [("a", "getStatus")], [1]),
    ],
)
async def test_a_gemini_response_answers_its_call_by_id_else_one_call_of_its_name(
    gateway: Gateway,
    calls: list[tuple[str | None, str]],
    responses: list[tuple[str | None, str]],
    run: list[int],
) -> None:
    def call(ident: str | None, name: str) -> dict[str, Any]:
        return {"functionCall": {"name": name, "args": {}, **({"id": ident} if ident else {})}}

    def response(ident: str | None, name: str) -> dict[str, Any]:
        body = {"name": name, "response": {"output": "up"}, **({"id": ident} if ident else {})}
        return {"functionResponse": body}

    contents = [
        {"role": "model", "parts": [call(*c) for c in calls]},
        {"role": "user", "parts": [response(*r) for r in responses]},
    ]
    answer = await run_turn(gateway, ALICE, {"contents": contents})
    ran = [p["functionResponse"] for c in answer["contents"] for p in c["parts"]]
    expected = [{**({"id": calls[i][0]} if calls[i][0] else {}), "name": calls[i][1]} for i in run]
    assert [{k: v for k, v in r.items() if k != "response"} for r in ran] == expected


@pytest.mark.parametrize("by_alias", [True, False], ids=["rest", "python-sdk"])
async def test_a_gemini_response_made_by_its_sdk_is_answered_with_what_the_sdk_reads(
    gateway: Gateway, by_alias: bool
) -> None:
    """google-genai's own types, dumped as its REST API (`functionCall`) or its Python objects
    (`function_call`) write them; the answer read back by them."""
    call = genai.FunctionCall(id="call-7", name="getNote", args={"noteId": 1})
    content = genai.Content(role="model", parts=[genai.Part(function_call=call)])
    response = genai.GenerateContentResponse(candidates=[genai.Candidate(content=content)])
    sent = response.model_dump(mode="json", exclude_none=True, by_alias=by_alias)
    answer = await run_turn(gateway, ALICE, sent)
    (appended,) = [genai.Content.model_validate(c) for c in answer["contents"]]
    assert appended == genai.Content(
        role="user",
        parts=[
            genai.Part(
                function_response=genai.FunctionResponse(
                    id="call-7",
                    name="getNote",
                    response={"output": '{"id":1,"title":"Welcome"}'},
                )
            )
        ],
    )


# -- turns without calls, and payloads that are no turn ------------------------------------------


@pytest.mark.parametrize(
    ("payload", "answer"),
    [
        ({"role": "assistant", "content": "Hello.", "tool_calls": None}, {"messages": []}),
        ({"role": "assistant", "tool_calls": []}, {"messages": []}),
        ({"output": [{"type": "message", "role": "assistant", "content": []}]}, {"items": []}),
        ({"role": "assistant", "content": [{"type": "text", "text": "Hello."}]}, {"messages": []}),
        ({"role": "model", "parts": [{"text": "Hello."}]}, {"contents": []}),
    ],
)
async def test_a_turn_without_calls_has_nothing_to_append(
    gateway: Gateway, payload: Any, answer: Any
) -> None:
    assert await run_turn(gateway, ALICE, payload) == answer


SHAPES = (
    "an OpenAI `tool_calls` array or the assistant message holding it; OpenAI Responses "
    '`function_call` items, or {"output": [...]} / {"input": [...]} holding them; Anthropic '
    "`tool_use` blocks, or the assistant message holding them; Gemini `functionCall` parts, "
    "or the model content or response holding them"
)
MANY = [chat_call(str(i), "getStatus", "{}") for i in range(MAX_CALLS + 1)]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("getStatus", f"no tool calls found; expected {SHAPES}"),
        ({}, f"no tool calls found; expected {SHAPES}"),
        ([], f"no tool calls found; expected {SHAPES}"),
        ([{"type": "text", "text": "hi"}], f"no tool calls found; expected {SHAPES}"),
        (
            [
                chat_call("a", "getStatus", "{}"),
                {"type": "tool_use", "id": "b", "name": "x", "input": {}},
            ],
            f"the list mixes tool calls of several APIs; expected {SHAPES}",
        ),
        ({"tool_calls": {"id": "a"}}, "tool_calls: expected a list, found an object"),
        ({"tool_calls": [{"id": "a"}]}, "tool_calls[0]: expected a tool call, found an object"),
        (
            [{"type": "function", "function": {"name": "getStatus", "arguments": "{}"}}],
            "$[0].id: expected a non-empty string, found nothing",
        ),
        (
            {"type": "tool_use", "id": "", "name": "getStatus", "input": {}},
            "$.id: expected a non-empty string, found an empty string",
        ),
        (
            {"output": [{"type": "function_call", "call_id": "c", "name": 7}]},
            "output[0].name: expected a non-empty string, found a number",
        ),
        ({"choices": []}, "expected a completion with one choice, found 0 choices"),
        ({"candidates": []}, "expected a response with one candidate, found 0 candidates"),
        ({"candidates": [None]}, "candidates[0]: expected an object, found nothing"),
        (
            {
                "contents": [
                    {"role": "model", "parts": [{"functionCall": {"name": "getStatus"}}]},
                    {"role": "user", "parts": [{"functionResponse": {"id": {}, "name": "x"}}]},
                ]
            },
            "contents[1].parts[0].functionResponse.id: expected a non-empty string, found an "
            "object",
        ),
        (
            {"role": "model", "parts": [{"functionCall": {"args": {}}}]},
            "parts[0].functionCall.name: expected a non-empty string, found nothing",
        ),
        (
            {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
            f"contents: no model content with function calls; expected {SHAPES}",
        ),
        (MANY, f"{MAX_CALLS + 1} tool calls in one turn; at most {MAX_CALLS} are run"),
    ],
)
async def test_a_payload_that_is_no_turn_is_a_bad_request(
    gateway: Gateway, payload: Any, message: str
) -> None:
    with pytest.raises(BadRequest) as caught:
        await run_turn(gateway, ALICE, payload)
    assert (str(caught.value), caught.value.status) == (message, 400)
