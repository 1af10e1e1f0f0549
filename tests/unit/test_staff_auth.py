"""The API's authorizer (functions/authorize) with real Cognito tokens from moto's server: the hotel's API key or a
staff member's ID token; and a staff reply written under the signed-in person's name."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from concierge import staff_auth
from devstack.functions import load_handler
from devstack.staff_pool import add_staff_member, create_staff_pool, sign_in
from devstack.template import functions
from tests.conftest import lambda_context
from tests.driver import Concierge

EMAIL = "front.desk@example.com"
PASSWORD = "Unit-tests-2025"
STAFF_KEY = "staff-usage-key"
METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:api/prod/GET/api/v1/sessions"


class Pool:
    def __init__(self, session: boto3.Session, endpoint: str) -> None:
        self.session = session
        self.staff = create_staff_pool(session, endpoint, EMAIL, PASSWORD, prefix="unit")
        self.settings = staff_auth.TokenSettings(
            issuer=f"https://cognito-idp.us-east-1.amazonaws.com/{self.staff.pool_id}",
            audience=self.staff.client_id,
            jwks_url=self.staff.jwks_url,
        )

    def token(self, email: str = EMAIL, password: str = PASSWORD, client_id: str | None = None) -> str:
        return sign_in(self.session, client_id or self.staff.client_id, email, password)


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    session = boto3.Session(region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    original_client = session.client

    def client(name: str, **kwargs: Any) -> Any:
        return original_client(name, endpoint_url=endpoint, **kwargs)

    session.client = client  # type: ignore[method-assign]
    try:
        yield Pool(session, endpoint)
    finally:
        server.stop()


def request(headers: dict[str, str], method: str = "GET", resource: str = "/api/v1/sessions") -> dict[str, Any]:
    return {"type": "REQUEST", "methodArn": METHOD_ARN, "resource": resource, "httpMethod": method, "headers": headers}


def authorize(pool: Pool, headers: dict[str, str], **route: str) -> dict[str, Any]:
    return staff_auth.authorize(request(headers, **route), lambda: pool.settings, lambda: STAFF_KEY)


def effect(answer: dict[str, Any]) -> str:
    return str(answer["policyDocument"]["Statement"][0]["Effect"])


def refused(pool: Pool, token: str) -> str:
    with pytest.raises(staff_auth.Unauthorized) as caught:
        authorize(pool, {"Authorization": f"Bearer {token}"})
    return caught.value.reason


def test_a_staff_members_token_opens_the_staff_routes_under_their_name(pool: Pool) -> None:
    answer = authorize(pool, {"authorization": f"Bearer {pool.token()}"})

    assert effect(answer) == "Allow"
    assert answer["usageIdentifierKey"] == STAFF_KEY
    # moto's ID tokens carry the email but no name: the email is the author.
    assert answer["context"]["via"] == "staff"
    assert answer["context"]["author"] == EMAIL


def test_a_name_on_the_account_is_the_author(pool: Pool) -> None:
    """Cognito puts the attributes the client may read in the ID token (moto only those listed: so here)."""
    add_staff_member(pool.session, pool.staff.pool_id, "dewi@example.com", PASSWORD, name="Dewi Lestari")
    reading = pool.session.client("cognito-idp").create_user_pool_client(
        UserPoolId=pool.staff.pool_id,
        ClientName="reads-names",
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH"],
        ReadAttributes=["email", "name"],
    )["UserPoolClient"]["ClientId"]
    settings = staff_auth.TokenSettings(pool.settings.issuer, reading, pool.settings.jwks_url)

    member = staff_auth.staff_member(pool.token("dewi@example.com", client_id=reading), settings)

    assert (member.author, member.email) == ("Dewi Lestari", "dewi@example.com")


def test_an_expired_token_is_refused(pool: Pool) -> None:
    token = pool.token()
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))

    with pytest.raises(staff_auth.Unauthorized, match="Unauthorized"):
        staff_auth.staff_member(token, pool.settings, now=claims["exp"] + 60)
    assert staff_auth.staff_member(token, pool.settings, now=claims["exp"] - 60).email == EMAIL


def test_a_token_for_another_app_client_is_refused(pool: Pool) -> None:
    other = pool.session.client("cognito-idp").create_user_pool_client(
        UserPoolId=pool.staff.pool_id, ClientName="other", ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH"]
    )["UserPoolClient"]["ClientId"]

    assert refused(pool, pool.token(client_id=other)).startswith("claims")


def test_a_token_of_another_pool_is_refused(pool: Pool) -> None:
    """moto signs every pool's tokens with one key: only the issuer tells them apart, and it is checked."""
    elsewhere = create_staff_pool(pool.session, "http://unused", "x@example.com", PASSWORD, prefix="other")
    token = sign_in(pool.session, elsewhere.client_id, "x@example.com", PASSWORD)
    settings = staff_auth.TokenSettings(pool.settings.issuer, elsewhere.client_id, pool.settings.jwks_url)

    with pytest.raises(staff_auth.Unauthorized):
        staff_auth.staff_member(token, settings)


