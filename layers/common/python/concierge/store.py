"""DynamoDB access for guests, stays and conversations: one table, keys from `keys`.

Each flow is shaped to the fewest calls: registering is one transaction, an inbound
message is one read plus one transaction, a history page is one query.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from concierge import aws_clients, keys
from concierge.config import settings

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

PENDING = "PENDING"
SENT = "SENT"
FAILED = "FAILED"
RECEIVED = "RECEIVED"
# WhatsApp's ticks after SENT (WAHA's message.ack): only ever forward.
DELIVERED = "DELIVERED"
READ = "READ"
# Stored but deliberately not sent (the guest opted out of automated messages).
SKIPPED = "SKIPPED"


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(value) for name, value in values.items() if value is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _deserializer.deserialize(value) for name, value in item.items()}


def _table() -> str:
    return settings().table_name


@dataclass(frozen=True)
class StoredMessage:
    """A message row as written: the key for the outbox and the fields the history shows."""

    user_id: str
    message_id: str
    session_id: str
    role: str
    text: str
    created_at: str
    status: str
    chat_id: str | None = None
    # Whether its key reached the outbound queue before the row was written (see `outbox`).
    queued: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> keys.Key:
        return keys.message(self.user_id, self.created_at, self.message_id)

    def item(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            **self.key,
            "type": "Message",
            "message_id": self.message_id,
            "user_id": self.user_id,
            "session_id": self.session_id,
            "role": self.role,
            "text": self.text,
            "created_at": self.created_at,
            "status": self.status,
            "chat_id": self.chat_id,
            **self.extra,
        }
        if self.chat_id and self.role != "User" and "waha_message_id" not in self.extra:
            # Acks (and our own echoes) name the message by this id; the sender keeps it true.
            values["waha_id"] = keys.outbound_waha_id(self.message_id)
        if self.status == PENDING and not self.queued:
            # Sparse index: the sweeper finds exactly the messages that never reached the queue.
            values["outbox_pk"] = keys.UNQUEUED_OUTBOX
            values["outbox_sk"] = self.created_at
        return values


class TransactionConflict(Exception):
    """A transaction was cancelled because a condition failed; `reasons` is DynamoDB's list, items decoded."""

    def __init__(self, reasons: list[dict[str, Any]]) -> None:
        super().__init__("transaction cancelled: " + ", ".join(reason.get("Code", "?") for reason in reasons))
        self.reasons = reasons

    def failed(self, index: int) -> bool:
        return index < len(self.reasons) and self.reasons[index].get("Code") == "ConditionalCheckFailed"

    def old_item(self, index: int) -> dict[str, Any] | None:
        item = self.reasons[index].get("Item") if index < len(self.reasons) else None
        return from_item(item) if item else None


