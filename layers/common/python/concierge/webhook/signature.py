"""WAHA's webhook signature: HMAC-SHA512 of the raw body, hex, in X-Webhook-Hmac."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

ALGORITHM = "sha512"


def sign(raw_body: bytes, key: str) -> str:
    return hmac.new(key.encode(), raw_body, hashlib.sha512).hexdigest()


def is_valid(raw_body: bytes, headers: Mapping[str, str], key: str) -> bool:
    """Header names are matched case-insensitively, as HTTP and API Gateway deliver them in any case."""
    lowered = {name.lower(): value for name, value in headers.items()}
    algorithm = lowered.get("x-webhook-hmac-algorithm", ALGORITHM).strip().lower()
    received = lowered.get("x-webhook-hmac", "").strip().lower()
    if algorithm != ALGORITHM or not received:
        return False
    # Bytes, not str: compare_digest refuses non-ASCII text, and the header comes from anyone on the internet.
    return hmac.compare_digest(sign(raw_body, key).encode(), received.encode("utf-8", "surrogateescape"))
