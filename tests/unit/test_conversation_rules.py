"""Auto-replies a person would send: a cooldown, business hours, opt-out, and what the hotel's list needs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from concierge import store
from concierge.conversations import conversation
from concierge.conversations.business_hours import BusinessHours, InvalidBusinessHours
from concierge.guests.registration import RegistrationRequest, register_guest
from concierge.webhook.webhook_events import GuestMessage
from devstack.resources import LocalResources
from tests.concurrency import at_once, table_items
from tests.driver import GUEST, Concierge, waha_message

AUTO_REPLY_START = "Terima kasih atas pesan Anda. 🙏\n\nTim kami akan segera"


def _system_kinds(concierge: Concierge, user_id: str) -> list[str]:
    items = concierge.items_of_type("Message")
    return [item["kind"] for item in sorted(items, key=lambda item: item["sk"]) if item["role"] == "System"]


def _lines(concierge: Concierge, *texts: str) -> list[str]:
    return [concierge.webhook(waha_message(text=text))[1]["outcome"] for text in texts]


def test_three_lines_get_one_auto_reply(concierge: Concierge) -> None:
    """A guest who writes three lines in a row gets one answer, and every line is stored."""
    _, guest = concierge.register()

    outcomes = _lines(concierge, "Hello", "I am in room 101", "the shower is cold")

    assert outcomes == ["stored"] * 3
    assert _system_kinds(concierge, guest["user_id"]) == ["welcome", "auto_reply"]
    assert [m["role"] for m in concierge.conversation(guest["user_id"])] == ["System", "User", "System", "User", "User"]
    concierge.deliver_queued()
    assert [m["text"][:40] for m in concierge.waha.sent_messages()][1:] == [AUTO_REPLY_START[:40]]


def test_after_the_cooldown_the_bot_answers_again(concierge: Concierge, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no cooldown every line is answered: the rule is the setting's, not a fixed one."""
    monkeypatch.setenv("AUTO_REPLY_COOLDOWN_MINUTES", "0")
    _, guest = concierge.register()

    _lines(concierge, "one", "two")

    assert _system_kinds(concierge, guest["user_id"]) == ["welcome", "auto_reply", "auto_reply"]


def test_a_cooldown_that_has_passed_allows_the_next_auto_reply(concierge: Concierge) -> None:
    """An auto-reply older than AUTO_REPLY_COOLDOWN_MINUTES no longer holds the bot back."""
    _, guest = concierge.register()
    _lines(concierge, "first")
    (lookup,) = concierge.items_of_type("PhoneLookup")
    eleven_minutes_ago = store.iso(datetime.now(UTC) - timedelta(minutes=11))
    store.update_item(
        {"pk": lookup["pk"], "sk": lookup["sk"]}, "SET last_auto_reply_at = :at", {":at": eleven_minutes_ago}
    )

    _lines(concierge, "second")

    assert _system_kinds(concierge, guest["user_id"]) == ["welcome", "auto_reply", "auto_reply"]


def _guest_message(index: int) -> GuestMessage:
    return GuestMessage(
        waha_session="default",
        waha_message_id=f"line-{index}",
        event="message",
        phone_e164="+6281234567890",
        lid=None,
        text=f"line {index}",
        has_media=False,
    )


def test_three_lines_at_the_same_moment_on_three_instances_get_one_reply(shared_table: LocalResources) -> None:
    """The cooldown is decided atomically: concurrent lines still produce exactly one auto-reply."""
    register_guest(RegistrationRequest.model_validate(GUEST))

    results = at_once([lambda index=index: conversation.receive(_guest_message(index)) for index in range(3)])

    assert results == [conversation.Outcome.STORED] * 3
    messages = [item for item in table_items(shared_table) if item.get("type") == "Message"]
    assert sorted(item["text"] for item in messages if item["role"] == "User") == ["line 0", "line 1", "line 2"]
    assert [item["kind"] for item in messages if item["role"] == "System"].count("auto_reply") == 1


# --- business hours ------------------------------------------------------------------------------


def _hours_closed_now(zone: str = "Asia/Jakarta") -> str:
    """Hours that open an hour from now and close two hours from now, in the hotel's time zone."""
    local = datetime.now(ZoneInfo(zone))
    opens, closes = local + timedelta(hours=1), local + timedelta(hours=2)
    return f"{opens:%H:%M}-{closes:%H:%M}"


def test_outside_business_hours_the_reply_says_when_staff_answer_once_a_night(
    concierge: Concierge, monkeypatch: pytest.MonkeyPatch
) -> None:
    hours = _hours_closed_now()
    monkeypatch.setenv("BUSINESS_HOURS", hours)
    _, guest = concierge.register()

    _lines(concierge, "is the pool open?", "hello?")

    assert _system_kinds(concierge, guest["user_id"]) == ["welcome", "out_of_hours"]
    (reply,) = [m for m in concierge.conversation(guest["user_id"]) if m["role"] == "System"][1:]
    assert f"pukul {hours[:5]}" in reply["text"]


