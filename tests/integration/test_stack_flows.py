"""The whole local stack as `make run` starts it (moto, WAHA simulator, API emulation, SQS poller, real handlers),
driven over real HTTP: the guide's flows, the API key, WAHA's HMAC, retries into the dead-letter queue, redrive
and the outbox sweeper.

One stack serves the whole file. Each test registers its own guest (its own phone number), so tests do not see
each other's messages; a WAHA fault is switched back to "ok" by the fixture that set it.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import boto3
import pytest
import urllib3

from concierge.phone import chat_id, to_e164
from concierge.store import PENDING, StoredMessage, iso, to_item
from concierge.templates import auto_reply, welcome
from devstack.redrive import queue_depth, redrive
from devstack.stack import LocalStack, StackConfig
from devstack.waha_sim import webhook_hmac
from tests.driver import GUEST, waha_message

pytestmark = pytest.mark.integration

API_KEY = "integration-api-key"
HMAC_KEY = "integration-webhook-hmac-key"
# Two receives and no back-off: a message that cannot be delivered reaches the dead-letter queue in seconds.
MAX_RECEIVES = 2
WAIT_SECONDS = 10.0
REGISTER_PATH = "/api/v1/guests/register"
WEBHOOK_PATH = "/api/v1/waha/webhook"

T = TypeVar("T")

_phone_numbers = (f"0812987{suffix:05d}" for suffix in itertools.count(1))


def eventually(probe: Callable[[], T], what: str, timeout: float = WAIT_SECONDS) -> T:
    """probe()'s first truthy answer, polled until timeout; the stack works asynchronously behind the API."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}; last saw {result!r}")
        time.sleep(0.05)


