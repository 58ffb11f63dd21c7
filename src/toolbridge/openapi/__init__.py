"""Conversion: OpenAPI documents (Swagger 2.0, OpenAPI 3.0, 3.1) turned into tools.

Holds reading documents (files, URLs, JSON, YAML: `documents`), following `$ref`s
(`references`), schema translation (`definitions` for the shared `$defs` and the walk,
`keywords` for what each keyword becomes), Swagger 2.0 reshaping (`swagger2`), finding
operations (`operations`), operations into tools (`convert`), their parameters (`parameters`),
base URLs (`servers`) and security schemes (`security`), request bodies (`bodies`), responses
(`responses`) and spec validation (`validation`). May import the core values (`errors`, `tools`,
`schemas`, `names`, `yaml_loader`) and the upstream seam's plain values; never local tools, the
gateway or serving.
"""
