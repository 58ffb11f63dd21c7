"""How fast large OpenAPI documents become tools, measured against `json.loads` of the same JSON.

For Stripe, Kubernetes and OpenAI (from the shared corpus) and GitHub (from the npm package
@octokit/openapi, fetched into bench/.cache/ on first run), in one run and best of N:
json.loads of the document as JSON text; load+convert with a warm and a cold parse cache; the
tracemalloc peak of one warm load+convert; the size of the rendered tool JSON in each format.
Exits 1 when a target fails.  Run: `.venv/bin/python bench/convert.py [--repeat N]`.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from toolbridge.formats.render import FORMATS, render_tools
from toolbridge.openapi.convert import Conversion, convert
from toolbridge.openapi.documents import DocumentStore, location_to_uri

BENCH = Path(__file__).resolve().parent
CACHE = BENCH / ".cache"
OCTOKIT_VERSION = "23.0.2"  # `npm view @octokit/openapi version` on 2026-11-21: 1,223 operations
OCTOKIT_MEMBER = "package/generated/api.github.com.json"
MIB = 1024 * 1024
GITHUB_MAX_RATIO = 10.0
STRIPE_MAX_S = 1.0
STRIPE_MAX_MIB = 10.0


@dataclass
class Doc:
    name: str
    path: Path
    cache: Path
    """A parse cache filled before timing: the warm case."""
    json_text: str = ""
    tools: int = 0
    loads: float = float("inf")
    warm: float = float("inf")
    cold: float = float("inf")
    peak: int = 0
    sizes: dict[str, float] = field(default_factory=dict)
    uri: str = field(init=False)

    def __post_init__(self) -> None:
        self.uri = location_to_uri(str(self.path))


def corpus_dir() -> Path:
    return Path(os.environ.get("TOOLBRIDGE_CORPUS") or BENCH.parent.parent / "shared" / "corpus")


def github_document() -> Path | None:
    """GitHub's REST description from @octokit/openapi, fetched with `npm pack` once."""
    target = CACHE / f"octokit-openapi-{OCTOKIT_VERSION}" / "api.github.com.json"
    if target.is_file():
        return target
    npm = shutil.which("npm")
    if npm is None:
        print("SKIP GitHub: npm is not installed, so @octokit/openapi cannot be fetched")
        return None
    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"fetching @octokit/openapi@{OCTOKIT_VERSION} into {CACHE} (once) ...", flush=True)
    command = [npm, "pack", f"@octokit/openapi@{OCTOKIT_VERSION}", "--pack-destination", str(CACHE)]
    try:
        subprocess.run(command, capture_output=True, text=True, check=True, timeout=900)
    except (OSError, subprocess.SubprocessError) as exc:
        detail = str(getattr(exc, "stderr", None) or exc).strip()[-500:]
        print(f"SKIP GitHub: npm pack failed: {detail}")
        return None
    tarball = CACHE / f"octokit-openapi-{OCTOKIT_VERSION}.tgz"
    with tarfile.open(tarball) as tar:
        member = tar.extractfile(OCTOKIT_MEMBER)
        if member is None:
            print(f"SKIP GitHub: {OCTOKIT_MEMBER} is not in {tarball.name}")
            return None
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".part")
        partial.write_bytes(member.read())
    partial.replace(target)
    tarball.unlink()  # 28 MB, nearly all of it other descriptions
    return target


def load_convert(doc: Doc, cache: Path) -> Conversion:
    return convert(DocumentStore(cache_dir=cache), doc.uri)


