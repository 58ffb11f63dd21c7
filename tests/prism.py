"""Prism (Stoplight's mock server) as a conformance oracle: run it, read its verdict.

tests/externals.py finds or installs it (the `prism_binary` fixture).

`prism mock <document>` serves every operation of an OpenAPI 3.x or Swagger 2.0 document and
validates each request it receives against the operation it routes to, before it mocks an
answer. What it says about a request (Prism 5.14.2, found by trying it):

- Routes are matched on the path relative to the document's server: `/pets`, not `/v1/pets`
  for `basePath: /v1`. With a `__server=<url>` query parameter it also checks that the URL is
  one of the document's servers (404 NO_SERVER_MATCHED_ERROR otherwise).
- No route: 404 NO_PATH_MATCHED_ERROR; a route without that method: 405
  NO_METHOD_MATCHED_ERROR. A body of a media type the operation does not consume: 415
  INVALID_CONTENT_TYPE.
- Parameters, body and security are validated. With an error among the request violations it
  answers the document's 422 or 400 response (401 for security) if there is one, with the
  violations in the `sl-violations` header (JSON); else its own problem+json: 422
  UNPROCESSABLE_ENTITY with a `validation` list, or 401 UNAUTHORIZED.
- A valid request gets the document's lowest 2xx response (or whatever the operation
  documents: an operation documenting only 401 answers 401, without violations). Prism then
  validates its own mocked response and adds those violations (location `response...`) to the
  same header; they say nothing about the request. Request violations come first in the header,
  which is cut at 8 kB and prefixed with "Too many violations! " when longer.
- Unknown query parameters, headers and cookies are not violations.

Only violations of severity "Error" make a request non-conforming; warnings (a deprecated
operation, say) do not.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx2

PRISM_ERRORS = "https://stoplight.io/prism/errors#"
MOCK_ONLY = frozenset({"NO_RESPONSE_RESPONSE_DEFINED", "SCHEMA_TOO_COMPLEX"})
"""Prism's errors about mocking the answer: it validated the request before them, and passed it."""
_LISTENING = re.compile(r"Prism is listening on (http://[^\s\x1b]+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_THROWN = re.compile(r"\w*Error: ")
"""The line of a JavaScript exception (`TypeError: ...`, `MissingPointerError: ...`)."""


class PrismNotReady(Exception):
    """Prism exited, or did not listen in time: it cannot check this document."""


class PrismMock:
    """`prism mock <document>` on 127.0.0.1 and a port the system picks, in its own session.

    It starts loading at once, so the caller can do other work before `wait`. Leaving the
    `with` block ends the process group it started (TERM, then KILL after 5 s).
    """

    def __init__(self, binary: Path, document: Path, log: Path) -> None:
        self.log = log
        self._log_file = log.open("wb")
        self.started = time.monotonic()
        try:
            self.process = subprocess.Popen(
                [str(binary), "mock", str(document), "--host", "127.0.0.1", "--port", "0"],
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError:
            self._log_file.close()
            raise

    def wait(self, timeout: float) -> str:
        """Prism's base URL once it listens; PrismNotReady with the reason when it will not."""
        deadline = self.started + timeout
        while True:
            text = self._text()
            found = _LISTENING.search(text)
            if found:
                return found.group(1).rstrip("/")
            code = self.process.poll()
            if code is not None:
                raise PrismNotReady(f"Prism exited with code {code}: {self.last_words()}")
            if time.monotonic() > deadline:
                raise PrismNotReady(f"Prism was not listening after {timeout:.0f} s")
            time.sleep(0.05)

    def _text(self) -> str:
        return _ANSI.sub("", self.log.read_text(encoding="utf-8", errors="replace"))

    def last_words(self) -> str:
        """What Prism said last about a failure: its exception, else its last error lines."""
        lines = [line.strip() for line in self._text().splitlines() if line.strip()]
        thrown = [line for line in lines if _THROWN.match(line)]
        errors = [line for line in lines if "error" in line.lower() or "fatal" in line.lower()]
        return " / ".join((thrown or errors or lines)[-2:])[:300] or "(no output)"

    def close(self) -> None:
        if self.process.poll() is None:
            for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(self.process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.process.wait(grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self._log_file.close()

    def __enter__(self) -> PrismMock:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def verdict(response: httpx2.Response) -> list[str]:
    """Prism's complaints about the request it answered (empty when it accepted it).

    Error-severity request violations from `sl-violations` and from its own 422 body, and any
    other error of Prism's own (no route, no method, content type, security), except those
    about mocking the answer, which come after the request passed.
    """
    problems = [
        _describe(v, prefix="request")
        for v in header_violations(response.headers.get("sl-violations"))
        if _is_request_error(v, prefix="request")
    ]
    problem = _prism_problem(response)
    if problem is None:
        return problems
    kind = str(problem.get("type", ""))[len(PRISM_ERRORS) :]
    if kind in MOCK_ONLY:
        return problems
    if kind == "UNPROCESSABLE_ENTITY":
        found = [v for v in problem.get("validation") or () if _is_request_error(v, prefix=None)]
        return problems + [_describe(v, prefix=None) for v in found]
    return [*problems, f"{response.status_code} {kind}: {problem.get('detail', '')}"]


def header_violations(value: str | None) -> list[dict[str, Any]]:
    """The `sl-violations` header's entries, also the complete ones of a cut header."""
    if not value:
        return []
    text = value.removeprefix("Too many violations! ")
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = _complete_prefix(text)
    return [v for v in parsed if isinstance(v, dict)] if isinstance(parsed, list) else []


def _complete_prefix(text: str) -> list[Any]:
    decoder = json.JSONDecoder()
    out: list[Any] = []
    position = 1 if text.startswith("[") else len(text)
    while position < len(text):
        try:
            item, position = decoder.raw_decode(text, position)
        except ValueError:
            break
        out.append(item)
        position += 1 if text[position : position + 1] == "," else len(text)
    return out


def _is_request_error(violation: Any, *, prefix: str | None) -> bool:
    if not isinstance(violation, dict) or violation.get("severity") != "Error":
        return False
    location = violation.get("location") or []
    return prefix is None or (isinstance(location, list) and location[:1] == [prefix])


def _describe(violation: dict[str, Any], *, prefix: str | None) -> str:
    location = [str(p) for p in violation.get("location") or []]
    if prefix is not None:
        location = location[1:]
    where = ".".join(location) or "request"
    return f"{where}: {violation.get('message', '')} ({violation.get('code', '')})"


def _prism_problem(response: httpx2.Response) -> dict[str, Any] | None:
    if "problem+json" not in response.headers.get("content-type", ""):
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, dict) and str(body.get("type", "")).startswith(PRISM_ERRORS):
        return body
    return None
