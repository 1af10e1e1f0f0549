"""Many guests writing at once through the whole local stack, with WAHA redelivering and failing sends.

Everything runs as `make run` runs it: moto's server, the WAHA simulator (signing its webhooks), the API Gateway
emulation and the SQS poller, around the real handlers. The guarantees checked are the ones docs/reliability.md
describes: each guest message stored exactly once, each auto-reply SENT and sent to WhatsApp exactly once, no 5xx.
The simulator sends a repeated pre-generated id again (as WAHA may), so "exactly once" rests on the sender alone.

A plain `pytest` runs it small (a few seconds); `make test-load` (--load-full) runs 1,000 messages from 50 guests at
20 concurrent senders and writes the figures into docs/reliability.md.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
import urllib3

from devstack.stack import LocalStack, StackConfig

pytestmark = pytest.mark.integration

API_KEY = "load-test-key"
HMAC_KEY = "load-test-hmac-key"
SEED = 20251122
REPORT = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
FIGURES_BEGIN = "<!-- load-test figures: begin (written by `make test-load`; edit the prose, not this block) -->"
FIGURES_END = "<!-- load-test figures: end -->"
FIGURES_HEADING = "## Measured figures"
# With the retry base at 0 a failed send is retried at once; ten receives instead of the template's five make
# ten 10% failures in a row (1 in 10^10) the only way to dead-letter, so the run cannot flake on bad luck.
# The FAILED and dead-letter path itself is covered by the sender's unit tests.
MAX_RECEIVES = 10
# Short, so that a batch handed back by a crashed invoke would come back within the run, not after 3 minutes.
VISIBILITY_SECONDS = 2
HTTP_TIMEOUT = urllib3.Timeout(connect=5.0, read=30.0)
AUTO_REPLY_PREFIX = "Terima kasih atas pesan Anda."
WELCOME_PREFIX = "Halo "


@dataclass(frozen=True)
class LoadProfile:
    name: str
    guests: int
    messages: int
    senders: int
    duplicate_ratio: float
    failure_ratio: float
    # A guard against a hang, not a performance target.
    time_limit_seconds: float


FULL = LoadProfile(
    "full", guests=50, messages=1000, senders=20, duplicate_ratio=0.1, failure_ratio=0.1, time_limit_seconds=600
)
SMALL = LoadProfile(
    "default", guests=5, messages=60, senders=5, duplicate_ratio=0.1, failure_ratio=0.1, time_limit_seconds=30
)


# --- the stack ----------------------------------------------------------------------------------


def _concierge_log_levels() -> dict[str, int]:
    return {
        name: logging.getLogger(name).level for name in list(logging.root.manager.loggerDict) if "concierge" in name
    }


def _set_environment(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@contextmanager
def _every_message_answered() -> Iterator[None]:
    """No cooldown and no business hours, so each distinct message gets one auto-reply: that one reply per message
    is what shows a message answered exactly once (the cooldown has its own tests). Set over the values the stack
    took from the template, and put back before the stack restores the environment it found."""
    wanted: dict[str, str | None] = {"AUTO_REPLY_COOLDOWN_MINUTES": "0", "BUSINESS_HOURS": None}
    before = {name: os.environ.get(name) for name in wanted}
    _set_environment(wanted)
    try:
        yield
    finally:
        _set_environment(before)


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    """The local stack on free ports with fast retries; the log levels its handlers set are put back after."""
    # The handlers' Powertools loggers set the level of the shared `concierge` loggers, which outlive the stack.
    levels_before = _concierge_log_levels()
    monkeypatch.setenv("OUTBOUND_RETRY_BASE_SECONDS", "0")
    config = StackConfig(
        api_port=0,
        moto_port=0,
        waha_sim_port=0,
        api_key=API_KEY,
        waha_webhook_hmac_key=HMAC_KEY,
        log_level="WARNING",
        visibility_timeout_override=VISIBILITY_SECONDS,
        redrive_max_receive_override=MAX_RECEIVES,
    )
    try:
        with LocalStack(config) as running, _every_message_answered():
            yield running
    finally:
        for name, level in levels_before.items():
            logging.getLogger(name).setLevel(level)


# --- observing the run --------------------------------------------------------------------------


class CountingRandom(random.Random):
    """The simulator's failure dice, counting the sendText calls they fail."""

    def __init__(self, seed: int, ratio: float) -> None:
        super().__init__(seed)
        self.ratio = ratio
        self.failures = 0

    def random(self) -> float:
        value = super().random()
        # The simulator fails a call when the draw is below its ratio; it draws under its own lock.
        if value < self.ratio:
            self.failures += 1
        return value