def test_inside_business_hours_the_guides_auto_reply_is_sent(
    concierge: Concierge, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = datetime.now(ZoneInfo("Asia/Jakarta"))
    monkeypatch.setenv("BUSINESS_HOURS", f"{local - timedelta(hours=1):%H:%M}-{local + timedelta(hours=1):%H:%M}")
    _, guest = concierge.register()

    _lines(concierge, "hello")

    assert _system_kinds(concierge, guest["user_id"]) == ["welcome", "auto_reply"]


@pytest.mark.parametrize(
    ("hours", "local_time", "open_", "night"),
    [
        ("08:00-22:00", "2026-11-25T23:30", False, "2026-11-25"),
        ("08:00-22:00", "2026-11-26T03:00", False, "2026-11-25"),
        ("08:00-22:00", "2026-11-26T08:00", True, None),
        ("20:00-02:00", "2026-11-26T01:00", True, None),
        ("20:00-02:00", "2026-11-26T10:00", False, "2026-11-26"),
    ],
)
def test_business_hours_tell_open_and_name_the_night(hours: str, local_time: str, open_: bool, night: str) -> None:
    business = BusinessHours.parse(hours, "Asia/Jakarta")
    moment = datetime.fromisoformat(local_time).replace(tzinfo=ZoneInfo("Asia/Jakarta"))

    assert business.is_open(moment) is open_
    if not open_:
        assert business.night(moment) == night


@pytest.mark.parametrize(("hours", "zone"), [("8-22", "Asia/Jakarta"), ("08:00-08:00", "UTC"), ("08:00-22:00", "Mars")])
def test_unreadable_business_hours_are_refused(hours: str, zone: str) -> None:
    with pytest.raises(InvalidBusinessHours):
        BusinessHours.parse(hours, zone)


# --- opt-out -------------------------------------------------------------------------------------


def test_stop_gets_one_confirmation_and_silences_the_bot_until_start(concierge: Concierge) -> None:
    _, guest = concierge.register()

    _lines(concierge, "STOP", "hello?", "stop", "Mulai", "hello again")

    assert _system_kinds(concierge, guest["user_id"]) == [
        "welcome",
        "opt_out_confirmation",
        "opt_in_confirmation",
        "auto_reply",
    ]
    (user,) = concierge.items_of_type("User")
    assert user["opted_out"] is False


@pytest.mark.parametrize("word", ["STOP", "berhenti", "  Berhenti "])
def test_opt_out_words_never_get_the_auto_reply(concierge: Concierge, word: str) -> None:
    _, guest = concierge.register()

    _lines(concierge, word)

    assert _system_kinds(concierge, guest["user_id"]) == ["welcome", "opt_out_confirmation"]


def test_start_from_a_guest_who_never_opted_out_gets_no_reply(concierge: Concierge) -> None:
    _, guest = concierge.register()

    _lines(concierge, "START")

    assert _system_kinds(concierge, guest["user_id"]) == ["welcome"]


def test_the_opt_out_survives_a_new_stay_and_skips_the_welcome(concierge: Concierge) -> None:
    """Stored on the guest: the next check-in of the same person sends no welcome."""
    _, first = concierge.register()
    _lines(concierge, "BERHENTI")
    concierge.deliver_queued()

    status, second = concierge.register(room_number="707", checkin_date="2026-01-02")
    concierge.deliver_queued()

    assert status == 201 and second["user_id"] == first["user_id"] and second["whatsapp"] == "opted_out"
    welcome = next(m for m in concierge.conversation(second["user_id"]) if m["session_id"] == second["session_id"])
    assert welcome["status"] == "SKIPPED"
    assert [sent["text"][:5] for sent in concierge.waha.sent_messages()] == ["Halo ", "Anda "]


def test_the_opt_out_does_not_pass_to_the_next_person_on_the_phone(concierge: Concierge) -> None:
    concierge.register()
    _lines(concierge, "STOP")

    _, carol = concierge.register(full_name="Carol", email="carol@example.com", room_number="9")

    assert carol["whatsapp"] == "queued"


# --- what the list of conversations reads ---------------------------------------------------------


def test_the_session_keeps_its_last_message_and_since_when_the_guest_waits(concierge: Concierge) -> None:
    _, guest = concierge.register()
    _lines(concierge, "first question", "second question")

    (session,) = concierge.items_of_type("ChatSession")
    guest_lines = [m for m in concierge.conversation(guest["user_id"]) if m["role"] == "User"]
    assert session["waiting_since"] == guest_lines[0]["created_at"]
    assert session["last_message"] == {
        "text": "second question",
        "role": "User",
        "created_at": guest_lines[1]["created_at"],
    }
    assert session["open_sk"] == guest_lines[1]["created_at"] == session["last_message_at"]
