"""A task in words, read for tool search: the words that ask, and what its values stand for.

A task names values as well as asking for something (`close issue #17 in octocat/hello`): the
values are not words to search by, but some say what kind of thing is meant. Reading a task:

- **Values are dropped**: quoted text, and what follows "saying" (a message's text: they stand
  for the word text); the name after "called", "named" or "titled"; paths, addresses, ids and
  numbers (`node-3` -> node).
- **Some values stand for a word**: an issue key (`PROJ-12`) for issue, in its place; and,
  counting `IMPLIED_WEIGHT`, a file name (`docs/index.md`) for file, `owner/name` for
  repository, an address (`bob@example.com`) for email, `#general` for channel, `@alice` for
  user, a time to come (tomorrow, 9am, nightly) for schedule.
- **Verbs of two words** are read as the one they stand for (`PHRASES`: turn off -> disable).
- **A question of permission** (`am I allowed to delete pods`, `do we have permission to`) asks
  to check a permission: read as `check permission`, its action read, and what it would do
  (delete pods) only words of it.
- **Its action** (read, create, update, delete): the first cue word (`INTENT_CUES`; the task's
  first word also in another form, `updated`); and its verb, when its first word is a cue.

`initials` reads what else a task may say: the initials of three or four words in a row (do
not disturb -> dnd), for the tools whose names say them so.

`RELATED` is the vocabulary a task's words are widened by: groups of general words of APIs that
people use for one another, written for no one task nor API. Nothing here knows a tool:
`SearchIndex` (search.py) ranks with what this reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_QUERY_CHARS = 1000
"""A query longer than this is cut: a task in words is a sentence or two."""
IMPLIED_WEIGHT = 0.5
"""A word a value stands for counts this much of a word the task says."""

RELATED = (
    # what is done
    "create add new make open start register publish generate submit post",
    "delete remove destroy drop erase purge discard wipe",
    "update edit change modify alter rename set",
    "list show all every enumerate browse",
    "get read show view see fetch retrieve look lookup details info describe inspect",
    "search find query lookup",
    "send post email deliver notify",
    "cancel abort stop terminate",
    "run execute trigger start launch dispatch rerun retry",
    "close resolve finish complete done",
    "disable deactivate suspend pause",
    "enable activate resume unpause reactivate",
    "restore unarchive recover undelete reopen",
    "revoke withdraw retract",
    "reverse undo revert rollback",
    "approve accept",
    "reject decline deny dismiss",
    "leave exit quit",
    "download export",
    "copy duplicate clone",
    "move transfer transition",
    "merge combine",
    "watch follow track",
    "star favorite favourite bookmark",
    "vote upvote",
    "verify validate",
    "login signin authenticate",
    "logout signout",
    "rotate regenerate renew",
    "refund reimburse",
    "presence online offline away",
    # what it is done to
    "issue bug ticket",
    "repository repo",
    "pr pull",
    "channel conversation room",
    "user person people member account profile",
    "message text",
    "file document attachment upload",
    "secret password credential token",
    "payment charge pay",
    "customer client buyer",
    "money funds amount balance",
    "price cost pricing fee",
    "organization org",
    "group usergroup",
    "permission access privilege",
    "setting config configuration preference",
    "status state",
    "history changelog audit",
    "event activity",
    "notification alert",
    "comment note remark",
    "image picture photo avatar icon",
    "link url permalink",
    "email mail",
    "webhook hook callback",
    "version release",
    "label tag",
    "deployment rollout",
    "quota limit",
    "call meeting",
    "discount coupon promotion promo",
    "subscription membership",
    "purchase buy order",
    "invoice bill receipt",
    "dispute chargeback",
    "tax vat gst",
    "branch ref reference",
    "reaction emoji",
    "node machine host",
)
"""Groups of words that tasks about APIs use for one another: each finds the others. General
words of APIs, not of one API: what is done (verbs), and what it is done to (nouns). Chosen by
the misses of bench/search_tasks.tsv and bench/search_tasks_blind.tsv (bench/README.md)."""

PHRASES = {
    "set up": "create",
    "tear down": "delete",
    "clean up": "delete",
    "take down": "remove",
    "take away": "remove",
    "take back": "remove",
    "kick out": "remove",
    "turn off": "disable",
    "switch off": "disable",
    "turn on": "enable",
    "switch on": "enable",
    "bring back": "restore",
    "put back": "restore",
    "roll back": "rollback",
    "shut down": "stop",
    "log in": "login",
    "sign in": "login",
    "log out": "logout",
    "sign out": "logout",
    "sign up": "register",
    "hand over": "transfer",
    "find out": "find",
    "get rid of": "remove",
    "throw away": "delete",
}
"""Verbs of two words, read as the one word they stand for (`turn off` -> disable)."""

INTENT_CUES = {
    "read": "what which who whom how show list get read see view find look fetch check display "
    "tell retrieve browse",
    "create": "create add new make open start file register publish generate post send submit "
    "upload store share invite schedule run subscribe watch leave give ask approve trigger attach",
    "update": "update change edit modify rename set move close scale cordon roll mark assign "
    "replace patch protect lock tag disable enable",
    "delete": "delete remove tear destroy drop erase purge wipe unstar unfollow revoke",
}
"""The words a task's action shows in; the first one found decides."""

