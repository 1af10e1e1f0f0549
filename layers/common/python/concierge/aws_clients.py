"""boto3 clients, created once per container and reused by every invocation.

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


def reset() -> None:
    """Forgets the clients, for tests that start a fresh moto backend."""
    dynamodb.cache_clear()
    sqs.cache_clear()
