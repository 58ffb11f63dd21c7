"""toolbridge: an OpenAPI tool-server gateway for LLM applications."""

__version__ = "0.1.0"
