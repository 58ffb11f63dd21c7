"""Conversion: OpenAPI documents (Swagger 2.0, OpenAPI 3.0, 3.1) turned into tools.

Holds reading documents (files, URLs, JSON, YAML: `documents`; fetching URLs with deadlines,
within the server's destinations and through its transport: `fetching`; the limits YAML must
keep: `yaml_limits`), following `$ref`s
(`references`), schema translation (`definitions` for the shared `$defs` and the walk,
`keywords` for what each keyword becomes), Swagger 2.0 reshaping (`swagger2`), finding
operations (`operations`), operations into tools (`convert`), their parameters (`parameters`),
base URLs (`servers`) and security schemes (`security`), request bodies (`bodies`), responses
(`responses`) and spec validation (`validation`). May import the core values (`errors`, `tools`,
`schemas`, `names`, `yaml_loader`, `hosts`) and the upstream room (its plain values, the
destination policy and the clients documents are fetched with); never local tools, the gateway
or serving.
"""
