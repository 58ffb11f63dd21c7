"""Client formats: a canonical `Tool` rendered as OpenAI, Anthropic, Gemini or MCP tool specs.

Holds each provider's schema dialect (what it accepts of JSON Schema) and the renderers that
build its tool dicts. Pure: imports only the plain values of `toolbridge.tools`; no I/O.
"""
