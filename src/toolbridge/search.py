"""Tool search: ranking the tools of a catalog for a task written in words.

The ranking is BM25 (the `bm25s` library) over one document of words per tool, followed by a
few re-ranking signals that tell API operations apart where plain BM25 cannot:

- **The document** (search_document.py): a tool's name, summary, description, body schema's
  description, path, tags, source and the words of its action. Words are lower-cased, stop
  words dropped and the rest stemmed (Snowball English, PyStemmer): "issues" finds "issue".
- **The query** (search_query.py): the task's words without the values it names, and the
  words some values stand for (`IMPLIED_WEIGHT`: `docs/index.md` -> file), and the initials of
  words in a row that a tool's name has (do not disturb -> dnd, at `IMPLIED_WEIGHT` too); a
  word that undoes another (unpin, unschedule: no tool has it, and a tool has what follows
  `un`) is read as removing it, and its action as delete; a word written together that a
  tool's name has apart (statefulset -> stateful, set) finds the parts too (`PART_WEIGHT`).
  Each word also finds, at `RELATED_WEIGHT`, the words people use for it (`RELATED`: remove ->
  delete, bug -> issue) and the vocabulary words it is a form of (subscribe -> subscription),
  and two words at most `COMPOUND_SPAN` apart find their compound (log ... work -> worklog).
- **A tool's own name** given as a word of the task (`repos_get`, the document's operationId,
  or the method a path names, `/chat.postMessage`; any case) puts that tool first: a name is a
  value to the words above.
- **Re-ranking**: a tool whose name the task covers (its words, their related words and the
  verbs of its action) ranks above one with more in its name (`NAME_COVERAGE`: "list
  projects" prefers getAllProjects to getAllProjectAvatars); a tool whose action (read, create,
  update, delete) differs from the task's counts `INTENT_MISMATCH`; the task's verb found in a
  tool that it does not say the action of counts `VERB_AS_NOUN` (`file a bug` and an
  attachment's file); a tool that reads or deletes one thing where the task names many, or the
  other way round, counts `NUMBER_MISMATCH` (`which nodes` -> `GET /nodes`, not
  `GET /nodes/{name}`); two adjacent task words found together in a name or summary count more
  (`PHRASE`); tools of the source the whole task is most about count more (`SOURCE_PRIOR`);
  deprecated tools count `DEPRECATED_WEIGHT`; earlier task words count more than later ones,
  which tend to be details (`POSITION_DECAY`); rare words count less than BM25 alone would
  have it (`IDF_POWER`), so one unusual word of a task does not outweigh the rest.

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
from dataclasses import dataclass, replace
from typing import Any

from toolbridge.search_document import ACTION_VERBS, action_words, deprecated, document, tool_intent
from toolbridge.search_query import (
    IMPLIED_WEIGHT,
    RELATED,
    TaskQuery,
    initials,
    read_task,
    task_intent,
    words,
)
from toolbridge.tools import HttpOperation, Tool

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
COMPOUND_SPAN = 2
VERB_AS_NOUN = 0.5
NUMBER_MISMATCH = 0.8
PART_WEIGHT = 0.5
"""The weights of the signals above, chosen on bench/search_tasks.tsv (never on the tasks of
bench/search_tasks_heldout.tsv, bench/search_tasks_fresh.tsv or bench/search_tasks_blind3.tsv,
kept to check them); PART_WEIGHT set once, as IMPLIED_WEIGHT is, and not tuned."""

_MIN_PREFIX = 5
_MIN_PART = 3
_PARAMETER = re.compile(r"\{[^}]*\}")
_NAME_TOKEN = re.compile(r"[^\s\"'`,;()\[\]{}<>]+")
"""What a task may give a tool's name as: a run of characters no name is cut at."""
_MAX_NAMES = 20
"""Tools a task finds by name, at most."""
_METHOD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)+")
"""A path's last segment that names a method (an RPC-style API's `/chat.postMessage`, whose
operationId may be `chat_postMessage`): people and models call the operation by it."""


@dataclass(frozen=True, slots=True)
class Hit:
    """One tool found for a query: its position in the indexed list, and its score."""

    position: int
    score: float