_TAG = re.compile(r"<[^>]*>")
_ENTITY = re.compile(r"&[a-z]+;|&#\d+;")
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
"""Words inside identifiers and text: `listCoreV1Pod` -> list, Core, V, 1, Pod; `CSIDriver` ->
CSI, Driver; `get-readme` -> get, readme."""
_STOP_WORDS = """a an and are as at be been but by can could did do does for from had has have how i
if in into is it its may me might must my no not of on or our should so such than that the their
then there these they this to was we were what when where whether which who whose why will with
would you your"""
_STOP = frozenset(_STOP_WORDS.split())

_QUOTED = re.compile(
    r"\"[^\"]*\"|(?<!\w)'[^']*'(?!\w)|`[^`]*`|\u201c[^\u201d]*\u201d|\u2018[^\u2019]*\u2019"
)
_SAYING = re.compile(r"\b(?:saying|that says|which says)\b[^.;!?]*", re.IGNORECASE)
_NAMED = re.compile(r"\b(?:called|named|titled)\s+\S+(?:\s+[A-Z]\S*)*")
_ISSUE_KEY = re.compile(r"\b[A-Z][A-Z0-9]{1,9}-[0-9]+\b")
_PHRASE = re.compile(r"\b(" + "|".join(PHRASES) + r")\b", re.IGNORECASE)
_PERMISSION = re.compile(
    r"\b(?:am|are|is|was|were)\s+(?:\w+\s+){0,3}?(?:allowed|permitted|authori[sz]ed)\s+to\b"
    r"|\b(?:do|does|did)\s+(?:\w+\s+){0,3}?have\s+(?:the\s+)?(?:permission|rights?)\s+to\b",
    re.IGNORECASE,
)
_VALUE_MARKS = frozenset("/@#_=$%.")
_FILE = re.compile(
    r"[\w./-]*\w\.(?:md|txt|rst|py|js|ts|go|rs|java|rb|c|h|cpp|cs|php|sh|json|ya?ml|toml|ini|"
    r"cfg|conf|xml|html?|css|csv|tsv|log|pdf|docx?|xlsx?|pptx?|png|jpe?g|gif|svg|zip|gz|tar)",
    re.IGNORECASE,
)
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")
_REPOSITORY = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
_CHANNEL = re.compile(r"#[A-Za-z][\w-]*")
_MENTION = re.compile(r"@[A-Za-z][\w-]*")
_TIME = re.compile(r"\d{1,2}(?::\d\d)?\s?(?:am|pm)", re.IGNORECASE)
_WHEN_WORDS = """tomorrow tonight nightly daily weekly monthly hourly later monday tuesday
wednesday thursday friday saturday sunday"""
_WHEN = frozenset(_WHEN_WORDS.split())
"""Words of a time to come: a task that says one asks for something to happen then."""