class RunningStack:
    """The started stack seen from outside: its HTTP APIs, and boto3 against its AWS endpoint."""

    def __init__(self, stack: LocalStack) -> None:
        assert stack.resources is not None and stack.api_url and stack.waha_url
        self.stack = stack
        self.resources = stack.resources
        self.api_url = stack.api_url
        self.waha_url = stack.waha_url
        self.http = urllib3.PoolManager(retries=False, timeout=10.0)
        session = boto3.Session(region_name=stack.config.aws_region)
        self.sqs = session.client("sqs", endpoint_url=stack.aws_endpoint)
        self.dynamodb = session.client("dynamodb", endpoint_url=stack.aws_endpoint)

    def _json(self, method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        raw = json.dumps(body).encode() if body is not None else None
        response = self.http.request(
            method, url, body=raw, headers={"Content-Type": "application/json", **(headers or {})}
        )
        return response.status, json.loads(response.data) if response.data else None

    def register(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[int, Any]:
        key = {"x-api-key": API_KEY} if headers is None else headers
        return self._json("POST", self.api_url + REGISTER_PATH, body, key)

    def history(self, user_id: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        key = {"x-api-key": API_KEY} if headers is None else headers
        return self._json("GET", f"{self.api_url}/api/v1/guests/{user_id}/messages?limit=100", headers=key)

    def conversation(self, user_id: str) -> list[dict[str, Any]]:
        status, body = self.history(user_id)
        assert status == 200, body
        return body["messages"]

    def post_webhook(self, raw: bytes, headers: dict[str, str]) -> int:
        response = self.http.request(
            "POST", self.api_url + WEBHOOK_PATH, body=raw, headers={"Content-Type": "application/json", **headers}
        )
        return response.status

    def sent_to(self, chat: str) -> list[str]:
        """The texts the simulated WAHA sent to one chat, in order."""
        status, body = self._json("GET", f"{self.waha_url}/api/sim/messages")
        assert status == 200, body
        return [message["text"] for message in body["messages"] if message["chatId"] == chat]

    def guest_writes(self, phone: str, text: str) -> dict[str, Any]:
        status, body = self._json("POST", f"{self.waha_url}/api/sim/inbound", {"phone": phone, "text": text})
        assert status == 200, body
        return body

    def waha_fault(self, mode: str) -> None:
        status, body = self._json("POST", f"{self.waha_url}/api/sim/fault", {"mode": mode})
        assert status == 200, body

    def empty_queue(self, url: str) -> None:
        while messages := self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def item(self, key: dict[str, str]) -> dict[str, Any] | None:
        return self.dynamodb.get_item(TableName=self.resources.table_name, Key=to_item(key)).get("Item")


@pytest.fixture(scope="module")
def running() -> Iterator[RunningStack]:
    """One stack for the file, on free ports, with an API key, WAHA's HMAC and fast retries."""
    config = StackConfig(
        api_port=0,
        moto_port=0,
        waha_sim_port=0,
        api_key=API_KEY,
        waha_webhook_hmac_key=HMAC_KEY,
        visibility_timeout_override=1,
        redrive_max_receive_override=MAX_RECEIVES,
    )
    with pytest.MonkeyPatch.context() as patch:
        # The sender sets each failed record's visibility itself (10 s, tripled per try); the queue's
        # visibility override alone would not make the retries fast.
        patch.setenv("OUTBOUND_RETRY_BASE_SECONDS", "0")
        with LocalStack(config) as stack:
            yield RunningStack(stack)


def new_guest() -> dict[str, str]:
    """The guide's Test Guest with a phone number no other test uses."""
    return {**GUEST, "phone_number": next(_phone_numbers)}


def chat_of(guest: dict[str, str]) -> str:
    return chat_id(to_e164(guest["phone_number"], "ID"))


def registered(running: RunningStack) -> tuple[dict[str, str], dict[str, Any]]:
    """A new guest, registered, whose welcome has reached WhatsApp."""
    guest = new_guest()
    status, registration = running.register(guest)
    assert status == 201, registration
    eventually(lambda: running.sent_to(chat_of(guest)), "the welcome at WAHA")
    return guest, registration


def statuses(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(message["role"], message["status"]) for message in messages]


def delivered(running: RunningStack, user_id: str, count: int) -> list[dict[str, Any]]:
    """The conversation once it holds `count` messages and every System one is SENT; else [] (poll again)."""
    conversation = running.conversation(user_id)
    done = len(conversation) == count and all(m["status"] == "SENT" for m in conversation if m["role"] == "System")
    return conversation if done else []


def test_registration_is_201_and_the_welcome_is_sent_through_waha(running: RunningStack) -> None:
    """A registered guest gets the guide's welcome on WhatsApp, and the history shows it SENT."""
    # GIVEN a guest the hotel has not registered before
    guest = new_guest()

    # WHEN the hotel system registers them
    status, body = running.register(guest)

    # THEN the answer is 201 with the stay's ids, and the welcome reaches the guest's chat
    assert status == 201, body
    assert body["full_name"] == "Test Guest" and body["phone_number"] == to_e164(guest["phone_number"], "ID")
    expected = welcome("Test Guest", "101")
    assert eventually(lambda: running.sent_to(chat_of(guest)), "the welcome at WAHA") == [expected]
    conversation = eventually(lambda: delivered(running, body["user_id"], 1), "the welcome SENT")
    assert [(m["role"], m["text"], m["session_id"]) for m in conversation] == [("System", expected, body["session_id"])]


def test_guest_message_is_stored_with_the_auto_reply_which_is_sent(running: RunningStack) -> None:
    """A guest's WhatsApp message is stored as User, answered by the System auto-reply, and the reply is sent."""
    # GIVEN a registered guest whose welcome went out
    guest, registration = registered(running)

    # WHEN they write through WAHA (the simulator posts the signed webhook)
    result = running.guest_writes(guest["phone_number"], "Hello, I need help")

    # THEN the webhook took it, the history holds message and reply, and the reply reaches their chat
    assert result["delivered"] is True and result["status"] == 200
    assert eventually(lambda: len(running.sent_to(chat_of(guest))) == 2, "the auto-reply at WAHA")
    assert running.sent_to(chat_of(guest))[1] == auto_reply()
    conversation = eventually(lambda: delivered(running, registration["user_id"], 3), "the auto-reply SENT")
    assert statuses(conversation) == [("System", "SENT"), ("User", "RECEIVED"), ("System", "SENT")]
    assert [m["text"] for m in conversation[1:]] == ["Hello, I need help", auto_reply()]


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "not-the-key"}], ids=["no key", "wrong key"])
def test_registration_without_the_api_key_is_403_and_writes_nothing(
    running: RunningStack, headers: dict[str, str]
) -> None:
    """Registering without the right x-api-key is 403 Forbidden; no guest is stored and nothing is sent."""
    # GIVEN a guest and a caller without the API key
    guest = new_guest()

    # WHEN the caller tries to register them
    status, body = running.register(guest, headers=headers)

    # THEN API Gateway refuses, and the guest's phone is unknown to the table and to WAHA
    assert status == 403 and body["error"] == "forbidden" and set(body) == {"error", "message", "details"}
    assert running.item({"pk": f"PHONE#{to_e164(guest['phone_number'], 'ID')}", "sk": "PHONE"}) is None
    assert running.sent_to(chat_of(guest)) == []


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "not-the-key"}], ids=["no key", "wrong key"])
def test_history_without_the_api_key_is_403(running: RunningStack, headers: dict[str, str]) -> None:
    """Reading a guest's conversation without the right x-api-key is 403 Forbidden, not the messages."""
    # GIVEN a registered guest
    _, registration = registered(running)

    # WHEN their history is asked for without the key
    status, body = running.history(registration["user_id"], headers=headers)

    # THEN API Gateway refuses
    assert status == 403 and body["error"] == "forbidden" and set(body) == {"error", "message", "details"}


