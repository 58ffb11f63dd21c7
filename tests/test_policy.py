"""The access decision as a table: principal x grants x tool -> decision."""

from __future__ import annotations

import pytest

from toolbridge.config import Grant
from toolbridge.policy import ANONYMOUS_ADMIN, Decision, Policy, Principal
from toolbridge.tools import Annotations, HttpOperation, Method, PythonFunction, Tool


def tool(name: str, source: str = "pets", method: Method = "GET") -> Tool:
    return Tool(
        name=name,
        original_name=name,
        description="",
        input_schema={"type": "object", "properties": {}},
        source=source,
        target=HttpOperation(
            server=source,
            method=method,
            path="/x",
            base_url=None,
            operation_id=None,
        ),
    )


LOCAL = Tool(
    name="now",
    original_name="now",
    description="",
    input_schema={"type": "object", "properties": {}},
    source="clock",
    annotations=Annotations(read_only=True),
    target=PythonFunction(tool_id="clock", function="Tools.now", func=None, arguments_model=None),
)
ALICE = Principal(id="alice", groups=frozenset({"support"}))
BOB = Principal(id="bob")
OPS = Principal(id="ops", admin=True)


@pytest.mark.parametrize(
    ("principal", "grants", "target", "expected"),
    [
        # admins see everything, even sources without access
        (OPS, None, tool("listPets"), Decision(True, "admins may use every tool")),
        (ANONYMOUS_ADMIN, None, tool("listPets"), Decision(True, "admins may use every tool")),
        # no access: admins only
        (
            ALICE,
            None,
            tool("listPets"),
            Decision(False, "source 'pets' has no `access`: admins only"),
        ),
        # by user, by group, by "*"
        (
            ALICE,
            (Grant(users=("alice",)),),
            tool("x"),
            Decision(True, "source 'pets' access[0] allows it"),
        ),
        (
            ALICE,
            (Grant(groups=("support",)),),
            tool("x"),
            Decision(True, "source 'pets' access[0] allows it"),
        ),
        (
            BOB,
            (Grant(groups=("support",)),),
            tool("x"),
            Decision(False, "no grant of source 'pets' matches"),
        ),
        (
            BOB,
            (Grant(users=("*",)),),
            tool("x"),
            Decision(True, "source 'pets' access[0] allows it"),
        ),
        # narrowed by tool globs and methods
        (
            ALICE,
            (Grant(users=("alice",), tools=("list*",)),),
            tool("listPets"),
            Decision(True, "source 'pets' access[0] allows it"),
        ),
        (
            ALICE,
            (Grant(users=("alice",), tools=("list*",)),),
            tool("deletePet"),
            Decision(False, "no grant of source 'pets' matches"),
        ),
        (
            ALICE,
            (Grant(users=("alice",), methods=("GET",)),),
            tool("x", method="DELETE"),
            Decision(False, "no grant of source 'pets' matches"),
        ),
        # the second grant decides
        (
            ALICE,
            (Grant(users=("bob",)), Grant(groups=("support",))),
            tool("x"),
            Decision(True, "source 'pets' access[1] allows it"),
        ),
        # local tools count as POST unless read-only
        (
            ALICE,
            (Grant(users=("alice",), methods=("GET",)),),
            LOCAL,
            Decision(True, "source 'clock' access[0] allows it"),
        ),
    ],
)
def test_decision(
    principal: Principal, grants: tuple[Grant, ...] | None, target: Tool, expected: Decision
) -> None:
    assert Policy({target.source: grants}).decide(principal, target) == expected