def test_a_tampered_token_is_refused(pool: Pool) -> None:
    header, payload, signature = pool.token().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["email"] = "manager@example.com"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")

    assert refused(pool, f"{header}.{forged}.{signature}").startswith("signature")


def test_an_access_token_is_not_an_id_token(pool: Pool) -> None:
    answer = pool.session.client("cognito-idp").initiate_auth(
        ClientId=pool.staff.client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": EMAIL, "PASSWORD": PASSWORD},
    )

    assert refused(pool, answer["AuthenticationResult"]["AccessToken"]).startswith("claims")


@pytest.mark.parametrize("authorization", ["Bearer", "Basic dXNlcjpwYXNz", "Bearer not-a-jwt", "Bearer a.b.c"])
def test_anything_else_in_authorization_is_refused(pool: Pool, authorization: str) -> None:
    with pytest.raises(staff_auth.Unauthorized):
        authorize(pool, {"Authorization": authorization})


def test_the_api_key_is_passed_on_for_the_usage_plan_without_reading_tokens(pool: Pool) -> None:
    def never() -> staff_auth.TokenSettings:
        raise AssertionError("a caller with the API key needs no token settings")

    answer = staff_auth.authorize(request({"X-Api-Key": "hotel-key"}), never, lambda: STAFF_KEY)

    assert effect(answer) == "Allow"
    assert answer["usageIdentifierKey"] == "hotel-key"
    assert answer["context"] == {"via": "api_key"}


def test_no_credentials_hand_no_key_to_api_gateway(pool: Pool) -> None:
    """API Gateway then refuses the request as a missing API key (403), as before there were staff accounts."""
    answer = authorize(pool, {})

    assert effect(answer) == "Allow"
    assert "usageIdentifierKey" not in answer


def test_a_staff_token_does_not_open_registration(pool: Pool) -> None:
    answer = authorize(
        pool, {"Authorization": f"Bearer {pool.token()}"}, method="POST", resource="/api/v1/guests/register"
    )

    assert effect(answer) == "Deny"


def test_the_staff_routes_are_every_authorized_route_but_registration() -> None:
    from devstack.api import api_routes

    authorized = {(method, route.path) for route in api_routes() if route.authorizer for method in route.methods}

    assert staff_auth.STAFF_ROUTES == authorized - {("POST", "/api/v1/guests/register")}


def test_the_function_answers_401_as_api_gateway_expects(pool: Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAFF_TOKEN_ISSUER", pool.settings.issuer)
    monkeypatch.setenv("STAFF_CLIENT_ID", pool.settings.audience)
    monkeypatch.setenv("STAFF_JWKS_URL", pool.settings.jwks_url)
    monkeypatch.setenv("STAFF_USAGE_KEY", STAFF_KEY)
    handler = load_handler(functions()["AuthorizeFunction"])

    with pytest.raises(Exception, match=r"^Unauthorized$"):
        handler(request({"Authorization": "Bearer a.b.c"}), lambda_context("AuthorizeFunction"))
    answer = handler(request({"Authorization": f"Bearer {pool.token()}"}), lambda_context("AuthorizeFunction"))
    assert answer["context"]["author"] == EMAIL


def test_a_signed_in_staff_members_reply_is_under_their_name_whatever_the_body_says(concierge: Concierge) -> None:
    _, guest = concierge.register()

    status, message = concierge.staff_reply_signed_in(
        guest["session_id"], {"text": "Your taxi is here.", "author": "The manager"}, author=EMAIL
    )

    assert status == 202
    assert message["author"] == EMAIL
    assert concierge.conversation(guest["user_id"])[-1]["author"] == EMAIL
