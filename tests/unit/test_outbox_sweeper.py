"""A message stored but never queued is not lost: it is marked for the sweeper, which queues only those."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from concierge.sending import outbox
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
    """Once past the sweep age, messages that never reached the queue are queued, unmarked and sent once."""
    _, guest = queue_unreachable.register()
    queue_unreachable.webhook(waha_message())
    _restore_queue(queue_unreachable, monkeypatch)
    later = datetime.now(UTC) + timedelta(minutes=2)
    monkeypatch.setattr("concierge.sending.outbox.datetime", _FrozenClock(later))

    result = _sweep(queue_unreachable)
    marked_after_sweep = _marked(queue_unreachable)
    queue_unreachable.deliver_queued()

    assert result == {"requeued": 2} and marked_after_sweep == []
    statuses = [m["status"] for m in queue_unreachable.conversation(guest["user_id"])]
    assert statuses == ["SENT", "RECEIVED", "SENT"]
    assert len(queue_unreachable.waha.sent_messages()) == 2
    assert _sweep(queue_unreachable) == {"requeued": 0}


def test_message_waiting_in_the_queue_is_never_swept_however_old(
    concierge: Concierge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PENDING message whose key is in the queue (behind a backlog, or between retries) is not queued again."""
    concierge.register()
    monkeypatch.setattr("concierge.sending.outbox.datetime", _FrozenClock(datetime.now(UTC) + timedelta(hours=6)))

    assert _sweep(concierge) == {"requeued": 0}
    assert concierge.queue_depth() == 1 and _marked(concierge) == []


def test_unqueued_message_is_left_a_minute_before_it_is_swept(queue_unreachable: Concierge) -> None:
    """A message marked moments ago waits for the next run, so a short SQS outage can pass first."""
    queue_unreachable.register()

    assert _sweep(queue_unreachable) == {"requeued": 0}
    assert len(_marked(queue_unreachable)) == 1


def test_marked_message_that_reached_the_queue_anyway_is_sent_once_and_not_swept(
    queue_unreachable: Concierge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQS may keep a message whose SendMessage looked failed: sending it removes the mark, so no sweep repeats it."""
    queue_unreachable.register()
    _restore_queue(queue_unreachable, monkeypatch)
    (marked,) = _marked(queue_unreachable)
    queue_unreachable.sqs.send_message(
        QueueUrl=queue_unreachable.resources.outbound_queue_url,
        MessageBody=outbox.body({"pk": marked["pk"], "sk": marked["sk"]}),
    )
    queue_unreachable.deliver_queued()
    monkeypatch.setattr("concierge.sending.outbox.datetime", _FrozenClock(datetime.now(UTC) + timedelta(minutes=2)))

    assert _sweep(queue_unreachable) == {"requeued": 0}
    assert len(queue_unreachable.waha.sent_messages()) == 1


def _marked(concierge: Concierge) -> list[dict]:
    """Messages carrying the outbox index's mark: those whose key never reached the queue."""
    return [message for message in concierge.items_of_type("Message") if "outbox_pk" in message]


class _FrozenClock:
    """Stands in for the datetime class inside concierge.outbox: now() is later than the real clock."""

    def __init__(self, moment: datetime) -> None:
        self._moment = moment

    def now(self, tz: object = None) -> datetime:
        return self._moment
