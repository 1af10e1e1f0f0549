"""POST /api/v1/waha/webhook: guest messages stored once and answered; everything else ignored."""

from __future__ import annotations

import json
import logging

import pytest

from tests.driver import GUEST_CHAT_ID, Concierge, waha_message

AUTO_REPLY = (
    "Terima kasih atas pesan Anda. 🙏\n\nTim kami akan segera merespons pertanyaan Anda. Mohon menunggu sebentar.\n\n"
    "Waktu respon normal: 5-10 menit"
)
PROCESSED = {"status": "success", "message": "Webhook received and processed successfully"}


@pytest.fixture
def guest(concierge: Concierge) -> dict:
    status, body = concierge.register()
    assert status == 201
    concierge.deliver_queued()
    concierge.waha.clear()
    return body


def test_guide_manual_test_2_guest_message(concierge: Concierge, guest: dict) -> None:
    """The guide's second manual test: 200, User and System messages stored, auto-reply reaches WhatsApp."""
    status, body = concierge.webhook(waha_message(text="Hello, I need help"))

    assert status == 200 and {**body, "outcome": None} == {**PROCESSED, "outcome": None}
    assert body["outcome"] == "stored"
    welcome, inbound, reply = concierge.conversation(guest["user_id"])
    assert (inbound["role"], inbound["text"], inbound["session_id"]) == (
        "User",
        "Hello, I need help",
        guest["session_id"],
    )
    assert (reply["role"], reply["text"], reply["status"]) == ("System", AUTO_REPLY, "PENDING")
    assert welcome["created_at"] < inbound["created_at"] < reply["created_at"]

    assert concierge.deliver_queued() == 1
    (sent,) = concierge.waha.sent_messages()
    assert (sent["chatId"], sent["text"]) == (GUEST_CHAT_ID, AUTO_REPLY)
    assert concierge.conversation(guest["user_id"])[2]["status"] == "SENT"


@pytest.mark.parametrize("chat_id", ["6281234567890@c.us", "6281234567890@s.whatsapp.net"])
def test_chat_id_forms_find_the_guest_stored_by_national_number(
    concierge: Concierge, guest: dict, chat_id: str
) -> None:
    """A guest registered as 081234567890 is found from WAHA's 62… chat id in either suffix."""
    status, body = concierge.webhook(waha_message(chat_id=chat_id))

    assert (status, body["outcome"]) == (200, "stored")


def test_unknown_phone_is_200_and_stores_nothing(concierge: Concierge, guest: dict) -> None:
    """A message from a number no guest has: logged, 200, nothing stored or queued."""
    before = len(concierge.items())

    status, body = concierge.webhook(waha_message(chat_id="6289999999999@c.us"))

    assert (status, body["outcome"]) == (200, "unknown_guest")
    assert len(concierge.items()) == before and concierge.queue_depth() == 0


def test_guest_without_active_session_is_200_and_stores_nothing(concierge: Concierge, guest: dict) -> None:
    """A known guest whose stay has no active session: 200, nothing stored."""
    concierge.dynamodb.update_item(
        TableName=concierge.resources.table_name,
        Key={"pk": {"S": "PHONE#+6281234567890"}, "sk": {"S": "PHONE"}},
        UpdateExpression="REMOVE active_session_id",
    )
    before = len(concierge.items())

    status, body = concierge.webhook(waha_message())

    assert (status, body["outcome"]) == (200, "no_active_session")
    assert len(concierge.items()) == before and concierge.queue_depth() == 0


def test_redelivered_event_is_stored_and_answered_once(concierge: Concierge, guest: dict) -> None:
    """WAHA delivering the same message twice (or as message and message.any) stores and replies once."""
    delivery = waha_message(text="Is breakfast included?")
    as_any = {**delivery, "event": "message.any"}

    answers = [concierge.webhook(delivery), concierge.webhook(delivery), concierge.webhook(as_any)]

    assert [status for status, _ in answers] == [200, 200, 200]
    assert [body["outcome"] for _, body in answers] == ["stored", "duplicate", "duplicate"]
    assert [m["role"] for m in concierge.conversation(guest["user_id"])] == ["System", "User", "System"]
    assert concierge.deliver_queued() == 1 and len(concierge.waha.sent_messages()) == 1


@pytest.mark.parametrize(
    ("delivery", "reason"),
    [
        (waha_message(fromMe=True), "own"),
        (waha_message(chat_id="120363000000000000@g.us", participant="6281234567890@c.us"), "group"),
        (waha_message(chat_id="status@broadcast"), "broadcast"),
        (waha_message(chat_id="120363000000000000@newsletter"), "channel"),
        ({"event": "presence.update", "session": "default", "payload": {"id": "6281234567890@c.us"}}, "event"),
        ({"event": "message.ack", "session": "default", "payload": {"id": "x", "from": "1@c.us", "ack": 3}}, "ack"),
    ],
)
def test_events_that_are_not_a_guest_writing_are_ignored(
    concierge: Concierge, guest: dict, delivery: dict, reason: str
) -> None:
    """Own messages, groups, broadcasts, channels and other events: 200, nothing stored, no reply."""
    before = len(concierge.items())

    status, body = concierge.webhook(delivery)

    assert (status, body["outcome"]) == (200, "ignored"), reason
    assert len(concierge.items()) == before and concierge.queue_depth() == 0


