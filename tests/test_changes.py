"""What a reload changed, as plain values: per tool, per setting, and the one log line."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from toolbridge.changes import (
    SETTINGS,
    Changes,
    SourceOutcome,
    ToolChange,
    ToolChanges,
    setting_changes,
    source_change,
    tool_changes,
)
from toolbridge.config import ApiKey, Audit, Auth, Config, RateLimit
from toolbridge.tools import Annotations, HttpOperation, Tool


def tool(name: str, **changes: object) -> Tool:
    base = Tool(
        name=name,
        original_name=name,
        description=f"{name} things",
        input_schema={"type": "object", "properties": {}},
        source="api",
        target=HttpOperation(
            server="api", method="GET", path=f"/{name}", base_url=None, operation_id=name
        ),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_tools_added_removed_and_changed_field_by_field() -> None:
    before = [tool("a"), tool("b"), tool("c"), tool("d")]
    after = [
        tool("a"),
        tool("b", description="b, better"),
        tool("c", input_schema={"type": "object", "properties": {"x": {"type": "string"}}}),
        tool("e"),
        tool("d", annotations=Annotations(read_only=True), tags=("new",)),
    ]

    assert tool_changes(before, after) == ToolChanges(
        added=("e",),
        removed=(),
        changed=(
            ToolChange(name="b", fields=("description",), description=("b things", "b, better")),
            ToolChange(name="c", fields=("input_schema",)),
            ToolChange(name="d", fields=("annotations",)),
        ),
    )
    assert tool_changes(after, before[:1]).as_json() == {
        "added": [],
        "removed": ["b", "c", "e", "d"],
        "changed": [],
    }


def test_a_tool_that_leads_elsewhere_changed_its_target() -> None:
    moved = tool("a", target=replace(tool("a").http, path="/elsewhere"))
    assert tool_changes([tool("a")], [moved]).changed == (ToolChange(name="a", fields=("target",)),)


def test_a_name_that_now_reaches_another_server_changed_its_target() -> None:
    """The same operation of another source: other credentials, another upstream."""
    other = tool("a", source="other", target=replace(tool("a").http, server="other"))
    assert tool_changes([tool("a")], [other]).changed == (ToolChange(name="a", fields=("target",)),)


def test_settings_are_named_never_shown() -> None:
    before = Config(auth=Auth(api_keys=(ApiKey(user="a", key="secret-one"),)))
    after = Config(
        auth=Auth(
            api_keys=(ApiKey(user="a", key="secret-two"),),
            rate_limit=RateLimit(per_minute=5),
        ),
        audit=Audit(file="calls.jsonl"),
    )
    assert setting_changes(before, after) == ("auth.api_keys", "auth.rate_limit", "audit")
    assert setting_changes(after, after) == ()


def test_every_setting_a_reload_applies_is_one_it_reports() -> None:
    """Each key of the config is a source's (servers, tools, filters: reported as sources), or
    a setting named by SETTINGS: a key added to the config is reported when a reload changes
    it (`auth.metrics` was applied and not said)."""
    as_sources = {"servers", "tools", "filters"}
    not_from_the_file = {"base_dir", "proxy_environment"}
    reported = {".".join(path) for path in SETTINGS}
    keys = {
        *(f"auth.{key}" for key in Auth.model_fields),
        *(key for key in Config.model_fields if key != "auth"),
    }
    assert sorted(keys - as_sources - not_from_the_file - reported) == []


def test_how_a_source_fared() -> None:
    entry = {"id": "api", "spec": "a.yaml"}
    cases = {
        "removed": source_change(
            "api", before=entry, after=None, tools_changed=False, failed=False, held=False
        ),
        "held": source_change(
            "api", before=entry, after=entry, tools_changed=True, failed=False, held=True
        ),
        "failed": source_change(
            "api", before=entry, after=entry, tools_changed=False, failed=True, held=False
        ),
        "added": source_change(
            "api", before=None, after=entry, tools_changed=True, failed=False, held=False
        ),
        "edited": source_change(
            "api",
            before=entry,
            after={**entry, "prefix": "p"},
            tools_changed=False,
            failed=False,
            held=False,
        ),
        "new tools": source_change(
            "api", before=entry, after=entry, tools_changed=True, failed=False, held=False
        ),
        "same": source_change(
            "api", before=entry, after=entry, tools_changed=False, failed=False, held=False
        ),
        # Up again after being down, serving what it kept meanwhile: still news.
        "recovered": source_change(
            "api",
            before=entry,
            after=entry,
            tools_changed=False,
            failed=False,
            held=False,
            recovered=True,
        ),
    }
    assert cases == {
        "removed": "removed",
        "held": "held",
        "failed": "failed",
        "added": "added",
        "edited": "reloaded",
        "new tools": "reloaded",
        "same": "unchanged",
        "recovered": "reloaded",
    }


def test_the_answer_and_the_log_line() -> None:
    changes = Changes(
        sources=(
            SourceOutcome(id="api", change="reloaded", tools=2),
            SourceOutcome(id="local", change="unchanged", tools=1),
            SourceOutcome(id="gone", change="failed", tools=0, error="gone.yaml: no such file"),
        ),
        tools=ToolChanges(added=("x",), changed=(ToolChange(name="y", fields=("description",)),)),
        settings=("auth.api_keys",),
        count=3,
    )
    assert changes.as_json() == {
        "sources": [
            {"id": "api", "change": "reloaded", "tools": 2, "error": None},
            {"id": "local", "change": "unchanged", "tools": 1, "error": None},
            {"id": "gone", "change": "failed", "tools": 0, "error": "gone.yaml: no such file"},
        ],
        "tools": {
            "count": 3,
            "added": ["x"],
            "removed": [],
            "changed": [{"name": "y", "fields": ["description"]}],
        },
        "settings": ["auth.api_keys"],
    }
    assert changes.summary() == (
        "reloaded api; failed gone; tools +1 -0 ~1 (3 in all); settings auth.api_keys"
    )


def outcome(change: str) -> SourceOutcome:
    return SourceOutcome(id="api", change=change, tools=0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "told"),
    [
        (Changes(sources=(outcome("unchanged"),)), False),
        # A source that was down and is down still (retried every 30 s), or held for approval.
        (Changes(sources=(outcome("failed"),)), False),
        (Changes(sources=(outcome("held"),)), False),
        (Changes(settings=("audit", "http", "auth.rate_limit", "watch")), False),
        (Changes(tools=ToolChanges(removed=("x",))), True),
        # Same tools, another `access`: some callers see other tools.
        (Changes(sources=(outcome("reloaded"),)), True),
        (Changes(sources=(outcome("added"),)), True),
        (Changes(settings=("auth.api_keys",)), True),
        (Changes(settings=("toolsets",)), True),
        (Changes(settings=("mcp",)), True),
    ],
)
def test_listening_clients_are_told_only_when_a_tool_list_may_read_otherwise(
    changes: Changes, told: bool
) -> None:
    assert changes.lists_changed is told


def test_a_reload_says_what_changed_since_a_generation_it_is_given() -> None:
    """A write's answer: what changed from the generation before the write, also when another
    reload (the change feed's) applied it first and this one finds nothing new."""
    import anyio

    from toolbridge.config import Server
    from toolbridge.gateway import Gateway
    from toolbridge.upstream.seam import MockUpstream, UpstreamResponse

    spec = str(Path(__file__).resolve().parents[1] / "specs" / "demo.yaml")
    notes = Server.model_validate({"id": "notes", "spec": spec})
    more = Server.model_validate({"id": "more", "spec": spec, "prefix": "more"})
    gateway = Gateway(
        Config(servers=(notes,)),
        upstream=MockUpstream(lambda request: UpstreamResponse(status=204)),
        reread=lambda: Config(servers=(notes, more)),
    )

    async def run() -> tuple[list[str], list[str], list[str]]:
        async with gateway:
            before = gateway.generation()
            await gateway.reload()  # the feed's, say: `more` is served from here on
            again = await gateway.reload(frozenset({"more"}), reread=True)
            since = await gateway.reload(frozenset({"more"}), reread=True, since=before)
            served = sorted(name for name in gateway.catalog.tools if name.startswith("more_"))
            return list(again.tools.added), sorted(since.tools.added), served

    again, since, served = anyio.run(run)
    assert (again, since, len(served)) == ([], served, 6)


def test_a_source_down_is_logged_when_it_goes_down_not_at_each_retry(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """ERROR when a source goes down or fails otherwise than before; a reload that finds it
    down still says so at DEBUG, and a retry (a reload of the sources down only) that changed
    nothing is all DEBUG. A whole reload (SIGHUP, the file watched) is summed up at INFO."""
    import logging

    import anyio

    from toolbridge.config import Server
    from toolbridge.gateway import Gateway
    from toolbridge.upstream.seam import MockUpstream, UpstreamResponse

    spec = tmp_path / "api.yaml"
    server = Server.model_validate({"id": "api", "spec": str(spec)})
    gateway = Gateway(
        Config(servers=(server,)),
        upstream=MockUpstream(lambda request: UpstreamResponse(status=204)),
    )
    demo = Path(__file__).resolve().parents[1] / "specs" / "demo.yaml"
    retry = frozenset({"api"})

    def records() -> list[tuple[str, str]]:
        found = [(r.levelname, r.getMessage()) for r in caplog.records]
        caplog.clear()
        return [  # up to the error, which names the file
            (level, text.partition(f": {spec}")[0])
            for level, text in found
            if "source" in text or "reload" in text
        ]

    async def run() -> list[list[tuple[str, str]]]:
        seen = []
        async with gateway:
            seen.append(records())
            await gateway.reload(retry, reread=False)  # down still, the same error
            seen.append(records())
            await gateway.reload()
            seen.append(records())
            spec.write_text("openapi: [\n")  # down otherwise: there, and not YAML
            await gateway.reload(retry, reread=False)
            seen.append(records())
            spec.write_bytes(demo.read_bytes())  # up again
            await gateway.reload(retry, reread=False)
            seen.append(records())
            await gateway.reload(retry, reread=False)  # nothing changed
            seen.append(records())
        return seen

    caplog.set_level(logging.DEBUG, logger="toolbridge")
    failed = "failed api; tools +0 -0 ~0 (0 in all)"
    assert anyio.run(run) == [
        [("ERROR", "source api is down")],
        [("DEBUG", "reloaded: source api is down still"), ("DEBUG", f"reloaded: {failed}")],
        [("DEBUG", "reloaded: source api is down still"), ("INFO", f"reloaded: {failed}")],
        [("ERROR", "reloaded: source api is down"), ("INFO", f"reloaded: {failed}")],
        [("INFO", "reloaded: reloaded api; tools +6 -0 ~0 (6 in all)")],
        [("DEBUG", "reloaded: tools +0 -0 ~0 (6 in all)")],
    ]
