"""Local tools: Open WebUI-style Python tool files and plain functions, as tools, and their calls.

Holds a tools entry's sources and how they are shown (`sources`), loading tool files and
modules (`loader`), importing a file with errors that name the failing import (`imports`),
their frontmatter requirements, checked or installed (`requirements`), calling their functions
(`calls`) with what the caller said about the call (`context`), what they return as results
(`results`), signatures into schemas (`signatures`), docstrings and frontmatter (`docstrings`)
and the file watcher (`watch`). May import the core values (`errors`, `tools`, `schemas`,
`names`, `config`); never conversion, upstream, the gateway or serving.
"""
