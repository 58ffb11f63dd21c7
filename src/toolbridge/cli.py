"""The `toolbridge` command: `tools` and `check`, each a thin adapter over the library.

Operator errors (a bad config, an unreadable document) are printed without a traceback and
exit with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol, TextIO

import anyio
import httpx2
import orjson

from toolbridge import __version__, json_text
from toolbridge.budgets import Budgets
from toolbridge.calllog import check_audit_file
from toolbridge.cli_state import export_command, rotate_secrets_command
from toolbridge.config import Config, Server
from toolbridge.config_file import DEFAULT_CONFIG, line_of, load_config
from toolbridge.demo import demo_config
from toolbridge.errors import ConfigError, ToolbridgeError
from toolbridge.filters.loader import load_filters
from toolbridge.formats.render import FORMATS, Format, render_tools
from toolbridge.gateway import Gateway
from toolbridge.identity import Authenticator
from toolbridge.openapi.convert import Conversion
from toolbridge.openapi.documents import DocumentStore, cache_dir_from
from toolbridge.policy import Policy
from toolbridge.redaction import RedactingStream, install_log_redaction, secrets_of
from toolbridge.registry import (
    Catalog,
    SourceStatus,
    build_catalog,
    load_local,
    load_server,
    servers_from_specs,
)
from toolbridge.serve import process
from toolbridge.serve.bodies import result_body
from toolbridge.serve.dryrun import dry_run, principal_for
from toolbridge.serve.loopback import LoopbackServer
from toolbridge.state.secrets import SecretBox
from toolbridge.tools import Tool
from toolbridge.upstream.clients import make_upstream
from toolbridge.upstream.transport import server_transport, ssl_context

DEFAULT_URL = "http://127.0.0.1:8080"
KEY_ENV = "TOOLBRIDGE_API_KEY"
"""The admin key `toolbridge reload` sends (not needed in open mode)."""


def _port(text: str) -> int:
    """A TCP port (0: any free one): uvicorn would bind 80000 as 14464 and say 80000."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, found {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, found {port}")
    return port


MAX_WORKERS = 64


def _workers(text: str) -> int:
    """A number of worker processes: 0 or -3 ran one, silently."""
    try:
        workers = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of workers, found {text!r}") from None
    if not 1 <= workers <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"expected 1 to {MAX_WORKERS} workers, found {workers}")
    return workers


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    # What is printed and logged is redacted once a config names its secrets (redaction.py).
    out, err = sys.stdout, sys.stderr
    sys.stdout = TerminalText(RedactingStream(out))
    sys.stderr = TerminalText(RedactingStream(err))
    try:
        code: int = args.run(args)
    except ToolbridgeError as exc:
        print(f"toolbridge: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    finally:
        sys.stdout, sys.stderr = out, err
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="toolbridge", description="Serve OpenAPI operations and Python functions as LLM tools."
    )
    parser.add_argument("--version", action="version", version=f"toolbridge {__version__}")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="load and check everything, then serve the HTTP API")
    serve.add_argument("-c", "--config", type=Path, help=f"config file (default: {DEFAULT_CONFIG})")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument(
        "--port", type=_port, default=8080, help="port to bind, 0 to 65535 (default 8080)"
    )
    serve.add_argument(
        "--workers", type=_workers, default=1, help="worker processes (default 1, at most 64)"
    )
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.set_defaults(run=_serve)

    tools = sub.add_parser("tools", help="print the tool specs without starting a server")
    _add_sources(tools)
    tools.add_argument("--format", choices=FORMATS, default="openai", help="client format")
    tools.add_argument("--strict", action="store_true", help="OpenAI strict-mode schemas")
    tools.add_argument("--json", action="store_true", help='print {"tools": [...]} as JSON')
    tools.set_defaults(run=_tools)

    check = sub.add_parser("check", help="validate config and sources; print what was converted")
    _add_sources(check)
    check.add_argument("--json", action="store_true", help="the report as JSON")
    check.add_argument(
        "--no-validate", action="store_true", help="skip OpenAPI spec validation (it is slow)"
    )
    check.add_argument("-v", "--verbose", action="store_true", help="list every note")
    check.add_argument(
        "--as", dest="user", metavar="USER", help="which tools this user of auth.api_keys sees"
    )
    check.add_argument(
        "tool",
        nargs="?",
        metavar="TOOL",
        help="with --as: may USER use TOOL, and which grant says so",
    )
    check.set_defaults(run=_check)

    call = sub.add_parser("call", help="run one tool call in-process and print its result")
    call.add_argument("name", metavar="NAME", help="the tool's name")
    call.add_argument(
        "--args", default="{}", metavar="JSON", help="the arguments, a JSON object (default {})"
    )
    _add_sources(call)
    call.add_argument(
        "--as",
        dest="user",
        metavar="USER",
        help="act as this user of auth.api_keys (default: an admin)",
    )
    call.add_argument(
        "--dry-run",
        action="store_true",
        help="print the HTTP request as a curl line (secrets masked) instead of sending it",
    )
    call.set_defaults(run=_call)

    reload = sub.add_parser(
        "reload", help="make a running gateway re-read its config and sources; print what changed"
    )
    reload.add_argument(
        "--url", default=DEFAULT_URL, help=f"the running gateway (default {DEFAULT_URL})"
    )
    reload.add_argument(
        "--dry-run", action="store_true", help="say what would change, and change nothing"
    )
    reload.add_argument("--json", action="store_true", help="print the gateway's answer as JSON")
    reload.set_defaults(run=_reload)

    export = sub.add_parser(
        "export",
        help="write the sources and filters registered through the admin API as YAML entries",
    )
    export.add_argument(
        "-c", "--config", type=Path, help=f"config file (default: {DEFAULT_CONFIG})"
    )
    export.add_argument(
        "--out", type=Path, default=Path("exported"), help="folder to write (default: exported)"
    )
    export.set_defaults(run=export_command)

    rotate = sub.add_parser(
        "rotate-secrets",
        help="re-encrypt every secret in the state store with the first key of "
        "TOOLBRIDGE_SECRET_KEY",
    )
    rotate.add_argument(
        "-c", "--config", type=Path, help=f"config file (default: {DEFAULT_CONFIG})"
    )
    rotate.set_defaults(run=rotate_secrets_command)
    return parser


