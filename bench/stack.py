"""The system under measurement, in this process: devstack's LocalStack (moto's server, the template's table,
queues and bucket, the WAHA simulator, every function's handler with its template environment resolved), with
the queues left unconsumed (the figures drive the sender themselves), the webhook's HMAC key read from SSM as
deployed, and the handlers' log lines counted (CloudWatch bills by the byte) instead of printed.

Handlers are called directly with a fresh copy of their event, so a measured duration is the handler's own.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import os
import random
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bench.calls import CallLog, HttpLog, http_recording, recording
from devstack.functions import ensure_layer_on_path
from devstack.lambda_context import LambdaContext
from devstack.sender import sqs_record
from devstack.stack import EnvironmentPatch, LocalStack, StackConfig
from devstack.template import REPO_ROOT, functions

ensure_layer_on_path()  # devstack.waha_sim imports `concierge`, which lives in the layer, as in Lambda

from devstack.waha_sim import message_event, webhook_hmac  # noqa: E402

HMAC_PARAMETER = "/concierge/bench/waha-webhook-hmac"
HMAC_KEY = "bench-hmac-key"  # not a secret: it signs webhooks between this process and its own handlers
WAHA_SESSION = "default"
HOTEL_CHAT_ID = "6280000000000@c.us"
# Code is measured, not the waits that pace sends like a person (bench.pacing measures those), and every guest
# message of a series is answered, as in the cost model's stay (ten messages spread over days).
SETTINGS = {
    "AUTO_REPLY_COOLDOWN_MINUTES": "0",
    "TYPING_SECONDS_MAX": "0",
    "MIN_SECONDS_BETWEEN_MESSAGES_PER_CHAT": "0",
    "MAX_MESSAGES_PER_MINUTE": "0",
}
DEPLOYED_COOLDOWN_MINUTES = "10"
# The template's defaults, whatever the developer's shell has set.
CLEARED = ("HANDOFF_MINUTES", "BUSINESS_HOURS", "HOTEL_TIMEZONE", "HOTEL_NAME", "SESSION_GRACE_HOURS")
CLEARED += ("SESSION_MAX_DAYS", "MESSAGE_RETENTION_DAYS", "WEBHOOK_MAX_AGE_HOURS", "LOG_LEVEL", "AWS_ENDPOINT_URL")
CLEARED += ("WAHA_HOST", "WAHA_SESSION", "WAHA_API_KEY", "WAHA_WEBHOOK_HMAC_KEY", "OUTBOUND_RETRY_BASE_SECONDS")

REGISTER, WEBHOOK, HISTORY = "RegisterGuestFunction", "WahaWebhookFunction", "GuestMessagesFunction"
SENDER, SWEEPER, CONVERSATIONS = "SendWhatsappFunction", "SweepOutboxFunction", "ConversationsFunction"
ANSWERER, ANSWERS = "AnswerGuestFunction", "AnswerQueue"
CLOSE_STAYS, EXPIRE, ERASE, HEALTH = (
    "CloseStaysFunction",
    "ExpireClosedStaysFunction",
    "EraseGuestFunction",
    "HealthFunction",
)


class CountingSink(io.TextIOBase):
    """Stands in for stdout: counts the bytes of the handlers' log lines and drops them."""

    bytes_written = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.bytes_written += len(text.encode("utf-8", errors="replace"))
        return len(text)


def sample_event(name: str) -> dict[str, Any]:
    """A fresh copy of events/<name>.json (the shapes `sam local generate-event` gives)."""
    return json.loads((REPO_ROOT / "events" / f"{name}.json").read_text())


def api_event(sample: str, method: str, route: str, body: Any = None, query: Any = None, **ids: str) -> dict[str, Any]:
    """events/<sample>.json for `method route`, the route's {ids} filled in, with a JSON body and a query."""
    event = sample_event(sample)
    path = route.format(**ids)
    event["path"], event["requestContext"]["path"] = path, "/prod" + path
    event["resource"] = event["requestContext"]["resourcePath"] = route
    event["httpMethod"] = event["requestContext"]["httpMethod"] = method
    event["pathParameters"], event["queryStringParameters"] = ids or None, query
    event["multiValueQueryStringParameters"] = {name: [value] for name, value in query.items()} if query else None
    return with_body(event, json.dumps(body), {}) if body is not None else {**event, "body": None}


def with_body(event: dict[str, Any], raw: str, headers: dict[str, str]) -> dict[str, Any]:
    event["body"], event["isBase64Encoded"] = raw, False
    for name, value in {"Content-Type": "application/json", **headers}.items():
        event["headers"][name], event["multiValueHeaders"][name] = value, [value]
    return event


