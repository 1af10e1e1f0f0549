"""Staff accounts through the whole local stack as `make run` starts it: moto's user pool issues the token, the
local API runs the template's authorizer before each key route, as API Gateway does."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import urllib3
from botocore.exceptions import ClientError

from devstack.stack import LocalStack, StackConfig
from devstack.staff_pool import sign_in
from tests.driver import GUEST

pytestmark = pytest.mark.integration

API_KEY = "staff-tests-api-key"
STAFF_EMAIL = "rina@example.com"
STAFF_PASSWORD = "Integration-2025"
_phones = (f"0812555{suffix:05d}" for suffix in itertools.count(1))


class Running:
    def __init__(self, stack: LocalStack) -> None:
        assert stack.api_url and stack.staff_pool
        self.stack = stack
        self.api_url = stack.api_url
        self.http = urllib3.PoolManager(retries=False, timeout=10.0)
        self.session = boto3.Session(region_name=stack.config.aws_region)

    def sign_in(self) -> str:
        assert self.stack.staff_pool is not None
        cognito = self.session.client("cognito-idp", endpoint_url=self.stack.aws_endpoint)
        answer = cognito.initiate_auth(
            ClientId=self.stack.staff_pool.client_id,
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": STAFF_EMAIL, "PASSWORD": STAFF_PASSWORD},
        )
        return str(answer["AuthenticationResult"]["IdToken"])

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        response = self.http.request(
            method,
            self.api_url + path,
            body=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        return response.status, json.loads(response.data) if response.data else None

    def register(self) -> dict[str, Any]:
        status, guest = self.call(
            "POST", "/api/v1/guests/register", {**GUEST, "phone_number": next(_phones)}, {"x-api-key": API_KEY}
        )
        assert status == 201, guest
        return dict(guest)


@pytest.fixture(scope="module")
def running() -> Iterator[Running]:
    config = StackConfig(
        api_port=0,
        moto_port=0,
        waha_sim_port=0,
        api_key=API_KEY,
        staff_email=STAFF_EMAIL,
        staff_password=STAFF_PASSWORD,
    )
    with LocalStack(config) as stack:
        yield Running(stack)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_signed_in_staff_member_sees_the_open_conversations(running: Running) -> None:
    guest = running.register()

    status, page = running.call("GET", "/api/v1/sessions", headers=bearer(running.sign_in()))

    assert status == 200, page
    assert guest["session_id"] in {session["session_id"] for session in page["sessions"]}


def test_without_a_valid_token_the_staff_routes_answer_401_in_our_format(running: Running) -> None:
    token = running.sign_in()
    header, payload, signature = token.split(".")

    for headers in (bearer("not-a-token"), bearer(f"{header}.{payload}x.{signature}"), {"Authorization": token}):
        status, answer = running.call("GET", "/api/v1/sessions", headers=headers)
        assert status == 401, headers
        assert answer["error"] == "unauthorized" and set(answer) == {"error", "message", "details"}


def test_with_no_credentials_at_all_the_answer_is_the_missing_api_key(running: Running) -> None:
    """The hotel's systems see what they saw before staff accounts: 403 forbidden for a missing or wrong key."""
    assert running.call("GET", "/api/v1/sessions")[0] == 403
    status, answer = running.call("GET", "/api/v1/sessions", headers={"x-api-key": "wrong"})
    assert (status, answer["error"]) == (403, "forbidden")
    assert running.call("GET", "/api/v1/sessions", headers={"x-api-key": API_KEY})[0] == 200


def test_a_staff_reply_is_stored_under_the_signed_in_persons_name(running: Running) -> None:
    guest = running.register()
    path = f"/api/v1/sessions/{guest['session_id']}/messages"

    status, message = running.call(
        "POST", path, {"text": "Your taxi is here.", "author": "Someone else"}, bearer(running.sign_in())
    )
    by_key = running.call("POST", path, {"text": "Checked by the PMS.", "author": "PMS"}, {"x-api-key": API_KEY})[1]

    assert status == 202, message
    assert message["author"] == STAFF_EMAIL
    assert by_key["author"] == "PMS"
    _, history = running.call("GET", f"/api/v1/guests/{guest['user_id']}/messages", headers=bearer(running.sign_in()))
    assert [m.get("author") for m in history["messages"] if m["role"] == "Staff"] == [STAFF_EMAIL, "PMS"]


def test_a_staff_token_cannot_register_guests(running: Running) -> None:
    status, answer = running.call(
        "POST", "/api/v1/guests/register", {**GUEST, "phone_number": next(_phones)}, bearer(running.sign_in())
    )

    assert (status, answer["error"]) == (403, "forbidden")


def test_a_wrong_password_gets_no_token(running: Running) -> None:
    assert running.stack.staff_pool is not None
    with pytest.raises(ClientError, match="NotAuthorizedException"):
        sign_in(running.session, running.stack.staff_pool.client_id, STAFF_EMAIL, "Wrong-password-1")
