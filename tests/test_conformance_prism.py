"""Conformance over the corpus, where openapi-core cannot look: Prism's mock accepts our requests.

tests/test_conformance.py validates built requests with openapi-core, which reads OpenAPI 3.x
only. For every document of MANIFEST.tsv that openapi-core cannot load (the Swagger 2.0 ones,
and any 3.x document it fails on), this module starts Prism's mock of the document (`prism mock
<document>`, once per document), builds the same deterministic sample of requests the same way
(arguments from tests.test_conformance's generator, dummy credentials for the operation's first
security alternative, `request.build_request`), sends them with httpx2, and reads Prism's
verdict: an error-severity request violation, or any error of Prism's own about the request
(no route, no method, content type, security), is a non-conformance. tests/prism.py says how
Prism answers. Each request is built on Prism's URL plus the document's base path, and sent
with the base path taken off (Prism routes relative to the server) and, when the document names
an absolute server, `__server=<it>`, so Prism also checks the base URL the converter resolved.

Failures the document itself, Prism, or an already reported converter bug explains are listed
in KNOWN, each with its reason; anything else fails. A document Prism cannot load, or takes
more than LOAD_TIMEOUT seconds to load, is reported as not checked by Prism, with the reason. A
request that crashes Prism (it has such bugs) is that operation's failure, with Prism's
exception, and the document's remaining operations are reported as not checked.
The last test prints the table of rates per document.

Prism: `$TOOLBRIDGE_PRISM` (the path of a `prism` executable), else `.ci/node_modules/.bin/prism`,
which the first test run installs there with npm (tests/externals.py). When it can be neither
found nor installed, these tests FAIL, saying why. For a fast inner loop only,
`TOOLBRIDGE_SKIP_PRISM=1` skips the whole module.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx2
import pytest

from tests.corpus import CORPUS, ROWS
from tests.openapi.test_convert import RESERVED_REQUIRED
from tests.prism import (
    PrismMock,
    PrismNotReady,
    header_violations,
    verdict,
)
from tests.test_conformance import (
    Known,
    Row,
    base_url_for,
    dummy_auth,
    generated,
    load_oracle,
    sample,
)
from toolbridge.errors import InvalidArguments
from toolbridge.openapi.convert import Conversion, convert
from toolbridge.openapi.documents import DocumentStore, cache_dir_from, location_to_uri
from toolbridge.tools import Tool
from toolbridge.upstream.clients import make_upstream
from toolbridge.upstream.request import build_request
from toolbridge.upstream.seam import Timeouts

pytestmark = [
    pytest.mark.corpus,
    pytest.mark.skipif(
        os.environ.get("TOOLBRIDGE_SKIP_PRISM") == "1",
        reason="TOOLBRIDGE_SKIP_PRISM=1: Prism conformance not run",
    ),
]

LOAD_TIMEOUT = 60.0
"""Seconds Prism may take to load a document (kubernetes' 4 MB takes about 15)."""
REQUEST_TIMEOUT = 30.0

KNOWN = (
    # -- the converter (reported; remove each entry when its fix lands) --
    # -- the documents --
    Known(
        "powerplatform/JIRA/apiDefinition.swagger.json",
        "CreateIssue|CreateIssueV2|UpdateIssue|AddComment|CreateProject",
        "415 INVALID_CONTENT_TYPE: No supported content types",
        "spec",
        "body parameters with no `consumes` at the operation or the document: the document "
        "names no media type for the body, so Prism accepts none; we send application/json, "
        "the conventional default (the operations that declare `consumes` pass)",
    ),
    # -- Prism --
)
"""Failures explained elsewhere, as in tests.test_conformance (`oracle` here means Prism)."""


TABLE: dict[str, Row] = {}
"""Filled by the per-document tests, printed by the last test of this module."""
OPENAPI_CORE: list[str] = []
"""The documents openapi-core loads: tests.test_conformance checks them, not Prism."""
USED: set[Known] = set()
"""The KNOWN entries that explained a failure in this run."""


@pytest.fixture(scope="module")
def prism(prism_binary: Path) -> Path:
    return prism_binary


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> DocumentStore:
    """One parse cache: TOOLBRIDGE_CACHE_DIR, or the session folder tests.test_conformance uses."""
    cache = cache_dir_from(os.environ) if "TOOLBRIDGE_CACHE_DIR" in os.environ else None
    return DocumentStore(cache_dir=cache or tmp_path_factory.getbasetemp() / "cache")


def send(client: httpx2.Client, prism_url: str, tool: Tool, conversion: Conversion) -> list[str]:
    """Prism's complaints about the built request for generated arguments (empty: accepted)."""
    op = tool.http
    arguments = generated(tool)
    if isinstance(arguments, str):
        return [arguments]
    base_path = urlsplit(base_url_for(op)).path.rstrip("/")
    try:
        request = build_request(
            op, arguments, base_url=prism_url + base_path, auth=dummy_auth(op, conversion)
        )
    except InvalidArguments as exc:
        return [f"build_request: {exc}"]
    url = urlsplit(request.url)
    prefix = quote(base_path, safe="/:@!$&'()*+,;=-._~%")
    if not url.path.startswith(prefix):
        return [f"build_request: {request.url} is not under the base path {base_path!r}"]
    query = [url.query] if url.query else []
    server = op.base_url or ""
    parts = urlsplit(server)
    if parts.scheme in ("http", "https") and parts.netloc and "{" not in server:
        query.append("__server=" + quote(server, safe=""))
    target = prism_url + url.path[len(prefix) :] + ("?" + "&".join(query) if query else "")
    try:
        response = client.request(
            request.method, target, headers=list(request.headers), content=request.body
        )
    except httpx2.HTTPError as exc:
        return [f"send: {type(exc).__name__}: {exc}"]
    return verdict(response)


@pytest.mark.parametrize("row", ROWS, ids=[r["file"] for r in ROWS])
def test_prism_accepts(
    row: dict[str, str], store: DocumentStore, prism: Path, tmp_path: Path
) -> None:
    """Every sampled operation's built request passes Prism's request validation."""
    path = CORPUS / row["file"]
    uri = location_to_uri(str(path))
    swagger = row["openapi_version"].startswith("2")
    if not swagger and not isinstance(load_oracle(path, store.get(uri).data), str):
        OPENAPI_CORE.append(row["file"])
        return
    line = Row(file=row["file"], version=row["openapi_version"])
    TABLE[row["file"]] = line
    with PrismMock(prism, path, log=tmp_path / "prism.log") as mock:
        conversion = convert(store, uri)  # while Prism loads the document
        try:
            prism_url = mock.wait(LOAD_TIMEOUT)
        except PrismNotReady as exc:
            line.not_checked = f"not checked by Prism: {exc}"
            return
        tools = sample(conversion.tools)
        with httpx2.Client(timeout=REQUEST_TIMEOUT, trust_env=False) as client:
            for index, tool in enumerate(tools, 1):
                line.sampled += 1
                problems = send(client, prism_url, tool, conversion)
                crashed = mock.process.poll() is not None
                if crashed:
                    problems = [f"Prism crashed on this request: {mock.last_words()}"]
                known = explained(row["file"], tool.name, problems)
                if not problems:
                    line.passed += 1
                elif known is not None:
                    line.known[known.kind] = line.known.get(known.kind, 0) + 1
                    USED.add(known)
                else:
                    line.failures.append(f"{tool.name} ({tool.where}): {' | '.join(problems)}")
                if crashed:
                    line.not_checked = f"Prism crashed after {index} of {len(tools)} operations"
                    break
    assert line.failures == []


def explained(file: str, tool: str, problems: list[str]) -> Known | None:
    """The KNOWN entry that accounts for every one of these problems, if there is one."""
    for known in KNOWN:
        matches = known.file == file and re.fullmatch(known.tools, tool)
        if matches and all(re.search(known.problem, problem) for problem in problems):
            return known
    return None


def test_prism_reads_violations(prism: Path, tmp_path: Path) -> None:
    """The oracle is not blind: a request Prism should refuse is refused, for the right reasons.

    specs/swagger2.json's listPets takes `limit` <= 100 and an X-API-Key header.
    """
    document = Path(__file__).resolve().parents[1] / "specs" / "swagger2.json"
    with PrismMock(prism, document, log=tmp_path / "prism.log") as mock:
        url = mock.wait(LOAD_TIMEOUT)
        with httpx2.Client(timeout=REQUEST_TIMEOUT, trust_env=False) as client:
            good = client.get(url + "/pets?limit=5", headers={"X-API-Key": "k"})
            too_many = client.get(url + "/pets?limit=500", headers={"X-API-Key": "k"})
            no_key = client.get(url + "/pets?limit=5")
            under_base = client.get(url + "/v1/pets", headers={"X-API-Key": "k"})
            server = "__server=" + quote("https://petstore.example.com/v1", safe="")
            right_server = client.get(f"{url}/pets?{server}", headers={"X-API-Key": "k"})
            wrong_server = client.get(
                url + "/pets?__server=https%3A%2F%2Fother.test", headers={"X-API-Key": "k"}
            )
    assert verdict(good) == []
    assert verdict(right_server) == []
    assert verdict(too_many) == [
        "query.limit: Request query parameter limit must be <= 100 (maximum)"
    ]
    assert verdict(no_key) == [
        "401 UNAUTHORIZED: Your request does not fullfil the security requirements and no HTTP "
        "unauthorized response was found in the spec, so Prism is generating this error for you."
    ]
    assert verdict(under_base)[0].startswith("404 NO_PATH_MATCHED_ERROR")
    assert verdict(wrong_server)[0].startswith("404 NO_SERVER_MATCHED_ERROR")


def test_cut_violation_header() -> None:
    """A header Prism cut at 8 kB still yields its complete entries (request ones come first)."""
    entry = '{"location":["request","query","n"],"severity":"Error","code":"maximum","message":"m"}'
    cut = f'Too many violations! [{entry},{{"location":["response","body"],"sev'
    assert header_violations(cut) == [json.loads(entry)]
    assert header_violations(f"[{entry}]") == [json.loads(entry)]
    assert header_violations(None) == []


def test_report(capsys: pytest.CaptureFixture[str]) -> None:
    """Print the conformance rate per document Prism checked; no KNOWN entry that ran is stale.

    It runs last and reads what the per-document tests recorded. The rate is over the sampled
    operations whose failures are not explained by KNOWN; the known columns count those by kind.
    """
    head = f"{'document':<50} {'ver':<5} {'sample':>6} {'pass':>5} {'spec':>5} {'prism':>6}"
    lines = [f"{head} {'conv':>5}  rate"]
    for file, line in TABLE.items():
        k = line.known
        checked = line.sampled - sum(k.values())
        rate = f"{100 * line.passed / checked:.0f}%" if checked else "-"
        lines.append(
            f"{file[-50:]:<50} {line.version:<5} {line.sampled:>6} {line.passed:>5} "
            f"{k.get('spec', 0):>5} {k.get('oracle', 0):>6} {k.get('converter', 0):>5}  "
            + (line.not_checked or rate)
        )
    if OPENAPI_CORE:
        lines.append(
            f"({len(OPENAPI_CORE)} documents openapi-core loads: tests/test_conformance.py)"
        )
    with capsys.disabled():
        print("\n\nconformance of built requests (Prism)\n" + "\n".join(lines))
    stale = [k for k in KNOWN if k.file in TABLE and k not in USED]
    assert [f"{k.file} {k.tools}: {k.reason}" for k in stale] == []


def test_reserved_headers_a_document_requires_reach_prism(prism: Path, tmp_path: Path) -> None:
    """A bodiless DELETE whose document requires Content-Length, and a GET that requires an
    Accept its responses do not name, sent by the gateway's own client: Prism finds nothing."""
    document = tmp_path / "reserved.yaml"
    document.write_text(RESERVED_REQUIRED)
    tools = {t.name: t for t in convert(DocumentStore(cache_dir=None), document.as_uri()).tools}
    calls = [("deleteThing", {"id": "a"}), ("getThing", {"id": "a"}), ("touchThing", {"id": "a"})]

    async def send_all(url: str) -> list[list[str]]:
        upstream = make_upstream("http11")
        verdicts = []
        try:
            for name, arguments in calls:
                request = build_request(tools[name].http, arguments, base_url=url)
                answer = await upstream.send(
                    request, timeouts=Timeouts(total=REQUEST_TIMEOUT), max_bytes=1 << 20
                )
                response = httpx2.Response(
                    answer.status, headers=list(answer.headers), content=answer.body
                )
                verdicts.append(verdict(response))
        finally:
            await upstream.aclose()
        return verdicts

    with PrismMock(prism, document, log=tmp_path / "prism.log") as mock:
        url = mock.wait(LOAD_TIMEOUT)
        assert asyncio.run(send_all(url)) == [[], [], []]
