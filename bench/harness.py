"""The system under measurement, in this process: moto's server, the template's table and queues, two WAHA
simulators (instant and 50 ms), and every function of template.yaml, its handler loaded from functions/*/app.py
as Lambda would load it.

Handlers are called directly with a fresh copy of their event, so a measured duration is the handler's own:
the JSON round trip Lambda's runtime does around it is done before the clock starts.
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
from functools import cache
from typing import Any

import boto3

from bench.calls import recording
from devstack.functions import Handler, ensure_layer_on_path, load_handler
from devstack.lambda_context import LambdaContext
from devstack.resources import LocalResources, create_resources
from devstack.sender import sqs_record
from devstack.stack import EnvironmentPatch
from devstack.template import REPO_ROOT, FunctionSpec, functions

# devstack.waha_sim imports `concierge`, which lives in the layer, as it does in Lambda.
ensure_layer_on_path()

from devstack.waha_sim import WahaSimulator, message_event, webhook_hmac  # noqa: E402

REGION = "us-east-1"
EVENTS_DIR = REPO_ROOT / "events"
RESOURCE_PREFIX = "bench"
HMAC_PARAMETER = "/concierge/bench/waha-webhook-hmac"
# Not a secret: the key only signs webhooks between this process and its own handlers.
HMAC_KEY = "bench-hmac-key"
WAHA_SESSION = "default"
HOTEL_CHAT_ID = "6280000000000@c.us"
# The throughput run's WAHA: a real WAHA answers sendText in tens of milliseconds.
SLOW_WAHA_LATENCY_SECONDS = 0.05

REGISTER = "RegisterGuestFunction"
WEBHOOK = "WahaWebhookFunction"
HISTORY = "GuestMessagesFunction"
SENDER = "SendWhatsappFunction"
SWEEPER = "SweepOutboxFunction"
CONVERSATIONS = "ConversationsFunction"
CLOSE_STAYS = "CloseStaysFunction"
ERASE = "EraseGuestFunction"
EXPIRE = "ExpireClosedStaysFunction"
HEALTH = "HealthFunction"

# What Lambda would hold for every function (the template's Globals resolved locally), set before any handler
# module is imported because Powertools reads its settings when a module creates its Logger.
_FIXED_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_RETRY_MODE": "standard",
    "AWS_MAX_ATTEMPTS": "5",
    "DEFAULT_PHONE_REGION": "ID",
    "WAHA_API_PATH": "/api/sendText",
    "WAHA_SESSION": WAHA_SESSION,
    "OUTBOUND_MAX_RECEIVE_COUNT": "5",
    "POWERTOOLS_SERVICE_NAME": "concierge",
    "POWERTOOLS_METRICS_NAMESPACE": "Concierge",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    # Tracing needs the X-Ray daemon that only Lambda has; Powertools would switch it off here anyway.
    "POWERTOOLS_TRACE_DISABLED": "true",
    # The webhook reads its key from SSM as deployed (once, then cached for five minutes).
    "WAHA_WEBHOOK_HMAC_KEY_PARAM": HMAC_PARAMETER,
    # Every guest message of a series is answered, as in the cost model's stay (ten messages spread over days);
    # `conversation_setting` puts the template's 10 minutes back where a flow is about the cooldown.
    "AUTO_REPLY_COOLDOWN_MINUTES": "0",
    # No typing pauses or send slots: the flows, latencies and throughput measure the code, not the waits that
    # pace sends like a person (3 s of typing per message by default); bench/pacing.py measures those.
    "TYPING_SECONDS_MAX": "0",
    "MIN_SECONDS_BETWEEN_MESSAGES_PER_CHAT": "0",
    "MAX_MESSAGES_PER_MINUTE": "0",
}
# The cooldown the template deploys with (AutoReplyCooldownMinutes' default).
DEPLOYED_COOLDOWN_MINUTES = "10"
_CLEARED_ENVIRONMENT = (
    "WAHA_API_KEY",
    "WAHA_API_KEY_PARAM",
    "WAHA_WEBHOOK_HMAC_KEY",
    "OUTBOUND_RETRY_BASE_SECONDS",
    # The template's defaults, whatever the shell running the benchmark has set.
    "HANDOFF_MINUTES",
    "BUSINESS_HOURS",
    "HOTEL_TIMEZONE",
    "SESSION_GRACE_HOURS",
    "SESSION_MAX_DAYS",
    "MESSAGE_RETENTION_DAYS",
    "WEBHOOK_MAX_AGE_HOURS",
)


def _drop_emptied_partitions() -> bool:
    """Makes moto forget a partition once its last item is deleted, as DynamoDB has no empty partitions.

    moto keeps an empty dict per deleted partition key and deep-copies them all on every TransactWriteItems, so
    the rows the benchmark deletes after each call would still slow every later transaction. Returns False, and
    changes nothing, if this moto's table does not look as expected."""
    try:
        from moto.dynamodb.models.table import Table
    except ImportError:
        return False
    original = getattr(Table, "delete_item", None)
    if original is None or getattr(original, "bench_drops_partitions", False):
        return original is not None

    def delete_item(self: Any, hash_key: Any, range_key: Any) -> Any:
        item = original(self, hash_key, range_key)
        partitions = getattr(self, "items", None)
        if range_key is not None and isinstance(partitions, dict) and partitions.get(hash_key) == {}:
            del partitions[hash_key]
        return item

    delete_item.bench_drops_partitions = True  # type: ignore[attr-defined]
    Table.delete_item = delete_item
    return True


