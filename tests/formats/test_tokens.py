"""Token estimates: the rendered size of tools over each format's measured bytes per token."""

from __future__ import annotations

import math

import orjson

from toolbridge.discovery import META_TOOLS
from toolbridge.formats.render import FORMATS, render
from toolbridge.formats.tokens import BYTES_PER_TOKEN, estimate, tokens, tool_bytes


def test_an_estimate_is_the_rendered_size_over_the_formats_ratio() -> None:
    for fmt in FORMATS:
        size = sum(len(orjson.dumps(render(tool, fmt))) for tool in META_TOOLS)
        assert tool_bytes(META_TOOLS, fmt) == size
        assert estimate(META_TOOLS)[fmt] == math.ceil(size / BYTES_PER_TOKEN[fmt])
    assert (tokens(0, "openai"), tokens(455, "openai"), tokens(456, "openai")) == (0, 100, 101)


def test_search_mode_costs_a_model_far_under_three_thousand_tokens_in_every_format() -> None:
    assert estimate(META_TOOLS) == {
        "openai": 307,
        "openai-responses": 308,
        "anthropic": 288,
        "gemini": 264,
        "mcp": 392,
    }
