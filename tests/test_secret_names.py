"""Which values of a URL are secrets: what redaction masks, what the state store seals, what
the compiled cache keeps off the disk."""

from __future__ import annotations

import pytest

from toolbridge.secret_names import url_secrets


@pytest.mark.parametrize(
    ("url", "secrets"),
    [
        ("https://api.example.com/openapi.yaml", []),
        ("https://u:pw-1234@h.example/x", ["pw-1234"]),
        ("https://tok-1234@h.example/x", ["tok-1234"]),  # a token as the user name
        ("https://tok-1234:@h.example/x", ["tok-1234"]),
        ("https://h.example/x?api_key=k-1234&v=2", ["k-1234"]),
        ("https://h.example/x?API_KEY=k-1234", ["k-1234"]),
        ("https://h.example/x?api%5Fkey=k-1234", ["k-1234"]),
        ("https://h.example/x?access_token=a+b", ["a b", "a+b"]),  # decoded, and as written
        ("https://h.example/x?api_key=%43ANARY", ["CANARY", "%43ANARY"]),
        ("https://h.example/x?v=1;token=t-1234", ["t-1234"]),
        ("https://h.example/x?api_key=&token=t-1234", ["t-1234"]),
        ("https://h.example/x?signal=s-1234&page=2", []),  # not named like a secret
        # presigned URLs: Azure's shared access signature, S3's and Google's signatures
        (
            "https://a.blob.core.windows.net/c/doc.json?sv=2022&sp=r&sig=s%2B1234",
            ["s+1234", "s%2B1234"],
        ),
        ("https://b.s3.amazonaws.com/doc.json?X-Amz-Signature=ab12cd", ["ab12cd"]),
        ("https://storage.googleapis.com/b/doc.json?X-Goog-Signature=ef34gh", ["ef34gh"]),
        ("https://[::1/x?token=t", []),  # not a URL: nothing to find
    ],
)
def test_a_urls_secrets_are_its_user_info_and_its_query_values_named_so(
    url: str, secrets: list[str]
) -> None:
    assert list(url_secrets(url)) == secrets
