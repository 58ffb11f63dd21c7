"""Client formats: a canonical `Tool` rendered as OpenAI, Anthropic, Gemini or MCP tool specs.

Holds each provider's schema dialect (`openai_dialect` with strict mode, `anthropic_dialect`,
`gemini_dialect`), what they share in reading JSON Schema (`keywords`) and simplifying its
combinators (`combinators`), and the renderers that build each format's tool dicts (`render`).
Pure: imports only the plain values of `toolbridge.tools` and the pure helpers of
`toolbridge.schemas`; no I/O.

Every dialect takes a canonical JSON Schema 2020-12 and returns what its provider accepts. The
input is never mutated (canonical schemas are shared between tools). Outputs are new dicts but
may share JSON leaves (`enum` lists, `default` values) with the input, so treat both as
read-only.
"""