def _add_sources(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-c", "--config", type=Path, help=f"config file (default: {DEFAULT_CONFIG})")
    group.add_argument(
        "--spec",
        action="append",
        metavar="PATH_OR_URL",
        help="an OpenAPI document to use instead of a config (repeatable)",
    )


def _config(args: argparse.Namespace, stack: contextlib.ExitStack) -> Config:
    """The config the command names; without one here, the bundled demo (its notes API
    started on a loopback port for as long as `stack` lasts), said on stderr."""
    if args.spec:
        return Config(servers=servers_from_specs(args.spec), base_dir=Path.cwd())
    path = args.config or Path(DEFAULT_CONFIG)
    if args.config is None and not path.exists():
        from toolbridge.demo.service import create_demo_app  # starts nothing when unused

        demo = stack.enter_context(LoopbackServer(create_demo_app()))
        print(
            f"toolbridge: no {DEFAULT_CONFIG} here and no -c or --spec: using the bundled demo "
            f"(its notes API runs on {demo.url})",
            file=sys.stderr,
        )
        return demo_config(demo.url)
    config = load_config(path, os.environ)
    secrets = secrets_of(config)
    install_log_redaction(lambda: secrets)
    return config


def _transport_problem(server: Server, config: Config) -> str | None:
    """Why the server's TLS files (`ca_file`, `client_cert`, `client_key`) cannot be used, if
    they cannot: `serve` keeps such a server down, so `check` and `tools` say so too."""
    transport = server_transport(server, config.base_dir, config.proxy_environment)
    try:
        ssl_context(transport, server.id)
    except ConfigError as exc:
        return str(exc)
    return None


def _store() -> DocumentStore:
    return DocumentStore(cache_dir=cache_dir_from(os.environ))


def _load(config: Config, store: DocumentStore, progress: TextIO | None) -> Catalog:
    statuses: list[SourceStatus] = []
    for server in config.servers:
        started = time.perf_counter()
        if progress is not None:
            print(f"loading {server.id} from {server.spec} ...", file=progress, flush=True)
        status = load_server(server, store, config.base_dir)
        problem = _transport_problem(server, config) if status.ok else None
        if problem is not None:  # as serve keeps it: down (`generation._routes`)
            status = replace(status, conversion=None, error=problem)
        if progress is not None:
            took = time.perf_counter() - started
            count = len(status.conversion.tools) if status.conversion else 0
            state = f"{count} tools" if status.ok else "FAILED"
            print(f"loaded {server.id}: {state} in {took:.2f} s", file=progress, flush=True)
        statuses.append(status)
    with _prints_to_stderr():
        for entry in config.tools:
            statuses.append(load_local(entry, config.base_dir))
    budgets = Budgets(config.servers)
    if budgets:  # as a start reshapes them: a tool whose answers are cut promises no schema
        for index, status in enumerate(statuses):
            conversion = status.conversion
            if isinstance(conversion, Conversion):
                tools = tuple(budgets.reshape(conversion.tools))
                statuses[index] = replace(status, conversion=replace(conversion, tools=tools))
    return build_catalog(statuses)


def _prints_to_stderr() -> contextlib.AbstractContextManager[object]:
    """What tool and filter files print (as they load, or in a call) goes to stderr: stdout
    carries the command's answer, which `--json` readers parse."""
    return contextlib.redirect_stdout(sys.stderr)


def _serve(args: argparse.Namespace) -> int:
    path: Path | None = args.config
    if path is None and Path(DEFAULT_CONFIG).exists():
        path = Path(DEFAULT_CONFIG)
    # A malformed key is said in one line, as `export` says it, not in a worker's traceback.
    SecretBox.from_environ(os.environ)
    return process.serve(
        path, host=args.host, port=args.port, workers=args.workers, log_level=args.log_level
    )


def _check_access(args: argparse.Namespace) -> int:
    """`check --as USER [TOOL]`: the tools USER sees, or why TOOL is allowed or denied."""
    with contextlib.ExitStack() as stack:
        config = _config(args, stack)
        principal = principal_for(config, args.user)
        catalog = _load(config, _store(), None)
    policy = Policy.from_config(config)
    if args.tool is not None:
        tool = catalog.get(args.tool)
        if tool is None:
            print(f"{args.tool}: no such tool in any source", file=sys.stdout)
            return 1
        decision = policy.decide(principal, tool)
        verdict = "allowed" if decision.allowed else "denied"
        print(f"{args.tool}: {verdict} for {principal.id}: {decision.reason}")
        return 0 if decision.allowed else 1
    visible = [tool for tool in catalog if policy.allows(principal, tool)]
    for tool in visible:
        print(f"{tool.name}  ({tool.source})")
    print(f"{principal.id} sees {len(visible)} of {len(catalog)} tools")
    return 0


def _tools(args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:
        catalog = _load(_config(args, stack), _store(), None)
    for status in catalog.sources:
        if not status.ok:
            print(f"toolbridge: source {status.id!r} is down: {status.error}", file=sys.stderr)
    tools = list(catalog)
    fmt: Format = args.format
    if args.strict and (not args.json or fmt not in ("openai", "openai-responses")):
        raise ToolbridgeError("--strict applies to --json output in the openai formats")
    if args.json:
        body = {"tools": render_tools(tools, fmt, strict=args.strict)}
        sys.stdout.buffer.write(orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        _print_table(tools, sys.stdout)
    return 0 if all(s.ok for s in catalog.sources) else 1


def _print_table(tools: list[Tool], out: TextIO) -> None:
    if not tools:
        print("no tools", file=out)
        return
    width = min(max(len(t.name) for t in tools), 64)
    for tool in tools:
        target = tool.where
        summary = tool.description.splitlines()[0] if tool.description else ""
        line = f"{tool.name:<{width}}  {target:<40}  {summary}"
        print(line[:200].rstrip(), file=out)
    print(f"{len(tools)} tools", file=out)


def _check(args: argparse.Namespace) -> int:
    if args.user is not None:
        return _check_access(args)
    if args.tool is not None:
        raise ToolbridgeError("a TOOL to check goes with --as USER")
    store = _store()
    progress = sys.stderr if not args.json else None
    with contextlib.ExitStack() as stack:
        config = _config(args, stack)
        # What a start reads or opens besides sources: refused here as `serve` would refuse it.
        Authenticator(config.auth, base_dir=config.base_dir)
        check_audit_file(config)
        catalog = _load(config, store, progress)
        with _prints_to_stderr():
            filters = load_filters(config, {})
    unguarded = [s.id for s in config.servers if s.access is None]
    unguarded += [t.id for t in config.tools if t.access is None]
    # Here, not at the top: spec validation's libraries cost `serve` a third of its start.
    from toolbridge.report import check_report, print_check

    report: dict[str, Any] = check_report(
        catalog,
        store,
        validate=not args.no_validate,
        progress=progress,
        admins_only=frozenset(unguarded) if config.auth is not None else frozenset(),
        config=config,
        filters=filters,
    )
    if args.config is not None or (not args.spec and Path(DEFAULT_CONFIG).exists()):
        where = args.config or Path(DEFAULT_CONFIG)
        for finding in report["findings"]:  # point into the file, as config errors do
            finding["line"] = line_of(where, tuple(finding["key"]))
            finding["where"] = f"{where}:{finding['line']}: {finding['where']}"
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        print_check(report, sys.stdout, verbose=args.verbose)
    return 0 if report["summary"]["usable"] else 1


def _call(args: argparse.Namespace) -> int:
    """Exit 0 when the tool succeeded, 1 when it ran and failed (`ok` false: an upstream 4xx or
    5xx, a local function that raised), 2 when it could not run (main prints why)."""
    try:
        arguments = json_text.loads(args.args)
    except orjson.JSONDecodeError as exc:
        raise ToolbridgeError(f"--args: not valid JSON: {exc}") from None
    out = sys.stdout
    with contextlib.ExitStack() as stack:
        config = _config(args, stack)
        principal = principal_for(config, args.user)
        gateway = Gateway(config, upstream=make_upstream(), cache_dir=cache_dir_from(os.environ))
        install_log_redaction(lambda: gateway.secrets)
        stack.enter_context(_prints_to_stderr())
        for status in gateway.load().sources:
            if not status.ok:
                print(f"toolbridge: source {status.id!r} is down: {status.error}", file=sys.stderr)

        async def run() -> int:
            async with gateway:
                if args.dry_run:
                    print(await dry_run(gateway, principal, args.name, arguments), file=out)
                    return 0
                result = await gateway.call(principal, args.name, arguments)
            body = orjson.dumps(result_body(result), option=orjson.OPT_INDENT_2)
            out.buffer.write(body + b"\n")
            return 0 if result.ok else 1

        return anyio.run(run)


def _reload(args: argparse.Namespace) -> int:
    """Exit 0 when the running gateway applied the config (or, dry, would), 1 when it refused
    it (the answer says where the config is wrong), 2 when it could not be asked."""
    headers = {}
    key = os.environ.get(KEY_ENV)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    url = args.url.rstrip("/") + "/v1/admin/reload" + ("?dry_run=true" if args.dry_run else "")
    try:
        response = httpx2.post(url, headers=headers, timeout=300)
    except httpx2.HTTPError as exc:
        raise ToolbridgeError(f"cannot reach the gateway at {args.url}: {exc}") from None
    try:
        answer = response.json()
    except ValueError:
        raise ToolbridgeError(
            f"{url} answered {response.status_code} without JSON; is it a toolbridge gateway?"
        ) from None
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(answer, option=orjson.OPT_INDENT_2) + b"\n")
    elif response.status_code == 200:
        from toolbridge.report import print_changes

        print_changes(answer, sys.stdout)
    if response.status_code == 200:
        return 0
    message = answer.get("error", {}).get("message") if isinstance(answer, dict) else None
    hint = f" (set {KEY_ENV} to an admin's key)" if response.status_code in (401, 403) else ""
    print(f"toolbridge: reload refused ({response.status_code}): {message}{hint}", file=sys.stderr)
    return 1


_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
"""C0 and C1 controls but line feeds and tabs, Unicode's line and paragraph separators, and the
bidirectional overrides and isolates (which reorder what a terminal shows)."""


class _Writes(Protocol):
    def write(self, text: str, /) -> int: ...


class TerminalText:
    """A text stream that writes control characters as escapes (`\\x1b`): what a document or
    a tool file says (a path template, a name) is printed, never obeyed by the terminal (clear
    the screen, rewrite a line of `check`'s report). Lines and tabs stay; `.buffer` (JSON
    output, which escapes them itself) is the stream's own."""

    def __init__(self, stream: _Writes) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(_CONTROLS.sub(_escaped, text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _escaped(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
