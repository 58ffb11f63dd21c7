"""Integers past 64 bits in a call's arguments reach the upstream with every digit.

orjson, which reads the gateway's request bodies, reads such integers as floats: a write of
18446744073709551616 stored 1.8446744073709552e+19 upstream. The upstream here is in-process
(httpx2's ASGI transport) and answers with the very bytes it was sent, which the gateway passes
on as their JSON text (an answer holding such integers is not parsed).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.serve.in_process import client_of, gateway_before

pytestmark = pytest.mark.anyio

BIG = '{"huge": 123456789012345678901234567890, "above": 18446744073709551616, "below": -9223372036854775809, "fits": 9007199254740993}'  # noqa: E501
"""Past 64 bits on both sides, and one that fits (orjson keeps those)."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def record(request: Request) -> Response:
    body = await request.body()
    return Response(body, media_type="application/json")


DOCUMENT = {
    "openapi": "3.1.0",
    "info": {"title": "records", "version": "1"},
    "servers": [{"url": "http://records.test"}],
    "paths": {
        "/records": {
            "post": {
                "operationId": "putRecord",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "data": {"type": "object"},
                                    # Optional[object], as chromadb writes its metadata
                                    "metadata": {
                                        "oneOf": [
                                            {"type": "null"},
                                            {"$ref": "#/components/schemas/Metadata"},
                                        ]
                                    },
                                    "metadatas": {
                                        "type": ["array", "null"],
                                        "items": {
                                            "anyOf": [
                                                {"$ref": "#/components/schemas/Metadata"},
                                                {"type": "null"},
                                            ]
                                        },
                                    },
                                },
                            }
                        }
                    },
                },
                "responses": {"200": {"description": "what was stored"}},
            }
        }
    },
    "components": {
        "schemas": {
            "Metadata": {
                "type": "object",
                "additionalProperties": {"type": ["string", "integer", "number", "boolean"]},
            }
        }
    },
}


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx2.AsyncClient]:
    service = Starlette(routes=[Route("/records", record, methods=["POST"])])
    async with gateway_before(service, DOCUMENT, tmp_path) as gateway, client_of(gateway) as client:
        yield client


async def test_a_call_sends_every_digit(http: httpx2.AsyncClient) -> None:
    body = '{"data": ' + BIG + "}"
    answer = await http.post(
        "/v1/tools/putRecord/call", content=body, headers={"content-type": "application/json"}
    )
    assert answer.json() == {
        "ok": True,
        "status": 200,
        "content_type": "application/json",
        "result": '{"data":{"huge":123456789012345678901234567890,"above":18446744073709551616,'
        '"below":-9223372036854775809,"fits":9007199254740993}}',
    }


async def test_one_turns_arguments_as_a_json_string_keep_every_digit(
    http: httpx2.AsyncClient,
) -> None:
    turn = {
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "putRecord", "arguments": '{"data": ' + BIG + "}"},
            }
        ]
    }
    answer = await http.post("/v1/tool_calls", json=turn)
    (message,) = answer.json()["messages"]
    assert json.loads(message["content"]) == {"data": json.loads(BIG)}


async def test_json_strings_for_optional_objects_in_an_array_are_decoded(
    http: httpx2.AsyncClient,
) -> None:
    sent = {"metadatas": ['{"k": 1}', None, {"k": 2}]}
    answer = await http.post("/v1/tools/putRecord/call", json=sent)
    assert answer.json()["result"] == {"metadatas": [{"k": 1}, None, {"k": 2}]}


@pytest.mark.parametrize(
    ("metadata", "sent"),
    [
        # the Gemini format asks for free-form values as JSON strings, an optional one too
        ('{"owner": "probe", "n": 1}', {"owner": "probe", "n": 1}),
        ('{"n": 18446744073709551616}', {"n": 18446744073709551616}),
        (None, None),
        ({"owner": "probe"}, {"owner": "probe"}),
    ],
)
async def test_a_json_string_for_an_optional_object_is_decoded(
    http: httpx2.AsyncClient, metadata: Any, sent: Any
) -> None:
    answer = await http.post("/v1/tools/putRecord/call", json={"metadata": metadata})
    result = answer.json()["result"]
    assert (json.loads(result) if isinstance(result, str) else result) == {"metadata": sent}