def timed(action: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    result = action()
    elapsed = time.perf_counter() - start
    del result  # freeing millions of objects is not part of the work being timed
    return elapsed


def prepare(doc: Doc) -> None:
    """Fill the warm cache, make the JSON text, and measure what does not need repeating."""
    data = DocumentStore(cache_dir=doc.cache).get(doc.uri).data
    is_json = doc.path.read_bytes().lstrip()[:1] in (b"{", b"[")
    doc.json_text = doc.path.read_text(encoding="utf-8") if is_json else json.dumps(data)
    tools = list(load_convert(doc, doc.cache).tools)
    doc.tools = len(tools)
    for fmt in FORMATS:
        doc.sizes[fmt] = len(orjson.dumps({"tools": render_tools(tools, fmt)})) / MIB


def repetition(doc: Doc, scratch: Path) -> None:
    doc.loads = min(doc.loads, timed(lambda: json.loads(doc.json_text)))
    doc.warm = min(doc.warm, timed(lambda: load_convert(doc, doc.cache)))
    cold = Path(tempfile.mkdtemp(dir=scratch))  # empty: YAML is parsed and the cache written
    doc.cold = min(doc.cold, timed(lambda: load_convert(doc, cold)))
    shutil.rmtree(cold)


def measure_peak(doc: Doc) -> None:
    """Peak of Python allocations (tracemalloc) above the baseline, during one warm run."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    conversion = load_convert(doc, doc.cache)
    doc.peak = tracemalloc.get_traced_memory()[1] - base
    del conversion
    tracemalloc.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", "--repeat", type=int, default=3, help="repetitions; best is kept")
    repeat = max(1, parser.parse_args().repeat)
    corpus = corpus_dir()
    wanted = [
        ("Stripe", corpus / "stripe" / "spec3.yaml"),
        ("Kubernetes", corpus / "kubernetes" / "swagger.json"),
        ("OpenAI", corpus / "openai" / "openapi.yaml"),
        ("GitHub", github_document()),
    ]
    with tempfile.TemporaryDirectory(prefix="toolbridge-bench-") as tmp:
        scratch = Path(tmp)
        docs: list[Doc] = []
        for name, path in wanted:
            if path is None:
                continue
            if not path.is_file():
                print(f"SKIP {name}: {path} not found (set TOOLBRIDGE_CORPUS)")
                continue
            docs.append(Doc(name, path, scratch / f"warm-{name}"))
            prepare(docs[-1])
        for _ in range(repeat):  # interleaved, so a noisy moment hits every measurement alike
            for doc in docs:
                repetition(doc, scratch)
        for doc in docs:
            measure_peak(doc)

    report(docs, repeat)
    return 1 if any(not ok for ok, _ in checks(docs)) else 0


def checks(docs: list[Doc]) -> list[tuple[bool, str]]:
    found = {d.name: d for d in docs}
    out: list[tuple[bool, str]] = []
    if gh := found.get("GitHub"):
        r, most = gh.warm / gh.loads, GITHUB_MAX_RATIO
        out.append((r < most, f"GitHub load+convert {r:.2f}x json.loads (target < {most:g}x)"))
    if st := found.get("Stripe"):
        t, big, limit = st.warm, max(st.sizes.values()), STRIPE_MAX_MIB
        out.append(
            (t < STRIPE_MAX_S, f"Stripe load+convert {t:.2f} s (target < {STRIPE_MAX_S:g} s)")
        )
        out.append(
            (big < limit, f"Stripe tool JSON {big:.2f} MiB in its largest format (< {limit:g})")
        )
    return out


def report(docs: list[Doc], repeat: int) -> None:
    print(
        f"\n{datetime.date.today()}, Python {platform.python_version()}, "
        f"{platform.machine()} x{os.cpu_count()}, best of {repeat}\n"
    )
    print("| document | tools | json.loads | load+convert (warm) | ratio | cold (info) | peak |")
    print("|---|--:|--:|--:|--:|--:|--:|")
    for d in docs:
        print(
            f"| {d.name} | {d.tools} | {d.loads * 1e3:.0f} ms | {d.warm * 1e3:.0f} ms "
            f"| {d.warm / d.loads:.1f}x | {d.cold * 1e3:.0f} ms | {d.peak / MIB:.0f} MiB |"
        )
    print("\nTool JSON in MiB, `orjson.dumps({'tools': render_tools(tools, fmt)})`:\n")
    print("| document | " + " | ".join(FORMATS) + " |\n|---|" + "--:|" * len(FORMATS))
    for d in docs:
        print(f"| {d.name} | " + " | ".join(f"{d.sizes[f]:.2f}" for f in FORMATS) + " |")
    print("\nTargets (load+convert = warm cache; peak = tracemalloc, one warm run):")
    for ok, text in checks(docs):
        print(f"  {'PASS' if ok else 'FAIL'} {text}")
    for name in sorted({"GitHub", "Stripe"} - {d.name for d in docs}):
        print(f"  SKIP {name}: document not available")


if __name__ == "__main__":
    sys.exit(main())
