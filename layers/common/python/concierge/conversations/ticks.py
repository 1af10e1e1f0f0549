"""WhatsApp's ticks on the messages we send: delivered to the guest's phone, read, or refused.

WAHA's `message.ack` moves an outbound message forward only:

    SENT -> DELIVERED (DEVICE) -> READ (READ or PLAYED)        SENT -> FAILED (ERROR)

One ack costs one Query on the keys-only `waha_ids` index (the bare id we asked WAHA to use, which every
engine's ack carries) and one UpdateItem whose condition is the set of statuses the tick may move from.
Anything else (a late DEVICE after READ, a repeated ack) fails that condition and changes nothing.

An ack that finds the message still PENDING or SENDING (WhatsApp answered before the sender wrote SENT)
changes nothing either: the status belongs to the sender until it has written SENT, and a write from
here would make its outcome overwrite a tick or drop a record it still has to finish. Learning the
status first would cost a second write or read, so that early tick is not kept; WAHA's later ticks (READ
follows DEVICE) still apply. ERROR only fails a message that is SENT: a DELIVERED or READ message reached
the guest, and a message not yet SENT is still the sender's to retry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from concierge import aws_clients, keys, store
from concierge.config import settings

if TYPE_CHECKING:
    # Only for annotations: the echo check (conversation) needs no pydantic models.
    from concierge.webhook.webhook_events import Ack

logger = Logger(child=True)

# WhatsApp's ack levels, as WAHA numbers them (WAMessageAck).
ACK_ERROR, ACK_PENDING, ACK_SERVER, ACK_DEVICE, ACK_READ, ACK_PLAYED = -1, 0, 1, 2, 3, 4
ACK_NAMES = {-1: "ERROR", 0: "PENDING", 1: "SERVER", 2: "DEVICE", 3: "READ", 4: "PLAYED"}

WAHA_IDS_INDEX = "waha_ids"
ERROR_REASON = "WhatsApp reported the message as not delivered (ack ERROR)"
NOT_OURS = "not a message we sent"


class TickOutcome(StrEnum):
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    IGNORED = "ignored"


@dataclass(frozen=True)
class TickResult:
    outcome: TickOutcome
    status: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class _Move:
    to: str
    # The statuses this tick may move a message from: the "only forward" rule.
    from_statuses: tuple[str, ...]
    sets: str


_MOVES = {
    ACK_DEVICE: _Move(store.DELIVERED, (store.SENT,), "delivered_at = :at"),
    # A read message was delivered too, even when its DEVICE tick never came (or comes later).
    ACK_READ: _Move(
        store.READ, (store.SENT, store.DELIVERED), "read_at = :at, delivered_at = if_not_exists(delivered_at, :at)"
    ),
    ACK_ERROR: _Move(store.FAILED, (store.SENT,), "last_error = :reason, failed_at = :at"),
}
_MOVES[ACK_PLAYED] = _MOVES[ACK_READ]


def find_sent(bare_id: str) -> keys.Key | None:
    """Our outbound message that WAHA knows by this bare id, if any: one Query on the keys-only index.

    Rows carry `waha_id` from the moment they are written (before the send), so an ack or an echo that
    overtakes the sender's SENT still finds its message.
    """
    response = aws_clients.dynamodb().query(
        TableName=settings().table_name,
        IndexName=WAHA_IDS_INDEX,
        KeyConditionExpression="waha_id = :id",
        ExpressionAttributeValues=store.to_item({":id": bare_id}),
        Limit=1,
    )
    items = response.get("Items", [])
    return {"pk": items[0]["pk"]["S"], "sk": items[0]["sk"]["S"]} if items else None


def record(ack: Ack) -> TickResult:
    """Moves the acknowledged message forward, if the ack is news; see the module's docstring."""
    move = _MOVES.get(ack.ack)
    if move is None:
        return TickResult(TickOutcome.IGNORED, reason=f"ack {ACK_NAMES.get(ack.ack, ack.ack)} changes no status")
    key = find_sent(ack.bare_id)
    if key is None:
        logger.info("ack for a message we did not send ignored", extra={"ack": ACK_NAMES[ack.ack]})
        return TickResult(TickOutcome.IGNORED, reason=NOT_OURS)
    at = store.iso(datetime.fromtimestamp(ack.at_ms / 1000, UTC))
    allowed = {f":from{index}": status for index, status in enumerate(move.from_statuses)}
    values: dict[str, Any] = {":to": move.to, ":at": at, **allowed}
    if ack.ack == ACK_ERROR:
        values[":reason"] = ERROR_REASON
    try:
        store.update_returning_old(
            key,
            f"SET #status = :to, {move.sets}",
            values,
            f"#status IN ({', '.join(allowed)})",
            names={"#status": "status"},
        )
    except store.ConditionFailed as failed:
        if failed.old_item is None:
            # Erased between the Query and the write.
            return TickResult(TickOutcome.IGNORED, reason=NOT_OURS)
        status = failed.old_item.get("status")
        logger.info("ack changed nothing", extra={"ack": ACK_NAMES[ack.ack], "status": status, "message_sk": key["sk"]})
        return TickResult(TickOutcome.UNCHANGED, status=status, reason=f"the message is {status}")
    logger.info("message status moved", extra={"ack": ACK_NAMES[ack.ack], "status": move.to, "message_sk": key["sk"]})
    return TickResult(TickOutcome.UPDATED, status=move.to)
