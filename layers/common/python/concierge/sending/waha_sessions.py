"""The WAHA sessions (WhatsApp accounts) this stack serves: each one's last reported status, stored and read back.

No pydantic here: the health function reads statuses without loading the webhook's models.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from concierge import keys, store

if TYPE_CHECKING:
    from concierge.webhook.webhook_events import SessionStatus

logger = Logger(child=True)

ITEM_TYPE = "WahaSessionStatus"
NOT_WORKING_METRIC = "WahaSessionNotWorking"
# WAHA's one status in which the account sends and receives; every other one (STOPPED, SCAN_QR_CODE, FAILED...) not.
WORKING = "WORKING"


class Outcome(StrEnum):
    STORED = "stored"
    # A newer status (or this very event) is already stored: WAHA's deliveries can arrive out of order.
    OUTDATED = "outdated"


def _iso_ms(at_ms: int) -> str:
    return store.iso(datetime.fromtimestamp(at_ms / 1000, UTC))


def _publish(status: SessionStatus) -> None:
    # 1 while the account cannot send or receive, 0 once it works again: the alarm follows the latest value.
    # Imported here: only session.status deliveries publish, a guest's message never pays for it.
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    with single_metric(name=NOT_WORKING_METRIC, unit=MetricUnit.Count, value=0 if status.status == WORKING else 1):
        pass


def record(status: SessionStatus) -> Outcome:
    """Keeps the session's status unless a newer one is stored; one conditional write."""
    stored = store.update_item(
        keys.waha_session_status(status.waha_session),
        "SET #type = :type, waha_session = :session, #status = :status, status_ms = :ms, status_at = :at, "
        "received_at = :received",
        {
            ":type": ITEM_TYPE,
            ":session": status.waha_session,
            ":status": status.status,
            ":ms": status.at_ms,
            ":at": _iso_ms(status.at_ms),
            ":received": store.iso(datetime.now(UTC)),
        },
        condition="attribute_not_exists(pk) OR status_ms < :ms",
        names={"#type": "type", "#status": "status"},
    )
    details = {"waha_session": status.waha_session, "status": status.status}
    if not stored:
        logger.info("an older WAHA session status ignored", extra=details)
        return Outcome.OUTDATED
    _publish(status)
    if status.status == WORKING:
        logger.info("WAHA session status stored", extra=details)
    else:
        logger.warning("WAHA session is not working", extra=details)
    return Outcome.STORED


def latest(sessions: tuple[str, ...]) -> list[dict[str, Any]]:
    """Each session's last status and when WAHA reported it (None for a session that never reported); one read."""
    found = store.get_many(keys.waha_session_status(name) for name in sessions)
    report = []
    for name in sessions:
        key = keys.waha_session_status(name)
        item = found.get((key["pk"], key["sk"])) or {}
        report.append(
            {
                "session": name,
                "status": item.get("status"),
                "status_at": item.get("status_at"),
                "received_at": item.get("received_at"),
            }
        )
    return report