@dataclass(frozen=True, slots=True)
class TaskQuery:
    """A task read for searching: its words in order (lower-cased, not stemmed), the words its
    values stand for, its action and its verb."""

    words: tuple[str, ...]
    implied: tuple[str, ...] = ()
    intent: str | None = None
    verb: str | None = None
    """The task's first word when it is a cue of its action (`file a bug` -> file)."""


def words(text: str) -> list[str]:
    """The lower-cased words of a text or identifier, without stop words, single letters and
    numbers (not stemmed)."""
    text = _ENTITY.sub(" ", _TAG.sub(" ", text))
    found = (w.lower() for w in _WORD.findall(text))
    return [w for w in found if len(w) > 1 and not w.isdigit() and w not in _STOP]


def read_task(query: str) -> TaskQuery:
    """What a task asks, without the values it names (see the module's docstring)."""
    text = _unquoted(query)
    implied = ["text"] if text != query[:MAX_QUERY_CHARS] else []
    text = _NAMED.sub(" ", text)
    text = _ISSUE_KEY.sub(" issue ", text)
    text = _PHRASE.sub(lambda m: PHRASES[m[1].lower()], text)
    text = _PERMISSION.sub(" check permission to ", text)
    intent = task_intent(text)
    found: list[str] = []
    for token in text.split():
        bare = token.strip(".,;:!?()[]{}\"'")
        implied += _implied(bare)
        if _VALUE_MARKS & set(bare.rstrip(".")) or _TIME.fullmatch(bare):
            continue
        if any(c.isdigit() for c in bare):  # node-3 -> node; v2, 10Gi, cus_123 -> nothing
            bare = " ".join(p for p in re.split(r"[^A-Za-z]+", bare) if p.islower() and len(p) > 2)
        found += words(bare)
    verb = found[0] if found and _cue(found[0]) is not None else None
    return TaskQuery(tuple(found), tuple(dict.fromkeys(implied)), intent, verb)


def _unquoted(query: str) -> str:
    """A task (cut at MAX_QUERY_CHARS) without the text it quotes or says a message says."""
    text = query[:MAX_QUERY_CHARS]
    return _SAYING.sub(" ", _QUOTED.sub(" ", text))


def initials(query: str) -> tuple[str, ...]:
    """The initials of every three and four words in a row of a task, stop words too, outside
    quotes (`turn off do not disturb` -> tod, odn, dnd, todn, odnd)."""
    heads = [w[0].lower() for w in re.findall(r"[A-Za-z]+", _unquoted(query))]
    found = ("".join(heads[i : i + n]) for n in (3, 4) for i in range(len(heads) - n + 1))
    return tuple(dict.fromkeys(found))


def task_words(query: str) -> list[str]:
    """The words of a task that say what to do (`close issue #17 in octocat/hello` -> close,
    issue), without the words its values stand for."""
    return list(read_task(query).words)


def task_intent(query: str) -> str | None:
    """The action a task asks for (read, create, update, delete), by its first cue word (the
    first word of the task in any of its forms: `updating the`, but `notified of changes`)."""
    for place, word in enumerate(re.findall(r"[a-z]+", query.lower())):
        found = _cue(word, forms=place == 0)
        if found is not None:
            return found
    return None


def _cue(word: str, forms: bool = True) -> str | None:
    """The action a word is a cue of, itself or (`forms`) another form (updates, updated)."""
    found = {word}
    if forms:
        for ending, added in (("s", ""), ("d", ""), ("ed", ""), ("ing", ""), ("ing", "e")):
            if word.endswith(ending):
                found.add(word.removesuffix(ending) + added)
    for intent, cues in _CUES.items():
        if found & cues:
            return intent
    return None


def _implied(token: str) -> list[str]:
    if _EMAIL.fullmatch(token):
        return ["email"]
    if _FILE.fullmatch(token):
        return ["file"]
    if _REPOSITORY.fullmatch(token):
        return ["repository"]
    if _CHANNEL.fullmatch(token):
        return ["channel"]
    if _MENTION.fullmatch(token):
        return ["user"]
    if _TIME.fullmatch(token) or token.lower() in _WHEN:
        return ["schedule"]
    return []


_CUES = {intent: frozenset(cues.split()) for intent, cues in INTENT_CUES.items()}
