"""Deployed, secrets are SSM SecureStrings named by *_PARAM variables, read with the functions' SSM client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace

import boto3
import pytest
from botocore.exceptions import ClientError

from concierge import secrets
from concierge.webhook import signature
from devstack.waha_sim import WahaSimulator
from tests.conftest import forget_cached_clients
from tests.driver import Concierge, waha_message

HMAC_PARAMETER = "/concierge/test/waha-webhook-hmac-key"
API_KEY_PARAMETER = "/concierge/test/waha-api-key"


@pytest.fixture
def deployed_secrets(concierge: Concierge, monkeypatch: pytest.MonkeyPatch) -> Iterator[Concierge]:
    """The two secrets stored in SSM (moto) and referenced by name, as template.yaml wires them."""
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name=HMAC_PARAMETER, Type="SecureString", Value="hmac-from-ssm")
    ssm.put_parameter(Name=API_KEY_PARAMETER, Type="SecureString", Value="waha-key-from-ssm")
    monkeypatch.setenv("WAHA_WEBHOOK_HMAC_KEY_PARAM", HMAC_PARAMETER)
    monkeypatch.setenv("WAHA_API_KEY_PARAM", API_KEY_PARAMETER)
    secrets.forget()
    forget_cached_clients()
    yield concierge
    secrets.forget()


def test_webhook_checks_signatures_with_the_key_from_ssm(deployed_secrets: Concierge) -> None:
    """With the key referenced in SSM, a delivery signed with it is stored and an unsigned one is refused."""
    deployed_secrets.register()
    raw = json.dumps(waha_message()).encode()
    headers = {"X-Webhook-Hmac": signature.sign(raw, "hmac-from-ssm"), "X-Webhook-Hmac-Algorithm": "sha512"}

    signed_status, signed = deployed_secrets.webhook(raw_body=raw.decode(), headers=headers)
    unsigned_status, _ = deployed_secrets.webhook(waha_message())

    assert (signed_status, signed["outcome"]) == (200, "stored")
    assert unsigned_status == 401


def test_missing_ssm_parameter_fails_closed(deployed_secrets: Concierge, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key named but absent from SSM lets nothing in: the call errors (WAHA retries it) and nothing is stored."""
    deployed_secrets.register()
    monkeypatch.setenv("WAHA_WEBHOOK_HMAC_KEY_PARAM", "/concierge/test/not-there")
    before = len(deployed_secrets.items())

    with pytest.raises(ClientError, match="ParameterNotFound"):
        deployed_secrets.webhook(waha_message())

    assert len(deployed_secrets.items()) == before


def test_sender_uses_the_waha_api_key_from_ssm(deployed_secrets: Concierge, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sender reads WAHA's X-Api-Key from SSM, so a key-protected WAHA accepts its sends."""
    with WahaSimulator(api_key="waha-key-from-ssm") as protected:
        monkeypatch.setenv("WAHA_HOST", protected.url)
        forget_cached_clients()
        deployed_secrets.register()

        deployed_secrets.deliver_queued()

        assert len(protected.sent_messages()) == 1


def test_a_rotated_key_is_in_use_within_five_minutes(
    deployed_secrets: Concierge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key read from SSM is kept five minutes (one read per container and five minutes), then read again."""
    clock = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(secrets, "time", SimpleNamespace(monotonic=lambda: clock.now))
    assert secrets.secret("WAHA_WEBHOOK_HMAC_KEY") == "hmac-from-ssm"
    boto3.client("ssm").put_parameter(Name=HMAC_PARAMETER, Type="SecureString", Value="rotated", Overwrite=True)

    clock.now += secrets.CACHE_SECONDS - 1
    kept = secrets.secret("WAHA_WEBHOOK_HMAC_KEY")
    clock.now += 2
    read_again = secrets.secret("WAHA_WEBHOOK_HMAC_KEY")

    assert (kept, read_again) == ("hmac-from-ssm", "rotated")