def register_event(guest: dict[str, str], idempotency_key: str | None = None) -> dict[str, Any]:
    headers = {"x-api-key": "bench", **({"Idempotency-Key": idempotency_key} if idempotency_key else {})}
    return with_body(sample_event("register_guest"), json.dumps(guest), headers)


def webhook_delivery(chat_id: str, text: str, **options: Any) -> dict[str, Any]:
    """A WAHA delivery (options: message_id, event, from_me), from the simulator's builder."""
    return message_event(chat_id, text, me_id=HOTEL_CHAT_ID, session=WAHA_SESSION, **options)


def webhook_event(delivery: dict[str, Any]) -> dict[str, Any]:
    """The API Gateway event of a WAHA delivery as WAHA posts it: compact JSON, signed with HMAC-SHA512."""
    raw = json.dumps(delivery, ensure_ascii=False, separators=(",", ":"))
    headers = {"X-Webhook-Hmac": webhook_hmac(HMAC_KEY, raw.encode()), "X-Webhook-Hmac-Algorithm": "sha512"}
    return with_body(sample_event("waha_webhook"), raw, headers)


def ack_delivery(chat_id: str, waha_id: str, ack: int) -> dict[str, Any]:
    """WAHA's `message.ack` for one of the hotel's messages."""
    from concierge.conversations.ticks import ACK_NAMES

    delivery = webhook_delivery(chat_id, "", message_id=waha_id, event="message.ack", from_me=True)
    payload = {"id": waha_id, "from": chat_id, "participant": None, "fromMe": True, "ack": ack}
    delivery["payload"] = {**payload, "ackName": ACK_NAMES[ack]}
    return delivery


def session_status_delivery(status: str = "WORKING") -> dict[str, Any]:
    delivery = webhook_delivery(HOTEL_CHAT_ID, "", event="session.status")
    delivery["payload"] = {"name": WAHA_SESSION, "status": status, "statuses": [{"status": status}]}
    return delivery


def history_event(user_id: str) -> dict[str, Any]:
    return api_event("guest_messages", "GET", "/api/v1/guests/{user_id}/messages", user_id=user_id)


def sessions_event(status: str | None = None) -> dict[str, Any]:
    return api_event("conversations", "GET", "/api/v1/sessions", query={"status": status} if status else None)


def session_event(session_id: str, action: str, body: Any) -> dict[str, Any]:
    """POST /api/v1/sessions/{session_id}/<action>: messages (a staff reply) or resolve."""
    return api_event("conversations", "POST", f"/api/v1/sessions/{{session_id}}/{action}", body, session_id=session_id)


def checkout_event(user_id: str) -> dict[str, Any]:
    return api_event("conversations", "POST", "/api/v1/guests/{user_id}/checkout", {}, user_id=user_id)


def erase_event(user_id: str) -> dict[str, Any]:
    return api_event("erase_guest", "DELETE", "/api/v1/guests/{user_id}", user_id=user_id)


def days_ago(days: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=days)).isoformat()


def chat_id_of(phone_number: str) -> str:
    """WAHA's chat id of a local 08... number (Indonesia) or of an E.164 one."""
    return f"{phone_number[1:]}@c.us" if phone_number.startswith("+") else f"62{phone_number[1:]}@c.us"


def our_waha_id(chat_id: str, message_key: dict[str, str]) -> str:
    """How WAHA (WEBJS) names one of our sends: `true_<chat>_<ID>`, ID the one we asked it to use."""
    from concierge import keys

    return f"true_{chat_id}_{keys.outbound_waha_id(message_key['sk'].rsplit('#', 1)[1])}"


def written_keys(records: list[Any]) -> list[dict[str, str]]:
    """The keys of the items that recorded calls (bench.calls, kept with parameters) put."""
    found = []
    for record in records:
        params = record.params or {}
        if record.error is None and record.operation == "DynamoDB.TransactWriteItems":
            found += [action["Put"]["Item"] for action in params["TransactItems"] if "Put" in action]
        elif record.error is None and record.operation == "DynamoDB.PutItem":
            found.append(params["Item"])
    return [{"pk": item["pk"]["S"], "sk": item["sk"]["S"]} for item in found]


@dataclass(frozen=True)
class Outcome:
    """A handler's answer, its time, and the AWS and WAHA calls it made (bench.calls)."""

    result: Any
    seconds: float
    aws: CallLog
    waha: HttpLog


