"""Filters: Open WebUI's Functions idea applied to tool calls.

Holds loading `filters:` entries, files with an Open WebUI-style `class Filter` (`Valves`,
`UserValves`, `priority`, `inlet`, `outlet`), into values (`loader`), and running the ones in
scope around a call (`chain`). May import the core values (`errors`, `tools`, `config`) and
`local/` (files are imported, and host parameters filled, as for tools); never the gateway or
serving.
"""
