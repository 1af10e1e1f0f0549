"""Delivery and read ticks: WAHA's message.ack moves our outbound messages forward only."""

from __future__ import annotations

import time
from typing import Any

import pytest

from concierge.conversations.ticks import (
    ACK_DEVICE,
    ACK_ERROR,
    ACK_PENDING,
    ACK_PLAYED,
    ACK_READ,
    ACK_SERVER,
    ERROR_REASON,
)
from tests.driver import Concierge, our_waha_id, waha_ack


@pytest.fixture
def welcome(concierge: Concierge) -> dict[str, Any]:
    """The guide's guest, whose welcome WAHA has accepted (SENT)."""
    _, guest = concierge.register()
    concierge.deliver_queued()
    (message,) = concierge.conversation(guest["user_id"])
    assert message["status"] == "SENT"
    return {**message, "user_id": guest["user_id"]}


def _now(concierge: Concierge, welcome: dict[str, Any]) -> dict[str, Any]:
    (message,) = concierge.conversation(welcome["user_id"])
    return message


def test_device_then_read_move_sent_to_delivered_to_read_with_their_times(
    concierge: Concierge, welcome: dict[str, Any]
) -> None:
    waha_id = our_waha_id(welcome["id"])

    delivered = concierge.ack(waha_id, ACK_DEVICE)
    after_device = _now(concierge, welcome)
    read = concierge.ack(waha_id, ACK_READ)
    after_read = _now(concierge, welcome)

    assert delivered == (200, delivered[1]) and (delivered[1]["outcome"], delivered[1]["status"]) == (
        "updated",
        "DELIVERED",
    )
    assert after_device["status"] == "DELIVERED" and "read_at" not in after_device
    assert after_device["delivered_at"] >= welcome["created_at"]
    assert (read[1]["outcome"], read[1]["status"]) == ("updated", "READ")
    assert after_read["status"] == "READ"
    assert after_read["delivered_at"] == after_device["delivered_at"]
    assert after_read["read_at"] >= after_read["delivered_at"]


def test_the_ticks_times_are_when_waha_reported_them(concierge: Concierge, welcome: dict[str, Any]) -> None:
    """The envelope's time (when WAHA created the event), not when the webhook ran."""
    an_hour_ago_ms = int(time.time() * 1000) - 3_600_000

    concierge.ack(our_waha_id(welcome["id"]), ACK_READ, timestamp_ms=an_hour_ago_ms)

    message = _now(concierge, welcome)
    assert message["read_at"] == message["delivered_at"] < welcome["created_at"]


def test_a_late_device_after_read_changes_nothing(concierge: Concierge, welcome: dict[str, Any]) -> None:
    waha_id = our_waha_id(welcome["id"])
    concierge.ack(waha_id, ACK_READ)
    before = _now(concierge, welcome)

    status, answer = concierge.ack(waha_id, ACK_DEVICE)

    assert (status, answer["outcome"], answer["status"]) == (200, "unchanged", "READ")
    assert _now(concierge, welcome) == before


@pytest.mark.parametrize("ack", [ACK_DEVICE, ACK_READ, ACK_ERROR])
def test_a_repeated_or_backward_ack_changes_nothing(concierge: Concierge, welcome: dict[str, Any], ack: int) -> None:
    """READ is never undone: not by a repeat, a DEVICE, nor an ERROR."""
    waha_id = our_waha_id(welcome["id"])
    concierge.ack(waha_id, ACK_READ)
    before = _now(concierge, welcome)

    _, answer = concierge.ack(waha_id, ack)

    assert answer["outcome"] == "unchanged"
    assert _now(concierge, welcome) == before


def test_played_counts_as_read(concierge: Concierge, welcome: dict[str, Any]) -> None:
    _, answer = concierge.ack(our_waha_id(welcome["id"]), ACK_PLAYED)

    assert answer["status"] == "READ"
    assert _now(concierge, welcome)["status"] == "READ"


def test_error_after_sent_marks_the_message_failed_with_the_reason(
    concierge: Concierge, welcome: dict[str, Any]
) -> None:
    _, answer = concierge.ack(our_waha_id(welcome["id"]), ACK_ERROR)

    message = _now(concierge, welcome)
    assert (answer["outcome"], answer["status"]) == ("updated", "FAILED")
    assert (message["status"], message["error"]) == ("FAILED", ERROR_REASON)


def test_error_after_delivered_changes_nothing(concierge: Concierge, welcome: dict[str, Any]) -> None:
    """The guest's phone had it: a later ERROR is not believed."""
    waha_id = our_waha_id(welcome["id"])
    concierge.ack(waha_id, ACK_DEVICE)

    _, answer = concierge.ack(waha_id, ACK_ERROR)

    assert (answer["outcome"], answer["status"]) == ("unchanged", "DELIVERED")
    assert "error" not in _now(concierge, welcome)


