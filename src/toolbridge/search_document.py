"""A tool, read for tool search: the words it is found by, and the action it does.

- **Its words** (`document`): its name and original name split at case changes and
  punctuation (`readAppsV1NamespacedDeployment` -> read apps namespaced deployment), its summary
  (the first line of its description), both given twice; the rest of its description; the
  description of its body's schema (Kubernetes's `Job represents the configuration of a single
  job`); its path's literal segments, tags and source; and the words of its action.
- **Its action** (`tool_intent`: read, create, update or delete): from the first verb of its
  summary (Stripe's `POST /v1/coupons/{coupon}` says `Updates the metadata of a coupon`), else of
  its name (`issues_create`), else from its method (a POST to one item, a path ending in a
  parameter, updates it).
- **Its verbs** (`action_words`): the first word of its summary and its name's verb, the words
  that say what it does, where a task's verb is a verb and not a noun (`file a bug` asks for
  no tool about files).
- Whether it is **deprecated**: marked so, or saying so in its summary.

search.py builds its index from these.
"""

from __future__ import annotations

import re

from toolbridge.search_query import words
from toolbridge.tools import HttpOperation, Tool

DESCRIPTION_CHARS = 4000
"""How much of a description (after its summary) is indexed: the whole of nearly all of them
(the more words a tool is described with, the more ways a task may find it); BM25's length
normalisation keeps a long one from matching everything."""
BODY_CHARS = 200
"""How much of the description of a tool's body schema is indexed: its first sentence or two."""

ACTION_VERBS = {
    "read": "list get read watch search find check show fetch retrieve return download view",
    "create": "create add post send upload register initiate invite start launch publish open "
    "submit generate",
    "update": "update patch replace set edit change rename move assign mark enable disable "
    "modify partially",
    "delete": "delete remove revoke",
}
"""A tool's action from the verb its summary starts with, else its name..."""
METHOD_INTENT = {
    "GET": "read",
    "HEAD": "read",
    "POST": "create",
    "PUT": "update",
    "PATCH": "update",
    "DELETE": "delete",
}
"""...else from its method (a POST to one item, `/coupons/{id}`, updates it)."""

INTENT_WORDS = {
    "read": "get read show view list",
    "create": "create add new",
    "update": "update edit change modify set replace",
    "delete": "delete remove",
}
"""What each action is, in the words people use for it (indexed with each tool)."""

_DEPRECATED = re.compile(r"\bdeprecated\b", re.IGNORECASE)


def document(tool: Tool) -> list[str]:
    """The words a tool is found by, the ones that say most given twice."""
    summary, _, rest = tool.description.strip().partition("\n")
    name = words(tool.name)
    name += [w for w in words(tool.original_name) if w not in name]
    out = name * 2 + words(summary) * 2 + words(rest[:DESCRIPTION_CHARS])
    out += words(tool.source) + [w for tag in tool.tags for w in words(tag)]
    out += words(body_description(tool)[:BODY_CHARS])
    target = tool.target
    if isinstance(target, HttpOperation):
        segments = [s for s in target.path.split("/") if s and not s.startswith("{")]
        out += words(" ".join(segments)) + words(" ".join(segments[-1:]))
    return out + INTENT_WORDS[tool_intent(tool)].split()


def body_description(tool: Tool) -> str:
    """The description of the schema a tool's body argument refers to (Kubernetes's `Job
    represents the configuration of a single job`), or ""."""
    defs = tool.input_schema.get("$defs")
    properties = tool.input_schema.get("properties")
    if not isinstance(defs, dict) or not isinstance(properties, dict):
        return ""
    body = properties.get("body")
    ref = body.get("$ref") if isinstance(body, dict) else None
    if not isinstance(ref, str) or not ref.startswith("#/$defs/"):
        return ""
    found = defs.get(ref.removeprefix("#/$defs/"))
    text = found.get("description") if isinstance(found, dict) else None
    return text if isinstance(text, str) else ""


def deprecated(tool: Tool) -> bool:
    """Whether a tool is deprecated: marked so, or saying so in its summary (as Kubernetes's
    watch operations and GitHub's legacy ones do)."""
    summary = tool.description.strip().partition("\n")[0]
    return tool.deprecated or _DEPRECATED.search(summary) is not None


def action_words(tool: Tool) -> list[str]:
    """The words that may say what a tool does: the first of its summary and its name's verb."""
    summary = words(tool.description.strip().partition("\n")[0])[:1]
    name = [w for w in words(tool.name)[:2] if _action(w)]
    return summary + name[:1]


def tool_intent(tool: Tool) -> str:
    """A tool's action: from the first verb of its summary (`Updates the coupon`), else of its
    name (`issues_create`), else from its method."""
    for word in words(tool.description.strip().partition("\n")[0])[:3] + words(tool.name)[:2]:
        found = _action(word)
        if found is not None:
            return found
    target = tool.target
    if isinstance(target, HttpOperation):
        if target.method == "POST" and target.path.rstrip("/").endswith("}"):
            return "update"
        return METHOD_INTENT.get(target.method, "create")
    return "create"


def _action(word: str) -> str | None:
    for form in (word, word.removesuffix("s"), word.removesuffix("es")):
        if form in _ACTIONS:
            return _ACTIONS[form]
    return None


_ACTIONS = {verb: i for i, verbs in ACTION_VERBS.items() for verb in verbs.split()}
