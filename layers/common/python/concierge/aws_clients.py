"""boto3 clients, created once per container and reused by every invocation.

The functions create the ones they use during their init (module level in functions/*/app.py), so that a first
request does not pay for it and a SnapStart snapshot holds them. All come from boto3's default session, so the
service catalogue and endpoint rules are loaded once per container, not once per client.

AWS_ENDPOINT_URL (honoured by boto3 itself) points them at moto's server locally.
Standard retry mode backs off on DynamoDB throttling instead of failing the request.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=2, read_timeout=5)


@cache
def dynamodb() -> Any:
    return boto3.client("dynamodb", config=_CONFIG)


@cache
def sqs() -> Any:
    return boto3.client("sqs", config=_CONFIG)


@cache
def ssm() -> Any:
    # Secrets by reference (concierge.secrets).
    return boto3.client("ssm", config=_CONFIG)


@cache
def s3() -> Any:
    # Signature V4 for presigned URLs (boto3 would sign them V2 in us-east-1); created only by the functions that
    # keep or show guests' files, and by the history only for a page that holds one.
    return boto3.client("s3", config=_CONFIG.merge(Config(signature_version="s3v4")))


def reset() -> None:
    """Forgets the clients, for tests that start a fresh moto backend."""
    dynamodb.cache_clear()
    sqs.cache_clear()
    ssm.cache_clear()
    s3.cache_clear()
