"""The shared corpus of real OpenAPI documents, as the corpus tests read it."""

from __future__ import annotations

import csv
import os
from pathlib import Path

CORPUS = Path(
    os.environ.get("TOOLBRIDGE_CORPUS")
    or Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
)


MISSING = (
    None
    if (CORPUS / "MANIFEST.tsv").exists()
    else f"the shared corpus is not at {CORPUS}: set TOOLBRIDGE_CORPUS to its folder"
)
"""Why the corpus cannot be read, or None. A run without it fails
(`test_corpus.test_the_shared_corpus_is_there`), never looks like a pass; every other test
still runs."""


def manifest() -> list[dict[str, str]]:
    """The rows of MANIFEST.tsv; none when the corpus is missing (which fails the run)."""
    if MISSING is not None:
        return []
    with (CORPUS / "MANIFEST.tsv").open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


ROWS = manifest()
