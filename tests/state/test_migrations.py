"""Opening a store: the schema migrated to the newest version (once, however many processes
start at once), equal to what the code queries; the URL a config names, and its default."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import anyio
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from tests.servers import free_port
from toolbridge.config import State
from toolbridge.errors import StoreUnavailable
from toolbridge.state import Store, migrate, resolve_url
from toolbridge.state.engine import make_engine, wal_mode, writing
from toolbridge.state.tables import metadata
from toolbridge.state.urls import driver_url, shown

pytestmark = pytest.mark.anyio


async def test_the_migrated_schema_is_the_one_the_code_queries(store_url: str) -> None:
    async with await Store.open(store_url):
        pass
    engine = make_engine(store_url)
    try:
        async with engine.connect() as connection:
            version = await connection.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
            differences = await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )
    finally:
        await engine.dispose()

    assert (version, differences) == (migrate.head(), [])


def test_the_version_a_start_checks_without_alembic_is_the_newest_migration() -> None:
    assert migrate.head() == migrate.HEAD


async def test_a_store_at_the_newest_version_opens_without_alembic(tmp_path: Path) -> None:
    """What a start costs: Alembic is loaded only when there is a migration to run."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    async with await Store.open(url):
        pass
    code = (
        "import sys, anyio\n"
        "from toolbridge.state import Store\n"
        "async def main():\n"
        f"    async with await Store.open({url!r}):\n"
        "        pass\n"
        "anyio.run(main)\n"
        "heavy = ('alembic', 'asyncpg', 'redis')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == "[]\n"


async def test_opening_again_changes_nothing(store_url: str) -> None:
    async with await Store.open(store_url) as store:
        await store.servers.create({"id": "pets", "spec": "p.yaml"}, by="ops")
    async with await Store.open(store_url) as store:
        assert [s.id for s in await store.servers.list()] == ["pets"]
        assert await store.last_change_id() == 1


async def test_many_processes_opening_a_new_store_at_once_migrate_it_once(store_url: str) -> None:
    opened: list[Store] = []

    async def open_one() -> None:
        opened.append(await Store.open(store_url))

    try:
        async with anyio.create_task_group() as group:
            for _ in range(4):
                group.start_soon(open_one)
    finally:
        for store in opened:
            await store.close()

    engine = make_engine(store_url)
    try:
        async with engine.connect() as connection:
            rows = (
                await connection.execute(sa.text("SELECT version_num FROM alembic_version"))
            ).all()
    finally:
        await engine.dispose()
    assert (len(opened), [tuple(row) for row in rows]) == (4, [(migrate.head(),)])


async def test_a_new_sqlite_file_locked_by_another_process_is_waited_for(tmp_path: Path) -> None:
    """SQLite refuses the switch to WAL at once, not after its busy timeout, while another
    connection holds a lock (another worker starting, say): the store tries again."""
    file = tmp_path / "state.db"
    other = sqlite3.connect(file, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE elsewhere (x INTEGER)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO elsewhere VALUES (1)")

    async def release_soon() -> None:
        await anyio.sleep(0.3)
        other.execute("COMMIT")

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(release_soon)
            async with await Store.open(f"sqlite:///{file}"):
                pass
    finally:
        other.close()
    with closing(sqlite3.connect(file)) as after:
        assert after.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_sqlite_file_locked_for_longer_than_the_busy_timeout_is_an_error(tmp_path: Path) -> None:
    file = tmp_path / "state.db"
    other = sqlite3.connect(file, isolation_level=None)
    other.execute("CREATE TABLE elsewhere (x INTEGER)")
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(sqlite3.OperationalError) as caught:
            wal_mode(file, timeout=0.2)
    finally:
        other.close()
    assert str(caught.value) == "database is locked"


async def test_tools_stored_before_filters_existed_are_tools_after(store_url: str) -> None:
    """Version 0002 marks every file stored at 0001 as a tool."""

    def to_0001(sync: sa.Connection) -> None:
        config = Config()
        config.set_main_option("script_location", str(migrate.MIGRATIONS))
        config.attributes["connection"] = sync
        command.upgrade(config, "0001")

    engine = make_engine(store_url)
    try:
        async with writing(engine) as connection:
            await connection.run_sync(to_0001)
            await connection.execute(
                sa.text(
                    "INSERT INTO tools (id, content, content_sha256, entry, created_at, "
                    "updated_at, updated_by) VALUES ('old', 'class Tools: pass', 'x', '{}', "
                    "'2026-01-01 00:00:00', '2026-01-01 00:00:00', 'ops')"
                )
            )
    finally:
        await engine.dispose()

    async with await Store.open(store_url) as store:
        assert ([t.id for t in await store.tools.list()], await store.filters.list()) == (
            ["old"],
            (),
        )


async def test_a_sqlite_files_missing_folder_is_made_and_one_that_cannot_be_is_unavailable(
    tmp_path: Path,
) -> None:
    async with await Store.open(f"sqlite:///{tmp_path}/state/nested/state.db") as store:
        assert await store.tools.list() == ()
    assert (tmp_path / "state" / "nested" / "state.db").is_file()
    assert (tmp_path / "state" / "nested").stat().st_mode & 0o777 == 0o700

    (tmp_path / "file").write_text("")
    with pytest.raises(StoreUnavailable) as caught:
        await Store.open(f"sqlite:///{tmp_path}/file/state.db")
    assert str(caught.value) == (
        "could not open the state store and bring its schema up to date: the state store "
        f"sqlite:///{tmp_path}/file/state.db is unavailable "
        f"(folder {tmp_path}/file does not exist and cannot be made: File exists)"
    )


async def test_a_postgresql_nobody_listens_on_is_unavailable_and_the_password_stays_out() -> None:
    port = free_port()
    with pytest.raises(StoreUnavailable) as caught:
        await Store.open(f"postgresql://tb:s3cr3t-pw@127.0.0.1:{port}/toolbridge")
    message = str(caught.value)
    assert message.startswith(
        "could not open the state store and bring its schema up to date: the state store "
        f"postgresql://tb:***@127.0.0.1:{port}/toolbridge is unavailable (ConnectionRefusedError: "
    )
    assert "s3cr3t" not in message


# -- the URL a config names ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (None, "sqlite:///BASE/toolbridge-state.db"),
        (State(url="sqlite:///state/tb.db"), "sqlite:///BASE/state/tb.db"),
        (State(url="sqlite:////var/lib/tb.db"), "sqlite:////var/lib/tb.db"),
        (State(url="postgresql://tb:pw@db:5432/tb"), "postgresql://tb:pw@db:5432/tb"),
    ],
)
def test_the_store_url_of_a_config(tmp_path: Path, state: State | None, expected: str) -> None:
    """The default and relative SQLite paths are resolved against the config file's folder."""
    assert resolve_url(state, tmp_path) == expected.replace("BASE", str(tmp_path.resolve()))


def test_the_drivers_and_the_url_shown() -> None:
    assert str(driver_url("sqlite:////x/s.db")) == "sqlite+aiosqlite:////x/s.db"
    assert driver_url("postgres://u:p@h/d").render_as_string(False) == (
        "postgresql+asyncpg://u:p@h/d"
    )
    assert shown("postgresql://u:s3cr3t@h:5432/d") == "postgresql://u:***@h:5432/d"
