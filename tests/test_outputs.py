"""An answer that does not fit its output schema is warned of once per tool and schema, not
once per catalog: a busy admin API or watched folder reloads every few seconds."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import orjson
import pytest

from toolbridge.config import Config
from toolbridge.gateway import Gateway
from toolbridge.policy import Principal
from toolbridge.upstream.seam import MockUpstream, UpstreamRequest, UpstreamResponse

pytestmark = pytest.mark.anyio


def document(required: str) -> bytes:
    schema = {"type": "object", "required": [required], "properties": {required: {}}}
    return orjson.dumps(
        {
            "openapi": "3.0.3",
            "info": {"title": "t", "version": "1"},
            "paths": {
                "/status": {
                    "get": {
                        "operationId": "getStatus",
                        "responses": {
                            "200": {
                                "description": "ok",
                                "content": {"application/json": {"schema": schema}},
                            }
                        },
                    }
                }
            },
        }
    )


async def test_a_mismatch_is_warned_of_once_per_tool_and_schema_across_reloads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec = tmp_path / "api.json"
    spec.write_bytes(document("status"))

    def answer(request: UpstreamRequest) -> UpstreamResponse:
        return UpstreamResponse(
            status=200, headers=(("content-type", "application/json"),), body=b"{}"
        )

    entry = {"id": "api", "spec": str(spec), "base_url": "http://api.test"}
    config = Config.model_validate({"servers": [entry]})
    served = Gateway(config, upstream=MockUpstream(answer), reread=lambda: config)
    warned = []
    with caplog.at_level(logging.WARNING, logger="toolbridge.gateway"):
        async with served:
            for step in range(4):
                if step == 2:  # the document now requires another field: a new schema
                    spec.write_bytes(document("state"))
                if step:
                    await served.reload()
                for _ in range(2):
                    assert (await served.call(Principal(id="o", admin=True), "getStatus", {})).ok
                await asyncio.sleep(0)  # a call is counted (and checked) on the loop's next turn
                warned.append(len([r for r in caplog.records if "output schema" in r.getMessage()]))
    assert warned == [1, 1, 2, 2]
