"""Registration you can trust: one person per history, the guide's invalid-phone rule, what a PMS sends."""

from __future__ import annotations

import pytest

from tests.driver import GUEST, GUEST_CHAT_ID, Concierge, waha_message

ALICE = {**GUEST, "full_name": "Alice Tan", "email": "alice@example.com"}
CAROL = {**GUEST, "full_name": "Carol Wijaya", "email": "carol@example.com", "room_number": "207"}


def _texts(concierge: Concierge, user_id: str) -> list[str]:
    return [message["text"] for message in concierge.conversation(user_id)]


def _lookup(concierge: Concierge) -> dict:
    (lookup,) = concierge.items_of_type("PhoneLookup")
    return lookup


def test_a_phone_that_changes_hands_does_not_hand_over_the_conversation(concierge: Concierge) -> None:
    """Carol registered on Alice's old phone is a new user; Alice's words stay under Alice only."""
    _, alice = concierge.register(ALICE)
    concierge.webhook(waha_message(text="my card ends 4242"))

    status, carol = concierge.register(CAROL)
    concierge.webhook(waha_message(text="hi, this is Carol"))

    assert status == 201
    assert carol["user_id"] != alice["user_id"]
    assert not any("4242" in text for text in _texts(concierge, carol["user_id"]))
    assert "hi, this is Carol" in _texts(concierge, carol["user_id"])
    assert "my card ends 4242" in _texts(concierge, alice["user_id"])
    assert "hi, this is Carol" not in _texts(concierge, alice["user_id"])
    sessions = {item["session_id"]: item for item in concierge.items_of_type("ChatSession")}
    assert sessions[alice["session_id"]]["is_active"] is False
    assert sessions[carol["session_id"]]["is_active"] is True
    assert (_lookup(concierge)["user_id"], _lookup(concierge)["active_session_id"]) == (
        carol["user_id"],
        carol["session_id"],
    )
    assert {user["full_name"] for user in concierge.items_of_type("User")} == {"Alice Tan", "Carol Wijaya"}


@pytest.mark.parametrize(
    "change",
    [
        {"full_name": "  alice   TAN "},  # the name, case and spacing aside
        {"full_name": "Alice T.", "email": "ALICE@example.com"},  # the email
    ],
)
def test_the_same_person_on_a_new_stay_keeps_their_user(concierge: Concierge, change: dict) -> None:
    """A matching name or email is the same guest: one user, the old session closed."""
    _, first = concierge.register(ALICE)
    _, again = concierge.register({**ALICE, "room_number": "305", "checkin_date": "2025-12-24", **change})

    assert again["user_id"] == first["user_id"] and again["session_id"] != first["session_id"]
    assert len(concierge.items_of_type("User")) == 1


def test_the_same_stay_with_a_different_person_is_a_new_guest(concierge: Concierge) -> None:
    """Same phone, room and date but another name and email: a new guest, not the first one's answer."""
    _, alice = concierge.register(ALICE)
    status, carol = concierge.register({**CAROL, "room_number": ALICE["room_number"]})

    assert status == 201
    assert carol["user_id"] != alice["user_id"] and carol["session_id"] != alice["session_id"]
    assert (carol["full_name"], carol["email"]) == ("Carol Wijaya", "carol@example.com")
    assert concierge.deliver_queued() == 2
    assert [sent["text"].split("!")[0] for sent in concierge.waha.sent_messages()] == [
        "Halo Alice Tan",
        "Halo Carol Wijaya",
    ]


def test_the_same_stay_with_a_corrected_email_updates_the_profile(concierge: Concierge) -> None:
    """A repeat of the stay answers its ids, stores the corrected email and sends no second welcome."""
    _, first = concierge.register(ALICE)
    status, again = concierge.register({**ALICE, "email": "alice.tan@example.org"})

    assert status == 201
    assert (again["user_id"], again["session_id"], again["checkin_id"]) == (
        first["user_id"],
        first["session_id"],
        first["checkin_id"],
    )
    assert again["email"] == "alice.tan@example.org"
    (user,) = concierge.items_of_type("User")
    assert user["email"] == "alice.tan@example.org" and _lookup(concierge)["email"] == "alice.tan@example.org"
    assert len(concierge.items_of_type("Message")) == 1


# --- the guide's rule for invalid phone numbers ------------------------------------------------


