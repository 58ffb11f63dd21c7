"""Nothing of the state store on a call's path: bench/store.py's statement count, as a test.

The benchmark's timings stay in the benchmark (bench/README.md); the count of store statements
is exact, so it is checked here: a caller's stored UserValves and `per_user` credential are
read once, then every call (local, remote, per_user) runs without a statement, on SQLite and
on a real PostgreSQL.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from cryptography.fernet import Fernet

from tests.servers import Postgres
from toolbridge.state import ENV_KEY

pytestmark = pytest.mark.anyio

BENCH = Path(__file__).resolve().parents[2] / "bench" / "store.py"


def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_store", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


async def test_calls_run_no_store_statement_after_a_callers_first(
    tmp_path: Path, postgres_server: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_KEY, Fernet.generate_key().decode())
    args = argparse.Namespace(calls=20, rounds=2)
    measured = await bench().run(args, postgres_server.create_database(), tmp_path)

    assert measured["gateways"] == ["none", "sqlite", "postgresql"]
    # The first call of each (caller, tool) reads the store: SQLite's BEGIN and SELECT, one
    # SELECT on PostgreSQL (asyncpg begins without a statement); calls to the operator's
    # server never do.
    assert measured["first"] == {
        "none/local": 0,
        "none/remote": 0,
        "sqlite/local": 2,
        "sqlite/remote": 0,
        "sqlite/per_user": 2,
        "postgresql/local": 1,
        "postgresql/remote": 0,
        "postgresql/per_user": 1,
    }
    assert measured["by_call"] == {}
    assert {key: len(samples) for key, samples in measured["times"].items()} == dict.fromkeys(
        measured["first"], 40
    )
