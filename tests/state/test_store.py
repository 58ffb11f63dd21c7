"""What the store keeps and gives back, on SQLite and on PostgreSQL alike: servers, tools and
their Valves, each user's UserValves and credentials, approved documents, and the limits."""

from __future__ import annotations

import hashlib
import itertools
from datetime import timedelta
from pathlib import Path

import pytest

from tests.state.conftest import KEY_A, NOW
from toolbridge.errors import (
    AlreadyExists,
    BadRequest,
    ConfigError,
    Conflict,
    PreconditionFailed,
    ToolNotFound,
)
from toolbridge.state import (
    REDACTED,
    CredentialInfo,
    DocumentVersion,
    ServerInClear,
    ServerRecord,
    Store,
    ToolInClear,
    ToolRecord,
    Valves,
)
from toolbridge.state import database as limits
from toolbridge.state import documents as documents_module
from toolbridge.state.registered import materialize
from toolbridge.state.secrets import SecretBox

pytestmark = pytest.mark.anyio

PETS = {
    "id": "pets",
    "spec": "https://pets.example/openapi.json",
    "prefix": "pets",
    "auth": {"type": "api_key", "value": "pets-key", "name": "X-Key", "in": "header"},
    "headers": {"X-Team": "support"},
    "access": [{"groups": ["support"]}],
}
PETS_LISTED = {
    **PETS,
    "auth": {"type": "api_key", "value": REDACTED, "name": "X-Key", "in": "header"},
    "headers": {"X-Team": REDACTED},
}
DOCUMENT = b'{"openapi": "3.1.0", "info": {"title": "pets", "version": "1"}, "paths": {}}'
CLOCK_TOOL = (
    '"""\ntitle: Clock\nversion: 0.1\n"""\n\n'
    'class Tools:\n    def now(self) -> str:\n        return "now"\n'
)


