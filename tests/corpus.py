"""The shared corpus of real OpenAPI documents, as the corpus tests read it."""

from __future__ import annotations

import csv
import os
from pathlib import Path

CORPUS = Path(
    os.environ.get("TOOLBRIDGE_CORPUS")
    or Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
)


def manifest() -> list[dict[str, str]]:
    """The rows of MANIFEST.tsv; fails (never skips) when the corpus is missing."""
    path = CORPUS / "MANIFEST.tsv"
    if not path.exists():
        # Failing, not skipping: a run without the corpus must not look like a pass.
        raise FileNotFoundError(f"corpus not found at {CORPUS}; set TOOLBRIDGE_CORPUS")
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


ROWS = manifest()
