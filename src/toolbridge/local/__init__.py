"""Local tools: Open WebUI-style Python tool files and plain functions, as tools, and their calls.

Holds a tools entry's sources and how they are shown (`sources`), loading tool files and
modules (`loader`), their frontmatter requirements, checked or installed (`requirements`),
calling their functions (`calls`), signatures into schemas (`signatures`), docstrings and
frontmatter (`docstrings`) and the file watcher (`watch`). May import the core values
(`errors`, `tools`, `schemas`, `names`, `config`); never conversion, upstream, the gateway or
serving.
"""