class CountingSink(io.TextIOBase):
    """Stands in for stdout: log lines are formatted as in Lambda, counted (CloudWatch bills by the byte), dropped."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes_written = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.bytes_written += len(text.encode("utf-8", errors="replace"))
        return len(text)


@cache
def _sample(name: str) -> str:
    return (EVENTS_DIR / f"{name}.json").read_text()


def sample_event(name: str) -> dict[str, Any]:
    """A fresh copy of one of events/*.json (the shapes `sam local generate-event` gives)."""
    return json.loads(_sample(name))


def _with_json_body(event: dict[str, Any], body: str, headers: dict[str, str]) -> dict[str, Any]:
    event["body"], event["isBase64Encoded"] = body, False
    for name, value in headers.items():
        event["headers"][name] = value
        event["multiValueHeaders"][name] = [value]
    return event


def register_event(guest: dict[str, str], idempotency_key: str | None = None) -> dict[str, Any]:
    headers = {"Content-Type": "application/json", "x-api-key": "bench"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    return _with_json_body(sample_event("register_guest"), json.dumps(guest), headers)


def webhook_delivery(
    chat_id: str, text: str, message_id: str | None = None, event: str = "message", from_me: bool = False
) -> dict[str, Any]:
    """A WAHA `message` envelope; from_me makes it the echo of a message the hotel sent (message.any)."""
    return message_event(
        chat_id, text, message_id=message_id, event=event, from_me=from_me, me_id=HOTEL_CHAT_ID, session=WAHA_SESSION
    )


def webhook_event(delivery: dict[str, Any]) -> dict[str, Any]:
    """The API Gateway event of a signed WAHA delivery, as WAHA posts it (compact JSON, HMAC-SHA512)."""
    raw = json.dumps(delivery, ensure_ascii=False, separators=(",", ":"))
    headers = {
        "Content-Type": "application/json",
        "X-Webhook-Hmac": webhook_hmac(HMAC_KEY, raw.encode()),
        "X-Webhook-Hmac-Algorithm": "sha512",
        "X-Webhook-Request-Id": delivery["id"],
    }
    return _with_json_body(sample_event("waha_webhook"), raw, headers)


def api_event(
    sample: str,
    path: str,
    parameters: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    body: Any = None,
    method: str | None = None,
    resource: str | None = None,
) -> dict[str, Any]:
    """A route's sample event (events/<sample>.json) for this path, its parameters, query and JSON body."""
    event = sample_event(sample)
    event["path"] = path
    event["requestContext"]["path"] = "/prod" + path
    event["pathParameters"] = parameters
    event["queryStringParameters"] = query or None
    event["multiValueQueryStringParameters"] = {name: [value] for name, value in query.items()} if query else None
    if method:
        event["httpMethod"] = event["requestContext"]["httpMethod"] = method
    if resource:
        event["resource"] = event["requestContext"]["resourcePath"] = resource
    if body is not None:
        _with_json_body(event, json.dumps(body), {"Content-Type": "application/json"})
    else:
        event["body"] = None
    return event


def history_event(user_id: str, limit: int | None = None) -> dict[str, Any]:
    path = f"/api/v1/guests/{user_id}/messages"
    return api_event("guest_messages", path, {"user_id": user_id}, {"limit": str(limit)} if limit else None)


def sessions_event(status: str | None = None) -> dict[str, Any]:
    path = "/api/v1/sessions"
    query = {"status": status} if status else None
    return api_event("conversations", path, None, query, method="GET", resource=path)


def staff_reply_event(session_id: str, text: str = "Your towels are on their way.") -> dict[str, Any]:
    route = "/api/v1/sessions/{session_id}/messages"
    path = route.format(session_id=session_id)
    body = {"text": text, "author": "Front desk"}
    return api_event("conversations", path, {"session_id": session_id}, body=body, method="POST", resource=route)


def resolve_event(session_id: str) -> dict[str, Any]:
    route = "/api/v1/sessions/{session_id}/resolve"
    path = route.format(session_id=session_id)
    return api_event("conversations", path, {"session_id": session_id}, body={}, method="POST", resource=route)


def checkout_event(user_id: str) -> dict[str, Any]:
    route = "/api/v1/guests/{user_id}/checkout"
    path = route.format(user_id=user_id)
    return api_event("conversations", path, {"user_id": user_id}, body={}, method="POST", resource=route)


def erase_event(user_id: str) -> dict[str, Any]:
    return api_event("erase_guest", f"/api/v1/guests/{user_id}", {"user_id": user_id})


def health_event() -> dict[str, Any]:
    return api_event("health", "/api/v1/health")


def schedule_event(function_id: str = SWEEPER) -> dict[str, Any]:
    """The scheduled event of a function: EventBridge Scheduler's shape (events/<function>.json)."""
    samples = {SWEEPER: "sweep_outbox", CLOSE_STAYS: "close_stays", EXPIRE: "expire_closed_stays"}
    return sample_event(samples[function_id])


def our_waha_id(chat_id: str, message_key: dict[str, str]) -> str:
    """How WAHA (WEBJS) names one of our sends: `true_<chat>_<ID>`, ID the one we asked it to use."""
    from concierge import keys

    message_id = message_key["sk"].rsplit("#", 1)[1]
    return f"true_{chat_id}_{keys.outbound_waha_id(message_id)}"


def ack_delivery(chat_id: str, waha_id: str, ack: int) -> dict[str, Any]:
    """WAHA's `message.ack` for one of the hotel's messages, in the simulator's envelope (WAHA's docs' payload)."""
    from concierge.ticks import ACK_NAMES

    delivery = message_event(
        chat_id, "", message_id=waha_id, event="message.ack", from_me=True, me_id=HOTEL_CHAT_ID, session=WAHA_SESSION
    )
    delivery["payload"] = {
        "id": waha_id,
        "from": chat_id,
        "participant": None,
        "fromMe": True,
        "ack": ack,
        "ackName": ACK_NAMES[ack],
    }
    return delivery


def session_status_delivery(status: str = "WORKING") -> dict[str, Any]:
    """WAHA's `session.status` for the served session, in the simulator's envelope."""
    delivery = message_event(HOTEL_CHAT_ID, "", event="session.status", me_id=HOTEL_CHAT_ID, session=WAHA_SESSION)
    delivery["payload"] = {
        "name": WAHA_SESSION,
        "status": status,
        "statuses": [{"status": status, "timestamp": delivery["timestamp"]}],
    }
    return delivery


def days_ago(days: int) -> str:
    """A date (YYYY-MM-DD) this many days before today, in UTC."""
    return (datetime.now(UTC).date() - timedelta(days=days)).isoformat()


class PhoneNumbers:
    """Distinct Indonesian mobile numbers (written locally, as a front desk types them) for new guests."""

    def __init__(self, seed: int | None = None) -> None:
        start = random.Random(seed).randrange(10_000_000, 50_000_000)
        self._numbers = itertools.count(start)

    def next(self) -> str:
        return f"0812{next(self._numbers):08d}"


def guest(
    phone_number: str, room: str = "101", checkin_date: str | None = None, checkout_date: str | None = None
) -> dict[str, str]:
    details = {
        "full_name": "Bench Guest",
        "room_number": room,
        "checkin_date": checkin_date or date.today().isoformat(),
        "email": "guest@example.com",
        "phone_number": phone_number,
    }
    if checkout_date:
        details["checkout_date"] = checkout_date
    return details


def chat_id_of(phone_number: str) -> str:
    """The WhatsApp chat id WAHA reports for a local 08... number (Indonesia, +62), or for an E.164 one (as the
    registration answers it)."""
    if phone_number.startswith("+"):
        return f"{phone_number[1:]}@c.us"
    return f"62{phone_number.removeprefix('0')}@c.us"


@dataclass(frozen=True)
class Outcome:
    result: Any
    seconds: float


class BenchStack:
    """Starts moto's server, the resources, WAHA simulators and handlers; `call` invokes one handler."""

    def __init__(self) -> None:
        self.specs: dict[str, FunctionSpec] = functions()
        self.handlers: dict[str, Handler] = {}
        self.endpoint = ""
        self.resources: LocalResources | None = None
        self.waha = WahaSimulator(session=WAHA_SESSION)
        self.slow_waha = WahaSimulator(session=WAHA_SESSION, latency_seconds=SLOW_WAHA_LATENCY_SECONDS)
        self.phones = PhoneNumbers()
        self.sink = CountingSink()
        self._moto: Any = None
        self._session: boto3.Session | None = None
        self._clients: dict[str, Any] = {}
        self.moto_partitions_dropped = False
        self._stdout = sys.stdout
        self._environment = EnvironmentPatch()

    # --- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> BenchStack:
        from moto.server import ThreadedMotoServer

        # moto logs every request it serves; a benchmark sends tens of thousands.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._environment.update(_FIXED_ENVIRONMENT)
        self._environment.update(dict.fromkeys(_CLEARED_ENVIRONMENT))
        self.moto_partitions_dropped = _drop_emptied_partitions()
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._moto.start()
        host, port = self._moto.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self._environment.update({"AWS_ENDPOINT_URL": self.endpoint})
        self._session = boto3.Session(region_name=REGION)
        self.resources = create_resources(RESOURCE_PREFIX, self._session)
        self._session.client("ssm").put_parameter(
            Name=HMAC_PARAMETER, Value=HMAC_KEY, Type="SecureString", Overwrite=True
        )
        self.waha.start()
        self.slow_waha.start()
        self._environment.update(
            {
                "TABLE_NAME": self.resources.table_name,
                "OUTBOUND_QUEUE_URL": self.resources.outbound_queue_url,
                "OUTBOUND_DEAD_LETTER_QUEUE_URL": self.resources.dead_letter_queue_url,
                "MEDIA_QUEUE_URL": self.resources.queue_urls["MediaQueue"],
                "MEDIA_DEAD_LETTER_QUEUE_URL": self.resources.queue_urls["MediaDeadLetterQueue"],
                "MEDIA_BUCKET": self.resources.bucket_names["MediaBucket"],
                "WAHA_HOST": self.waha.url,
            }
        )
        # Handlers log to stdout as in Lambda; the sink counts those bytes instead of printing them.
        sys.stdout = self.sink
        self.handlers = {logical_id: load_handler(spec) for logical_id, spec in self.specs.items()}
        return self

    def stop(self) -> None:
        sys.stdout = self._stdout
        self.waha.stop()
        self.slow_waha.stop()
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
        self._environment.restore()

    def __enter__(self) -> BenchStack:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def function_environment(self) -> dict[str, str]:
        """The environment a function sees here, for child processes that play a cold start."""
        assert self.resources is not None
        names = [
            *_FIXED_ENVIRONMENT,
            "AWS_ENDPOINT_URL",
            "TABLE_NAME",
            "OUTBOUND_QUEUE_URL",
            "OUTBOUND_DEAD_LETTER_QUEUE_URL",
            "MEDIA_QUEUE_URL",
            "MEDIA_DEAD_LETTER_QUEUE_URL",
            "MEDIA_BUCKET",
            "WAHA_HOST",
        ]
        return {name: os.environ[name] for name in names if name in os.environ}

    def use_waha(self, simulator: WahaSimulator) -> None:
        """Points the sender at another WAHA, as a new container would see a changed WAHA_HOST."""
        from concierge import config, waha

        os.environ["WAHA_HOST"] = simulator.url
        config.settings.cache_clear()
        waha.client.cache_clear()

    @contextmanager
    def conversation_setting(self, name: str, value: str) -> Iterator[None]:
        """One of the bot's settings (e.g. AUTO_REPLY_COOLDOWN_MINUTES) changed inside the block, as a container
        deployed with it would read it; the benchmark's value comes back after."""
        from concierge import config

        previous = os.environ.get(name)
        os.environ[name] = value
        config.conversation_settings.cache_clear()
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = previous
            config.conversation_settings.cache_clear()

    # --- AWS access outside the handlers (setup and checks; never counted) -----------------------------------

    def client(self, service: str) -> Any:
        # Cached: a client made per setup step would show up in the client-creation counts.
        if service not in self._clients:
            assert self._session is not None
            self._clients[service] = self._session.client(service)
        return self._clients[service]

    @property
    def table_name(self) -> str:
        assert self.resources is not None
        return self.resources.table_name

    @property
    def queue_url(self) -> str:
        assert self.resources is not None
        return self.resources.outbound_queue_url

    @property
    def queue_arn(self) -> str:
        assert self.resources is not None
        return self.resources.queue_arns["OutboundQueue"]

    def queue_depth(self) -> int:
        attributes = self.client("sqs").get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def purge_queue(self) -> None:
        sqs = self.client("sqs")
        while messages := sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", []):
            sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )

    def receive(self, count: int) -> list[dict[str, Any]]:
        """Exactly `count` queued messages (fewer only if the queue runs dry), as the event source would batch them."""
        sqs = self.client("sqs")
        messages: list[dict[str, Any]] = []
        while len(messages) < count:
            got = sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(10, count - len(messages)),
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not got:
                break
            messages += got
        return messages

    def delete(self, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            self.client("sqs").delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )

    def sqs_event(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {"Records": [sqs_record(message, self.queue_arn) for message in messages]}

    def scan(self) -> list[dict[str, Any]]:
        pages = self.client("dynamodb").get_paginator("scan").paginate(TableName=self.table_name)
        return [item for page in pages for item in page["Items"]]

    def images(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Every item of the table as DynamoDB holds it (attribute values typed), by (pk, sk)."""
        return {(item["pk"]["S"], item["sk"]["S"]): item for item in self.scan()}

    # --- invoking handlers -----------------------------------------------------------------------------------

    def context(self, function_id: str) -> LambdaContext:
        spec = self.specs[function_id]
        return LambdaContext(
            function_name=function_id, memory_limit_in_mb=spec.memory_size, timeout_seconds=spec.timeout
        )

    def call(self, function_id: str, event: dict[str, Any]) -> Outcome:
        """Invokes a handler with its own copy of the event (as Lambda decodes it), timing only the handler."""
        fresh = json.loads(json.dumps(event))
        context = self.context(function_id)
        handler = self.handlers[function_id]
        started = time.perf_counter()
        result = handler(fresh, context)
        return Outcome(result, time.perf_counter() - started)

    def register(
        self, phone_number: str | None = None, idempotency_key: str | None = None, **changes: str
    ) -> tuple[dict[str, Any], Outcome]:
        """Registers a guest (a new one unless phone_number is given) and checks it was accepted."""
        details = guest(phone_number or self.phones.next(), **changes)
        outcome = self.call(REGISTER, register_event(details, idempotency_key))
        status = outcome.result["statusCode"]
        if status != 201:
            raise RuntimeError(f"registration answered {status}: {outcome.result.get('body')}")
        return json.loads(outcome.result["body"]), outcome

    def api(self, function_id: str, event: dict[str, Any], expected: int = 200) -> tuple[Any, Outcome]:
        """Invokes an API function and checks its status; returns the decoded body (None when empty)."""
        outcome = self.call(function_id, event)
        status = outcome.result["statusCode"]
        if status != expected:
            raise RuntimeError(f"{function_id} answered {status}, expected {expected}: {outcome.result.get('body')}")
        body = outcome.result.get("body")
        return (json.loads(body) if body else None), outcome

    def scheduled(self, function_id: str) -> Outcome:
        """One run of a scheduled function, with its own timeout in the context as Lambda gives it."""
        return self.call(function_id, schedule_event(function_id))

    def inbound(self, delivery: dict[str, Any], expected: str = "stored") -> Outcome:
        outcome = self.call(WEBHOOK, webhook_event(delivery))
        body = json.loads(outcome.result.get("body") or "{}")
        if outcome.result["statusCode"] != 200 or body.get("outcome") != expected:
            raise RuntimeError(f"webhook answered {outcome.result['statusCode']} {body}, expected {expected}")
        return outcome

    def history(self, user_id: str, limit: int | None = None) -> Outcome:
        outcome = self.call(HISTORY, history_event(user_id, limit))
        if outcome.result["statusCode"] != 200:
            raise RuntimeError(f"history answered {outcome.result['statusCode']}: {outcome.result.get('body')}")
        return outcome

    def send(self, messages: list[dict[str, Any]]) -> Outcome:
        outcome = self.call(SENDER, self.sqs_event(messages))
        failures = (outcome.result or {}).get("batchItemFailures") or []
        if failures:
            raise RuntimeError(f"sender reported {len(failures)} failed records")
        return outcome

    def sweep(self) -> Outcome:
        return self.call(SWEEPER, schedule_event())

    def deliver_queued(self) -> int:
        """Runs the sender over everything on the queue, as the event source would (setup); returns how many."""
        delivered = 0
        while messages := self.receive(10):
            self.send(messages)
            self.delete(messages)
            delivered += len(messages)
        return delivered

    @contextmanager
    def more_guests(self, count: int) -> Iterator[list[dict[str, Any]]]:
        """`count` more registered guests, each with an open stay, inside the block; their items and queued
        welcomes are gone again after it (moto's transactions slow down as the table grows)."""
        with recording(keep_details=True) as log:
            registrations = [self.register()[0] for _ in range(count)]
        try:
            yield registrations
        finally:
            self.forget(written_keys(log.records))
            self.purge_queue()

    def message_keys(self, user_id: str, kind: str) -> list[dict[str, str]]:
        """The keys of a guest's messages of one kind (welcome, auto_reply, farewell...), oldest first."""
        from concierge import keys

        response = self.client("dynamodb").query(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :messages)",
            FilterExpression="kind = :kind",
            ExpressionAttributeValues={
                ":pk": {"S": keys.user_partition(user_id)},
                ":messages": {"S": "MSG#"},
                ":kind": {"S": kind},
            },
            ConsistentRead=True,
        )
        return [{"pk": item["pk"]["S"], "sk": item["sk"]["S"]} for item in response["Items"]]

    def partition_size(self, user_id: str) -> int:
        """How many items the guest's partition holds (profile, check-ins, sessions, messages)."""
        from concierge import keys

        pages = (
            self.client("dynamodb")
            .get_paginator("query")
            .paginate(
                TableName=self.table_name,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": keys.user_partition(user_id)}},
                Select="COUNT",
                ConsistentRead=True,
            )
        )
        return sum(page["Count"] for page in pages)

    def write_messages(
        self,
        user_id: str,
        chat_id: str,
        count: int,
        *,
        pending: bool,
        age_seconds: float = 0.0,
        enqueue: bool = False,
        kind: str = "auto_reply",
    ) -> list[dict[str, str]]:
        """Writes message rows as the functions write them, without going through a handler (setup, not measured).

        Pending rows are System messages of `kind` ("welcome" or "auto_reply", with the hotel's real copy);
        `enqueue` also puts their keys on the queue, as registration and the webhook do before their transaction,
        and without it the rows carry the outbox index's UNQUEUED mark, as when SQS refused the key. Other rows
        alternate guest and hotel (the hotel's SENT, findable by WAHA's id). Returns the keys, oldest first."""
        from concierge import outbox, store, templates

        reply = templates.welcome("Bench Guest", "101") if kind == "welcome" else templates.auto_reply()

        created = time.time() - age_seconds
        session_id = str(uuid.uuid4())
        dynamodb = self.client("dynamodb")
        message_keys = []
        rows = []
        for index in range(count):
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{index % 1_000_000:06d}Z"
            message = store.StoredMessage(
                user_id=user_id,
                message_id=str(uuid.uuid4()),
                session_id=session_id,
                role="System" if pending or index % 2 else "User",
                text=reply if pending or index % 2 else f"Guest question number {index}?",
                created_at=stamp,
                status=store.PENDING if pending else (store.SENT if index % 2 else store.RECEIVED),
                chat_id=chat_id,
                # As the functions write it: only a row whose key did not reach the queue is marked for the sweeper.
                queued=enqueue,
                extra={"kind": kind} if pending or index % 2 else {},
            )
            rows.append({"PutRequest": {"Item": store.to_item(message.item())}})
            message_keys.append(message.key)
        for start in range(0, len(rows), 25):
            dynamodb.batch_write_item(RequestItems={self.table_name: rows[start : start + 25]})
        if enqueue:
            sqs = self.client("sqs")
            for start in range(0, len(message_keys), 10):
                chunk = message_keys[start : start + 10]
                entries = [{"Id": str(i), "MessageBody": outbox.body(key)} for i, key in enumerate(chunk)]
                sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
        return message_keys

    def forget(self, item_keys: list[dict[str, str]]) -> None:
        """Deletes rows a measured call wrote.

        moto copies every table it touches on each TransactWriteItems (to roll back), so a transaction gets
        slower as the table grows; deleting what each call wrote keeps moto's share of the latency steady."""
        dynamodb = self.client("dynamodb")
        unique = list({(key["pk"], key["sk"]): key for key in item_keys}.values())
        for start in range(0, len(unique), 25):
            requests = [
                {"DeleteRequest": {"Key": {"pk": {"S": key["pk"]}, "sk": {"S": key["sk"]}}}}
                for key in unique[start : start + 25]
            ]
            dynamodb.batch_write_item(RequestItems={self.table_name: requests})


def written_keys(records: list[Any]) -> list[dict[str, str]]:
    """The keys of the items the recorded calls put (from bench.calls records kept with their parameters)."""
    found = []
    for record in records:
        if record.error is not None or record.params is None:
            continue
        items = []
        if record.operation == "DynamoDB.TransactWriteItems":
            items = [action["Put"]["Item"] for action in record.params["TransactItems"] if "Put" in action]
        elif record.operation == "DynamoDB.PutItem":
            items = [record.params["Item"]]
        found += [{"pk": item["pk"]["S"], "sk": item["sk"]["S"]} for item in items]
    return found
