"""A message stored but never queued is not lost: it stays PENDING and the sweeper queues it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import forget_cached_clients, lambda_context
from tests.driver import Concierge, waha_message
from tests.lambda_events import sample


@pytest.fixture
def queue_unreachable(concierge: Concierge, monkeypatch: pytest.MonkeyPatch) -> Concierge:
    """SQS refuses every send (the queue URL names no queue), as during an SQS outage."""
    monkeypatch.setenv("OUTBOUND_QUEUE_URL", concierge.resources.outbound_queue_url + "-missing")
    forget_cached_clients()
    return concierge


def _restore_queue(concierge: Concierge, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTBOUND_QUEUE_URL", concierge.resources.outbound_queue_url)
    forget_cached_clients()


def _sweep(concierge: Concierge) -> dict:
    return concierge.handlers["SweepOutboxFunction"](sample("sweep_outbox"), lambda_context("SweepOutboxFunction"))


def test_enqueue_failure_keeps_registration_and_message(
    queue_unreachable: Concierge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With SQS failing, registration and the webhook still answer and their messages stay PENDING."""
    status, guest = queue_unreachable.register()
    hook_status, hook = queue_unreachable.webhook(waha_message())

    assert status == 201 and (hook_status, hook["outcome"]) == (200, "stored")
    messages = queue_unreachable.conversation(guest["user_id"])
    assert [m["status"] for m in messages] == ["PENDING", "RECEIVED", "PENDING"]
    _restore_queue(queue_unreachable, monkeypatch)
    assert queue_unreachable.queue_depth() == 0


def test_sweeper_queues_old_pending_messages_and_they_are_sent(
    queue_unreachable: Concierge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once past the sweep age, messages that never reached the queue are queued again and sent once."""
    _, guest = queue_unreachable.register()
    queue_unreachable.webhook(waha_message())
    _restore_queue(queue_unreachable, monkeypatch)
    later = datetime.now(UTC) + timedelta(minutes=16)
    monkeypatch.setattr("concierge.outbox.datetime", _FrozenClock(later))

    result = _sweep(queue_unreachable)
    queue_unreachable.deliver_queued()

    assert result == {"requeued": 2}
    statuses = [m["status"] for m in queue_unreachable.conversation(guest["user_id"])]
    assert statuses == ["SENT", "RECEIVED", "SENT"]
    assert len(queue_unreachable.waha.sent_messages()) == 2
    assert _sweep(queue_unreachable) == {"requeued": 0}


def test_sweeper_leaves_recent_messages_to_their_retries(concierge: Concierge) -> None:
    """A message queued moments ago is not swept: it may still be inside its retries."""
    concierge.register()

    assert _sweep(concierge) == {"requeued": 0}
    assert concierge.queue_depth() == 1


class _FrozenClock:
    """Stands in for the datetime class inside concierge.outbox: now() is later than the real clock."""

    def __init__(self, moment: datetime) -> None:
        self._moment = moment

    def now(self, tz: object = None) -> datetime:
        return self._moment