def test_lid_sender_with_phone_in_data_is_the_guest(concierge: Concierge, guest: dict) -> None:
    """A hidden @lid sender whose number WAHA puts in _data (as @s.whatsapp.net) is matched to the guest."""
    delivery = waha_message(chat_id="123456789012345@lid", _data={"key": {"senderPn": "6281234567890@s.whatsapp.net"}})

    status, body = concierge.webhook(delivery)

    assert (status, body["outcome"]) == (200, "stored")


def test_lid_sender_is_resolved_through_wahas_lids_api(concierge: Concierge, guest: dict) -> None:
    """A hidden @lid sender with no number in the payload is mapped to the guest by WAHA's lids API."""
    lid = concierge.waha.hidden_id("081234567890")

    status, body = concierge.webhook(waha_message(chat_id=lid))

    assert (status, body["outcome"]) == (200, "stored")


def test_lid_sender_without_a_number_is_an_unknown_guest(concierge: Concierge, guest: dict) -> None:
    """A hidden @lid sender that WAHA cannot map to a number is treated as unknown: 200, nothing stored."""
    before = len(concierge.items())

    status, body = concierge.webhook(waha_message(chat_id="123456789012345@lid"))

    assert (status, body["outcome"]) == (200, "unknown_guest")
    assert len(concierge.items()) == before


@pytest.mark.parametrize(
    "raw",
    [
        "{not json",
        "[]",
        '{"event": "message"}',
        '{"event": "message", "session": "default", "payload": {"from": "6281234567890@c.us"}}',
        '{"event": "message", "session": "default", "payload": {"id": 5, "from": "6281234567890@c.us"}}',
        '{"event": "message", "session": "default", "payload": {"id": "a", "from": "6281234567890@c.us", "body": 7}}',
    ],
)
def test_malformed_deliveries_are_400_and_store_nothing(concierge: Concierge, guest: dict, raw: str) -> None:
    """Non-JSON or a message event missing or mistyping its fields is a JSON 400; nothing is stored."""
    before = len(concierge.items())

    status, body = concierge.webhook(raw_body=raw)

    assert status == 400 and body["error"] in {"bad_request", "validation_error"}
    assert len(concierge.items()) == before and concierge.queue_depth() == 0


def test_over_long_text_is_400(concierge: Concierge, guest: dict) -> None:
    """A text longer than WhatsApp allows (65,536 characters) is refused, naming the field."""
    status, body = concierge.webhook(waha_message(text="x" * 65537))

    assert status == 400 and any(d["field"] == "body" for d in body["details"])


def test_logs_mask_the_phone_and_never_hold_the_text(
    concierge: Concierge, guest: dict, caplog: pytest.LogCaptureFixture
) -> None:
    """Structured logs keep the last four digits of the phone and never the guest's words."""
    caplog.set_level(logging.DEBUG, logger="concierge")

    concierge.webhook(waha_message(text="my secret passport number"))
    concierge.webhook(waha_message(chat_id="6289999999999@c.us", text="my secret passport number"))
    concierge.deliver_queued()

    # Every attribute of every record, extras included: what the JSON formatter would write.
    ours = [record.__dict__ for record in caplog.records if record.name.startswith("concierge")]
    logs = json.dumps(ours, default=str)
    assert "*7890" in logs and "*9999" in logs
    for secret in ("passport", "81234567890", "89999999999"):
        assert secret not in logs


def test_colliding_transactions_are_retried(concierge: Concierge, guest: dict) -> None:
    """DynamoDB cancelling a write for colliding with a concurrent one (TransactionConflict) is retried, not a 5xx."""
    from botocore.stub import Stubber

    from concierge import aws_clients

    client = aws_clients.dynamodb()
    real_transact = client.transact_write_items
    conflicts = iter([True])

    def conflicting_once(**request: object) -> object:
        if next(conflicts, False):
            with Stubber(client) as stub:
                stub.add_client_error(
                    "transact_write_items",
                    service_error_code="TransactionCanceledException",
                    http_status_code=400,
                    response_meta={},
                    modeled_fields={"CancellationReasons": [{"Code": "TransactionConflict"}, {"Code": "None"}]},
                )
                return client.transact_write_items(**request)
        return real_transact(**request)

    client.transact_write_items = conflicting_once

    status, body = concierge.webhook(waha_message())

    assert (status, body["outcome"]) == (200, "stored")
    assert len(concierge.conversation(guest["user_id"])) == 3
