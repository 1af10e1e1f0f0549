"""The cold-start baseline: the smallest useful Python Lambda. boto3 imported and one DynamoDB client created at
init; each invocation makes one GetItem, so that its first invocation pays what any first AWS call pays."""

from __future__ import annotations

import os
from typing import Any

import boto3

client = boto3.client("dynamodb")
TABLE_NAME = os.environ["TABLE_NAME"]


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    response = client.get_item(TableName=TABLE_NAME, Key={"pk": {"S": "BASELINE"}, "sk": {"S": "BASELINE"}})
    return {"found": "Item" in response}
