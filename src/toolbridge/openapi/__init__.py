"""Conversion: OpenAPI documents (Swagger 2.0, OpenAPI 3.0, 3.1) turned into tools.

Holds reading documents (files, URLs, JSON, YAML, `$ref`s: `documents`), schema translation
(`definitions`), Swagger 2.0 reshaping (`swagger2`), operations into tools (`convert`),
request bodies (`bodies`), responses (`responses`) and spec validation (`validation`). May
import the core values (`errors`, `tools`, `schemas`, `names`, `yaml_loader`) and the upstream
seam's plain values; never local tools, the gateway or serving.
"""
