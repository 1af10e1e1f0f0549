"""A setting of the README's configuration table, set in the environment as for `make run`, reaches the functions
of the local stack (the template passes it from a parameter: NAME: !Ref Param).

A stack of its own: the functions share the test process, so their settings are the process's while it runs.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from concierge.templates import auto_reply
from devstack.stack import LocalStack, StackConfig
from tests.integration.test_stack_flows import (
    API_KEY,
    HMAC_KEY,
    RunningStack,
    chat_of,
    delivered,
    eventually,
    registered,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def without_cooldown() -> Iterator[RunningStack]:
    """A stack started with AUTO_REPLY_COOLDOWN_MINUTES=0 in its environment (the default is 10)."""
    config = StackConfig(api_port=0, moto_port=0, waha_sim_port=0, api_key=API_KEY, waha_webhook_hmac_key=HMAC_KEY)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUTO_REPLY_COOLDOWN_MINUTES", "0")
        with LocalStack(config) as stack:
            yield RunningStack(stack)


def test_auto_reply_cooldown_from_the_environment_reaches_the_functions(without_cooldown: RunningStack) -> None:
    """With AUTO_REPLY_COOLDOWN_MINUTES=0 set, two quick lines of a guest get two auto-replies, not one."""
    # GIVEN a registered guest, in a stack started with no auto-reply cooldown
    running = without_cooldown
    guest, registration = registered(running)

    # WHEN they write two lines in a row
    running.guest_writes(guest["phone_number"], "Hello")
    running.guest_writes(guest["phone_number"], "Anyone there?")

    # THEN each line got its reply, as the setting asks (the answering function may take both lines before it
    # replies to the first, so the replies need not sit between them)
    conversation = eventually(lambda: delivered(running, registration["user_id"], 5), "both replies SENT")
    assert conversation[1]["text"] == "Hello"
    assert [m["text"] for m in conversation if m["role"] == "User"] == ["Hello", "Anyone there?"]
    assert [m["text"] for m in conversation if m["role"] == "System"][1:] == [auto_reply(), auto_reply()]
    assert running.sent_to(chat_of(guest))[1:] == [auto_reply(), auto_reply()]
    assert running.stack.function_environment["AUTO_REPLY_COOLDOWN_MINUTES"] == "0"
