"""`result.select` expressions (JMESPath): what the config takes, checked once when it is
read. JMESPath finds an unknown function or a wrong number of arguments only when the
expression runs, on every call; here they are config errors. What still depends on the
answer (a type) is for budgets.py. Trusts nothing of the expression: its length and nesting
are bounded.
"""

from __future__ import annotations

from typing import Any

MAX_SELECT_CHARS = 4096
"""The longest `result.select` expression taken (what a person writes is far shorter)."""


def checked_select(value: str) -> str:
    """`value` when it is a JMESPath expression whose functions exist and get as many
    arguments as they take; what else can fail depends on the answer (a type), see budgets."""
    import jmespath  # imported when a config has a select: a start without one skips it
    from jmespath.exceptions import JMESPathError

    if len(value) > MAX_SELECT_CHARS:
        raise ValueError(
            f"a JMESPath expression of at most {MAX_SELECT_CHARS} characters, found {len(value)}"
        )
    try:
        parsed = jmespath.compile(value).parsed
    except JMESPathError as exc:
        where = getattr(exc, "lex_position", None)
        at = f" at character {where}" if isinstance(where, int) else ""
        reason = getattr(exc, "msg", None) or str(exc)
        raise ValueError(f"not a JMESPath expression: {reason}{at}") from None
    except RecursionError:
        raise ValueError("not a JMESPath expression this gateway reads: nested too deep") from None
    problem = _function_problem(dict(parsed))
    if problem is not None:
        raise ValueError(problem)
    return value


def _function_problem(parsed: dict[str, Any]) -> str | None:
    """The first call in a parsed JMESPath expression to a function that does not exist or
    with the wrong number of arguments (JMESPath finds both only when the expression runs)."""
    from jmespath.functions import Functions

    table = Functions().FUNCTION_TABLE
    stack = [parsed]
    while stack:
        node = stack.pop()
        if node.get("type") == "function_expression":
            name, given = node.get("value"), len(node.get("children", ()))
            if name not in table:
                known = ", ".join(sorted(table))
                return f"JMESPath has no function {name!r} (it has: {known})"
            signature = table[name]["signature"]
            variadic = bool(signature) and signature[-1].get("variadic", False)
            if given < len(signature) or (not variadic and given > len(signature)):
                wanted = f"at least {len(signature)}" if variadic else str(len(signature))
                return f"JMESPath's {name}() takes {wanted} argument(s), found {given}"
        stack.extend(c for c in node.get("children", ()) if isinstance(c, dict))
    return None
