"""Local tools: Open WebUI-style Python tool files and plain functions, as tools, and their calls.

Holds loading tool files and modules (`functions`), signatures into schemas (`signatures`),
docstrings and frontmatter (`docstrings`) and the file watcher (`watch`). May import the
core values (`errors`, `tools`, `schemas`, `names`, `config`); never conversion, upstream,
the gateway or serving.
"""
