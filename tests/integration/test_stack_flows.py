"""The whole local stack as `make run` starts it (moto, WAHA simulator, API emulation, SQS poller, real handlers),
driven over real HTTP: the guide's flows, the API key, WAHA's HMAC, retries into the dead-letter queue, redrive
and the outbox sweeper; conversations (one reply to quick lines, staff replies and handoff, the hotel's own
phone, ticks, the list of open conversations, check-out); the AI concierge answering from the sample hotel's file.

One stack serves the whole file. Each test registers its own guest (its own phone number), so tests do not see
each other's messages; a WAHA fault is switched back to "ok" by the fixture that set it, and so are the
simulator's acks (off, so that sent messages stay SENT for the other tests).
"""

from __future__ import annotations

import base64
import itertools
import json
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import boto3
import pytest
import urllib3

from concierge.phone import chat_id, to_e164
from concierge.store import PENDING, StoredMessage, iso, to_item
from concierge.templates import auto_reply, farewell, welcome
from devstack.redrive import queue_depth, redrive
from devstack.stack import SAMPLE_KNOWLEDGE_FILE, LocalStack, StackConfig
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
SENT_OR_LATER = ("SENT", "DELIVERED", "READ")

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

    def webhook(self, delivery: dict[str, Any]) -> tuple[int, Any]:
        """A WAHA delivery posted as WAHA would, signed; the webhook's answer."""
        raw = json.dumps(delivery).encode()
        signed = {"X-Webhook-Hmac": webhook_hmac(HMAC_KEY, raw), "X-Webhook-Hmac-Algorithm": "sha512"}
        return self._json_raw("POST", self.api_url + WEBHOOK_PATH, raw, signed)

    def _json_raw(self, method: str, url: str, raw: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        response = self.http.request(method, url, body=raw, headers={"Content-Type": "application/json", **headers})
        return response.status, json.loads(response.data) if response.data else None

    def _api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return self._json(method, self.api_url + path, body, {"x-api-key": API_KEY})

    def staff_reply(self, session_id: str, text: str, author: str = "Front desk") -> tuple[int, Any]:
        return self._api("POST", f"/api/v1/sessions/{session_id}/messages", {"text": text, "author": author})

    def resolve(self, session_id: str) -> tuple[int, Any]:
        return self._api("POST", f"/api/v1/sessions/{session_id}/resolve")

    def checkout(self, user_id: str) -> tuple[int, Any]:
        return self._api("POST", f"/api/v1/guests/{user_id}/checkout")

    def sessions(self, status: str) -> list[dict[str, Any]]:
        """The open conversations (`open` or `waiting`), most recent activity first: every page."""
        found: list[dict[str, Any]] = []
        cursor = ""
        while True:
            code, body = self._api("GET", f"/api/v1/sessions?status={status}&limit=100" + cursor)
            assert code == 200, body
            found += body["sessions"]
            if not body["next_cursor"]:
                return found
            cursor = f"&cursor={body['next_cursor']}"

    def hotel_writes(self, phone: str, text: str) -> dict[str, Any]:
        """The hotel writing to a guest from its own phone: the simulator posts WAHA's message.any with fromMe."""
        status, body = self._json("POST", f"{self.waha_url}/api/sim/hotel-message", {"phone": phone, "text": text})
        assert status == 200, body
        return body

    def waha_acks(self, delivered_seconds: float | None, read_seconds: float | None) -> None:
        body = {"delivered_seconds": delivered_seconds, "read_seconds": read_seconds}
        status, answer = self._json("POST", f"{self.waha_url}/api/sim/acks", body)
        assert status == 200 and answer == body, answer

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
    """The conversation once it holds `count` messages and every one we send (System, Staff) is SENT; else []."""
    conversation = running.conversation(user_id)
    done = len(conversation) == count and all(m["status"] == "SENT" for m in conversation if m["role"] != "User")
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

    # THEN it is taken, and the guest's message and the reply (decided after the webhook answered) are stored
    assert status == 200
    conversation = eventually(lambda: delivered(running, registration["user_id"], 3), "the auto-reply SENT")
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


# --- conversations ----------------------------------------------------------------------------------------


def by_role(messages: list[dict[str, Any]], role: str) -> list[dict[str, Any]]:
    return [message for message in messages if message["role"] == role]


def test_three_quick_lines_get_one_reply_which_reaches_whatsapp(running: RunningStack) -> None:
    """A guest who sends three lines in a row gets one auto-reply on WhatsApp, not three."""
    # GIVEN a registered guest whose welcome went out
    guest, registration = registered(running)

    # WHEN they write three lines, one right after the other, none of which the hotel's file answers
    lines = ["Hello", "I have a question", "about my booking"]
    for text in lines:
        running.guest_writes(guest["phone_number"], text)

    # THEN all three are stored, one reply follows, and WhatsApp gets the welcome and that reply only
    conversation = eventually(lambda: delivered(running, registration["user_id"], 5), "the one reply SENT")
    assert [m["text"] for m in by_role(conversation, "User")] == lines
    assert [m["text"] for m in by_role(conversation, "System")[1:]] == [auto_reply()]
    assert conversation[1]["text"] == "Hello"
    assert running.sent_to(chat_of(guest)) == [welcome("Test Guest", "101"), auto_reply()]


def test_staff_reply_reaches_whatsapp_and_the_bot_stays_quiet_afterwards(running: RunningStack) -> None:
    """A staff reply is 202, stored as Staff with its author and sent; the guest's next line gets no auto-reply."""
    # GIVEN a registered guest who has had no auto-reply yet
    guest, registration = registered(running)

    # WHEN the front desk writes to them, and the guest answers
    status, message = running.staff_reply(registration["session_id"], "Your taxi is booked for 7:00.")
    assert status == 202, message
    eventually(lambda: len(running.sent_to(chat_of(guest))) == 2, "the staff reply at WAHA")
    running.guest_writes(guest["phone_number"], "Thank you!")

    # THEN the reply reached WhatsApp, and the guest's line is stored without an auto-reply (handoff)
    assert (message["role"], message["author"], message["status"]) == ("Staff", "Front desk", "PENDING")
    assert running.sent_to(chat_of(guest))[1] == "Your taxi is booked for 7:00."
    conversation = eventually(lambda: delivered(running, registration["user_id"], 3), "the staff reply SENT")
    assert [(m["role"], m.get("author"), m["text"]) for m in conversation[1:]] == [
        ("Staff", "Front desk", "Your taxi is booked for 7:00."),
        ("User", None, "Thank you!"),
    ]
    assert conversation[1]["status"] == "SENT" and len(running.sent_to(chat_of(guest))) == 2


def test_resolve_hands_the_conversation_back_to_the_bot(running: RunningStack) -> None:
    """After staff wrote, resolve ends the handoff at once: the guest's next line gets the auto-reply again."""
    # GIVEN a guest whom staff have answered (the bot is quiet for HANDOFF_MINUTES)
    guest, registration = registered(running)
    assert running.staff_reply(registration["session_id"], "Hello from the front desk.")[0] == 202

    # WHEN staff hand the conversation back, and the guest writes
    status, body = running.resolve(registration["session_id"])
    running.guest_writes(guest["phone_number"], "One more question")

    # THEN the answer says so, and the bot answers the guest again, on WhatsApp too
    assert status == 200 and body["handoff"] is False, body
    assert eventually(lambda: auto_reply() in running.sent_to(chat_of(guest)), "the auto-reply at WAHA")
    conversation = running.conversation(registration["user_id"])
    assert [(m["role"], m["text"]) for m in conversation[-2:]] == [
        ("User", "One more question"),
        ("System", auto_reply()),
    ]


@pytest.fixture
def acks_on(running: RunningStack) -> Iterator[RunningStack]:
    """The simulator acknowledging what it sends, as WhatsApp would: DEVICE soon, READ soon after."""
    running.waha_acks(0.2, 0.2)
    try:
        yield running
    finally:
        running.waha_acks(None, None)


def test_read_tick_from_whatsapp_shows_in_the_history(acks_on: RunningStack) -> None:
    """The simulator's acks (DEVICE, then READ) of a staff reply reach the webhook: the history shows it READ."""
    # GIVEN a registered guest, with WhatsApp acknowledging what is sent
    running = acks_on
    guest, registration = registered(running)

    # WHEN staff write to them, and the guest's phone shows and reads the message
    status, message = running.staff_reply(registration["session_id"], "Your room is ready.")
    assert status == 202, message

    # THEN the history shows the reply READ, with when it was delivered and read
    def read() -> dict[str, Any] | None:
        found = next(m for m in running.conversation(registration["user_id"]) if m["id"] == message["id"])
        return found if found["status"] == "READ" else None

    reply = eventually(read, "the staff reply READ")
    assert reply["delivered_at"] <= reply["read_at"] and reply["read_at"] > reply["created_at"]
    assert running.sent_to(chat_of(guest))[-1] == "Your room is ready."


def test_message_from_the_hotels_phone_is_stored_as_staff_and_not_answered(running: RunningStack) -> None:
    """A fromMe message.any (the hotel writing from its own phone) is stored as Staff by WhatsApp; no reply."""
    # GIVEN a registered guest
    guest, registration = registered(running)

    # WHEN the hotel writes to them from its own WhatsApp phone
    result = running.hotel_writes(guest["phone_number"], "Your taxi is at the entrance.")

    # THEN it is part of the conversation as staff's, already sent, and nothing else goes out
    assert result["delivered"] is True and result["status"] == 200
    conversation = running.conversation(registration["user_id"])
    assert [(m["role"], m.get("author"), m["text"]) for m in conversation[1:]] == [
        ("Staff", "WhatsApp", "Your taxi is at the entrance.")
    ]
    assert conversation[1]["status"] in SENT_OR_LATER
    assert running.sent_to(chat_of(guest)) == [welcome("Test Guest", "101")]


def test_sessions_list_shows_open_conversations_and_who_is_waiting(running: RunningStack) -> None:
    """GET /api/v1/sessions lists open stays, newest activity first; `waiting` keeps those staff owe an answer."""
    # GIVEN a guest who has not written, and one who has written what the hotel's file does not answer (the
    # answering function hands it to staff; the auto-reply it sends answers no one)
    _, quiet = registered(running)
    writer, waiting = registered(running)
    running.guest_writes(writer["phone_number"], "Hello, I need help")

    def writer_waiting() -> list[dict[str, Any]]:
        listed = running.sessions("waiting")
        return listed if waiting["session_id"] in [entry["session_id"] for entry in listed] else []

    # WHEN the front desk lists the conversations, answers the waiting guest, and lists them again
    waiting_before = eventually(writer_waiting, "the writer on the waiting list")
    open_before = running.sessions("open")
    assert running.staff_reply(waiting["session_id"], "How can we help?")[0] == 202
    open_after = [entry["session_id"] for entry in running.sessions("open")]
    waiting_after = [entry["session_id"] for entry in running.sessions("waiting")]

    # THEN both are open, the writer first; only the writer waited, since their line, and no longer
    listed = [entry["session_id"] for entry in open_before]
    assert listed.index(waiting["session_id"]) < listed.index(quiet["session_id"])
    (entry,) = [entry for entry in waiting_before if entry["session_id"] == waiting["session_id"]]
    line = by_role(running.conversation(waiting["user_id"]), "User")[0]
    assert entry["waiting_since"] == line["created_at"]
    assert (entry["guest_name"], entry["room_number"], entry["user_id"]) == ("Test Guest", "101", waiting["user_id"])
    assert entry["phone"].endswith(writer["phone_number"][-4:]) and writer["phone_number"][-8:] not in entry["phone"]
    assert entry["last_message"]["role"] in ("User", "System")
    assert entry["request"] is None  # waiting for staff, not for a department
    assert quiet["session_id"] not in [entry["session_id"] for entry in waiting_before]
    assert {waiting["session_id"], quiet["session_id"]} <= set(open_after)
    assert waiting["session_id"] not in waiting_after


def test_the_ai_concierge_answers_from_the_hotels_file_and_routes_a_request(running: RunningStack) -> None:
    """With make run's hotel file (the sample hotel's), a question it answers gets that FAQ's answer on WhatsApp as
    written, and nobody waits; a towel request gets housekeeping's reply and waits on the list for housekeeping."""
    # GIVEN a registered guest, and the sample hotel's file the stack answers from
    assert running.stack.function_environment["KNOWLEDGE_FILE"] == str(SAMPLE_KNOWLEDGE_FILE)
    hotel = tomllib.loads(SAMPLE_KNOWLEDGE_FILE.read_text(encoding="utf-8"))
    wifi = next(faq for faq in hotel["faq"] if faq["id"] == "wifi")
    housekeeping = next(request for request in hotel["request"] if request["department"] == "housekeeping")
    guest, registration = registered(running)

    def sent(count: int) -> list[str]:
        texts = running.sent_to(chat_of(guest))
        return texts if len(texts) == count else []

    # WHEN they ask for the wifi in Indonesian slang
    running.guest_writes(guest["phone_number"], "wifi nya apa ya kak?")

    # THEN WhatsApp gets the file's Indonesian answer, word for word, and nobody is left waiting
    assert eventually(lambda: sent(2), "the answer at WAHA")[1] == wifi["answer"]["id"]
    waiting = [entry["session_id"] for entry in running.sessions("waiting")]
    assert registration["session_id"] not in waiting

    # WHEN they then ask for towels in English
    running.guest_writes(guest["phone_number"], "Could I get two more towels please?")

    # THEN housekeeping's English reply reaches WhatsApp, and the conversation waits for housekeeping
    assert eventually(lambda: sent(3), "the request's reply at WAHA")[2] == housekeeping["reply"]["en"]
    (entry,) = [entry for entry in running.sessions("waiting") if entry["session_id"] == registration["session_id"]]
    assert entry["request"]["department"] == "housekeeping"
    assert entry["request"]["text"] == "Could I get two more towels please?"
    conversation = running.conversation(registration["user_id"])
    assert [line["routed"]["to"] for line in by_role(conversation, "User")] == ["answer", "request"]
    replies = by_role(conversation, "System")[1:]
    assert [(m["kind"], m.get("faq_id"), m.get("department")) for m in replies] == [
        ("answer", "wifi", None),
        ("request", None, "housekeeping"),
    ]


def test_checkout_sends_the_farewell_and_a_later_message_finds_no_active_session(running: RunningStack) -> None:
    """Check-out closes the stay (200), the farewell reaches WhatsApp; afterwards the guest's line is not stored."""
    # GIVEN a registered guest
    guest, registration = registered(running)

    # WHEN the hotel checks them out, does so again, and the guest then writes
    status, closed = running.checkout(registration["user_id"])
    eventually(lambda: len(running.sent_to(chat_of(guest))) == 2, "the farewell at WAHA")
    again_status, again = running.checkout(registration["user_id"])
    after_status, after = running.webhook(waha_message(chat_of(guest), "Can I still order room service?"))

    # THEN the stay ended with the guide's fields, one farewell went out, and the late line found no stay
    assert status == again_status == 200, closed
    assert (closed["session_id"], closed["is_active"]) == (registration["session_id"], False)
    assert closed["end"] and closed["duration"] >= 0 and again == closed
    assert running.sent_to(chat_of(guest)) == [welcome("Test Guest", "101"), farewell("Test Guest")]
    assert after_status == 200 and after["outcome"] == "no_active_session", after
    assert [m["role"] for m in running.conversation(registration["user_id"])] == ["System", "System"]
    assert registration["session_id"] not in [entry["session_id"] for entry in running.sessions("open")]


def test_a_guests_photo_is_copied_and_its_link_in_the_history_serves_it(running: RunningStack) -> None:
    """A photo through WAHA: the webhook stores its caption, the media queue's consumer copies WAHA's file into the
    bucket (moto's S3), the auto-reply still goes out, and the history's link opens our copy over HTTP."""
    # GIVEN a registered guest
    guest, registration = registered(running)
    photo = b"\xff\xd8\xff\xe0 the view from room 101 \xff\xd9"

    # WHEN they send a photo with a caption (the simulator keeps it at /api/files/ behind its key)
    media = {"mimetype": "image/jpeg", "filename": "view.jpg", "data": base64.b64encode(photo).decode()}
    status, body = running._json(
        "POST", f"{running.waha_url}/api/sim/inbound", {"phone": guest["phone_number"], "text": "Look", "media": media}
    )

    # THEN the photo is stored with its link, which serves the very bytes, and the auto-reply reached WhatsApp
    assert status == 200 and body["delivered"] is True, body

    def copied() -> dict[str, Any] | None:
        line = by_role(running.conversation(registration["user_id"]), "User")
        return line[0] if line and "url" in line[0].get("media", {}) else None

    line = eventually(copied, "the photo's link in the history")
    assert (line["text"], line["media"]["mimetype"], line["media"]["filename"]) == ("Look", "image/jpeg", "view.jpg")
    assert line["media"]["size"] == len(photo)
    fetched = running.http.request("GET", line["media"]["url"])
    assert (fetched.status, fetched.data) == (200, photo)
    assert eventually(lambda: auto_reply() in running.sent_to(chat_of(guest)), "the auto-reply at WAHA")
