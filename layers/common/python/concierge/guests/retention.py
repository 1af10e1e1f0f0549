"""Retention: a stay's messages expire MESSAGE_RETENTION_DAYS after the stay ends, through the table's TTL.

Closing a session marks it `closed_pk = CLOSED`, `closed_sk = <end>`: the sparse `closed_sessions` index
then lists exactly the closed sessions whose expiry is not stamped yet. This scheduled job reads that
index and, for each session, sets `expires_at = end + retention` on its messages (one Query of the
user's partition by sort-key range: every message of a session was created between its start and
end), on its check-in, on the session's reference item and on the session itself, whose index marker
it removes last. DynamoDB's TTL
deletes the items once that time has passed. No Scan: the work is proportional to what closed.

An interrupted run loses nothing: the session stays in the index until every message is stamped, and
the next run skips the messages already stamped. Every write is conditioned on its item existing, so a
guest erased meanwhile is never brought back as an item holding only an expiry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger

from concierge import aws_clients, keys, store
from concierge.config import settings

logger = Logger(child=True)

INDEX_NAME = "closed_sessions"
# Stop taking on work this long before the invocation's deadline: one page of updates fits in it.
TIME_MARGIN_MILLIS = 15_000
PAGE_SIZE = 100


@dataclass
class Run:
    sessions: int = 0
    messages: int = 0
    # True when the run stopped for time; the next scheduled run carries on where it stopped.
    unfinished: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def expiry(end: str, retention_days: int) -> int:
    """The TTL (epoch seconds) of a stay that ended at `end` (UTC ISO-8601, as stored)."""
    return int(datetime.fromisoformat(end).timestamp()) + retention_days * 86400


def stamp_closed_sessions(remaining_millis: Callable[[], int]) -> Run:
    """Stamps the expiry of every closed session in the index, as far as the invocation's time allows."""
    run = Run()
    retention_days = settings().message_retention_days
    for session in _closed_sessions():
        if remaining_millis() < TIME_MARGIN_MILLIS:
            run.unfinished = True
            break
        stamped, finished = _stamp_session(session, expiry(session["closed_sk"], retention_days), remaining_millis)
        run.messages += stamped
        if not finished:
            run.unfinished = True
            break
        run.sessions += 1
    if run.sessions or run.messages:
        logger.info("retention stamped on closed stays", extra=run.as_dict())
    return run


def _closed_sessions() -> Iterator[dict[str, Any]]:
    pages = (
        aws_clients.dynamodb()
        .get_paginator("query")
        .paginate(
            TableName=settings().table_name,
            IndexName=INDEX_NAME,
            KeyConditionExpression="closed_pk = :closed",
            ExpressionAttributeValues=store.to_item({":closed": keys.CLOSED_SESSIONS}),
            PaginationConfig={"PageSize": PAGE_SIZE},
        )
    )
    for page in pages:
        for item in page.get("Items", []):
            yield store.from_item(item)


def _stamp_session(session: dict[str, Any], expires_at: int, remaining_millis: Callable[[], int]) -> tuple[int, bool]:
    """Stamps one session's messages, check-in and session; returns (messages stamped, whether finished)."""
    user_id, end = session["user_id"], session["closed_sk"]
    low, high = keys.messages_between(session.get("start", ""), end)
    pages = (
        aws_clients.dynamodb()
        .get_paginator("query")
        .paginate(
            TableName=settings().table_name,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :low AND :high",
            # Another session's messages may share the time range (a stay registered while one was open).
            FilterExpression="session_id = :session AND attribute_not_exists(expires_at)",
            ExpressionAttributeValues=store.to_item(
                {":pk": keys.user_partition(user_id), ":low": low, ":high": high, ":session": session["session_id"]}
            ),
            ProjectionExpression="pk, sk",
            PaginationConfig={"PageSize": PAGE_SIZE},
        )
    )
    stamped = 0
    for page in pages:
        for item in page.get("Items", []):
            if _set_expiry(store.from_item(item), expires_at):
                stamped += 1
        if remaining_millis() < TIME_MARGIN_MILLIS:
            return stamped, False
    if session.get("checkin_id"):
        _set_expiry(keys.checkin(user_id, session["checkin_id"]), expires_at)
    _set_expiry(keys.session_ref(session["session_id"]), expires_at)
    # Last: out of the index only once everything of the session carries its expiry.
    store.update_item(
        keys.session(user_id, session["session_id"]),
        "SET expires_at = :expires REMOVE closed_pk, closed_sk",
        {":expires": expires_at, ":end": end},
        condition="closed_sk = :end",
    )
    return stamped, True


def _set_expiry(key: keys.Key, expires_at: int) -> bool:
    return store.update_item({"pk": key["pk"], "sk": key["sk"]}, "SET expires_at = :expires", {":expires": expires_at})
