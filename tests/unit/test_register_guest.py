"""POST /api/v1/guests/register: what a registration stores, answers and queues."""

from __future__ import annotations

import pytest

from tests.driver import GUEST, GUEST_CHAT_ID, Concierge
from tests.lambda_events import api_event, drop_header

WELCOME_FOR_TEST_GUEST = (
    "Halo Test Guest! 👋\n\nSelamat datang di hotel kami. Anda telah berhasil check-in di kamar 101.\n\n"
    "Jika Anda membutuhkan bantuan atau memiliki pertanyaan, silakan balas pesan ini dan kami akan segera "
    "membantu Anda.\n\nTerima kasih telah memilih hotel kami. Semoga Anda menikmati masa menginap Anda! 🏨"
)


def test_guide_manual_test_1_registration(concierge: Concierge) -> None:
    """The guide's first manual test: 201, user/check-in/session/welcome stored, welcome reaches WhatsApp."""
    status, body = concierge.register()

    assert status == 201
    assert body["status"] == "active"
    assert {body["full_name"], body["room_number"], body["checkin_date"], body["email"]} == {
        "Test Guest",
        "101",
        "2025-11-22",
        "test@example.com",
    }
    assert body["phone_number"] == "+6281234567890"
    (user,) = concierge.items_of_type("User")
    assert (user["user_id"], user["role"]) == (body["user_id"], "guest")
    (checkin,) = concierge.items_of_type("CheckIn")
    assert checkin["checkin_id"] == body["checkin_id"] and checkin["room_number"] == "101"
    (session,) = concierge.items_of_type("ChatSession")
    assert session["session_id"] == body["session_id"] and session["is_active"] is True and session["start"]
    (welcome,) = concierge.items_of_type("Message")
    assert (welcome["role"], welcome["text"], welcome["status"]) == ("System", WELCOME_FOR_TEST_GUEST, "PENDING")

    assert concierge.deliver_queued() == 1

    (sent,) = concierge.waha.sent_messages()
    assert (sent["chatId"], sent["text"], sent["session"]) == (GUEST_CHAT_ID, WELCOME_FOR_TEST_GUEST, "default")
    (message,) = concierge.conversation(body["user_id"])
    assert message["status"] == "SENT"


@pytest.mark.parametrize("written", ["081234567890", "+6281234567890", "6281234567890", "0812-3456-7890"])
def test_every_form_of_a_number_is_the_same_guest(concierge: Concierge, written: str) -> None:
    """Any way of writing the number is stored as E.164 and resolves to the same chat id."""
    first_status, first = concierge.register(phone_number="081234567890", room_number="101")
    status, again = concierge.register(phone_number=written, room_number="202", checkin_date="2025-12-01")

    assert (first_status, status) == (201, 201)
    assert again["user_id"] == first["user_id"]
    assert again["phone_number"] == "+6281234567890"
    assert len(concierge.items_of_type("User")) == 1


def test_foreign_number_is_accepted(concierge: Concierge) -> None:
    """A guest with a UK number is registered and greeted at that number's chat id."""
    status, body = concierge.register(phone_number="+44 7911 123456")

    assert status == 201 and body["phone_number"] == "+447911123456"
    concierge.deliver_queued()
    assert [m["chatId"] for m in concierge.waha.sent_messages()] == ["447911123456@c.us"]


def test_returning_guest_keeps_user_and_closes_the_old_session(concierge: Concierge) -> None:
    """A new check-in of a known phone keeps user_id, opens a new session and closes the old one."""
    _, first = concierge.register()
    _, second = concierge.register(room_number="305", checkin_date="2025-12-24", phone_number="+6281234567890")

    assert second["user_id"] == first["user_id"]
    assert second["session_id"] != first["session_id"] and second["checkin_id"] != first["checkin_id"]
    sessions = {s["session_id"]: s for s in concierge.items_of_type("ChatSession")}
    old, new = sessions[first["session_id"]], sessions[second["session_id"]]
    assert old["is_active"] is False and old["end"] >= old["start"] and old["duration"] >= 0
    assert new["is_active"] is True and "end" not in new
    assert len(concierge.items_of_type("CheckIn")) == 2
    assert concierge.deliver_queued() == 2


