"""The upstream hop: sending a built request to a remote API and reading its answer.

Holds the network seam (`seam`), our HTTP/1.1 client and the other clients behind it
(`http11`, `clients`), the credentials a server's config adds to its requests
(`credentials`), and request building and answer shaping (`remote`). May import the core
values (`errors`, `tools`, `config`); never conversion, local tools, the gateway or serving.
"""