@pytest.mark.parametrize("written", ["12345", "not a phone", "0812"])
def test_an_invalid_phone_still_registers_without_whatsapp(concierge: Concierge, written: str) -> None:
    """Guest registered, no WA message: the welcome is stored FAILED with the reason, nothing is sent."""
    status, body = concierge.register(phone_number=written)

    assert status == 201
    assert body["whatsapp"] == "invalid_phone" and body["phone_number"] == written
    assert [len(concierge.items_of_type(kind)) for kind in ("User", "CheckIn", "ChatSession")] == [1, 1, 1]
    assert concierge.items_of_type("PhoneLookup") == []
    (welcome,) = concierge.conversation(body["user_id"])
    assert (welcome["status"], welcome["error"]) == ("FAILED", "invalid phone number")
    assert concierge.queue_depth() == 0
    assert concierge.deliver_queued() == 0 and concierge.waha.sent_messages() == []


def test_a_valid_phone_answers_queued(concierge: Concierge) -> None:
    """The 201 says the welcome went to WhatsApp's queue."""
    _, body = concierge.register()

    assert body["whatsapp"] == "queued"


def test_messages_from_a_guest_with_an_invalid_phone_follow_the_unknown_guest_path(concierge: Concierge) -> None:
    """No phone lookup was made, so WhatsApp messages from anyone stay unknown."""
    concierge.register(phone_number="12345")

    status, answer = concierge.webhook(waha_message(chat_id="12345@c.us"))

    assert status == 200 and answer["outcome"] in {"unknown_guest", "ignored"}
    assert len(concierge.items_of_type("Message")) == 1


@pytest.mark.parametrize("phone_number", ["", "   ", None])
def test_a_missing_or_empty_phone_is_still_422(concierge: Concierge, phone_number: str | None) -> None:
    """Only a present but invalid number registers; no number at all is a client error."""
    body = {**GUEST, "phone_number": phone_number}
    if phone_number is None:
        del body["phone_number"]

    status, answer = concierge.register(body)

    assert status == 422 and "phone_number" in {detail["field"] for detail in answer["details"]}
    assert concierge.items() == []


# --- what real hotel systems send ----------------------------------------------------------------


def test_unknown_fields_are_ignored_and_named_in_warnings(concierge: Concierge) -> None:
    """A PMS's extra fields do not refuse the guest; the answer names each one."""
    status, body = concierge.register({**GUEST, "vip_level": 3, "nickname": "Johnny"})

    assert status == 201
    assert [warning["field"] for warning in body["warnings"]] == ["nickname", "vip_level"]
    (user,) = concierge.items_of_type("User")
    assert "vip_level" not in user and "nickname" not in user


def test_known_fields_only_give_an_empty_warnings_list(concierge: Concierge) -> None:
    _, body = concierge.register()

    assert body["warnings"] == []


@pytest.mark.parametrize(("room", "stored"), [(101, "101"), (2007, "2007"), (12.0, "12")])
def test_room_number_may_be_a_json_number(concierge: Concierge, room: object, stored: str) -> None:
    status, body = concierge.register(room_number=room)

    assert status == 201 and body["room_number"] == stored
    concierge.deliver_queued()
    assert f"di kamar {stored}." in concierge.waha.sent_messages()[0]["text"]


@pytest.mark.parametrize("room", [True, 1.5, -3, [101]])
def test_room_number_that_is_no_room_is_still_422(concierge: Concierge, room: object) -> None:
    status, answer = concierge.register(room_number=room)

    assert status == 422 and "room_number" in {detail["field"] for detail in answer["details"]}
    assert concierge.items() == []


@pytest.mark.parametrize("email", ["missing", None])
def test_email_may_be_missing_or_null(concierge: Concierge, email: str | None) -> None:
    body = {**GUEST, "email": email}
    if email == "missing":
        del body["email"]

    status, answer = concierge.register(body)

    assert status == 201 and answer["email"] is None
    concierge.deliver_queued()
    assert [sent["chatId"] for sent in concierge.waha.sent_messages()] == [GUEST_CHAT_ID]


def test_without_emails_only_the_name_makes_the_same_person(concierge: Concierge) -> None:
    """Two guests with no email are not the same person because both emails are missing."""
    _, first = concierge.register({**GUEST, "email": None, "full_name": "Budi"})
    _, second = concierge.register({**GUEST, "email": None, "full_name": "Sari", "room_number": "300"})

    assert first["user_id"] != second["user_id"]