@dataclass
class ApiLog:
    """Every answer the API's functions gave: status codes, and the webhook's outcome for each delivery."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)

    def wrap(self, function_id: str, handler: Callable[[dict[str, Any], Any], Any]) -> Callable[..., Any]:
        def observed(event: dict[str, Any], context: Any) -> Any:
            try:
                result = handler(event, context)
            except Exception:
                # The local API answers a raising function with 502, as API Gateway does.
                self._add(function_id, 502, None)
                raise
            status = int(result.get("statusCode", 502)) if isinstance(result, dict) else 502
            outcome = None
            if function_id == "WahaWebhookFunction" and status == 200:
                outcome = json.loads(result["body"]).get("outcome")
            self._add(function_id, status, outcome)
            return result

        return observed

    def _add(self, function_id: str, status: int, outcome: str | None) -> None:
        with self.lock:
            self.statuses[(function_id, status)] += 1
            if outcome is not None:
                self.outcomes[outcome] += 1

    def server_errors(self) -> int:
        return sum(count for (_, status), count in self.statuses.items() if status >= 500)


# --- the guests and what they write -------------------------------------------------------------


@dataclass(frozen=True)
class Guest:
    index: int

    @property
    def phone(self) -> str:
        # Indonesian mobile numbers as a hotel system would send them (national form; DefaultPhoneRegion is ID).
        return f"0812{70000000 + self.index:08d}"

    @property
    def chat_id(self) -> str:
        return f"62{self.phone[1:]}@c.us"

    def body(self) -> dict[str, str]:
        return {
            "full_name": f"Load Guest {self.index}",
            "room_number": str(100 + self.index),
            "checkin_date": "2025-11-22",
            "email": f"guest{self.index}@example.com",
            "phone_number": self.phone,
        }


@dataclass(eq=False)
class Delivery:
    """One webhook WAHA sends for a message; a redelivery carries the original's WAHA message id."""

    guest: Guest
    text: str
    waha_id: str
    event: str = "message"
    redelivery: bool = False
    # A concurrent redelivery waits here with its original, so both reach the webhook at the same moment.
    together: threading.Barrier | None = None
    # A later redelivery starts only once its original was answered.
    after: threading.Event | None = None
    done: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class Plan:
    deliveries: list[Delivery]
    concurrent_redeliveries: int
    later_redeliveries: int