@pytest.fixture
def dead_lettered(running: RunningStack) -> Iterator[tuple[dict[str, str], dict[str, Any]]]:
    """A guest registered while WAHA was down, whose welcome has gone through its retries to the DLQ."""
    dlq_url = running.resources.dead_letter_queue_url
    running.waha_fault("down")
    try:
        guest = new_guest()
        status, registration = running.register(guest)
        assert status == 201, registration
        eventually(lambda: queue_depth(running.sqs, dlq_url) == 1, "the welcome in the dead-letter queue")
        running.waha_fault("ok")
        yield guest, registration
    finally:
        running.waha_fault("ok")
        # What a test left there must not be redriven by the next one (PurgeQueue allows one call a minute).
        running.empty_queue(dlq_url)


def test_undeliverable_welcome_ends_failed_with_its_error_in_the_dead_letter_queue(
    running: RunningStack, dead_lettered: tuple[dict[str, str], dict[str, Any]]
) -> None:
    """WAHA down through every retry: registration is still 201, the welcome is FAILED with the reason, in the DLQ."""
    # GIVEN a guest registered (201) while WAHA was unreachable, after the sender's retries
    guest, registration = dead_lettered

    # WHEN their history is read and the dead-letter queue looked at
    (message,) = running.conversation(registration["user_id"])
    (record,) = running.sqs.receive_message(
        QueueUrl=running.resources.dead_letter_queue_url, VisibilityTimeout=0, WaitTimeSeconds=1
    )["Messages"]

    # THEN the welcome is FAILED with WAHA's error, its key is what the DLQ holds, and WhatsApp got nothing
    assert message["role"] == "System" and message["status"] == "FAILED"
    assert message["error"].startswith("WAHA unreachable")
    key = json.loads(record["Body"])
    assert key["pk"] == f"USER#{registration['user_id']}" and key["sk"].endswith(f"#{message['id']}")
    assert queue_depth(running.sqs, running.resources.outbound_queue_url) == 0
    assert running.sent_to(chat_of(guest)) == []