def test_same_stay_registered_twice_answers_the_same_ids_and_sends_one_welcome(concierge: Concierge) -> None:
    """A retried registration (same phone, room and date) returns the first ids and queues nothing more."""
    _, first = concierge.register()
    status, again = concierge.register(phone_number="0812-3456-7890")

    assert status == 201 and again == {**first, "warnings": []}
    assert len(concierge.items_of_type("Message")) == 1
    assert concierge.deliver_queued() == 1


def test_idempotency_key_replays_the_first_answer(concierge: Concierge) -> None:
    """The same Idempotency-Key returns the first registration; used for another body it is a 409."""
    key = {"Idempotency-Key": "front-desk-42"}
    _, first = concierge.register(headers=key)
    status, replay = concierge.register(headers=key)
    conflict_status, conflict = concierge.register(headers=key, room_number="999")

    assert (status, replay) == (201, first)
    assert conflict_status == 409 and conflict["error"] == "idempotency_key_reused"
    assert len(concierge.items_of_type("ChatSession")) == 1


def test_whatsapp_down_never_fails_registration(concierge: Concierge) -> None:
    """With WAHA unreachable the guest is still registered (201) and the welcome waits, PENDING."""
    concierge.waha.set_fault("down")
    status, body = concierge.register()
    concierge.poller().poll_once()

    assert status == 201
    (welcome,) = concierge.conversation(body["user_id"])
    assert welcome["status"] == "PENDING" and "unreachable" in welcome["error"]


def _written(concierge: Concierge) -> tuple[int, int]:
    return len(concierge.items()), concierge.queue_depth()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"full_name": None}, "full_name"),
        ({"email": "not-an-email"}, "email"),
        ({"checkin_date": "2025-02-30"}, "checkin_date"),
        ({"checkin_date": "22/11/2025"}, "checkin_date"),
        ({"checkin_date": 1732233600}, "checkin_date"),
        ({"room_number": ""}, "room_number"),
        ({"full_name": "x" * 201}, "full_name"),
        ({"phone_number": "0" * 33}, "phone_number"),
        ({"email": ""}, "email"),
    ],
)
def test_bad_fields_are_422_naming_the_field_and_write_nothing(concierge: Concierge, change: dict, field: str) -> None:
    """Each invalid or missing field is a 422 whose JSON names it; nothing is stored or queued."""
    body = {**GUEST, **change}
    body = {name: value for name, value in body.items() if value is not None}

    status, answer = concierge.register(body)

    assert status == 422
    assert answer["error"] == "validation_error"
    assert field in {detail["field"] for detail in answer["details"]}
    assert _written(concierge) == (0, 0)


@pytest.mark.parametrize(
    ("raw", "status"),
    [("{not json", 400), ("[1, 2]", 400), ("", 400), ('"text"', 400)],
)
def test_malformed_bodies_are_400_and_write_nothing(concierge: Concierge, raw: str, status: int) -> None:
    """Non-JSON or non-object bodies get a JSON 400 that says so; nothing is written."""
    answer_status, answer = concierge.register_event(api_event("register_guest", raw_body=raw))

    assert answer_status == status and answer["error"] == "bad_request"
    assert _written(concierge) == (0, 0)


def test_wrong_content_type_is_415(concierge: Concierge) -> None:
    """A form-encoded body is refused with 415 before anything is read or written."""
    event = drop_header(api_event("register_guest", GUEST), "Content-Type")
    event["headers"]["content-type"] = "application/x-www-form-urlencoded"

    status, answer = concierge.register_event(event)

    assert status == 415 and answer["error"] == "unsupported_media_type"
    assert _written(concierge) == (0, 0)


def test_sample_event_with_base64_body_registers(concierge: Concierge) -> None:
    """events/register_guest.json, base64-encoded as `sam local generate-event` writes it, is accepted."""
    from tests.lambda_events import sample

    status, body = concierge.register_event(sample("register_guest"))

    assert status == 201 and body["full_name"] == "Test Guest"
