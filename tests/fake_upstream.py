"""A stand-in for a remote API: echoes every request, and answers badly on purpose when asked.

`/fault/...` paths misbehave: slow, 500, garbage JSON, a huge body, redirects; `/binary/...`
echoes the request's credentials in bytes. Everything else
answers 200 with the method, path, raw query, headers and body it received, so a test can see
exactly what the gateway sent over the wire. Each header also comes back as its sha256
(`header_sha256`, see `digest`): the gateway redacts configured secrets from what it answers,
so a credential it sent is seen in the echo as the marker, and proven by its digest.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route


def digest(value: str) -> str:
    """What `header_sha256` holds for a header value."""
    return hashlib.sha256(value.encode("latin-1")).hexdigest()


async def echo(request: Request) -> Response:
    body = await request.body()
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "raw_path": request.scope["raw_path"].decode("latin-1"),
            "query": request.url.query,
            "headers": dict(request.headers.items()),
            "header_sha256": {name: digest(value) for name, value in request.headers.items()},
            "body": body.decode("utf-8", "replace"),
            "body_base64": base64.b64encode(body).decode(),
        }
    )


async def fault(request: Request) -> Response:
    kind = request.path_params["kind"]
    if kind == "slow":
        await asyncio.sleep(float(request.query_params.get("seconds", "5")))
        return JSONResponse({"late": True})
    if kind == "error":
        return JSONResponse({"message": "it broke"}, status_code=500)
    if kind == "missing":
        return JSONResponse({"message": "no such pet"}, status_code=404)
    if kind == "garbage":
        return Response(b"{not json", media_type="application/json")
    if kind == "huge":
        return Response(
            b"x" * int(request.query_params.get("bytes", "100000")), media_type="text/plain"
        )
    if kind == "image":
        return Response(b"\x89PNG\r\n\x1a\n" + b"\x00" * 8, media_type="image/png")
    if kind == "redirect-here":
        return RedirectResponse("/echo/redirected", status_code=307)
    if kind == "redirect-away":
        return RedirectResponse("http://127.0.0.2:9/elsewhere", status_code=302)
    return JSONResponse({"unknown fault": kind}, status_code=400)


async def binary(request: Request) -> Response:
    """The request's credentials echoed in an answer that is bytes, not text: `octet` as
    application/octet-stream, `nul` as text/plain that holds a NUL (both come back as base64)."""
    said = f"auth={request.headers.get('authorization')} query={request.url.query}"
    body = b"\x00\x01" + said.encode() + b"\xff"
    kind = request.path_params["kind"]
    return Response(body, media_type="text/plain" if kind == "nul" else "application/octet-stream")


def create_upstream() -> Starlette:
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    return Starlette(
        routes=[
            Route("/fault/{kind}", fault, methods=methods),
            Route("/binary/{kind}", binary, methods=methods),
            Route("/{path:path}", echo, methods=methods),
        ]
    )
