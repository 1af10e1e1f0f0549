"""What an operator checks first: is each WhatsApp account working, and are messages leaving or piling up."""

from __future__ import annotations

from typing import Any

from concierge import aws_clients, waha_sessions
from concierge.config import MissingSetting, settings

_DEPTH_ATTRIBUTES = {
    "ApproximateNumberOfMessages": "waiting",
    "ApproximateNumberOfMessagesNotVisible": "in_flight",
    "ApproximateNumberOfMessagesDelayed": "delayed",
}


def _queue_depth(queue_url: str) -> dict[str, int]:
    attributes = aws_clients.sqs().get_queue_attributes(QueueUrl=queue_url, AttributeNames=list(_DEPTH_ATTRIBUTES))
    values = attributes.get("Attributes", {})
    return {name: int(values.get(attribute, 0)) for attribute, name in _DEPTH_ATTRIBUTES.items()}


def report() -> dict[str, Any]:
    """Each WAHA session's last status and both queues' depths: one BatchGetItem and two GetQueueAttributes."""
    config = settings()
    if not config.outbound_queue_url or not config.outbound_dead_letter_queue_url:
        raise MissingSetting("OUTBOUND_QUEUE_URL and OUTBOUND_DEAD_LETTER_QUEUE_URL must both be set")
    sessions = waha_sessions.latest(config.waha_sessions)
    outbound = _queue_depth(config.outbound_queue_url)
    dead_letter = _queue_depth(config.outbound_dead_letter_queue_url)
    # Degraded: an account that cannot send (or never said it can), or messages that failed every retry.
    healthy = all(session["status"] == waha_sessions.WORKING for session in sessions) and not any(dead_letter.values())
    return {
        "status": "ok" if healthy else "degraded",
        "waha_sessions": sessions,
        "queues": {"outbound": outbound, "dead_letter": dead_letter},
    }