@pytest.mark.parametrize(
    "shape",
    ["WEBJS", "NOWEB", "bare with a participant suffix"],
)
def test_every_engines_id_shape_finds_the_message(concierge: Concierge, welcome: dict[str, Any], shape: str) -> None:
    """`true_<chat>_<ID>` (WEBJS), the bare `<ID>` (NOWEB, GOWS), and `<ID>_<participant>`."""
    waha_id = {
        "WEBJS": our_waha_id(welcome["id"], "WEBJS"),
        "NOWEB": our_waha_id(welcome["id"], "NOWEB"),
        "bare with a participant suffix": our_waha_id(welcome["id"], "NOWEB") + "_123456789@lid",
    }[shape]

    _, answer = concierge.ack(waha_id, ACK_READ)

    assert answer["outcome"] == "updated"
    assert _now(concierge, welcome)["status"] == "READ"


def test_an_ack_for_an_id_we_never_sent_is_ignored(concierge: Concierge, welcome: dict[str, Any]) -> None:
    before = concierge.items()

    status, answer = concierge.ack("true_6281234567890@c.us_3EB0C767D26A1D8E5E5A", ACK_READ)

    assert (status, answer["outcome"], answer["reason"]) == (200, "ignored", "not a message we sent")
    assert concierge.items() == before


def test_an_ack_before_the_sender_wrote_sent_changes_nothing_and_later_ticks_apply(concierge: Concierge) -> None:
    """The status is the sender's until it has written SENT (docs/architecture.md, the status machine)."""
    _, guest = concierge.register()
    (pending,) = concierge.conversation(guest["user_id"])
    waha_id = our_waha_id(pending["id"])

    _, early = concierge.ack(waha_id, ACK_DEVICE)
    concierge.deliver_queued()
    _, later = concierge.ack(waha_id, ACK_READ)

    assert (early["outcome"], early["status"]) == ("unchanged", "PENDING")
    assert later["outcome"] == "updated"
    assert concierge.conversation(guest["user_id"])[0]["status"] == "READ"


@pytest.mark.parametrize("ack", [ACK_PENDING, ACK_SERVER])
def test_pending_and_server_acks_change_nothing(concierge: Concierge, welcome: dict[str, Any], ack: int) -> None:
    """SENT already means WAHA's server has the message."""
    _, answer = concierge.ack(our_waha_id(welcome["id"]), ack)

    assert answer["outcome"] == "ignored"
    assert _now(concierge, welcome)["status"] == "SENT"


def test_an_ack_of_a_message_the_hotel_received_is_ignored(concierge: Concierge, welcome: dict[str, Any]) -> None:
    _, answer = concierge.ack(our_waha_id(welcome["id"]), ACK_READ, fromMe=False)

    assert answer["outcome"] == "ignored"
    assert _now(concierge, welcome)["status"] == "SENT"


def test_a_group_ack_is_ignored(concierge: Concierge, welcome: dict[str, Any]) -> None:
    """WAHA's group example: we never write to groups."""
    group = "11111111111@g.us"
    waha_id = f"true_{group}_{our_waha_id(welcome['id'], 'NOWEB')}_9999@lid"

    _, answer = concierge.ack(waha_id, ACK_READ, chat_id=group, participant="9999@lid")

    assert (answer["outcome"], answer["reason"]) == ("ignored", "group chat")
    assert _now(concierge, welcome)["status"] == "SENT"


def test_acks_are_screened_like_messages(concierge: Concierge, welcome: dict[str, Any]) -> None:
    """A replayed old ack is stale and one for another WAHA session is ignored: neither changes the message."""
    waha_id = our_waha_id(welcome["id"])
    two_days_ago_ms = int(time.time() * 1000) - 48 * 3_600_000

    _, stale = concierge.ack(waha_id, ACK_READ, timestamp_ms=two_days_ago_ms)
    _, other = concierge.webhook(waha_ack(waha_id, ACK_READ, session="another-hotel"))

    assert (stale["outcome"], other["outcome"]) == ("stale", "ignored")
    assert _now(concierge, welcome)["status"] == "SENT"


@pytest.mark.parametrize("ack", [5, -2, "3", 3.5, True, None])
def test_a_malformed_ack_is_a_400_and_changes_nothing(
    concierge: Concierge, welcome: dict[str, Any], ack: object
) -> None:
    before = concierge.items()

    status, answer = concierge.ack(our_waha_id(welcome["id"]), ack)  # type: ignore[arg-type]

    assert (status, answer["error"]) == (400, "validation_error")
    assert concierge.items() == before