def test_redrive_after_waha_recovers_delivers_the_failed_welcome(
    running: RunningStack, dead_lettered: tuple[dict[str, str], dict[str, Any]]
) -> None:
    """Once WAHA is back, `make redrive` moves the dead-lettered welcome back; it is sent and ends SENT."""
    # GIVEN a welcome FAILED in the dead-letter queue, and WAHA healthy again
    guest, registration = dead_lettered

    # WHEN the dead-letter queue is redriven
    moved = redrive(running.sqs, running.resources.dead_letter_queue_url, running.resources.outbound_queue_url)

    # THEN the welcome reaches the guest once, and the history shows it SENT without an error
    assert moved == 1
    assert eventually(lambda: running.sent_to(chat_of(guest)), "the redriven welcome at WAHA") == [
        welcome("Test Guest", "101")
    ]
    (message,) = eventually(lambda: delivered(running, registration["user_id"], 1), "the redriven welcome SENT")
    assert "error" not in message
    assert queue_depth(running.sqs, running.resources.dead_letter_queue_url) == 0


def test_webhook_signed_with_the_hmac_key_is_accepted(running: RunningStack) -> None:
    """With WAHA_WEBHOOK_HMAC_KEY set, a delivery carrying WAHA's HMAC of its exact bytes is stored and answered."""
    # GIVEN a registered guest, and a webhook body signed as WAHA signs it
    guest, registration = registered(running)
    raw = json.dumps(waha_message(chat_of(guest), "Signed hello")).encode()
    signed = {"X-Webhook-Hmac": webhook_hmac(HMAC_KEY, raw), "X-Webhook-Hmac-Algorithm": "sha512"}

    # WHEN it is posted to the webhook
    status = running.post_webhook(raw, signed)

    # THEN it is taken, and the guest's message and the reply are stored
    assert status == 200
    conversation = running.conversation(registration["user_id"])
    assert [(m["role"], m["text"]) for m in conversation[1:]] == [("User", "Signed hello"), ("System", auto_reply())]


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Webhook-Hmac": "0" * 128, "X-Webhook-Hmac-Algorithm": "sha512"}],
    ids=["unsigned", "wrong signature"],
)
def test_webhook_without_a_valid_hmac_is_401_and_stores_nothing(running: RunningStack, headers: dict[str, str]) -> None:
    """With WAHA_WEBHOOK_HMAC_KEY set, an unsigned or wrongly signed delivery is 401 and nothing is stored."""
    # GIVEN a registered guest, and a well-formed delivery from them that WAHA did not sign
    guest, registration = registered(running)
    raw = json.dumps(waha_message(chat_of(guest), "Forged hello")).encode()

    # WHEN it is posted to the webhook
    status = running.post_webhook(raw, headers)

    # THEN it is refused, and the conversation still holds only the welcome
    assert status == 401
    assert statuses(running.conversation(registration["user_id"])) == [("System", "SENT")]


def test_sweeper_sends_a_pending_message_that_never_reached_the_queue(running: RunningStack) -> None:
    """A message stored PENDING 20 minutes ago but never queued is re-queued by the sweep and sent."""
    # GIVEN a registered guest, and a reply stored PENDING 20 minutes ago whose SendMessage never happened
    guest, registration = registered(running)
    stranded = StoredMessage(
        user_id=registration["user_id"],
        message_id=str(uuid.uuid4()),
        session_id=registration["session_id"],
        role="System",
        text=auto_reply(),
        created_at=iso(datetime.now(UTC) - timedelta(minutes=20)),
        status=PENDING,
        chat_id=chat_of(guest),
        extra={"kind": "auto_reply"},
    )
    running.dynamodb.put_item(TableName=running.resources.table_name, Item=to_item(stranded.item()))

    # WHEN the scheduled sweep runs
    result = running.stack.invoke("SweepOutboxFunction", {})

    # THEN it re-queued that message, which reaches WhatsApp and ends SENT
    assert result == {"requeued": 1}
    assert eventually(lambda: len(running.sent_to(chat_of(guest))) == 2, "the swept message at WAHA")
    assert running.sent_to(chat_of(guest))[1] == auto_reply()
    conversation = eventually(lambda: delivered(running, registration["user_id"], 2), "the swept message SENT")
    # Stamped 20 minutes back, it sorts before the welcome.
    assert conversation[0]["id"] == stranded.message_id
    assert statuses(conversation) == [("System", "SENT"), ("System", "SENT")]