def plan(profile: LoadProfile, guests: list[Guest], rng: random.Random) -> Plan:
    """Every delivery in the order the senders take them up."""
    originals = []
    for number in range(profile.messages):
        guest = guests[number % len(guests)]
        text = f"Load message {number} from guest {guest.index}: jam berapa sarapan? ✓"
        originals.append(Delivery(guest, text, f"false_{guest.chat_id}_{uuid.uuid4().hex.upper()}"))
    repeated = rng.sample(originals, round(profile.messages * profile.duplicate_ratio))
    concurrent = set(map(id, repeated[: len(repeated) // 2]))
    later = repeated[len(repeated) // 2 :]
    order: list[Delivery] = []
    for original in originals:
        order.append(original)
        if id(original) in concurrent:
            # Right behind its original in the queue: the next free sender takes it while the original waits.
            original.together = threading.Barrier(2, timeout=profile.time_limit_seconds)
            order.append(
                Delivery(original.guest, original.text, original.waha_id, redelivery=True, together=original.together)
            )
    for number, original in enumerate(later):
        # WAHA posts both `message` and `message.any` for one message when a webhook subscribes to both.
        event = "message.any" if number % 2 else "message"
        repeat = Delivery(original.guest, original.text, original.waha_id, event, redelivery=True, after=original.done)
        # Somewhere behind its original (never before it, so the wait cannot block a sender the original needs).
        earliest = next(position for position, delivery in enumerate(order) if delivery is original) + 1
        order.insert(rng.randint(earliest, len(order)), repeat)
    return Plan(order, len(concurrent), len(later))


# --- talking to the stack -----------------------------------------------------------------------


class Client:
    """The hotel's side: registers guests and reads conversations over HTTP with the API key."""

    def __init__(self, stack: LocalStack, senders: int) -> None:
        assert stack.api_url is not None
        self.api_url = stack.api_url
        self.http = urllib3.PoolManager(maxsize=senders, retries=False, timeout=HTTP_TIMEOUT)
        self.statuses: Counter[int] = Counter()
        self._lock = threading.Lock()

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        response = self.http.request(
            method,
            self.api_url + path,
            body=None if body is None else json.dumps(body),
            headers={"x-api-key": API_KEY, "Content-Type": "application/json"},
        )
        with self._lock:
            self.statuses[response.status] += 1
        return response.status, json.loads(response.data) if response.data else None

    def register(self, guest: Guest) -> dict[str, Any]:
        status, body = self.request("POST", "/api/v1/guests/register", guest.body())
        assert status == 201, body
        return body

    def conversation(self, user_id: str) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = "?limit=100" + (f"&cursor={cursor}" if cursor else "")
            status, body = self.request("GET", f"/api/v1/guests/{user_id}/messages{query}")
            assert status == 200, body
            messages += body["messages"]
            cursor = body["next_cursor"]
            if not cursor:
                return messages


class Aws:
    """Reads straight from moto, for what the API does not show: queue depths and delivery attempts."""

    def __init__(self, stack: LocalStack) -> None:
        assert stack.resources is not None
        self.resources = stack.resources
        self.sqs = boto3.client("sqs", endpoint_url=stack.aws_endpoint, region_name=stack.config.aws_region)
        self.dynamodb = boto3.client("dynamodb", endpoint_url=stack.aws_endpoint, region_name=stack.config.aws_region)

    def depth(self, url: str) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def wait_for_empty_queue(self, deadline: float) -> int:
        """Every webhook queued its message for answering (or its reply) before answering WAHA, and the answering
        function queues a reply before it commits it, so both queues empty, in that order, mean the sender is done.
        """
        queues = [self.resources.queue_urls["AnswerQueue"], self.resources.outbound_queue_url]
        depth = sum(self.depth(url) for url in queues)
        while depth and time.monotonic() < deadline:
            time.sleep(0.25)
            depth = sum(self.depth(url) for url in queues)
        return depth

    def send_attempts(self) -> list[int]:
        pages = self.dynamodb.get_paginator("scan").paginate(
            TableName=self.resources.table_name,
            FilterExpression="#type = :message AND attribute_exists(attempts)",
            ExpressionAttributeNames={"#type": "type"},
            ExpressionAttributeValues={":message": {"S": "Message"}},
            ProjectionExpression="attempts",
        )
        return [int(item["attempts"]["N"]) for page in pages for item in page["Items"]]


# --- the run ------------------------------------------------------------------------------------


@dataclass
class Figures:
    profile: LoadProfile
    deliveries: int = 0
    concurrent_redeliveries: int = 0
    later_redeliveries: int = 0
    webhook_posts: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    api_statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    server_errors: int = 0
    stored: int = 0
    stored_twice: int = 0
    missing: int = 0
    replies: int = 0
    replies_sent: int = 0
    welcomes_sent: int = 0
    send_failures_injected: int = 0
    retries: int = 0
    max_attempts: int = 0
    waha_sends: int = 0
    waha_sends_by_chat_ok: bool = False
    waha_repeated_ids: int = 0
    still_queued: int = 0
    dead_lettered: int = 0
    registration_seconds: float = 0.0
    inbound_seconds: float = 0.0
    drain_seconds: float = 0.0
    wall_seconds: float = 0.0

    @property
    def redeliveries(self) -> int:
        return self.concurrent_redeliveries + self.later_redeliveries

    @property
    def inbound_per_second(self) -> float:
        return self.deliveries / self.inbound_seconds if self.inbound_seconds else 0.0

    @property
    def sends_per_second(self) -> float:
        elapsed = self.inbound_seconds + self.drain_seconds
        return self.waha_sends / elapsed if elapsed else 0.0

    def summary(self) -> str:
        profile = self.profile
        return (
            f"load[{profile.name}] guests={profile.guests} messages={profile.messages} "
            f"deliveries={self.deliveries} duplicates={self.redeliveries} "
            f"(concurrent={self.concurrent_redeliveries}, later={self.later_redeliveries}) "
            f"senders={profile.senders} stored={self.stored} stored_twice={self.stored_twice} missing={self.missing} "
            f"5xx={self.server_errors} webhook_posts={self.webhook_posts} "
            f"send_failures_injected={self.send_failures_injected} retries={self.retries} "
            f"max_attempts={self.max_attempts} replies_sent={self.replies_sent}/{self.replies} "
            f"welcomes_sent={self.welcomes_sent} waha_sends={self.waha_sends} dead_lettered={self.dead_lettered} "
            f"wall={self.wall_seconds:.1f}s (register {self.registration_seconds:.1f}s, "
            f"inbound {self.inbound_seconds:.1f}s, drain {self.drain_seconds:.1f}s) "
            f"inbound={self.inbound_per_second:.1f}/s sends={self.sends_per_second:.1f}/s"
        )


def run_load(stack: LocalStack, profile: LoadProfile) -> Figures:
    started = time.monotonic()
    deadline = started + profile.time_limit_seconds
    figures = Figures(profile)
    # Seeded: the run's shape (which messages repeat, and when) is the same every time.
    rng = random.Random(SEED)
    simulator = stack.simulator
    assert simulator is not None
    # WAHA is not trusted to drop a repeated id: a second send of one message would show as a repeated id.
    assert simulator.repeated_ids == "accept"
    api_log = ApiLog()
    # The local API looks its handlers up on every request, so wrapped here they see every answer it gives.
    for function_id in ("RegisterGuestFunction", "WahaWebhookFunction", "GuestMessagesFunction"):
        stack.handlers[function_id] = api_log.wrap(function_id, stack.handlers[function_id])
    client = Client(stack, profile.senders)
    aws = Aws(stack)
    dice = CountingRandom(SEED, profile.failure_ratio)
    simulator.fail_ratio(profile.failure_ratio, seed=SEED)
    # In place of the simulator's own dice (same seed, same draws), so that the failures it injects are counted.
    simulator._rng = dice

    # 1. The hotel registers every guest, concurrently; then a tenth again, as a retried request would.
    guests = [Guest(index) for index in range(profile.guests)]
    with ThreadPoolExecutor(max_workers=profile.senders) as pool:
        registrations = list(pool.map(client.register, guests))
    ids = ("user_id", "checkin_id", "session_id")
    for index in rng.sample(range(profile.guests), max(1, profile.guests // 10)):
        again = client.register(guests[index])
        assert {key: again[key] for key in ids} == {key: registrations[index][key] for key in ids}
    user_ids = [registration["user_id"] for registration in registrations]
    figures.registration_seconds = time.monotonic() - started

    # 2. WAHA posts every message, some twice, from `senders` threads at once.
    load = plan(profile, guests, rng)
    figures.deliveries = len(load.deliveries)
    figures.concurrent_redeliveries, figures.later_redeliveries = load.concurrent_redeliveries, load.later_redeliveries

    def deliver(delivery: Delivery) -> dict[str, Any]:
        if delivery.together is not None:
            delivery.together.wait()
        if delivery.after is not None:
            delivery.after.wait(timeout=profile.time_limit_seconds)
        try:
            return simulator.deliver_inbound(
                delivery.guest.phone, delivery.text, message_id=delivery.waha_id, event=delivery.event
            )
        finally:
            delivery.done.set()

    inbound_started = time.monotonic()
    with ThreadPoolExecutor(max_workers=profile.senders) as pool:
        results = list(pool.map(deliver, load.deliveries))
    figures.inbound_seconds = time.monotonic() - inbound_started
    figures.webhook_posts = sum(result["attempts"] for result in results)
    assert all(result["delivered"] for result in results), Counter(result["status"] for result in results)

    # 3. The sender empties the queue, retrying what WAHA failed.
    drain_started = time.monotonic()
    figures.still_queued = aws.wait_for_empty_queue(deadline)
    figures.drain_seconds = time.monotonic() - drain_started
    figures.dead_lettered = aws.depth(aws.resources.dead_letter_queue_url)

    # 4. What the conversations hold (read through the history API) and what WhatsApp received.
    written: dict[int, set[str]] = {}
    for delivery in load.deliveries:
        written.setdefault(delivery.guest.index, set()).add(delivery.text)
    for guest in guests:
        conversation = client.conversation(user_ids[guest.index])
        stored = Counter(message["text"] for message in conversation if message["role"] == "User")
        figures.stored += sum(stored.values())
        figures.stored_twice += sum(count - 1 for count in stored.values())
        figures.missing += len(written.get(guest.index, set()) - set(stored))
        replies = [message for message in conversation if message["role"] == "System"]
        figures.replies += len(replies)
        figures.replies_sent += sum(message["status"] == "SENT" for message in replies)
    attempts = aws.send_attempts()
    figures.retries = sum(attempt - 1 for attempt in attempts)
    figures.max_attempts = max(attempts, default=0)
    figures.send_failures_injected = dice.failures
    sent = simulator.sent_messages()
    figures.waha_sends = len(sent)
    figures.waha_repeated_ids = len(sent) - len({message["id"] for message in sent})
    figures.welcomes_sent = sum(message["text"].startswith(WELCOME_PREFIX) for message in sent)
    expected_by_chat = Counter(delivery.guest.chat_id for delivery in load.deliveries if not delivery.redelivery)
    expected_by_chat.update(guest.chat_id for guest in guests)  # each guest's welcome
    figures.waha_sends_by_chat_ok = Counter(message["chatId"] for message in sent) == expected_by_chat
    figures.api_statuses = api_log.statuses
    figures.outcomes = api_log.outcomes
    figures.server_errors = api_log.server_errors() + sum(
        count for status, count in client.statuses.items() if status >= 500
    )
    figures.wall_seconds = time.monotonic() - started
    return figures


def test_messages_are_stored_and_answered_exactly_once_under_load(
    stack: LocalStack, load_full: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """Concurrent guests, WAHA redeliveries (half of them at the same moment) and failing sends: nothing lost or
    doubled, no 5xx, every auto-reply SENT and received by WhatsApp once."""
    profile = FULL if load_full else SMALL

    figures = run_load(stack, profile)

    with capsys.disabled():
        print("\n" + figures.summary())
    if load_full:
        write_report(figures)
    # Each distinct message stored once: a redelivery, concurrent or later, stores nothing.
    assert (figures.stored, figures.stored_twice, figures.missing) == (profile.messages, 0, 0)
    assert figures.outcomes == {"stored": profile.messages, "duplicate": figures.redeliveries}, figures.outcomes
    # No 5xx, and no webhook WAHA had to post twice because an answer was not 2xx.
    assert figures.server_errors == 0, figures.api_statuses
    assert figures.webhook_posts == figures.deliveries
    # Every auto-reply (and welcome) SENT; WhatsApp got each exactly once, whatever failed on the way.
    assert (figures.still_queued, figures.dead_lettered) == (0, 0)
    assert figures.replies == figures.replies_sent == profile.messages + profile.guests
    assert figures.waha_sends == profile.messages + profile.guests and figures.waha_repeated_ids == 0
    assert figures.welcomes_sent == profile.guests and figures.waha_sends_by_chat_ok
    # Every injected failure was retried, and nothing else was.
    assert figures.send_failures_injected > 0 and figures.retries == figures.send_failures_injected
    assert figures.wall_seconds < profile.time_limit_seconds


# --- docs/reliability.md ------------------------------------------------------------------------


def figures_block(figures: Figures) -> str:
    profile = figures.profile
    statuses = ", ".join(
        f"{function.removesuffix('Function')} {status}: {count}"
        for (function, status), count in sorted(figures.api_statuses.items())
    )
    rows = [
        ("Guests registered over HTTP (a tenth registered twice)", f"{profile.guests}"),
        ("Distinct inbound messages", f"{profile.messages:,}"),
        (
            "Webhook deliveries (10% of messages delivered twice)",
            f"{figures.deliveries:,} ({figures.concurrent_redeliveries} redelivered concurrently, "
            f"{figures.later_redeliveries} later, half of those as `message.any`)",
        ),
        ("Concurrent senders", f"{profile.senders}"),
        (
            "Guest messages stored / stored twice / missing",
            f"{figures.stored:,} / {figures.stored_twice} / {figures.missing}",
        ),
        ("Webhook outcomes", ", ".join(f"{name} {count:,}" for name, count in sorted(figures.outcomes.items()))),
        ("HTTP 5xx answers", f"{figures.server_errors}"),
        ("Webhook POSTs WAHA made (a non-2xx answer would add retries)", f"{figures.webhook_posts:,}"),
        ("API answers by function", statuses),
        ("sendText calls failed by the simulator (10%)", f"{figures.send_failures_injected}"),
        (
            "Sender retries (send attempts beyond the first)",
            f"{figures.retries} (most attempts for one message: {figures.max_attempts})",
        ),
        ("Auto-replies and welcomes SENT", f"{figures.replies_sent:,} of {figures.replies:,}"),
        (
            "Messages WhatsApp received (simulator, which sends a repeated id again)",
            f"{figures.waha_sends:,} ({figures.welcomes_sent} welcomes), {figures.waha_repeated_ids} repeated ids",
        ),
        ("Left in the queue / dead-lettered", f"{figures.still_queued} / {figures.dead_lettered}"),
        (
            "Wall time",
            f"{figures.wall_seconds:.1f} s (registration {figures.registration_seconds:.1f} s, inbound "
            f"{figures.inbound_seconds:.1f} s, draining the queue afterwards {figures.drain_seconds:.1f} s)",
        ),
        ("Inbound throughput", f"{figures.inbound_per_second:.1f} webhook deliveries/s"),
        ("Send throughput", f"{figures.sends_per_second:.1f} WhatsApp messages/s (inbound + drain)"),
    ]
    machine = (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"
    )
    lines = [
        FIGURES_BEGIN,
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `make test-load` on {machine}.",
        "",
        "| figure | value |",
        "| --- | --- |",
        *(f"| {name} | {value} |" for name, value in rows),
        "",
        "Summary line printed by the run:",
        "",
        "```",
        figures.summary(),
        "```",
        FIGURES_END,
    ]
    return "\n".join(lines)


def with_figures(text: str, block: str) -> str:
    """The page with its figures block replaced; without one, the block is added in a section of its own at the end.

    Only what lies between the two markers changes, so the prose of the page is never rewritten by a run."""
    pattern = re.compile(re.escape(FIGURES_BEGIN) + r".*?" + re.escape(FIGURES_END), re.DOTALL)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text, count=1)
    return text.rstrip("\n") + f"\n\n{FIGURES_HEADING}\n\n{block}\n"


def write_report(figures: Figures, report: Path = REPORT) -> None:
    """Replaces the figures block of docs/reliability.md, leaving the prose around it alone."""
    text = report.read_text(encoding="utf-8") if report.exists() else "# Reliability\n"
    report.write_text(with_figures(text, figures_block(figures)), encoding="utf-8")


def test_a_run_rewrites_only_its_figures_block(tmp_path: Path) -> None:
    """Writing the figures changes the block between the markers and nothing else; a page without one gets a section."""
    figures = Figures(SMALL, stored=60, wall_seconds=1.5)
    page = tmp_path / "reliability.md"
    prose_before, prose_after = "# Reliability\n\nProse, 1,000 of it.\n\n## Measured figures\n\n", "\nMore prose.\n"
    page.write_text(f"{prose_before}{FIGURES_BEGIN}\nold figures\n{FIGURES_END}{prose_after}", encoding="utf-8")
    bare = tmp_path / "bare.md"
    bare.write_text("# Reliability\n\nOnly prose.\n", encoding="utf-8")

    write_report(figures, page)
    write_report(figures, bare)

    written = page.read_text(encoding="utf-8")
    assert written.startswith(prose_before + FIGURES_BEGIN) and written.endswith(FIGURES_END + prose_after)
    assert "old figures" not in written and figures.summary() in written
    assert bare.read_text(encoding="utf-8").startswith(f"# Reliability\n\nOnly prose.\n\n{FIGURES_HEADING}\n\n")
    # The repository's own page has exactly one block, under its own heading.
    own = REPORT.read_text(encoding="utf-8")
    assert own.count(FIGURES_BEGIN) == own.count(FIGURES_END) == 1
    assert own.index(FIGURES_HEADING) < own.index(FIGURES_BEGIN)
