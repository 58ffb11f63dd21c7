"""A gateway in front of an in-process upstream (httpx2's ASGI transport): no socket opened."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
from starlette.applications import Starlette

from toolbridge.config import Config, Server
from toolbridge.gateway import Gateway
from toolbridge.serve.app import create_app
from toolbridge.upstream.clients import HttpxUpstream


@contextlib.asynccontextmanager
async def gateway_before(
    service: Starlette, document: dict[str, Any], folder: Path
) -> AsyncIterator[Gateway]:
    """A loaded gateway whose one server (`api`, described by `document`) is `service`."""
    spec = folder / "api.json"
    spec.write_text(json.dumps(document))
    upstream = HttpxUpstream()
    upstream._client = httpx2.AsyncClient(transport=httpx2.ASGITransport(service))
    config = Config(servers=(Server(id="api", spec=str(spec)),), base_dir=folder)
    gateway = Gateway(config, upstream=upstream)
    gateway.load()
    async with gateway:
        yield gateway


@contextlib.asynccontextmanager
async def client_of(gateway: Gateway) -> AsyncIterator[httpx2.AsyncClient]:
    """An HTTP client of the gateway's app, in-process."""
    transport = httpx2.ASGITransport(create_app(gateway))
    async with httpx2.AsyncClient(transport=transport, base_url="http://localhost") as client:
        yield client
