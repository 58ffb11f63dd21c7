"""Estimated token costs of tool definitions, per client format.

A model pays for every tool definition it is given, on every turn. The estimate is the size of
each tool as its format renders it (compact JSON, UTF-8 bytes) divided by a bytes-per-token
ratio measured for that format: the `o200k_base` tokenizer (OpenAI's GPT-4o and later) over
600 tools drawn from five large corpus documents (GitHub, Stripe, Kubernetes, Slack, Jira) gave
4.55 bytes a token for the openai, openai-responses and anthropic formats, 4.64 for gemini and
4.48 for mcp (the 10th to 90th percentile of single tools: 4.1 to 4.9); bench/README.md says
how it was measured. Nothing is downloaded and no tokenizer runs: the estimate is for sizing
(which toolsets, whether search mode), within about 10% for that tokenizer. Other providers
count with tokenizers of their own, which were not measured; they are not far apart on JSON,
but treat the numbers as that tokenizer's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import orjson

from toolbridge.formats.render import FORMATS, Format, render
from toolbridge.tools import Tool

BYTES_PER_TOKEN: dict[Format, float] = {
    "openai": 4.55,
    "openai-responses": 4.55,
    "anthropic": 4.55,
    "gemini": 4.64,
    "mcp": 4.48,
}
"""Measured bytes per token of compact tool JSON, per format (module docstring)."""

WARN_TOKENS = 30_000
"""Tool definitions past this many tokens (in any format) make `check` warn: that is a large
share of most models' context on every turn, and models choose tools worse among hundreds."""


def tool_bytes(tools: Iterable[Tool], fmt: Format) -> int:
    """The size of the tools as `fmt` renders them: compact JSON, UTF-8 bytes."""
    return sum(len(orjson.dumps(render(tool, fmt))) for tool in tools)


def tokens(size: int, fmt: Format) -> int:
    """The estimated tokens of `size` bytes of tool JSON in `fmt`."""
    return math.ceil(size / BYTES_PER_TOKEN[fmt])


def estimate(tools: Iterable[Tool]) -> dict[Format, int]:
    """The estimated tokens of the tools' definitions in every format."""
    listed = list(tools)
    return {fmt: tokens(tool_bytes(listed, fmt), fmt) for fmt in FORMATS}
