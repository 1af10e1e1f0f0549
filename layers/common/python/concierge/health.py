"""What an operator checks first: is each WhatsApp account working, and are messages and guests' files leaving or
piling up, and whether guests' messages are being answered."""

from __future__ import annotations

from typing import Any

from concierge import aws_clients
from concierge.config import MissingSetting, settings
from concierge.sending import waha_sessions

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
    """Each WAHA session's last status and the six queues' depths: one BatchGetItem and six GetQueueAttributes."""
    config = settings()
    queue_urls = {
        "outbound": config.outbound_queue_url,
        "dead_letter": config.outbound_dead_letter_queue_url,
        # Copy jobs of guests' files; a job in its dead-letter queue may hold the bot's reply to that message.
        "media": config.media_queue_url,
        "media_dead_letter": config.media_dead_letter_queue_url,
        # Guests' messages waiting for the answering function; one in its dead-letter queue was never answered.
        "answers": config.answer_queue_url,
        "answers_dead_letter": config.answer_dead_letter_queue_url,
    }
    if not all(queue_urls.values()):
        missing = ", ".join(name for name, url in queue_urls.items() if not url)
        raise MissingSetting(f"the health answer needs every queue's URL; missing: {missing}")
    sessions = waha_sessions.latest(config.waha_sessions)
    queues = {name: _queue_depth(url) for name, url in queue_urls.items()}
    # Degraded: an account that cannot send (or never said it can), messages that failed every retry, or copy
    # jobs that did.
    healthy = all(session["status"] == waha_sessions.WORKING for session in sessions) and not any(
        any(queues[name].values()) for name in ("dead_letter", "media_dead_letter", "answers_dead_letter")
    )
    return {"status": "ok" if healthy else "degraded", "waha_sessions": sessions, "queues": queues}