class SearchIndex:
    """A BM25 index over a list of tools; `search` ranks them for a task in words.

    Built in one go (under 1 s for 3,000 tools on this machine); searching is thread-safe.
    """

    def __init__(self, tools: Sequence[Tool]) -> None:
        import bm25s  # imported here: 0.5 s and 30 MB that only searching needs
        import numpy as np
        import Stemmer

        # bm25s sets its logger to DEBUG when imported: the application's logging decides.
        logging.getLogger("bm25s").setLevel(logging.NOTSET)

        self.tools = tuple(tools)
        self._lock = threading.Lock()
        self._named: dict[str, list[int]] = {}
        for position, tool in enumerate(self.tools):
            for name in {tool.name.casefold(), tool.original_name.casefold(), *_method(tool)}:
                self._named.setdefault(name, []).append(position)
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
        verbs: dict[str, list[int]] = {}
        for position, tool in enumerate(self.tools):
            for verb in self._stem(action_words(tool)):
                verbs.setdefault(verb, []).append(position)
        self._as_verb = {w: np.array(p, dtype=np.int64) for w, p in verbs.items()}
        self._intent_verbs = {i: set(self._stem(v.split())) for i, v in ACTION_VERBS.items()}
        self._in_pairs = {w: np.array(p, dtype=np.int64) for w, p in pairs.items()}
        factor = [DEPRECATED_WEIGHT if deprecated(tool) else 1.0 for tool in self.tools]
        self._weight = np.array(factor, dtype=np.float64)
        self._intents = np.array([tool_intent(tool) for tool in self.tools])
        self._things = self._thing_numbers()
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

    def _thing_numbers(self) -> dict[str, dict[str, Any]]:
        """The things the tools that read or delete act on, by the stem of their path's last
        literal segment, and the positions of those acting on one of them (the path ends in a
        parameter) and on many (the path ends in the literal, and one of them has a path)."""
        import numpy as np

        paths = {
            (tool.source, _PARAMETER.sub("{}", tool.target.path.rstrip("/")))
            for tool in self.tools
            if isinstance(tool.target, HttpOperation)
        }
        found: dict[str, dict[str, list[int]]] = {}
        for position, tool in enumerate(self.tools):
            target = tool.target
            if not isinstance(target, HttpOperation) or self._intents[position] not in (
                "read",
                "delete",
            ):
                continue
            path = _PARAMETER.sub("{}", target.path.rstrip("/"))
            segments = [s for s in path.split("/") if s]
            literal = [s for s in segments if s != "{}"]
            if not literal:
                continue
            if segments[-1] == "{}":
                number = "one"
            elif (tool.source, path + "/{}") in paths:
                number = "many"
            else:
                continue
            key = self._stem(["".join(c for c in literal[-1].lower() if c.isalpha())])[0]
            if len(key) >= 3:
                found.setdefault(key, {}).setdefault(number, []).append(position)
        return {
            key: {n: np.array(p, dtype=np.int64) for n, p in kinds.items()}
            for key, kinds in found.items()
        }

    def __len__(self) -> int:
        return len(self.tools)

    def search(self, query: str, limit: int, visible: Iterable[int] | None = None) -> list[Hit]:
        """The best `limit` tools for `query`, best first, among the positions in `visible`
        (every tool when None). Tools that share no word with the query are not returned."""
        import numpy as np

        task = self._undone(read_task(query))
        groups = self._terms(task, initials(query))
        named = self._named_in(query)
        if not (groups or named) or limit <= 0 or not self.tools:
            return []
        with self._lock:  # bm25s keeps per-query state on the index object
            scores = np.zeros(len(self.tools), dtype=np.float64)
            verb = self._stem([task.verb])[0] if task.verb else None
            for place, (term, others, weight) in enumerate(groups):
                own = self._scores([term]) if term in self._vocabulary else 0.0
                related = RELATED_WEIGHT * self._scores(others) if others else 0.0
                found = np.maximum(own, related)
                if term == verb:
                    found = found * self._as_noun(term)
                scores += weight * found * POSITION_DECAY**place
            scores *= self._source_prior([term for term, _, _ in groups])
        wanted = {term for term, _, _ in groups} | {o for _, others, _ in groups for o in others}
        if task.intent is not None:
            wanted |= self._intent_verbs[task.intent]
        scores *= (1 - NAME_COVERAGE) + NAME_COVERAGE * self._coverage(wanted)
        if task.intent is not None:
            scores *= np.where(self._intents == task.intent, 1.0, INTENT_MISMATCH)
        together = np.zeros(len(self.tools), dtype=np.float64)
        for pair in set(itertools.pairwise(self._stem(list(task.words)))):
            if pair in self._in_pairs:
                together[self._in_pairs[pair]] += 1
        scores *= 1 + PHRASE * np.minimum(together, 2)
        scores *= self._number(task)
        scores *= self._weight
        if named:  # the task gives a tool's own name: that tool first, then as ranked
            scores[named] += scores.max() + 1.0
        if visible is not None:
            mask = np.zeros(len(self.tools), dtype=bool)
            mask[np.fromiter(visible, dtype=np.int64)] = True
            scores = np.where(mask, scores, 0.0)
        ranked = np.argsort(-scores, kind="stable")[:limit]
        return [Hit(int(i), float(scores[i])) for i in ranked if scores[i] > 0]

    def _named_in(self, query: str) -> list[int]:
        """The positions of the tools whose name (or the document's own, its operationId, or
        the method its path names, `chat.postMessage`) the task gives as one of its words, in
        any case: a model that
        knows a name, or was told one, finds it, though the words of a task never would
        (`repos_get` and `readAppsV1NamespacedStatefulSet` read as values)."""
        found: list[int] = []
        for token in _NAME_TOKEN.finditer(query):
            name = token.group().rstrip(".:?!").casefold()
            found += self._named.get(name, ())
            if len(found) >= _MAX_NAMES:
                break
        return list(dict.fromkeys(found))

    def _terms(
        self, task: TaskQuery, given_initials: tuple[str, ...]
    ) -> list[tuple[str, list[str], float]]:
        """The task's terms in order (stemmed), each with the other words it finds and its
        weight: its words, then the compounds two of them make (work ... log -> worklog), then
        the words its values stand for, then its initials that a tool's name has (do not
        disturb -> dnd). Terms nothing in the index has are left out."""
        plain = list(task.words)
        stems = self._stem(plain)
        weights = dict.fromkeys(stems, 1.0)
        for i, j in itertools.combinations(range(len(plain)), 2):
            if j - i > COMPOUND_SPAN:
                continue
            for compound in self._stem([plain[i] + plain[j], plain[j] + plain[i]]):
                if compound in self._vocabulary:
                    weights.setdefault(compound, 1.0)
        for word in plain:
            for part in self._parts(word):
                weights.setdefault(part, PART_WEIGHT)
        for stem in self._stem(list(task.implied)):
            weights.setdefault(stem, IMPLIED_WEIGHT)
        for letters in given_initials:
            if letters in self._in_names:
                weights.setdefault(letters, IMPLIED_WEIGHT)
        groups = [(term, sorted(self._others(term)), w) for term, w in weights.items()]
        return [g for g in groups if g[0] in self._vocabulary or g[1]]

    def _undone(self, task: TaskQuery) -> TaskQuery:
        """A task whose words say to undo something (unpin, unschedule: words no tool has,
        and what follows `un` a word some tool has) read as removing it: remove pin; its
        action delete, when no word before said another."""
        plain: list[str] = []
        first = None
        for place, word in enumerate(task.words):
            rest = word[2:]
            if (
                word.startswith("un")
                and len(rest) >= 3
                and self._stem([word])[0] not in self._vocabulary
                and self._stem([rest])[0] in self._vocabulary
            ):
                plain += ["remove", rest]
                first = place if first is None else first
            else:
                plain.append(word)
        if first is None:
            return task
        before = task_intent(" ".join(task.words[:first]))
        if before is not None:
            return replace(task, words=tuple(plain))
        verb = "remove" if first == 0 else task.verb
        return replace(task, words=tuple(plain), intent="delete", verb=verb)

    def _parts(self, word: str) -> tuple[str, ...]:
        """The two words a task's word is written together from, where a tool's name or
        summary has them one after the other (statefulset -> stateful, set; cronjob -> cron,
        job): the words of the name the task means, which its coverage counts."""
        for cut in range(_MIN_PART, len(word) - _MIN_PART + 1):
            pair = tuple(self._stem([word[:cut], word[cut:]]))
            if pair in self._in_pairs:
                return pair
        return ()

    def _as_noun(self, verb: str) -> Any:
        """Per tool, 1 where `verb` says what the tool does (`action_words`), else VERB_AS_NOUN:
        the task's verb found as a noun (`file a bug`, and an attachment's file)."""
        import numpy as np

        out = np.full(len(self.tools), VERB_AS_NOUN)
        if verb in self._as_verb:
            out[self._as_verb[verb]] = 1.0
        return out

    def _number(self, task: TaskQuery) -> Any:
        """Per tool, NUMBER_MISMATCH where the task names the tool's things in the other
        number: `which nodes` asks for the list of nodes (`GET /nodes`), `the node` for one
        (`GET /nodes/{name}`). Only tools that read or delete are told apart so."""
        import numpy as np

        out = np.ones(len(self.tools), dtype=np.float64)
        stems = self._stem(list(task.words))
        for key, kinds in self._things.items():
            number = None
            for word, stem in zip(task.words, stems, strict=True):
                if len(stem) >= 3 and key.endswith(stem):
                    number = "many" if _plural(word, stem) else "one"
            other = kinds.get("one" if number == "many" else "many") if number else None
            if other is not None:
                out[other] = NUMBER_MISMATCH
        return out

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


def _method(tool: Tool) -> tuple[str, ...]:
    """The method name an HTTP tool's path ends in (see `_METHOD_NAME`), if it does, folded."""
    if not isinstance(tool.target, HttpOperation):
        return ()
    last = tool.target.path.rstrip("/").rpartition("/")[2]
    return (last.casefold(),) if _METHOD_NAME.fullmatch(last) else ()


def _plural(word: str, stem: str) -> bool:
    return len(word) > 3 and word.endswith("s") and not word.endswith("ss") and stem != word


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