def sha256(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


# -- servers --------------------------------------------------------------------------------------


async def test_a_server_is_stored_with_its_document_and_listed_without_secrets(
    store: Store,
) -> None:
    created = await store.servers.create(PETS, document=DOCUMENT, by="ops")

    listed = ServerRecord(
        id="pets",
        entry=PETS_LISTED,
        document_sha256=sha256(DOCUMENT),
        document_size=len(DOCUMENT),
        created_at=NOW,
        updated_at=NOW,
        updated_by="ops",
    )
    assert created == listed
    assert await store.servers.get("pets") == listed
    assert await store.servers.list() == (listed,)
    assert await store.servers.in_clear() == (ServerInClear("pets", PETS, DOCUMENT),)


async def test_a_server_without_secrets_or_document(store: Store) -> None:
    entry = {"id": "open", "spec": "specs/demo.yaml", "auth": {"type": "forward"}}

    created = await store.servers.create(entry, by="ops")

    assert (created.entry, created.document_sha256, created.document_size) == (entry, None, None)
    assert await store.servers.in_clear() == (ServerInClear("open", entry, None),)


async def test_servers_and_tools_are_read_in_the_order_they_were_registered(
    store_url: str,
) -> None:
    """The order their tools claim names in: one registered later (`alpha`, though first by
    id) cannot take a name an earlier one (`zeta`) serves."""
    moments = (NOW + timedelta(seconds=n) for n in itertools.count())
    secrets = SecretBox([KEY_A])
    async with await Store.open(store_url, secrets=secrets, clock=lambda: next(moments)) as store:
        for name in ("zeta", "alpha", "mid"):
            await store.servers.create({**PETS, "id": name}, by="ops")
            await store.tools.create(f"{name}-tools", CLOCK_TOOL, {}, by="ops")
        servers = [s.id for s in await store.servers.in_clear()]
        tools = [t.id for t in await store.tools.in_clear()]
        listed = [s.id for s in await store.servers.list()]
    assert (servers, tools, listed) == (
        ["zeta", "alpha", "mid"],
        ["zeta-tools", "alpha-tools", "mid-tools"],
        ["alpha", "mid", "zeta"],  # the admin listing stays by id
    )


async def test_creating_a_server_twice_is_a_conflict(store: Store) -> None:
    await store.servers.create(PETS, by="ops")

    with pytest.raises(AlreadyExists) as caught:
        await store.servers.create(PETS, by="other")

    assert str(caught.value) == "server 'pets' is already registered"
    assert (await store.servers.list())[0].updated_by == "ops"


async def test_a_server_and_a_file_never_share_an_id(store: Store) -> None:
    """Ids are one space (a server `pets` and a tool file `pets` at once on two replicas were
    both stored, and every later reload failed)."""
    await store.servers.create(PETS, by="ops")
    await store.tools.create("clock", CLOCK_TOOL, {}, by="ops")
    refused = []
    for attempt in (
        store.tools.create("pets", CLOCK_TOOL, {}, by="ops"),
        store.filters.create("pets", CLOCK_TOOL, {}, by="ops"),
        store.servers.create({**PETS, "id": "clock"}, by="ops"),
    ):
        with pytest.raises(AlreadyExists) as caught:
            await attempt
        refused.append(str(caught.value))
    assert refused == [
        "'pets' is already registered, as a server",
        "'pets' is already registered, as a server",
        "'clock' is already registered, as a tool",
    ]
    assert (
        [s.id for s in await store.servers.list()],
        [t.id for t in await store.tools.list()],
    ) == (
        ["pets"],
        ["clock"],
    )


async def test_an_update_replaces_the_entry_whole(store: Store) -> None:
    await store.servers.create(PETS, document=DOCUMENT, by="ops")
    entry = {"id": "pets", "spec": "https://pets.example/v2.json", "auth": {"type": "forward"}}

    updated = await store.servers.update(entry, by="alice")

    assert updated is not None
    assert (updated.entry, updated.document_sha256, updated.updated_by) == (entry, None, "alice")
    assert await store.servers.in_clear() == (ServerInClear("pets", entry, None),)


async def test_an_update_a_delete_overtook_says_the_entry_is_gone(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another replica's delete may commit between an update's write and its reading back of
    what it wrote: that is a 404 to the admin, not an AssertionError (a 500)."""
    await store.servers.create(PETS, by="ops")
    await store.tools.create("clock", CLOCK_TOOL, {}, by="ops")

    async def gone(ident: str) -> None:
        return None

    monkeypatch.setattr(store.servers, "get", gone)
    monkeypatch.setattr(store.tools, "get", gone)
    with pytest.raises(ToolNotFound) as server:
        await store.servers.update({**PETS, "prefix": "animals"}, by="ops")
    with pytest.raises(ToolNotFound) as tool:
        await store.tools.update("clock", CLOCK_TOOL, {}, by="ops")
    assert (str(server.value), str(tool.value)) == (
        "no server 'pets': it was deleted just now",
        "no tool 'clock': it was deleted just now",
    )


async def test_each_write_is_a_new_revision_and_if_match_refuses_a_stale_one(
    store: Store,
) -> None:
    """Two admins read one revision; the first one's change makes another; the second one's,
    sent for the first, is refused whole, and nothing of it is stored. A revision is the
    number of the entry's newest change in the feed: an entry deleted and registered again
    never takes one an old tag names."""
    created = await store.servers.create(PETS, by="ops")
    read = frozenset({created.revision})
    first = await store.servers.update({**PETS, "prefix": "a"}, by="alice", expected=read)
    assert first is not None
    with pytest.raises(PreconditionFailed) as stale:
        await store.servers.update({**PETS, "prefix": "b"}, by="bob", expected=read)
    with pytest.raises(PreconditionFailed):
        await store.servers.delete("pets", by="bob", expected=read)
    (kept,) = await store.servers.list()
    tool = await store.tools.create("clock", CLOCK_TOOL, {}, by="ops")
    updated = await store.tools.update("clock", CLOCK_TOOL, {"timeout": 5}, by="ops")
    assert updated is not None
    await store.tools.put_valves(
        "clock", {"tz": "UTC"}, by="ops", expected=frozenset({updated.revision, 10_000})
    )
    valved = await store.tools.get("clock")
    assert valved is not None
    old = frozenset({updated.revision})
    with pytest.raises(PreconditionFailed) as stale_tool:
        await store.tools.put_valves("clock", {"tz": "CET"}, by="bob", expected=old)
    with pytest.raises(PreconditionFailed):
        await store.tools.delete("clock", by="bob", expected=frozenset({updated.revision}))
    assert await store.servers.delete("pets", by="ops", expected=frozenset({first.revision}))
    again = await store.servers.create(PETS, by="ops")
    assert (
        created.revision < first.revision < tool.revision < updated.revision < valved.revision,
        (kept.entry["prefix"], kept.revision),
        await store.tools.valves_in_clear("clock"),
        again.revision > valved.revision,
        str(stale.value),
        str(stale_tool.value),
    ) == (
        True,
        ("a", first.revision),
        {"tz": "UTC"},
        True,
        f"server 'pets' is at revision {first.revision}, not {created.revision} (If-Match): it "
        "was changed since it was read; read it again, and send the change made on that",
        f"tool 'clock' is at revision {valved.revision}, not {updated.revision} (If-Match): it "
        "was changed since it was read; read it again, and send the change made on that",
    )
    assert await store.tools.delete("clock", by="ops", expected=frozenset({valved.revision}))


async def test_if_match_naming_no_tag_this_api_writes_never_matches(store: Store) -> None:
    """`If-Match: W/"1"` (a weak tag) is read as naming no revision: the write is refused."""
    created = await store.servers.create(PETS, by="ops")
    with pytest.raises(PreconditionFailed) as weak:
        await store.servers.delete("pets", by="ops", expected=frozenset())
    assert str(weak.value) == (
        f"server 'pets' is at revision {created.revision}, not the tag sent (a weak one, or one "
        "not as this API writes it, never matches) (If-Match): it was changed since it was "
        "read; read it again, and send the change made on that"
    )


async def test_an_update_that_sends_redacted_back_keeps_the_stored_secret(store: Store) -> None:
    """A listing, edited and sent back, must not overwrite a secret with the placeholder."""
    await store.servers.create(PETS, by="ops")
    edited = {**PETS_LISTED, "prefix": "animals", "headers": {"X-Team": "sales"}}

    await store.servers.update(edited, by="ops")

    whole = {**PETS, "prefix": "animals", "headers": {"X-Team": "sales"}}
    assert await store.servers.in_clear() == (ServerInClear("pets", whole, None),)


async def test_redacted_where_no_secret_is_stored_is_refused(store: Store) -> None:
    await store.servers.create({"id": "pets", "spec": "a.yaml"}, by="ops")

    with pytest.raises(BadRequest) as caught:
        await store.servers.update(PETS_LISTED, by="ops")

    assert str(caught.value) == (
        "server 'pets': auth.value is '********', the placeholder listings show for a secret, "
        "but no secret is stored there to keep"
    )


async def test_updating_or_deleting_an_unknown_server_says_so(store: Store) -> None:
    assert await store.servers.update(PETS, by="ops") is None
    assert await store.servers.delete("pets", by="ops") is False
    assert await store.servers.get("pets") is None
    assert await store.changes_since(0) == ()


async def test_deleting_a_server_takes_its_credentials_and_documents_along(store: Store) -> None:
    """A server registered again under the same id must not inherit its predecessor's state."""
    await store.servers.create(PETS, by="ops")
    await store.servers.create({"id": "crm", "spec": "crm.yaml"}, by="ops")
    await store.users.put_credential("alice", "pets", {"token": "t1"})
    await store.users.put_credential("alice", "crm", {"token": "t2"})
    await store.documents.approve("pets", DOCUMENT, by="ops")

    assert await store.servers.delete("pets", by="ops") is True

    assert [s.id for s in await store.servers.list()] == ["crm"]
    assert await store.users.credential_in_clear("alice", "pets") is None
    assert await store.users.credential_in_clear("alice", "crm") == {"token": "t2"}
    assert await store.documents.approved("pets") is None


async def test_what_a_user_keeps_for_a_registered_source_gone_meanwhile_is_refused(
    store: Store,
) -> None:
    """A credential or UserValves asked for just as their registered server or tool is deleted
    (on another replica): checked inside the write, so no orphan outlives it into a source
    registered later under that id. A source of the config file is none of the store's."""
    await store.servers.create(PETS, by="ops")
    await store.tools.create("clock", CLOCK_TOOL, {}, by="ops")
    await store.servers.delete("pets", by="ops")
    await store.tools.delete("clock", by="ops")
    refused = []
    for storing in (
        store.users.put_credential("alice", "pets", {"token": "t1"}, registered=True),
        store.users.put_valves("alice", "clock", {"tz": "UTC"}, registered=True),
    ):
        with pytest.raises(ToolNotFound) as caught:
            await storing
        refused.append(str(caught.value))
    await store.users.put_credential("alice", "from-file", {"token": "t2"})
    assert refused == [
        "no server 'pets': it was deleted just now",
        "no tool or filter 'clock': it was deleted just now",
    ]
    assert (
        await store.users.credential_in_clear("alice", "pets"),
        await store.users.get_valves("alice", "clock"),
        await store.users.credential_in_clear("alice", "from-file"),
    ) == (None, None, {"token": "t2"})


async def test_a_filters_scope_is_checked_inside_the_writes(store: Store) -> None:
    """Against what the store holds when the write is made (writes are serialized), not what a
    replica last read: no source is deleted while a stored filter names it, and no filter
    names a source neither the config file defines nor the store holds."""
    await store.servers.create(PETS, by="ops")
    await store.tools.create("clock", CLOCK_TOOL, {}, by="ops")
    file = frozenset({"notes"})
    scoped = {"sources": ["pets", "clock", "notes"]}
    await store.filters.create("audit", CLOCK_TOOL, scoped, by="ops", in_file=file)
    refused = []
    for deleting in (store.servers.delete("pets", by="ops"), store.tools.delete("clock", by="o")):
        with pytest.raises(Conflict) as conflict:
            await deleting
        refused.append(str(conflict.value))
    with pytest.raises(ConfigError) as unknown:
        await store.filters.update(
            "audit", CLOCK_TOOL, {"sources": ["pets", "gone", "notes"]}, by="ops", in_file=file
        )
    await store.filters.delete("audit", by="ops")
    assert refused == [
        "server 'pets' is in the sources of filter 'audit': take it out of their `sources` (or "
        "delete them) first",
        "tools 'clock' is in the sources of filter 'audit': take it out of their `sources` (or "
        "delete them) first",
    ]
    assert str(unknown.value) == "filters[audit].sources: 'gone' is no server or tools id"
    assert await store.servers.delete("pets", by="ops") is True


async def test_valves_checked_against_a_file_replaced_meanwhile_are_refused(store: Store) -> None:
    await store.tools.create("clock", CLOCK_TOOL, {}, by="ops")
    checked = hashlib.sha256(CLOCK_TOOL.encode()).hexdigest()
    stored, _ = await store.tools.put_valves("clock", {"tz": "UTC"}, by="ops", checked_with=checked)
    await store.tools.update("clock", CLOCK_TOOL + "\n# v2\n", {}, by="ops")
    with pytest.raises(Conflict) as replaced:
        await store.tools.put_valves("clock", {"tz": "CET"}, by="ops", checked_with=checked)
    await store.tools.delete("clock", by="ops")
    with pytest.raises(ToolNotFound):
        await store.tools.put_valves("clock", {"tz": "CET"}, by="ops", checked_with=checked)
    assert (dict(stored.values), str(replaced.value)) == (
        {"tz": "UTC"},
        "tool 'clock' was replaced while its valves were checked: send them again (they are "
        "checked against the file stored now)",
    )


async def test_an_entry_without_an_id_is_refused(store: Store) -> None:
    with pytest.raises(BadRequest) as caught:
        await store.servers.create({"spec": "a.yaml"}, by="ops")
    assert str(caught.value) == "a server entry needs an `id` (a string)"


# -- local tools and Valves -----------------------------------------------------------------------


async def test_a_tool_is_stored_with_its_file_and_its_valves(store: Store) -> None:
    entry = {"id": "clock", "prefix": "clk", "access": {"users": ["*"]}}

    created = await store.tools.create(
        "clock", CLOCK_TOOL, entry, valves={"tz": "UTC", "api_key": "k-1"}, secret=["api_key"],
        by="ops",
    )  # fmt: skip

    record = ToolRecord("clock", CLOCK_TOOL, sha256(CLOCK_TOOL), entry, NOW, NOW, "ops")
    assert created == record
    assert await store.tools.list() == (record,)
    assert await store.tools.get_valves("clock") == Valves(
        {"tz": "UTC", "api_key": REDACTED}, frozenset({"api_key"}), NOW, "ops"
    )
    assert await store.tools.valves_in_clear("clock") == {"tz": "UTC", "api_key": "k-1"}
    assert await store.tools.in_clear() == (
        ToolInClear(
            "clock",
            CLOCK_TOOL,
            {**entry, "valves": {"tz": "UTC", "api_key": "k-1"}, "secret": ["api_key"]},
        ),
    )


async def test_a_tool_without_valves_loads_without_them(store: Store) -> None:
    await store.tools.create("clock", CLOCK_TOOL, {"id": "clock"}, by="ops")

    assert await store.tools.get_valves("clock") is None
    assert await store.tools.in_clear() == (ToolInClear("clock", CLOCK_TOOL, {"id": "clock"}),)


async def test_valves_in_the_entry_are_refused(store: Store) -> None:
    """Valves go apart, so the secret ones can be sealed; in the entry they would not be."""
    with pytest.raises(BadRequest) as caught:
        await store.tools.create("clock", CLOCK_TOOL, {"valves": {"key": "k"}}, by="ops")
    assert "give its valves apart from the entry" in str(caught.value)


async def test_tool_valves_are_replaced_and_redacted_values_kept(store: Store) -> None:
    await store.tools.create(
        "clock", CLOCK_TOOL, {}, valves={"tz": "UTC", "api_key": "k-1"}, secret=["api_key"],
        by="ops",
    )  # fmt: skip

    valves, revision = await store.tools.put_valves(
        "clock", {"tz": "CET", "api_key": REDACTED, "extra": 1}, secret=["api_key"], by="bob"
    )

    assert (valves, revision) == (
        Valves({"tz": "CET", "api_key": REDACTED, "extra": 1}, frozenset({"api_key"}), NOW, "bob"),
        2,  # the store's second change: the create was the first
    )
    assert await store.tools.valves_in_clear("clock") == {"tz": "CET", "api_key": "k-1", "extra": 1}


async def test_a_tool_update_and_delete(store: Store) -> None:
    await store.tools.create("clock", CLOCK_TOOL, {}, valves={"tz": "UTC"}, by="ops")
    await store.users.put_valves("alice", "clock", {"units": "metric"})
    await store.users.put_valves("alice", "other", {"units": "metric"})

    updated = await store.tools.update("clock", "class Tools: pass\n", {"timeout": 5}, by="bob")
    assert updated == ToolRecord(
        "clock", "class Tools: pass\n", sha256("class Tools: pass\n"), {"timeout": 5}, NOW, NOW,
        "bob", revision=4,  # the feed's 4th change: create, two UserValves, this update
    )  # fmt: skip
    assert await store.tools.valves_in_clear("clock") == {"tz": "UTC"}  # kept: none given

    assert await store.tools.delete("clock", by="ops") is True
    assert await store.tools.list() == ()
    assert await store.tools.get_valves("clock") is None
    assert await store.users.get_valves("alice", "clock") is None
    assert await store.users.valves_in_clear("alice", "other") == {"units": "metric"}
    assert await store.tools.update("clock", "x", {}, by="ops") is None
    assert await store.tools.delete("clock", by="ops") is False


async def test_creating_a_tool_twice_is_a_conflict(store: Store) -> None:
    await store.tools.create("clock", CLOCK_TOOL, {}, by="ops")
    with pytest.raises(AlreadyExists) as caught:
        await store.tools.create("clock", CLOCK_TOOL, {}, valves={"tz": "UTC"}, by="ops")
    assert str(caught.value) == "tool 'clock' is already registered"
    assert await store.tools.get_valves("clock") is None  # the failed create left nothing


# -- filters: stored as tools are, kept apart from them --------------------------------------------

REDACT_FILTER = "class Filter:\n    def outlet(self, body):\n        return body\n"


async def test_a_filter_is_stored_beside_the_tools_and_neither_sees_the_other(store: Store) -> None:
    await store.tools.create("clock", CLOCK_TOOL, {}, valves={"tz": "UTC"}, by="ops")
    entry = {"sources": ["clock"], "priority": 1}

    created = await store.filters.create(
        "redact", REDACT_FILTER, entry, valves={"api_key": "f-1", "word": "x"}, secret=["api_key"],
        by="ops",
    )  # fmt: skip

    record = ToolRecord(
        "redact", REDACT_FILTER, sha256(REDACT_FILTER), entry, NOW, NOW, "ops", revision=2
    )  # the store's second change: the tool's was the first
    assert created == record
    assert (await store.filters.list(), [t.id for t in await store.tools.list()]) == (
        (record,),
        ["clock"],
    )
    assert await store.filters.in_clear() == (
        ToolInClear(
            "redact",
            REDACT_FILTER,
            {**entry, "valves": {"api_key": "f-1", "word": "x"}, "secret": ["api_key"]},
        ),
    )
    assert await store.filters.get_valves("redact") == Valves(
        {"api_key": REDACTED, "word": "x"}, frozenset({"api_key"}), NOW, "ops"
    )
    # One id space: a kind reads, changes and deletes only its own files and their Valves.
    assert (await store.tools.get("redact"), await store.filters.get("clock")) == (None, None)
    assert (await store.tools.get_valves("redact"), await store.filters.get_valves("clock")) == (
        None,
        None,
    )
    assert await store.tools.update("redact", "x", {}, by="ops") is None
    assert await store.filters.delete("clock", by="ops") is False
    with pytest.raises(AlreadyExists) as caught:
        await store.filters.create("clock", REDACT_FILTER, {}, by="ops")
    assert str(caught.value) == "filter 'clock' is already registered"


async def test_filter_changes_are_their_own_kind_in_the_feed_and_the_log(store: Store) -> None:
    await store.filters.create("redact", REDACT_FILTER, {}, by="ops")
    await store.filters.put_valves("redact", {"word": "y"}, by="bob")
    await store.filters.update("redact", REDACT_FILTER, {"priority": 2}, by="ops")
    assert await store.filters.delete("redact", by="ops") is True

    changes = [(c.kind, c.op, dict(c.subject)) for c in await store.changes_since(0)]
    log = [(e.actor, e.action, e.target) for e in await store.audit_log()]
    assert changes == [
        ("filter", "create", {"filter": "redact"}),
        ("filter_valves", "update", {"filter": "redact"}),
        ("filter", "update", {"filter": "redact"}),
        ("filter", "delete", {"filter": "redact"}),
    ]
    assert log == [
        ("ops", "filter.delete", "redact"),
        ("ops", "filter.update", "redact"),
        ("bob", "filter_valves.update", "redact"),
        ("ops", "filter.create", "redact"),
    ]
    assert (await store.filters.list(), await store.filters.get_valves("redact")) == ((), None)


# -- per user -------------------------------------------------------------------------------------


async def test_user_valves_per_user_and_tool(store: Store) -> None:
    stored = await store.users.put_valves(
        "alice", "clock", {"units": "metric", "token": "u-1"}, secret=["token"]
    )
    await store.users.put_valves("bob", "clock", {"units": "imperial"})

    assert stored == Valves(
        {"units": "metric", "token": REDACTED}, frozenset({"token"}), NOW, "alice"
    )
    assert await store.users.valves_in_clear("alice", "clock") == {
        "units": "metric",
        "token": "u-1",
    }
    assert await store.users.valves_in_clear("bob", "clock") == {"units": "imperial"}
    assert await store.users.valves_in_clear("carol", "clock") is None
    assert await store.users.delete_valves("alice", "clock") is True
    assert await store.users.get_valves("alice", "clock") is None
    assert await store.users.delete_valves("alice", "clock") is False


async def test_credentials_are_listed_by_field_name_only(store: Store) -> None:
    info = await store.users.put_credential("alice", "crm", {"token": "alice-token"})
    await store.users.put_credential("bob", "crm", {"username": "bob", "password": "pw"})
    await store.users.put_credential("alice", "crm", {"token": "alice-token-2"})  # replaces

    assert info == CredentialInfo("alice", "crm", ("token",), NOW)
    assert await store.users.credentials() == (
        CredentialInfo("alice", "crm", ("token",), NOW),
        CredentialInfo("bob", "crm", ("password", "username"), NOW),
    )
    assert await store.users.credentials("bob") == (
        CredentialInfo("bob", "crm", ("password", "username"), NOW),
    )
    assert await store.users.credential_in_clear("alice", "crm") == {"token": "alice-token-2"}
    assert await store.users.credential_in_clear("carol", "crm") is None
    assert await store.users.delete_credential("alice", "crm") is True
    assert await store.users.credential_in_clear("alice", "crm") is None
    assert await store.users.delete_credential("alice", "crm") is False


async def test_a_credential_value_must_be_a_string(store: Store) -> None:
    with pytest.raises(BadRequest) as caught:
        await store.users.put_credential("alice", "crm", {"token": 12345})  # type: ignore[dict-item]
    assert (
        str(caught.value)
        == "the credential of 'alice' for server 'crm': 'token' must be a string, found a number"
    )


# -- approved documents ---------------------------------------------------------------------------


async def test_approved_versions_newest_first(store: Store) -> None:
    first = await store.documents.approve("pets", b"v1", by="ops")
    second = await store.documents.approve("pets", b"v2", by="alice")
    await store.documents.approve("crm", b"other", by="ops")

    assert (first, second) == (
        DocumentVersion("pets", first.version, sha256(b"v1"), 2, NOW, "ops"),
        DocumentVersion("pets", second.version, sha256(b"v2"), 2, NOW, "alice"),
    )
    assert second.version > first.version
    approved = await store.documents.approved("pets")
    assert approved is not None
    assert (approved.version, approved.content) == (second, b"v2")
    assert await store.documents.versions("pets") == (second, first)
    assert await store.documents.approved("none") is None


async def test_the_same_content_approved_again_is_kept_once(store: Store) -> None:
    """Replicas that start together each keep the same first version: one is stored, with one
    audit entry; the same content after another is a new version."""
    first = await store.documents.approve("pets", b"v1", by="gateway")
    again = await store.documents.approve("pets", b"v1", by="gateway")
    await store.documents.approve("pets", b"v2", by="ops")
    back = await store.documents.approve("pets", b"v1", by="ops")

    assert again == first
    assert [v.sha256 for v in await store.documents.versions("pets")] == [
        sha256(b"v1"), sha256(b"v2"), sha256(b"v1"),
    ]  # fmt: skip
    assert back.version > first.version
    approvals = [e for e in await store.audit_log() if e.action == "document.approve"]
    assert len(approvals) == 3


async def test_only_the_newest_versions_are_kept(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(documents_module, "KEEP_VERSIONS", 3)
    for n in range(5):
        await store.documents.approve("pets", f"v{n}".encode(), by="ops")
    await store.documents.approve("crm", b"c", by="ops")

    assert [v.sha256 for v in await store.documents.versions("pets")] == [
        sha256(b"v4"), sha256(b"v3"), sha256(b"v2"),
    ]  # fmt: skip
    assert len(await store.documents.versions("crm")) == 1


# -- limits ---------------------------------------------------------------------------------------


async def test_each_size_limit_is_enforced_with_413(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every limit in one table: what is over it, and the message that says by how much."""
    monkeypatch.setattr("toolbridge.state.servers.MAX_DOCUMENT_BYTES", 10)
    monkeypatch.setattr("toolbridge.state.documents.MAX_DOCUMENT_BYTES", 10)
    monkeypatch.setattr("toolbridge.state.tool_files.MAX_TOOL_BYTES", 10)
    big = "x" * (limits.MAX_ENTRY_BYTES + 1)
    cases = [
        (store.servers.create({"id": "p"}, document=b"x" * 11, by="o"),
         "the document of server 'p' is 11 bytes; the store holds at most 10"),
        (store.servers.create({"id": "p", "description": big}, by="o"),
         f"the entry of server 'p' is {limits.MAX_ENTRY_BYTES + 31:,} bytes as JSON; "
         f"the store holds at most {limits.MAX_ENTRY_BYTES:,}"),
        (store.documents.approve("p", b"x" * 11, by="o"),
         "the document of 'p' is 11 bytes; the store holds at most 10"),
        (store.tools.create("t", "é" * 6, {}, by="o"),
         "the content of tool 't' is 12 bytes; the store holds at most 10"),
        (store.tools.put_valves("t", {"v": big}, by="o"),
         f"the valves of tool 't' is {limits.MAX_ENTRY_BYTES + 10:,} bytes as JSON; "
         f"the store holds at most {limits.MAX_ENTRY_BYTES:,}"),
        (store.users.put_credential("u", "p", {"token": big}),
         f"the credential of 'u' for server 'p' is {limits.MAX_ENTRY_BYTES + 14:,} bytes as "
         f"JSON; the store holds at most {limits.MAX_ENTRY_BYTES:,}"),
    ]  # fmt: skip
    found = []
    for call, _ in cases:
        with pytest.raises(BadRequest) as caught:
            await call
        found.append((caught.value.status, str(caught.value)))

    assert found == [(413, message) for _, message in cases]
    assert await store.changes_since(0) == ()


def test_a_file_with_a_registered_servers_id_is_left_out_on_every_replica(tmp_path: Path) -> None:
    """A store written before ids were checked across kinds still loads: the server keeps the
    id, the file is left out with why (was: every reload a 500, a new replica not starting)."""
    made = materialize(
        [ServerInClear("pets", PETS, None)],
        [ToolInClear("pets", CLOCK_TOOL, {}), ToolInClear("clock", CLOCK_TOOL, {})],
        tmp_path,
        [ToolInClear("pets", CLOCK_TOOL, {})],
    )
    assert ([s.id for s in made.servers], [t.id for t in made.tools], made.filters) == (
        ["pets"],
        ["clock"],
        (),
    )
    assert made.problems == (
        "registered tools entry 'pets' left out: 'pets' is a registered server's id too (ids "
        "are one space: delete one of them)",
        "registered filters entry 'pets' left out: 'pets' is a registered server's id too (ids "
        "are one space: delete one of them)",
    )


async def test_a_failed_statement_never_shows_the_values_it_was_given(
    store: Store, store_url: str
) -> None:
    """Its error reaches the log: the values may be a caller's valves or credential."""
    if not store_url.startswith("postgresql"):
        pytest.skip("SQLite does not bound the length of text")
    with pytest.raises(Exception) as caught:  # noqa: PT011 - the driver's own error
        await store.users.put_valves("u" * 400, "clock", {"note": "canary-note-5e2a"}, by="x")
    assert "[SQL parameters hidden due to hide_parameters=True]" in str(caught.value)
    assert "canary-note-5e2a" not in str(caught.value)