class BenchStack:
    """LocalStack for measuring; `call` invokes one handler, the rest sets data up (never timed)."""

    def __init__(self) -> None:
        self.local = LocalStack(StackConfig(api_port=0, moto_port=0, waha_sim_port=0, resource_prefix="bench"))
        self.specs = functions()
        self.sink = CountingSink()
        self._phones = itertools.count(random.randrange(10_000_000, 50_000_000))
        self._env = EnvironmentPatch()
        self._stdout = sys.stdout
        self._clients: dict[str, Any] = {}

    def __enter__(self) -> BenchStack:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto logs every request it serves
        self._env.update({**dict.fromkeys(CLEARED), **SETTINGS})
        # Before the handlers load: Powertools' loggers keep the stdout they were created with.
        sys.stdout = self.sink
        try:
            self.local.start()
            for poller in self.local.pollers:
                poller.stop()
            self.local.pollers.clear()
            self.client("ssm").put_parameter(Name=HMAC_PARAMETER, Value=HMAC_KEY, Type="SecureString", Overwrite=True)
            self._env.update({"WAHA_WEBHOOK_HMAC_KEY": None, "WAHA_WEBHOOK_HMAC_KEY_PARAM": HMAC_PARAMETER})
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        sys.stdout = self._stdout
        self.local.stop()
        self._env.restore()

    @property
    def waha(self) -> Any:
        return self.local.simulator

    @property
    def resources(self) -> Any:
        return self.local.resources

    @property
    def queue_url(self) -> str:
        return self.resources.outbound_queue_url

    def function_environment(self) -> dict[str, str]:
        """What a function's process sees here: the template's variables resolved locally, AWS, and secrets."""
        names = ["AWS_DEFAULT_REGION", "AWS_REGION", "WAHA_WEBHOOK_HMAC_KEY_PARAM", "STAFF_JWKS_URL", "STAFF_USAGE_KEY"]
        names += [name for name in os.environ if name.startswith("AWS_ENDPOINT_URL")]  # moto, a Bedrock simulator
        found = {name: os.environ[name] for name in [*names, *self.local.function_environment] if name in os.environ}
        return {**found, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}

    def client(self, service: str) -> Any:
        # One per service: clients made per setup step would show in the counts of clients created.
        if service not in self._clients:
            import boto3

            self._clients[service] = boto3.Session().client(service)
        return self._clients[service]

    # --- invoking handlers ---------------------------------------------------------------------------------

    def call(self, function_id: str, event: dict[str, Any]) -> Outcome:
        """Invokes a handler on its own copy of the event (as Lambda decodes it), timing only the handler."""
        spec = self.specs[function_id]
        fresh = json.loads(json.dumps(event))
        context = LambdaContext(function_id, spec.memory_size, spec.timeout)
        with recording(keep_details=True) as aws, http_recording(self.waha.url) as waha:
            started = time.perf_counter()
            result = self.local.handlers[function_id](fresh, context)
            seconds = time.perf_counter() - started
        return Outcome(result, seconds, aws, waha)

    def api(self, function_id: str, event: dict[str, Any], expected: int = 200) -> Outcome:
        outcome = self.call(function_id, event)
        if outcome.result["statusCode"] != expected:
            raise RuntimeError(f"{function_id} answered {outcome.result}, expected {expected}")
        return outcome

    def new_guest(self, **changes: str) -> dict[str, str]:
        guest = {"full_name": "Bench Guest", "room_number": "101", "checkin_date": date.today().isoformat()}
        return {**guest, "email": "guest@example.com", "phone_number": f"0812{next(self._phones):08d}", **changes}

    def register(self, guest: dict[str, str] | None = None, idempotency_key: str | None = None) -> dict[str, Any]:
        """Registers a guest (a new one unless given) and returns the answer's body."""
        outcome = self.api(REGISTER, register_event(guest or self.new_guest(), idempotency_key), expected=201)
        return json.loads(outcome.result["body"])

    def inbound(self, delivery: dict[str, Any], expected: str = "stored") -> Outcome:
        outcome = self.api(WEBHOOK, webhook_event(delivery))
        if json.loads(outcome.result["body"]).get("outcome") != expected:
            raise RuntimeError(f"webhook answered {outcome.result['body']}, expected {expected}")
        return outcome

    def scheduled(self, function_id: str) -> Outcome:
        return self.call(function_id, sample_event(self.specs[function_id].code_dir.name))

    def sqs_event(self, messages: list[dict[str, Any]], queue: str = "OutboundQueue") -> dict[str, Any]:
        return {"Records": [sqs_record(message, self.resources.queue_arns[queue]) for message in messages]}

    def send(self, messages: list[dict[str, Any]]) -> Outcome:
        outcome = self.call(SENDER, self.sqs_event(messages))
        if (outcome.result or {}).get("batchItemFailures"):
            raise RuntimeError(f"the sender reported failed records: {outcome.result}")
        return outcome

    # --- data and queues (setup and checks, never counted) -------------------------------------------------

    def receive(self, count: int, queue: str = "OutboundQueue") -> list[dict[str, Any]]:
        """Up to `count` queued messages, as the event source would batch them."""
        messages: list[dict[str, Any]] = []
        while len(messages) < count:
            got = self.client("sqs").receive_message(
                QueueUrl=self.resources.queue_urls[queue],
                MaxNumberOfMessages=min(10, count - len(messages)),
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            if not got.get("Messages"):
                break
            messages += got["Messages"]
        return messages

    def delete(self, messages: list[dict[str, Any]], queue: str = "OutboundQueue") -> None:
        for start in range(0, len(messages), 10):
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages[start:][:10])]
            self.client("sqs").delete_message_batch(QueueUrl=self.resources.queue_urls[queue], Entries=entries)

    def purge_queue(self, queue: str = "OutboundQueue") -> None:
        while messages := self.receive(10, queue):
            self.delete(messages, queue)

    def deliver_queued(self) -> None:
        """Runs the sender over everything queued, as the event source would."""
        while messages := self.receive(10):
            self.send(messages)
            self.delete(messages)

    def images(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Every item of the table as DynamoDB holds it (attribute values typed), by (pk, sk)."""
        pages = self.client("dynamodb").get_paginator("scan").paginate(TableName=self.resources.table_name)
        return {(item["pk"]["S"], item["sk"]["S"]): item for page in pages for item in page["Items"]}

    def partition(self, user_id: str) -> list[dict[str, Any]]:
        """The guest's items (profile, check-ins, sessions, messages), by key order."""
        from concierge import keys

        return [item for key, item in sorted(self.images().items()) if key[0] == keys.user_partition(user_id)]

    def message_keys(self, user_id: str, kind: str) -> list[dict[str, str]]:
        """The keys of a guest's messages of one kind (welcome, auto_reply, farewell...), oldest first."""
        rows = [item for item in self.partition(user_id) if item.get("kind", {}).get("S") == kind]
        return [{"pk": item["pk"]["S"], "sk": item["sk"]["S"]} for item in rows]

    def write_messages(
        self, user_id: str, chat_id: str, count: int, *, pending: bool, age_seconds: float = 0.0, enqueue: bool = False
    ) -> list[dict[str, str]]:
        """Message rows as the functions write them, without a handler. Pending: System auto-replies (queued with
        `enqueue`, else marked UNQUEUED as when SQS refused them); otherwise guest and hotel lines alternating,
        the hotel's SENT. Returns the keys, oldest first."""
        from concierge import store, templates
        from concierge.sending import outbox

        created, session_id, keys, rows = time.time() - age_seconds, str(uuid.uuid4()), [], []
        for index in range(count):
            ours = pending or index % 2 == 1
            message = store.StoredMessage(
                user_id=user_id,
                message_id=str(uuid.uuid4()),
                session_id=session_id,
                role="System" if ours else "User",
                text=templates.auto_reply() if ours else f"Guest question number {index}?",
                created_at=time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{index:06d}Z",
                status=store.PENDING if pending else (store.SENT if ours else store.RECEIVED),
                chat_id=chat_id,
                queued=enqueue,
                extra={"kind": "auto_reply"} if ours else {},
            )
            rows.append({"PutRequest": {"Item": store.to_item(message.item())}})
            keys.append(message.key)
        for start in range(0, count, 25):
            self.client("dynamodb").batch_write_item(RequestItems={self.resources.table_name: rows[start:][:25]})
        for start in range(0, count if enqueue else 0, 10):
            entries = [{"Id": str(i), "MessageBody": outbox.body(key)} for i, key in enumerate(keys[start:][:10])]
            self.client("sqs").send_message_batch(QueueUrl=self.queue_url, Entries=entries)
        return keys

    def forget(self, item_keys: list[dict[str, str]]) -> None:
        """Deletes rows measured calls wrote: moto copies the table on every TransactWriteItems (to roll back),
        so a series would otherwise get slower as the table grows."""
        unique = list({(key["pk"], key["sk"]): key for key in item_keys}.values())
        for start in range(0, len(unique), 25):
            requests = [
                {"DeleteRequest": {"Key": {k: {"S": key[k]} for k in ("pk", "sk")}}} for key in unique[start:][:25]
            ]
            self.client("dynamodb").batch_write_item(RequestItems={self.resources.table_name: requests})

    @contextmanager
    def setting(self, **values: str) -> Iterator[None]:
        """Settings changed inside the block, as a container deployed with them would read them."""
        from concierge import config

        patch = EnvironmentPatch()
        patch.update(values)
        config.conversation_settings.cache_clear()
        config.pacing_settings.cache_clear()
        try:
            yield
        finally:
            patch.restore()
            config.conversation_settings.cache_clear()
            config.pacing_settings.cache_clear()
