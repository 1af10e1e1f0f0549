"""The API's Lambda REQUEST authorizer: the hotel's API key, or a staff member's Cognito ID token."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from concierge import init_phase, staff_auth

logger = Logger()


@cache
def _staff_usage_key() -> str | None:
    """The staff console's API key, which API Gateway counts staff requests against (the usage plan).

    Locally its value is given; deployed, the template names the key and its value is read once per container."""
    value = os.environ.get("STAFF_USAGE_KEY")
    if value:
        return value
    key_id = os.environ.get("STAFF_USAGE_KEY_ID")
    if not key_id:
        return None
    import boto3

    return str(boto3.client("apigateway").get_api_key(apiKey=key_id, includeValue=True)["value"])


@cache
def _settings() -> staff_auth.TokenSettings:
    return staff_auth.TokenSettings.from_env()


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        return staff_auth.authorize(event, _settings, _staff_usage_key)
    except staff_auth.Unauthorized as refused:
        # Why, for the logs only; the caller gets API Gateway's 401 and nothing about the token.
        logger.info("Refused a token", extra={"reason": refused.reason, "resource": event.get("resource")})
        raise Exception(staff_auth.UNAUTHORIZED) from None


# The last line of the function's init (concierge.init_phase).
init_phase.end()
