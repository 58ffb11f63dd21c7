"""Serving: the edges that expose a `Gateway` to the outside world.

Holds the HTTP API (`app`), MCP (`mcp`), one-turn tool calls (`turns`), the gateway's own
OpenAPI document (`openapi_document`), `--dry-run` (`dryrun`) and a loopback server helper
(`loopback`). May import everything below it (core, conversion, local tools, formats,
upstream, the gateway); only the CLI and the demo import it.
"""
