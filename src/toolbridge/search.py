"""Tool search: ranking the tools of a catalog for a task written in words.

The ranking is BM25 (the `bm25s` library) over one document of words per tool, followed by a
few re-ranking signals that tell API operations apart where plain BM25 cannot:

- **The document**: the tool's name and original name split at case changes and punctuation
  (`readAppsV1NamespacedDeployment` -> read apps namespaced deployment), its summary (the first
  line of its description), the start of the rest, its path, tags and source, and the verbs its
  HTTP method stands for (DELETE: delete, remove). Words are lower-cased, stop words dropped and
  the rest stemmed (Snowball English, PyStemmer): "issues" finds "issue".
- **The query**: the values a task names are not words of the task (`close issue #17 in
  octocat/hello` ranks on close, issue); an issue key (`PROJ-12`) stands for "issue". Each
  word also finds, at `RELATED_WEIGHT`, the words people use for it (`RELATED`: remove ->
  delete, bug -> issue) and the vocabulary words it is a form of (subscribe -> subscription),
  and two adjacent words find their compound (work log -> worklog).
- **Re-ranking**: a tool whose name the task covers ranks above one with more in its name
  (`NAME_COVERAGE`: "list projects" prefers getAllProjects to getAllProjectAvatars); a tool
  whose action (read, create, update, delete: from its name's verb, else its method) differs
  from the task's (its first verb or question word) counts `INTENT_MISMATCH`; two adjacent
  task words found together in a name or summary count more (`PHRASE`); tools of the source
  the whole task is most about count more (`SOURCE_PRIOR`); deprecated tools (marked so, or
  saying so in their summary) count `DEPRECATED_WEIGHT`; earlier task words count more than
  later ones, which tend to be details (`POSITION_DECAY`); rare words count less than BM25
  alone would have it (`IDF_POWER`), so one unusual word of a task does not outweigh the rest.

bench/search.py measures it: tasks people would ask, each with the operation that does it.

An index is built once per tool list (a generation's catalog, or one toolset) and answers
queries for every caller: `search` ranks only the positions the caller may see, so a tool a
caller may not use never shows up and never takes a place among the best.

`bm25s` (and numpy) are imported when the first index is built: a gateway that never searches
never pays for them. Nothing is downloaded: the stemmer ships in PyStemmer.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from toolbridge.tools import HttpOperation, Tool

MAX_QUERY_CHARS = 1000
"""A query longer than this is cut: a task in words is a sentence or two."""
DESCRIPTION_CHARS = 400
"""How much of a description (after its summary) is indexed: its opening says what the tool
does; the rest tends to describe parameters, which match every task naming a common word."""

K1 = 1.2
B = 0.75
"""BM25's term-frequency saturation and length normalisation (Lucene's defaults)."""
RELATED_WEIGHT = 0.5
IDF_POWER = 0.6
POSITION_DECAY = 0.9
NAME_COVERAGE = 0.7
INTENT_MISMATCH = 0.7
PHRASE = 0.2
SOURCE_PRIOR = 1.0
DEPRECATED_WEIGHT = 0.6
"""The weights of the signals above, chosen on bench/search_tasks.tsv (never on the held-out
tasks of bench/search_tasks_heldout.tsv)."""

RELATED = (
    "create add new make open start register publish generate submit post",
    "delete remove destroy drop erase purge",
    "update edit change modify alter rename set",
    "list show all every enumerate browse",
    "get read show view see fetch retrieve look lookup details info describe inspect",
    "search find query lookup",
    "send post email deliver notify",
    "cancel abort stop terminate",
    "run execute trigger start launch dispatch rerun retry",
    "close resolve finish complete done",
    "issue bug ticket",
    "repository repo",
    "pr pull",
    "channel conversation",
    "user person people member account profile",
    "message text",
    "file document attachment upload",
    "secret password credential token",
    "payment charge pay",
    "customer client buyer",
    "money funds amount balance",
    "price cost pricing",
)
"""Groups of words that tasks about APIs use for one another: each finds the others."""

INTENT_CUES = {
    "read": "what which who whom how show list get read see view find look fetch check display "
    "tell retrieve browse",
    "create": "create add new make open start file register publish generate post send submit "
    "upload store share invite schedule run subscribe leave give ask approve trigger",
    "update": "update change edit modify rename set move close scale cordon roll mark assign "
    "replace patch protect lock attach tag",
    "delete": "delete remove tear destroy drop erase purge unstar unfollow",
}
"""The words a task's action shows in; the first one found decides."""
TOOL_VERBS = {
    "read": "list get read watch search find check show fetch retrieve",
    "create": "create add post send upload",
    "update": "update patch replace set edit",
    "delete": "delete remove",
}
"""A tool's action from the verb its name starts with..."""
METHOD_INTENT = {
    "GET": "read",
    "HEAD": "read",
    "POST": "create",
    "PUT": "update",
    "PATCH": "update",
    "DELETE": "delete",
}
"""...else from its method."""

