"""The hotel writing from its own WhatsApp (phone, WAHA's dashboard): message.any with fromMe, stored as staff's."""

from __future__ import annotations

from typing import Any

import pytest

from tests.driver import GUEST_CHAT_ID, HOTEL_CHAT_ID, Concierge, hotel_message, our_waha_id, waha_message


@pytest.fixture
def guest(concierge: Concierge) -> dict[str, Any]:
    status, body = concierge.register()
    assert status == 201
    concierge.deliver_queued()
    return body


def _roles(concierge: Concierge, user_id: str) -> list[tuple[str, str | None]]:
    return [(m["role"], m.get("author")) for m in concierge.conversation(user_id)]


def _system_kinds(concierge: Concierge) -> list[str]:
    items = sorted(concierge.items_of_type("Message"), key=lambda item: item["sk"])
    return [item["kind"] for item in items if item["role"] == "System"]


@pytest.mark.parametrize(
    "changes",
    [
        # WEBJS: the id names the chat; `from` is the hotel's number, `to` the guest.
        {"engine": "WEBJS"},
        # NOWEB: a bare id, the chat in `from`.
        {"engine": "NOWEB"},
        # A bare id with the hotel in `from`: the chat is `to`.
        {"engine": "NOWEB", "from": HOTEL_CHAT_ID, "to": GUEST_CHAT_ID},
    ],
    ids=["webjs", "noweb", "bare-id-from-the-hotel"],
)
def test_the_hotels_own_message_is_stored_as_staff_by_whatsapp_and_nothing_is_sent(
    concierge: Concierge, guest: dict[str, Any], changes: dict[str, Any]
) -> None:
    status, answer = concierge.from_hotel("Your taxi is waiting downstairs.", **changes)

    assert (status, answer["outcome"]) == (200, "stored")
    history = concierge.conversation(guest["user_id"])
    assert _roles(concierge, guest["user_id"]) == [("System", None), ("Staff", "WhatsApp")]
    assert (history[-1]["text"], history[-1]["status"]) == ("Your taxi is waiting downstairs.", "SENT")
    # Already in WhatsApp: never queued, never answered.
    assert concierge.queue_depth() == 0
    assert concierge.deliver_queued() == 0 and len(concierge.waha.sent_messages()) == 1


def test_after_the_hotel_writes_from_its_phone_the_bot_stays_quiet(concierge: Concierge, guest: dict[str, Any]) -> None:
    """The handoff: the guest now talks to a person."""
    concierge.from_hotel("Hi, this is Rina at the front desk.")

    _, answer = concierge.webhook(waha_message(text="the air conditioner is broken"))

    assert answer["outcome"] == "stored"
    assert _system_kinds(concierge) == ["welcome"]
    assert _roles(concierge, guest["user_id"])[-1] == ("User", None)


def test_the_hotels_message_answers_the_waiting_guest(concierge: Concierge, guest: dict[str, Any]) -> None:
    concierge.webhook(waha_message(text="Can I check out late?"))
    _, waiting_before = concierge.sessions(status="waiting")

    concierge.from_hotel("Yes, until 2 pm.")

    _, waiting_after = concierge.sessions(status="waiting")
    assert [s["session_id"] for s in waiting_before["sessions"]] == [guest["session_id"]]
    assert waiting_after["sessions"] == []


@pytest.mark.parametrize("engine", ["WEBJS", "NOWEB"])
def test_our_own_send_echoed_by_waha_is_ignored(concierge: Concierge, guest: dict[str, Any], engine: str) -> None:
    """WAHA also sends our own sends on message.any: they are stored already (the welcome here)."""
    (welcome,) = concierge.conversation(guest["user_id"])
    before = concierge.items()
    echo = hotel_message(welcome["text"], engine=engine, message_id=our_waha_id(welcome["id"], "NOWEB"))

    status, answer = concierge.webhook(echo)

    assert (status, answer["outcome"], answer["reason"]) == (200, "ignored", "one of our own sends, echoed by WAHA")
    assert concierge.items() == before


def test_an_echo_that_overtakes_the_senders_sent_is_still_ours(concierge: Concierge) -> None:
    """The row carries its WAHA id from the start, so an echo before SENT is recognised too."""
    _, guest = concierge.register()
    (welcome,) = concierge.conversation(guest["user_id"])

    _, answer = concierge.from_hotel(welcome["text"], message_id=our_waha_id(welcome["id"], "NOWEB"))

    assert answer["outcome"] == "ignored"
    assert len(concierge.conversation(guest["user_id"])) == 1


def test_a_hotel_message_delivered_twice_is_stored_once(concierge: Concierge, guest: dict[str, Any]) -> None:
    delivery = hotel_message("Breakfast is until 10.")

    outcomes = [concierge.webhook(delivery)[1]["outcome"] for _ in range(2)]

    assert outcomes == ["stored", "duplicate"]
    assert _roles(concierge, guest["user_id"]) == [("System", None), ("Staff", "WhatsApp")]


def test_from_me_on_the_plain_message_event_is_still_ignored(concierge: Concierge, guest: dict[str, Any]) -> None:
    """WAHA sends the account's own messages on message.any only."""
    delivery = hotel_message("hello")
    delivery["event"] = "message"
    before = concierge.items()

    _, answer = concierge.webhook(delivery)

    assert (answer["outcome"], answer["reason"]) == ("ignored", "sent by the hotel's own account")
    assert concierge.items() == before


def test_a_hotel_message_to_someone_who_is_not_a_guest_is_ignored(concierge: Concierge, guest: dict[str, Any]) -> None:
    before = concierge.items()

    _, answer = concierge.from_hotel("hi", chat_id="6289999999999@c.us")

    assert answer["outcome"] == "unknown_guest"
    assert concierge.items() == before


def test_a_hotel_message_to_a_guest_without_an_open_stay_is_ignored(
    concierge: Concierge, guest: dict[str, Any]
) -> None:
    concierge.checkout(guest["user_id"])
    messages_before = len(concierge.items_of_type("Message"))

    _, answer = concierge.from_hotel("Did you forget your charger?")

    assert answer["outcome"] == "no_active_session"
    assert len(concierge.items_of_type("Message")) == messages_before


@pytest.mark.parametrize(
    ("chat_id", "reason"),
    [
        ("120363000000000000@g.us", "group chat"),
        ("status@broadcast", "status broadcast"),
        ("120363000000000000@newsletter", "channel"),
    ],
)
def test_the_hotel_writing_in_groups_broadcasts_and_channels_is_ignored(
    concierge: Concierge, guest: dict[str, Any], chat_id: str, reason: str
) -> None:
    before = concierge.items()

    _, answer = concierge.from_hotel("Pool closes at 8 tonight.", chat_id=chat_id)

    assert (answer["outcome"], answer["reason"]) == ("ignored", reason)
    assert concierge.items() == before


def test_a_hotel_message_to_a_hidden_lid_chat_finds_the_guest_by_the_number_beside_it(
    concierge: Concierge, guest: dict[str, Any]
) -> None:
    _, answer = concierge.from_hotel(
        "See you soon",
        engine="NOWEB",
        chat_id="123456789012345@lid",
        _data={"key": {"remoteJidAlt": "6281234567890@s.whatsapp.net"}},
    )

    assert answer["outcome"] == "stored"
    assert _roles(concierge, guest["user_id"])[-1] == ("Staff", "WhatsApp")
