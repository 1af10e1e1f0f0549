"""Sending like a person through the whole local stack, as `make run` runs it: the pacing settings set in the
environment reach the sender, and the simulator's `GET /api/sim/messages` shows each chat's calls in order.

A stack of its own: the functions share the test process, so their settings are the process's while it runs.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.stack import LocalStack, StackConfig
from tests.integration.test_stack_flows import (
    API_KEY,
    HMAC_KEY,
    RunningStack,
    chat_of,
    delivered,
    eventually,
    new_guest,
    registered,
)

pytestmark = pytest.mark.integration

# Not one of test_stack_flows' numbers: the simulator says it is not on WhatsApp.
NOT_ON_WHATSAPP = "081299900001"


@pytest.fixture(scope="module")
def paced() -> Iterator[RunningStack]:
    """A stack started with short pacing settings and one number the simulator says is not on WhatsApp."""
    config = StackConfig(
        api_port=0,
        moto_port=0,
        waha_sim_port=0,
        api_key=API_KEY,
        waha_webhook_hmac_key=HMAC_KEY,
        waha_sim_not_on_whatsapp=(NOT_ON_WHATSAPP,),
    )
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "TYPING_SECONDS_MAX": "0.2",
            "MIN_SECONDS_BETWEEN_MESSAGES_PER_CHAT": "1",
            "MAX_MESSAGES_PER_MINUTE": "120",
            "AUTO_REPLY_COOLDOWN_MINUTES": "0",
        }.items():
            patch.setenv(name, value)
        with LocalStack(config) as stack:
            yield RunningStack(stack)


def _calls(running: RunningStack, chat: str) -> list[dict[str, Any]]:
    status, body = running._json("GET", running.waha_url + "/api/sim/messages")
    assert status == 200, body
    return body["calls"].get(chat, [])


def test_replies_are_seen_typed_and_spaced_through_the_stack(paced: RunningStack) -> None:
    """Two quick lines: each reply is preceded by sendSeen and typing, and the chat's sends are at least 1 s apart."""
    guest, registration = registered(paced)
    paced.guest_writes(guest["phone_number"], "Hello")
    paced.guest_writes(guest["phone_number"], "Is the spa open?")

    eventually(lambda: delivered(paced, registration["user_id"], 5), "both replies SENT")

    calls = _calls(paced, chat_of(guest))
    assert [call["call"] for call in calls] == [
        "checkExists",
        *(["startTyping", "stopTyping", "sendText"]),
        *(["sendSeen", "startTyping", "stopTyping", "sendText"] * 2),
    ]
    sends = [call["at"] for call in calls if call["call"] == "sendText"]
    assert min(later - earlier for earlier, later in itertools.pairwise(sends)) >= 1.0
    assert paced.stack.function_environment["MIN_SECONDS_BETWEEN_MESSAGES_PER_CHAT"] == "1"


def test_a_number_not_on_whatsapp_gets_no_welcome(paced: RunningStack) -> None:
    """WAHA_SIM_NOT_ON_WHATSAPP lists the number: the welcome ends FAILED `not on WhatsApp`, nothing reaches it."""
    guest = {**new_guest(), "phone_number": NOT_ON_WHATSAPP}
    status, registration = paced.register(guest)
    assert status == 201, registration

    (welcome,) = eventually(
        lambda: [m for m in paced.conversation(registration["user_id"]) if m["status"] == "FAILED"],
        "the welcome FAILED",
    )

    assert welcome["error"] == "not on WhatsApp"
    assert [call["call"] for call in _calls(paced, chat_of(guest))] == ["checkExists"]
