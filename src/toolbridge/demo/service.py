"""The demo's remote API: the notes service `openapi.yaml` describes, kept in memory.

Every operation, status code and error body is the document's. Nothing is persisted: each app
from `create_demo_app()` starts with the same three notes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from toolbridge.demo import DEMO_SPEC

__all__ = ["DEMO_SPEC", "VERSION", "create_demo_app"]

VERSION = "1.0.0"

Title = Annotated[str, Field(min_length=1, max_length=100)]
Text = Annotated[str, Field(max_length=10_000)]


class NoteInput(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    title: Title
    body: Text = ""
    tags: list[str] = []
    pinned: bool = False


class NoteChanges(BaseModel):
    """Only the fields given change (`model_fields_set`); the defaults are never applied."""

    model_config = ConfigDict(extra="forbid", strict=True)

    title: Title = ""
    body: Text = ""
    tags: list[str] = []
    pinned: bool = False


@dataclass(slots=True, kw_only=True)
class Note:
    id: int
    title: str
    body: str = ""
    tags: list[str] = field(default_factory=list)
    pinned: bool = False
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "body": self.body,
            "tags": list(self.tags),
            "pinned": self.pinned,
            "created_at": _timestamp(self.created_at),
            "updated_at": _timestamp(self.updated_at),
        }


def _seed() -> list[Note]:
    def at(day: int, hour: int, minute: int) -> datetime:
        return datetime(2025, 1, day, hour, minute, tzinfo=UTC)

    return [
        Note(
            id=1,
            title="Welcome",
            body="This is the toolbridge demo. Ask for your notes, add one, or pin what matters.",
            tags=["demo"],
            pinned=True,
            created_at=at(6, 9, 0),
            updated_at=at(6, 9, 0),
        ),
        Note(
            id=2,
            title="Groceries",
            body="Milk, eggs, coffee.",
            tags=["shopping"],
            created_at=at(7, 18, 30),
            updated_at=at(7, 18, 30),
        ),
        Note(
            id=3,
            title="Ideas",
            body="A tool that tells the time in any city.",
            tags=["ideas"],
            created_at=at(8, 8, 15),
            updated_at=at(8, 8, 15),
        ),
    ]


def create_demo_app(*, clock: Callable[[], datetime] | None = None) -> Starlette:
    """The notes service, seeded with three notes; `clock` gives the time for new timestamps."""
    now = clock or (lambda: datetime.now(UTC))
    notes = {note.id: note for note in _seed()}
    next_id = [max(notes) + 1]

    async def list_or_create(request: Request) -> Response:
        if request.method == "POST":
            given = NoteInput.model_validate_json(await request.body())
            stamp = now()
            note = Note(id=next_id[0], created_at=stamp, updated_at=stamp, **given.model_dump())
            notes[note.id] = note
            next_id[0] += 1
            return JSONResponse(note.to_json(), status_code=201)
        tag = request.query_params.get("tag")
        found = [n for n in notes.values() if tag is None or tag in n.tags]
        found.sort(key=lambda n: (not n.pinned, -n.created_at.timestamp(), -n.id))
        return JSONResponse([n.to_json() for n in found])

    async def one(request: Request) -> Response:
        raw = request.path_params["note_id"]
        note = notes.get(int(raw)) if raw.isascii() and raw.isdigit() else None
        if note is None:
            raise HTTPException(404, f"there is no note with id {raw!r}")
        if request.method == "DELETE":
            del notes[note.id]
            return Response(status_code=204)
        if request.method == "PATCH":
            changes = NoteChanges.model_validate_json(await request.body())
            if not changes.model_fields_set:
                raise HTTPException(422, "give at least one of title, body, tags, pinned")
            for name in changes.model_fields_set:
                setattr(note, name, getattr(changes, name))
            note.updated_at = now()
        return JSONResponse(note.to_json())

    async def status(request: Request) -> Response:
        return JSONResponse({"status": "ok", "notes": len(notes), "version": VERSION})

    async def description(request: Request) -> Response:
        # Many services publish their own OpenAPI document; the gateway can read it by URL.
        return Response(DEMO_SPEC.read_bytes(), media_type="application/yaml")

    return Starlette(
        routes=[
            Route("/notes", list_or_create, methods=["GET", "POST"]),
            Route("/notes/{note_id}", one, methods=["GET", "PATCH", "DELETE"]),
            Route("/status", status, methods=["GET"]),
            Route("/openapi.yaml", description, methods=["GET"]),
        ],
        exception_handlers={HTTPException: _http_error, ValidationError: _invalid},
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _invalid(request: Request, exc: Exception) -> Response:
    """A body that is not a valid note: 422 with what is wrong where, as the document says."""
    assert isinstance(exc, ValidationError)
    problems = []
    for error in exc.errors():
        if error["type"] == "json_invalid":
            problems.append("the body is not valid JSON")
        elif not error["loc"]:
            problems.append("the body must be a JSON object")
        else:
            where = ".".join(str(part) for part in error["loc"])
            problems.append(f"{where}: {error['msg']}")
    return JSONResponse({"error": "; ".join(problems)}, status_code=422)


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def main(argv: list[str] | None = None) -> None:
    """Run the demo notes API on its own: `python -m toolbridge.demo.service --port 8901`."""
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description="the toolbridge demo notes API")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8901)
    args = parser.parse_args(argv)
    uvicorn.run(create_demo_app(), host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