_VERBS = {
    "GET": "get read show view list",
    "HEAD": "get check",
    "POST": "create add new",
    "PUT": "update replace set",
    "PATCH": "update edit change modify",
    "DELETE": "delete remove",
}
"""What each method stands for, in the words people use for it."""

_TAG = re.compile(r"<[^>]*>")
_ENTITY = re.compile(r"&[a-z]+;|&#\d+;")
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
"""Words inside identifiers and text: `listCoreV1Pod` -> list, Core, V, 1, Pod; `CSIDriver` ->
CSI, Driver; `get-readme` -> get, readme."""
_STOP_WORDS = """a an and are as at be but by for from how i if in into is it its me my no not of
on or our so such than that the their then there these they this to was we what when which who
will with you your"""
_STOP = frozenset(_STOP_WORDS.split())
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'|`[^`]*`|“[^”]*”")
_ISSUE_KEY = re.compile(r"\b[A-Z][A-Z0-9]{1,9}-[0-9]+\b")
_VALUE_MARKS = frozenset("/@#_=$%.")
_MIN_PREFIX = 5
_DEPRECATED = re.compile(r"\bdeprecated\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Hit:
    """One tool found for a query: its position in the indexed list, and its score."""

    position: int
    score: float


def words(text: str) -> list[str]:
    """The lower-cased words of a text or identifier, without stop words, single letters and
    numbers (not stemmed)."""
    text = _ENTITY.sub(" ", _TAG.sub(" ", text))
    found = (w.lower() for w in _WORD.findall(text))
    return [w for w in found if len(w) > 1 and not w.isdigit() and w not in _STOP]


def task_words(query: str) -> list[str]:
    """The words of a task that say what to do, without the values it names: quoted text,
    paths, addresses, ids and numbers (`close issue #17 in octocat/hello` -> close, issue);
    an issue key (`PROJ-12`) stands for the word issue, and "set up" for create."""
    text = _QUOTED.sub(" ", query[:MAX_QUERY_CHARS])
    text = _ISSUE_KEY.sub(" issue ", text)
    text = re.sub(r"\bset up\b", "create", text, flags=re.IGNORECASE)
    kept = []
    for token in text.split():
        bare = token.strip(".,;:!?()[]{}")
        if _VALUE_MARKS & set(bare.rstrip(".")):
            continue
        if any(c.isdigit() for c in bare):  # node-3 -> node; v2, 10Gi, cus_123 -> nothing
            bare = " ".join(p for p in re.split(r"[^A-Za-z]+", bare) if p.islower() and len(p) > 2)
        kept.append(bare)
    return words(" ".join(kept))


def document(tool: Tool) -> list[str]:
    """The words a tool is found by, the ones that say most given twice."""
    summary, _, rest = tool.description.strip().partition("\n")
    name = words(tool.name)
    name += [w for w in words(tool.original_name) if w not in name]
    out = name * 2 + words(summary) * 2 + words(rest[:DESCRIPTION_CHARS])
    out += words(tool.source) + [w for tag in tool.tags for w in words(tag)]
    target = tool.target
    if isinstance(target, HttpOperation):
        segments = [s for s in target.path.split("/") if s and not s.startswith("{")]
        out += words(" ".join(segments)) + words(" ".join(segments[-1:]))
        out += _VERBS.get(target.method, "").split()
    return out


def deprecated(tool: Tool) -> bool:
    """Whether a tool is deprecated: marked so, or saying so in its summary (as Kubernetes's
    watch operations and GitHub's legacy ones do)."""
    summary = tool.description.strip().partition("\n")[0]
    return tool.deprecated or _DEPRECATED.search(summary) is not None


def task_intent(query: str) -> str | None:
    """The action a task asks for (read, create, update, delete), by its first cue word."""
    for word in re.findall(r"[a-z]+", query.lower()):
        for intent, cues in _CUES.items():
            if word in cues:
                return intent
    return None


def tool_intent(tool: Tool) -> str:
    """A tool's action: from the verb at the start of its name, else from its method."""
    for word in words(tool.name)[:2]:
        for intent, verbs in _TOOL_VERBS.items():
            if word in verbs:
                return intent
    if isinstance(tool.target, HttpOperation):
        return METHOD_INTENT.get(tool.target.method, "create")
    return "create"


_CUES = {intent: frozenset(cues.split()) for intent, cues in INTENT_CUES.items()}
_TOOL_VERBS = {intent: frozenset(verbs.split()) for intent, verbs in TOOL_VERBS.items()}


class SearchIndex:
    """A BM25 index over a list of tools; `search` ranks them for a task in words.

    Built in one go (about 1 s for 3,000 tools on this machine); searching is thread-safe.
    """

    def __init__(self, tools: Sequence[Tool]) -> None:
        import bm25s  # imported here: 0.5 s and 30 MB that only searching needs
        import numpy as np
        import Stemmer

        # bm25s sets its logger to DEBUG when imported: the application's logging decides.
        logging.getLogger("bm25s").setLevel(logging.NOTSET)

        self.tools = tuple(tools)
        self._lock = threading.Lock()
        self._stem: Callable[[list[str]], list[str]] = Stemmer.Stemmer("english").stemWords
        corpus = [self._stem(document(tool)) or ["-"] for tool in self.tools]
        self._df = Counter(term for doc in corpus for term in set(doc))
        self._bm25: Any = bm25s.BM25(k1=K1, b=B)
        self._vocabulary: frozenset[str] = frozenset()
        if corpus:
            self._bm25.index(corpus, show_progress=False)
            self._vocabulary = frozenset(self._bm25.vocab_dict)
        self._related: dict[str, set[str]] = {}
        for group in RELATED:
            stems = set(self._stem(group.split()))
            for stem in stems:
                self._related.setdefault(stem, set()).update(stems - {stem})
        self._forms: dict[str, frozenset[str]] = {}
        self._sorted = sorted(self._vocabulary)
        names: dict[str, list[int]] = {}
        pairs: dict[tuple[str, str], list[int]] = {}
        self._name_idf = np.zeros(len(self.tools), dtype=np.float64)
        for position, tool in enumerate(self.tools):
            name = self._stem(words(tool.name))
            summary = self._stem(words(tool.description.partition("\n")[0]))
            for word in set(name):
                names.setdefault(word, []).append(position)
                self._name_idf[position] += self._idf(word)
            for pair in set(itertools.pairwise(name)) | set(itertools.pairwise(summary)):
                pairs.setdefault(pair, []).append(position)
        self._in_names = {w: np.array(p, dtype=np.int64) for w, p in names.items()}
        self._in_pairs = {w: np.array(p, dtype=np.int64) for w, p in pairs.items()}
        factor = [DEPRECATED_WEIGHT if deprecated(tool) else 1.0 for tool in self.tools]
        self._weight = np.array(factor, dtype=np.float64)
        self._intents = np.array([tool_intent(tool) for tool in self.tools])
        sources = sorted({tool.source for tool in self.tools})
        where = {source: i for i, source in enumerate(sources)}
        self._source_of = np.array([where[tool.source] for tool in self.tools], dtype=np.int64)
        self._sources: Any = None
        if len(sources) > 1:
            per_source: list[list[str]] = [[] for _ in sources]
            for tool, doc in zip(self.tools, corpus, strict=True):
                per_source[where[tool.source]].extend(doc)
            self._sources = bm25s.BM25(k1=K1, b=B)
            self._sources.index(per_source, show_progress=False)

    def __len__(self) -> int:
        return len(self.tools)

    def search(self, query: str, limit: int, visible: Iterable[int] | None = None) -> list[Hit]:
        """The best `limit` tools for `query`, best first, among the positions in `visible`
        (every tool when None). Tools that share no word with the query are not returned."""
        import numpy as np

        plain = task_words(query)
        given = list(dict.fromkeys(self._stem(plain)))
        compounds = [a + b for a, b in itertools.pairwise(plain)]
        compounds += [b + a for a, b in itertools.pairwise(plain)]
        given += [c for c in self._stem(compounds) if c in self._vocabulary and c not in given]
        groups = [(term, sorted(self._others(term))) for term in given]
        groups = [(term, others) for term, others in groups if term in self._vocabulary or others]
        if not groups or limit <= 0 or not self.tools:
            return []
        with self._lock:  # bm25s keeps per-query state on the index object
            scores = np.zeros(len(self.tools), dtype=np.float64)
            for place, (term, others) in enumerate(groups):
                own = self._scores([term]) if term in self._vocabulary else 0.0
                related = RELATED_WEIGHT * self._scores(others) if others else 0.0
                scores += np.maximum(own, related) * POSITION_DECAY**place
            scores *= self._source_prior(given)
        wanted = {term for term, _ in groups} | {o for _, others in groups for o in others}
        scores *= (1 - NAME_COVERAGE) + NAME_COVERAGE * self._coverage(wanted)
        intent = task_intent(query)
        if intent is not None:
            scores *= np.where(self._intents == intent, 1.0, INTENT_MISMATCH)
        together = np.zeros(len(self.tools), dtype=np.float64)
        for pair in set(itertools.pairwise(given)):
            if pair in self._in_pairs:
                together[self._in_pairs[pair]] += 1
        scores *= 1 + PHRASE * np.minimum(together, 2)
        scores *= self._weight
        if visible is not None:
            mask = np.zeros(len(self.tools), dtype=bool)
            mask[np.fromiter(visible, dtype=np.int64)] = True
            scores = np.where(mask, scores, 0.0)
        ranked = np.argsort(-scores, kind="stable")[:limit]
        return [Hit(int(i), float(scores[i])) for i in ranked if scores[i] > 0]

    def _others(self, term: str) -> set[str]:
        """The vocabulary words a query word also finds: its related words and its forms."""
        return (self._related.get(term, set()) | self._forms_of(term)) & self._vocabulary - {term}

    def _forms_of(self, term: str) -> frozenset[str]:
        """Vocabulary stems that are another form of `term`: one starts with the other, but for
        at most its last letter (subscrib, subscript; watch, watcher), both at least 5 long."""
        found = self._forms.get(term)
        if found is None:
            found = frozenset()
            if len(term) >= _MIN_PREFIX:
                head = term[:_MIN_PREFIX]
                start = bisect.bisect_left(self._sorted, head)
                end = bisect.bisect_left(self._sorted, head + "\uffff")
                found = frozenset(o for o in self._sorted[start:end] if _forms(term, o))
            if len(self._forms) < 100_000:  # bounded: queries are arbitrary text
                self._forms[term] = found
        return found

    def _idf(self, term: str) -> float:
        df = self._df.get(term, 0)
        return math.log(1 + (len(self.tools) - df + 0.5) / (df + 0.5))

    def _scores(self, terms: list[str]) -> Any:
        """Per tool, the best BM25 score of any of `terms`, its IDF flattened by IDF_POWER."""
        import numpy as np

        out = np.zeros(len(self.tools), dtype=np.float64)
        for term in terms:
            found = np.asarray(self._bm25.get_scores([term]), dtype=np.float64)
            out = np.maximum(out, found * self._idf(term) ** (IDF_POWER - 1))
        return out

    def _coverage(self, wanted: set[str]) -> Any:
        """Per tool, how much of its name (by IDF) the query's words explain."""
        import numpy as np

        explained = np.zeros(len(self.tools), dtype=np.float64)
        for word in wanted:
            if word in self._in_names:
                explained[self._in_names[word]] += self._idf(word)
        return np.divide(
            explained, self._name_idf, out=np.zeros_like(explained), where=self._name_idf > 0
        )

    def _source_prior(self, given: list[str]) -> Any:
        """Per tool, 1 + SOURCE_PRIOR x how much (relative to the best) the query is about the
        tool's source, read from a BM25 index with one document per source."""
        import numpy as np

        terms = [t for t in given if self._sources is not None and t in self._sources.vocab_dict]
        if not terms:
            return 1.0
        per_source = np.asarray(self._sources.get_scores(terms), dtype=np.float64)
        best = per_source.max()
        return 1 + SOURCE_PRIOR * (per_source / best if best > 0 else per_source)[self._source_of]


class SearchIndexes:
    """The search indexes of one generation, built on first use, by key (a toolset id, or None
    for the whole catalog), and the positions each kind of caller may see in them."""

    VISIBLE_ENTRIES = 256
    """Visible sets kept per generation (least recently used first out)."""

    def __init__(self) -> None:
        self._indexes: dict[Hashable, SearchIndex] = {}
        self._visible: OrderedDict[Hashable, tuple[int, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def index(self, key: Hashable, tools: Callable[[], Sequence[Tool]]) -> SearchIndex:
        """The index for `key`, built from `tools()` the first time (blocking: call it from a
        worker thread)."""
        with self._lock:
            found = self._indexes.get(key)
            if found is None:
                found = self._indexes[key] = SearchIndex(tools())
            return found

    def visible(self, key: Hashable, positions: Callable[[], Iterable[int]]) -> tuple[int, ...]:
        """The positions a kind of caller (`key`) may see, computed once and kept."""
        with self._lock:
            found = self._visible.get(key)
            if found is not None:
                self._visible.move_to_end(key)
                return found
        found = tuple(positions())
        with self._lock:
            self._visible[key] = found
            while len(self._visible) > self.VISIBLE_ENTRIES:
                self._visible.popitem(last=False)
        return found


def _forms(term: str, other: str) -> bool:
    short, long = sorted((term, other), key=len)
    if len(short) < _MIN_PREFIX or term == other:
        return False
    common = 0
    for a, b in zip(short, long, strict=False):
        if a != b:
            break
        common += 1
    return common >= max(_MIN_PREFIX, len(short) - 1)
