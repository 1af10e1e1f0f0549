"""Staff replies and handoff, handing back to the bot, check-out, stays closing by themselves, the list of
open conversations."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from concierge import store
from tests.driver import GUEST_CHAT_ID, Concierge, waha_message

UNKNOWN = str(uuid.uuid4())


def _kinds(concierge: Concierge, user_id: str) -> list[tuple[str, str | None]]:
    return [(m["role"], m.get("author")) for m in concierge.conversation(user_id)]


def _system_kinds(concierge: Concierge) -> list[str]:
    items = sorted(concierge.items_of_type("Message"), key=lambda item: item["sk"])
    return [item["kind"] for item in items if item["role"] == "System"]


# --- staff replies and handoff -------------------------------------------------------------------


def test_a_staff_reply_is_stored_with_its_author_and_sent_after_the_guests_message(concierge: Concierge) -> None:
    _, guest = concierge.register()
    concierge.webhook(waha_message(text="Can I get more towels?"))

    status, message = concierge.staff_reply(guest["session_id"], "Towels are on their way.", author="Front desk")
    concierge.deliver_queued()

    assert status == 202
    assert (message["role"], message["author"], message["text"], message["status"]) == (
        "Staff",
        "Front desk",
        "Towels are on their way.",
        "PENDING",
    )
    history = concierge.conversation(guest["user_id"])
    assert [(m["role"], m.get("author")) for m in history] == [
        ("System", None),
        ("User", None),
        ("System", None),
        ("Staff", "Front desk"),
    ]
    assert history[-1]["status"] == "SENT"
    sent = concierge.waha.sent_messages()
    assert (sent[-1]["chatId"], sent[-1]["text"]) == (GUEST_CHAT_ID, "Towels are on their way.")


def test_a_staff_reply_without_author_is_by_the_api(concierge: Concierge) -> None:
    _, guest = concierge.register()

    _, message = concierge.staff_reply(guest["session_id"], "Hello from the hotel")

    assert message["author"] == "API"


def test_after_a_staff_reply_the_bot_stays_quiet_until_resolved(concierge: Concierge) -> None:
    _, guest = concierge.register()
    concierge.staff_reply(guest["session_id"], "I am Rina from the front desk; how can I help?")

    concierge.webhook(waha_message(text="the air conditioner is broken"))
    quiet = _system_kinds(concierge)
    status, _ = concierge.resolve(guest["session_id"])
    concierge.webhook(waha_message(text="thanks!"))

    assert quiet == ["welcome"]
    assert status == 200
    assert _system_kinds(concierge) == ["welcome", "auto_reply"]


def test_the_handoff_ends_after_handoff_minutes(concierge: Concierge, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANDOFF_MINUTES", "0")
    _, guest = concierge.register()
    concierge.staff_reply(guest["session_id"], "Hello")

    concierge.webhook(waha_message(text="hi"))

    assert _system_kinds(concierge) == ["welcome", "auto_reply"]


@pytest.mark.parametrize("text", ["", "x" * 4097, 42, None])
def test_a_staff_reply_must_be_1_to_4096_characters(concierge: Concierge, text: object) -> None:
    _, guest = concierge.register()
    before = len(concierge.items())

    status, answer = concierge.staff_reply(guest["session_id"], text)

    assert status == 422 and answer["error"] == "validation_error"
    assert len(concierge.items()) == before


def test_a_staff_reply_of_4096_characters_is_accepted(concierge: Concierge) -> None:
    _, guest = concierge.register()

    status, _ = concierge.staff_reply(guest["session_id"], "x" * 4096)

    assert status == 202


@pytest.mark.parametrize("session_id", [UNKNOWN, "not-a-session"])
def test_a_staff_reply_to_an_unknown_session_is_404(concierge: Concierge, session_id: str) -> None:
    concierge.register()

    status, answer = concierge.staff_reply(session_id, "hello")

    assert status == 404 and answer["error"] == "not_found"


def test_a_staff_reply_to_a_closed_session_is_409_and_sends_nothing(concierge: Concierge) -> None:
    _, guest = concierge.register()
    concierge.checkout(guest["user_id"])
    concierge.deliver_queued()
    messages_before = len(concierge.items_of_type("Message"))

    status, answer = concierge.staff_reply(guest["session_id"], "hello?")
    concierge.deliver_queued()

    assert status == 409 and answer["error"] == "session_closed"
    assert len(concierge.items_of_type("Message")) == messages_before
    assert [m["text"][:5] for m in concierge.waha.sent_messages()] == ["Halo ", "Terim"]


def test_staff_messages_reach_an_opted_out_guest(concierge: Concierge) -> None:
    _, guest = concierge.register()
    concierge.webhook(waha_message(text="STOP"))

    concierge.staff_reply(guest["session_id"], "Your taxi is here.")
    concierge.deliver_queued()

    assert concierge.waha.sent_messages()[-1]["text"] == "Your taxi is here."


# --- check-out and closing -----------------------------------------------------------------------


def test_checkout_closes_the_session_and_queues_a_farewell(concierge: Concierge) -> None:
    _, guest = concierge.register()

    status, session = concierge.checkout(guest["user_id"])
    concierge.deliver_queued()

    assert status == 200
    assert session["session_id"] == guest["session_id"] and session["is_active"] is False
    assert session["end"] >= session["start"] and session["duration"] >= 0
    assert _system_kinds(concierge) == ["welcome", "farewell"]
    assert "Terima kasih telah menginap bersama kami, Test Guest." in concierge.waha.sent_messages()[-1]["text"]


def test_checkout_again_answers_the_closed_session_and_sends_nothing(concierge: Concierge) -> None:
    _, guest = concierge.register()
    _, first = concierge.checkout(guest["user_id"])

    status, again = concierge.checkout(guest["user_id"])

    assert (status, again) == (200, first)
    assert _system_kinds(concierge) == ["welcome", "farewell"]


@pytest.mark.parametrize("user_id", [UNKNOWN, "nobody"])
def test_checkout_of_an_unknown_guest_is_404(concierge: Concierge, user_id: str) -> None:
    status, answer = concierge.checkout(user_id)

    assert status == 404 and answer["error"] == "not_found"


def test_no_farewell_for_an_opted_out_guest(concierge: Concierge) -> None:
    _, guest = concierge.register()
    concierge.webhook(waha_message(text="STOP"))

    concierge.checkout(guest["user_id"])

    assert _system_kinds(concierge) == ["welcome", "opt_out_confirmation"]


def test_after_checkout_a_message_takes_the_no_active_session_path(concierge: Concierge) -> None:
    _, guest = concierge.register()
    concierge.checkout(guest["user_id"])
    before = len(concierge.items_of_type("Message"))

    status, answer = concierge.webhook(waha_message(text="I forgot my charger"))

    assert (status, answer["outcome"]) == (200, "no_active_session")
    assert len(concierge.items_of_type("Message")) == before


def test_a_guest_checked_out_can_check_in_again(concierge: Concierge) -> None:
    _, guest = concierge.register()
    concierge.checkout(guest["user_id"])

    status, again = concierge.register(room_number="808", checkin_date="2026-03-01")

    assert status == 201 and again["user_id"] == guest["user_id"]
    active = [s for s in concierge.items_of_type("ChatSession") if s["is_active"]]
    assert [s["session_id"] for s in active] == [again["session_id"]]


def _expire(concierge: Concierge, session_id: str) -> None:
    (session,) = [s for s in concierge.items_of_type("ChatSession") if s["session_id"] == session_id]
    past = store.iso(datetime.now(UTC) - timedelta(minutes=1))
    store.update_item({"pk": session["pk"], "sk": session["sk"]}, "SET close_at = :past", {":past": past})


def test_stays_close_by_themselves_at_close_at_without_a_farewell(concierge: Concierge) -> None:
    _, due = concierge.register()
    _, staying = concierge.register(phone_number="081298765432", full_name="Other Guest", room_number="5")
    _expire(concierge, due["session_id"])

    result = concierge.close_stays()

    assert result == {"closed": 1}
    sessions = {s["session_id"]: s for s in concierge.items_of_type("ChatSession")}
    assert sessions[due["session_id"]]["is_active"] is False and "end" in sessions[due["session_id"]]
    assert sessions[staying["session_id"]]["is_active"] is True
    assert "farewell" not in _system_kinds(concierge)
    assert concierge.webhook(waha_message(text="hello"))[1]["outcome"] == "no_active_session"


def test_close_at_follows_checkout_date_and_grace(concierge: Concierge) -> None:
    """checkout_date 2026-01-10 in Asia/Jakarta (UTC+7) + 12 h grace is 05:00 UTC that day."""
    concierge.register(checkin_date="2026-01-05", checkout_date="2026-01-10")

    (session,) = concierge.items_of_type("ChatSession")

    assert session["close_at"].startswith("2026-01-10T05:00:00")


def test_without_checkout_date_a_stay_closes_after_session_max_days(concierge: Concierge) -> None:
    concierge.register()

    (session,) = concierge.items_of_type("ChatSession")

    expected = datetime.strptime(session["start"], store.ISO_FORMAT) + timedelta(days=30)
    assert session["close_at"] == expected.strftime(store.ISO_FORMAT)


def test_a_checkout_date_before_checkin_is_422(concierge: Concierge) -> None:
    status, _ = concierge.register(checkin_date="2026-01-05", checkout_date="2026-01-04")

    assert status == 422 and concierge.items() == []


# --- the list of open conversations --------------------------------------------------------------


def test_open_conversations_most_recent_first_with_who_is_waiting(concierge: Concierge) -> None:
    _, first = concierge.register()
    _, second = concierge.register(phone_number="081298765432", full_name="Sari Dewi", room_number="202")
    concierge.webhook(waha_message(text="Is breakfast included?"))

    status, page = concierge.sessions(status="open")

    assert status == 200
    assert [entry["session_id"] for entry in page["sessions"]] == [first["session_id"], second["session_id"]]
    waiting, quiet = page["sessions"]
    assert (waiting["guest_name"], waiting["room_number"], waiting["phone"]) == ("Test Guest", "101", "*" * 9 + "7890")
    assert waiting["last_message"]["role"] == "System" and waiting["waiting_since"]
    assert quiet["waiting_since"] is None and quiet["last_message"]["text"].startswith("Halo Sari Dewi")
    assert page["next_cursor"] is None


def test_waiting_lists_only_guests_staff_owe_an_answer(concierge: Concierge) -> None:
    _, first = concierge.register()
    concierge.register(phone_number="081298765432", full_name="Sari Dewi", room_number="202")
    concierge.webhook(waha_message(text="hello"))

    _, before = concierge.sessions(status="waiting")
    concierge.staff_reply(first["session_id"], "Hello!")
    _, after = concierge.sessions(status="waiting")

    assert [entry["session_id"] for entry in before["sessions"]] == [first["session_id"]]
    assert after["sessions"] == []


def test_checked_out_stays_leave_the_list(concierge: Concierge) -> None:
    _, guest = concierge.register()
    concierge.checkout(guest["user_id"])

    _, page = concierge.sessions()

    assert page["sessions"] == []


def test_the_list_pages_with_a_cursor(concierge: Concierge) -> None:
    for index in range(3):
        concierge.register(phone_number=f"08129876543{index}", full_name=f"Guest {index}", room_number=str(index + 1))

    _, first = concierge.sessions(limit="2")
    _, second = concierge.sessions(limit="2", cursor=first["next_cursor"])

    names = [entry["guest_name"] for entry in first["sessions"] + second["sessions"]]
    assert names == ["Guest 2", "Guest 1", "Guest 0"]


@pytest.mark.parametrize(
    "query", [{"status": "closed"}, {"limit": "0"}, {"limit": "²"}, {"cursor": "["}, {"cursor": "x" * 600}]
)
def test_a_bad_list_query_is_400(concierge: Concierge, query: dict[str, str]) -> None:
    status, answer = concierge.sessions(**query)

    assert status == 400 and answer["error"] == "bad_request"
