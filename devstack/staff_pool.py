"""The template's staff user pool and console app client, created in moto's `cognito-idp`, with one staff user.

moto issues real RS256 tokens for the pool (its issuer is Cognito's, https://cognito-idp.<region>.amazonaws.com/
<pool id>) and serves the public keys at <moto>/<pool id>/.well-known/jwks.json, so the authorizer checks them as
it checks Cognito's deployed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import boto3

from devstack.template import load_template, resources_of_type

DEFAULT_STAFF_EMAIL = "reception@example.com"
# A local-only account on an in-memory pool that is gone when `make run` stops; the template's policy holds.
DEFAULT_STAFF_PASSWORD = "Front-desk-2025"  # noqa: S105


@dataclass(frozen=True)
class StaffPool:
    pool_logical_id: str
    pool_id: str
    client_logical_id: str
    client_id: str
    jwks_url: str

    def local_ids(self) -> dict[str, str]:
        return {self.pool_logical_id: self.pool_id, self.client_logical_id: self.client_id}


def _one(resource_type: str, template: dict[str, Any]) -> tuple[str, Mapping[str, Any]]:
    found = resources_of_type(resource_type, template)
    if len(found) != 1:
        raise LookupError(f"expected one {resource_type} in the template, found {len(found)}")
    ((logical_id, resource),) = found.items()
    return logical_id, resource.get("Properties", {})


def create_staff_pool(
    session: boto3.Session,
    endpoint: str,
    email: str,
    password: str,
    prefix: str = "concierge",
    template: dict[str, Any] | None = None,
) -> StaffPool:
    template = template or load_template()
    pool_logical_id, pool = _one("AWS::Cognito::UserPool", template)
    client_logical_id, client = _one("AWS::Cognito::UserPoolClient", template)
    cognito = session.client("cognito-idp")
    pool_id = cognito.create_user_pool(
        PoolName=f"{prefix}-staff",
        UsernameAttributes=pool["UsernameAttributes"],
        AutoVerifiedAttributes=pool.get("AutoVerifiedAttributes", []),
        AdminCreateUserConfig=pool["AdminCreateUserConfig"],
        Policies=pool["Policies"],
    )["UserPool"]["Id"]
    client_id = cognito.create_user_pool_client(
        UserPoolId=pool_id,
        ClientName=client["ClientName"],
        GenerateSecret=client["GenerateSecret"],
        ExplicitAuthFlows=client["ExplicitAuthFlows"],
    )["UserPoolClient"]["ClientId"]
    add_staff_member(session, pool_id, email, password)
    return StaffPool(
        pool_logical_id=pool_logical_id,
        pool_id=pool_id,
        client_logical_id=client_logical_id,
        client_id=client_id,
        jwks_url=f"{endpoint.rstrip('/')}/{pool_id}/.well-known/jwks.json",
    )


def add_staff_member(session: boto3.Session, pool_id: str, email: str, password: str, name: str | None = None) -> None:
    """An account as an administrator creates it (no invitation e-mail), with its password set for good."""
    cognito = session.client("cognito-idp")
    attributes = [{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"}]
    if name:
        attributes.append({"Name": "name", "Value": name})
    cognito.admin_create_user(UserPoolId=pool_id, Username=email, UserAttributes=attributes, MessageAction="SUPPRESS")
    cognito.admin_set_user_password(UserPoolId=pool_id, Username=email, Password=password, Permanent=True)


def sign_in(session: boto3.Session, client_id: str, email: str, password: str) -> str:
    """The ID token the console's form gets (InitiateAuth, USER_PASSWORD_AUTH)."""
    answer = session.client("cognito-idp").initiate_auth(
        ClientId=client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": email, "PASSWORD": password},
    )
    return str(answer["AuthenticationResult"]["IdToken"])