def put(
    values: dict[str, Any], condition: str | None = None, condition_values: dict[str, Any] | None = None
) -> dict[str, Any]:
    action: dict[str, Any] = {"TableName": _table(), "Item": to_item(values)}
    if condition:
        action["ConditionExpression"] = condition
        action["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    if condition_values:
        action["ExpressionAttributeValues"] = to_item(condition_values)
    return {"Put": action}


def put_new(values: dict[str, Any]) -> dict[str, Any]:
    return put(values, "attribute_not_exists(pk)")


def update(
    key: keys.Key,
    expression: str,
    values: dict[str, Any],
    condition: str | None = None,
    names: dict[str, str] | None = None,
) -> dict[str, Any]:
    _check_placeholders(values, expression, condition)
    action: dict[str, Any] = {
        "TableName": _table(),
        "Key": to_item(key),
        "UpdateExpression": expression,
        "ExpressionAttributeValues": to_item(values),
    }
    if names:
        action["ExpressionAttributeNames"] = names
    if condition:
        action["ConditionExpression"] = condition
        action["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    return {"Update": action}


def _check_placeholders(values: dict[str, Any], *expressions: str | None) -> None:
    # DynamoDB refuses a value that no expression uses, and one set to None (dropped by to_item) that one
    # does; moto accepts both, so this catches locally what only the real service would refuse.
    text = " ".join(expression for expression in expressions if expression)
    for name, value in values.items():
        if value is None or not re.search(re.escape(name) + r"(?![A-Za-z0-9_])", text):
            raise ValueError(f"expression value {name} is unused or None")


def condition_check(key: keys.Key, condition: str, values: dict[str, Any]) -> dict[str, Any]:
    return {
        "ConditionCheck": {
            "TableName": _table(),
            "Key": to_item(key),
            "ConditionExpression": condition,
            "ExpressionAttributeValues": to_item(values),
        }
    }


TRANSACTION_ATTEMPTS = 4


def transact(actions: list[dict[str, Any]]) -> None:
    """Writes all or nothing; a failed condition raises TransactionConflict with DynamoDB's reasons.

    DynamoDB cancels a transaction that collides with another one on the same item (reason
    TransactionConflict, e.g. two identical webhook deliveries at once); botocore does not retry
    that, so we do, and the retry meets the winner's writes as an ordinary failed condition.
    """
    for attempt in range(TRANSACTION_ATTEMPTS):
        try:
            aws_clients.dynamodb().transact_write_items(TransactItems=actions)
            return
        except ClientError as error:
            if error.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = error.response.get("CancellationReasons", [])
            if any(reason.get("Code") == "ConditionalCheckFailed" for reason in reasons):
                raise TransactionConflict(reasons) from error
            collided = any(reason.get("Code") == "TransactionConflict" for reason in reasons)
            if not collided or attempt == TRANSACTION_ATTEMPTS - 1:
                raise
            time.sleep(0.02 * 2**attempt + random.uniform(0, 0.02))  # noqa: S311 - jitter, not a secret


def get(key: keys.Key, consistent: bool = False) -> dict[str, Any] | None:
    response = aws_clients.dynamodb().get_item(TableName=_table(), Key=to_item(key), ConsistentRead=consistent)
    item = response.get("Item")
    return from_item(item) if item else None


def identity(key: keys.Key) -> tuple[str, str]:
    """An item's (pk, sk), as `get_many` indexes what it found."""
    return key["pk"], key["sk"]


def get_many(item_keys: Iterable[keys.Key]) -> dict[tuple[str, str], dict[str, Any]]:
    """Reads up to 100 items in one call (consistent, so a status just written is seen)."""
    wanted = {identity(key): key for key in item_keys}
    found: dict[tuple[str, str], dict[str, Any]] = {}
    request = {_table(): {"Keys": [to_item(key) for key in wanted.values()], "ConsistentRead": True}}
    while request and wanted:
        response = aws_clients.dynamodb().batch_get_item(RequestItems=request)
        for item in response.get("Responses", {}).get(_table(), []):
            values = from_item(item)
            found[(values["pk"], values["sk"])] = values
        request = response.get("UnprocessedKeys") or {}
    return found


def update_item(
    key: keys.Key,
    expression: str,
    values: dict[str, Any],
    condition: str = "attribute_exists(pk)",
    names: dict[str, str] | None = None,
) -> bool:
    """Applies an update; False when the condition does not hold (nothing is written then)."""
    action = update(key, expression, values, condition, names)["Update"]
    action.pop("ReturnValuesOnConditionCheckFailure", None)
    try:
        aws_clients.dynamodb().update_item(**action)
    except ClientError as error:
        if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


class ConditionFailed(Exception):
    """An update's condition did not hold; `old_item` is the item as it stood (None when there is none)."""

    def __init__(self, old_item: dict[str, Any] | None) -> None:
        super().__init__("condition failed")
        self.old_item = old_item


def update_returning_old(
    key: keys.Key,
    expression: str,
    values: dict[str, Any],
    condition: str,
    names: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Applies a conditional update and returns the item as it was; raises ConditionFailed with it otherwise.

    One call either way: DynamoDB hands the item back with the failed condition.
    """
    action = update(key, expression, values, condition, names)["Update"]
    try:
        response = aws_clients.dynamodb().update_item(**action, ReturnValues="ALL_OLD")
    except ClientError as error:
        if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        old = error.response.get("Item")
        raise ConditionFailed(from_item(old) if old else None) from error
    return from_item(response.get("Attributes", {}))


class InvalidCursor(ValueError):
    """A pagination cursor that this API did not hand out."""


def encode_cursor(last_key: dict[str, Any] | None) -> str | None:
    if not last_key:
        return None
    plain = {name: _deserializer.deserialize(value) for name, value in last_key.items()}
    return base64.urlsafe_b64encode(json.dumps(plain, separators=(",", ":")).encode()).decode().rstrip("=")


_REFUSED_CURSOR = "cursor is not one this API returned"
# The cursors handed out are at most about 300 characters. Refusing longer ones before decoding bounds the
# work, how deeply json is asked to recurse, and the keys' size (DynamoDB refuses keys over 1,024 bytes).
MAX_CURSOR_LENGTH = 512


def _decode_plain(cursor: str, names: set[str]) -> dict[str, str]:
    """A cursor's key attributes, all strings and exactly `names`; InvalidCursor for anything else."""
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise InvalidCursor(_REFUSED_CURSOR)
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        plain = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, RecursionError) as error:
        # ValueError covers JSONDecodeError and UnicodeError (a cursor or decoded bytes that are not UTF-8).
        raise InvalidCursor(_REFUSED_CURSOR) from error
    if not isinstance(plain, dict) or set(plain) != names or not all(isinstance(v, str) for v in plain.values()):
        raise InvalidCursor(_REFUSED_CURSOR)
    try:
        # JSON's "\ud800" escapes decode to lone surrogates, which no DynamoDB string can hold.
        for value in plain.values():
            value.encode()
    except UnicodeEncodeError as error:
        raise InvalidCursor(_REFUSED_CURSOR) from error
    return plain


def decode_cursor(cursor: str, partition: str) -> dict[str, Any]:
    plain = _decode_plain(cursor, {"pk", "sk"})
    if plain["pk"] != partition or not plain["sk"].startswith(keys.MESSAGE_PREFIX):
        raise InvalidCursor(_REFUSED_CURSOR)
    return to_item(plain)


def decode_open_sessions_cursor(cursor: str) -> dict[str, Any]:
    plain = _decode_plain(cursor, {"pk", "sk", "open_pk", "open_sk"})
    if plain["open_pk"] != keys.OPEN_SESSIONS or not plain["sk"].startswith(keys.SESSION_PREFIX):
        raise InvalidCursor(_REFUSED_CURSOR)
    return to_item(plain)


def query_messages(user_id: str, limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
    partition = keys.user_partition(user_id)
    request: dict[str, Any] = {
        "TableName": _table(),
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :msg)",
        "ExpressionAttributeValues": to_item({":pk": partition, ":msg": keys.MESSAGE_PREFIX}),
        "Limit": limit,
    }
    if cursor:
        request["ExclusiveStartKey"] = decode_cursor(cursor, partition)
    response = aws_clients.dynamodb().query(**request)
    return [from_item(item) for item in response.get("Items", [])], encode_cursor(response.get("LastEvaluatedKey"))


def query_sessions(user_id: str) -> list[dict[str, Any]]:
    """Every chat session of a guest (a handful: one per stay)."""
    request: dict[str, Any] = {
        "TableName": _table(),
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :session)",
        "ExpressionAttributeValues": to_item({":pk": keys.user_partition(user_id), ":session": keys.SESSION_PREFIX}),
        "ConsistentRead": True,
    }
    return query_all(request)


def query_all(request: dict[str, Any]) -> list[dict[str, Any]]:
    """Every item a Query matches, page after page (1 MB each)."""
    items: list[dict[str, Any]] = []
    while True:
        response = aws_clients.dynamodb().query(**request)
        items += [from_item(item) for item in response.get("Items", [])]
        if not response.get("LastEvaluatedKey"):
            return items
        request = {**request, "ExclusiveStartKey": response["LastEvaluatedKey"]}


def query_open_sessions(
    limit: int, cursor: str | None, waiting_only: bool = False
) -> tuple[list[dict[str, Any]], str | None]:
    """Open sessions, most recent activity first, from the sparse open_sessions index."""
    request: dict[str, Any] = {
        "TableName": _table(),
        "IndexName": "open_sessions",
        "KeyConditionExpression": "open_pk = :open",
        "ExpressionAttributeValues": to_item({":open": keys.OPEN_SESSIONS}),
        "ScanIndexForward": False,
        "Limit": limit,
    }
    if waiting_only:
        request["FilterExpression"] = "attribute_exists(waiting_since)"
    if cursor:
        request["ExclusiveStartKey"] = decode_open_sessions_cursor(cursor)
    response = aws_clients.dynamodb().query(**request)
    return [from_item(item) for item in response.get("Items", [])], encode_cursor(response.get("LastEvaluatedKey"))


def query_sessions_due(now: str) -> list[dict[str, Any]]:
    """Open sessions whose close_at has passed: one Query on the open_sessions index, every page."""
    request: dict[str, Any] = {
        "TableName": _table(),
        "IndexName": "open_sessions",
        "KeyConditionExpression": "open_pk = :open",
        "FilterExpression": "close_at <= :now",
        "ExpressionAttributeValues": to_item({":open": keys.OPEN_SESSIONS, ":now": now}),
    }
    return query_all(request)


ISO_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def iso(moment: datetime) -> str:
    """UTC timestamps with microseconds: sortable as text, which the message keys rely on."""
    return moment.strftime(ISO_FORMAT)
