"""WAHA's HMAC: with a key configured, only deliveries signed with it are read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from concierge.webhook import signature
from tests.conftest import forget_cached_clients
from tests.driver import Concierge, waha_message

VECTOR = json.loads(
    (Path(__file__).resolve().parents[2] / "devstack/waha_spec/webhook-hmac.test-vector.json").read_text()
)
KEY = "hotel-webhook-key"


def test_signature_reproduces_wahas_own_test_vector() -> None:
    """Our HMAC of WAHA's documented body and key is exactly the documented X-Webhook-Hmac."""
    assert signature.sign(VECTOR["rawBody"].encode(), VECTOR["key"]) == VECTOR["headers"]["X-Webhook-Hmac"]
    assert signature.is_valid(VECTOR["rawBody"].encode(), VECTOR["headers"], VECTOR["key"])


@pytest.fixture
def signed(concierge: Concierge, monkeypatch: pytest.MonkeyPatch) -> Concierge:
    monkeypatch.setenv("WAHA_WEBHOOK_HMAC_KEY", KEY)
    forget_cached_clients()
    concierge.register()
    return concierge


def _headers(raw: bytes, key: str = KEY) -> dict[str, str]:
    return {"X-Webhook-Hmac": signature.sign(raw, key), "X-Webhook-Hmac-Algorithm": "sha512"}


def test_correctly_signed_delivery_is_processed(signed: Concierge) -> None:
    """A delivery signed with the configured key is stored and answered."""
    raw = json.dumps(waha_message()).encode()

    status, body = signed.webhook(raw_body=raw.decode(), headers=_headers(raw))

    assert (status, body["outcome"]) == (200, "stored")


def test_base64_encoded_body_is_verified_on_its_decoded_bytes(signed: Concierge) -> None:
    """API Gateway may pass the body base64-encoded; the signature covers the original bytes."""
    raw = json.dumps(waha_message()).encode()

    status, _ = signed.webhook(raw_body=raw, headers=_headers(raw))

    assert status == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Webhook-Hmac": "00" * 64, "X-Webhook-Hmac-Algorithm": "sha512"},
        "other-key",
        "sha256",
    ],
)
def test_missing_or_wrong_signature_is_401_and_stores_nothing(signed: Concierge, headers: object) -> None:
    """No signature, a wrong one, one made with another key or another algorithm: 401, nothing read."""
    raw = json.dumps(waha_message()).encode()
    if headers == "other-key":
        headers = _headers(raw, "other-key")
    elif headers == "sha256":
        headers = {**_headers(raw), "X-Webhook-Hmac-Algorithm": "sha256"}
    before = len(signed.items())

    status, body = signed.webhook(raw_body=raw.decode(), headers=headers)

    assert status == 401 and body["error"] == "unauthorized"
    assert len(signed.items()) == before


def test_tampered_body_is_401(signed: Concierge) -> None:
    """A signature of one body does not let another body in."""
    raw = json.dumps(waha_message(text="original")).encode()
    tampered = raw.replace(b"original", b"tampered")

    status, _ = signed.webhook(raw_body=tampered.decode(), headers=_headers(raw))

    assert status == 401


def test_signed_but_malformed_is_400(signed: Concierge) -> None:
    """A correctly signed body that is not a WAHA event is a 400, not a 5xx."""
    raw = b'{"event": "message", "session": "default", "payload": {"from": 42}}'

    status, _ = signed.webhook(raw_body=raw.decode(), headers=_headers(raw))

    assert status == 400
