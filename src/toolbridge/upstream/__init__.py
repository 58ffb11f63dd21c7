"""The upstream hop: sending a built request to a remote API and reading its answer.

Holds the network seam (`seam`), our HTTP/1.1 client and the other clients behind it (`http11`,
`clients`) and the content codings they decode (`encodings`), where each server's requests may
go (`destinations`, and `resolver` for the address a connection is made to), how its connections
are made (`transport`: CA bundle, client certificate, proxy) and its way out with its
concurrency cap (`routes`), the credentials a server's config adds to its requests
(`credentials`, with `static_credentials` and the OAuth2 `oauth2`), request building (`request`,
with `request_body` and the value `styles`), answer shaping (`answers`), both around one send
(`remote`), a request as a curl line (`curl`), and what both directions read off a media type
(`media_types`). May import the core values (`errors`, `tools`, `config`, `hosts`); never
conversion, local tools, the gateway or serving.
"""
