"""Sending like a person, so that WhatsApp has no reason to ban the hotel's number.

WAHA's advice against bans: mark the guest's message seen, show typing for a while, never flood a chat, and do
not write to numbers that are not on WhatsApp. So, for each message the sender is about to send:

- Before the first message to a number (one that answers no guest's message), WAHA is asked whether the number
  is on WhatsApp. The answer is kept on the guest's profile, which the sender reads with the batch's messages
  anyway. A "no" ends the message FAILED with `not on WhatsApp`, and every later one too; a check that fails
  (WAHA down, an engine without the endpoint) is not a "no": the message is sent as before.
- Sends take slots. One item per WhatsApp account (keys.send_pacing) holds the slots reserved from now on and
  each chat's reservations, and every sender changes it with one conditional PutItem per batch on its version, so
  the several sender instances that run at once share one schedule. A slot is at least
  MIN_SECONDS_BETWEEN_MESSAGES_PER_CHAT after the chat's last one and at least 60 s / MAX_MESSAGES_PER_MINUTE away
  from every other slot of the account, earlier gaps included: a chat whose next slot lies far ahead holds up no
  other chat.
- A slot a few seconds away is waited for in the invocation. For a later one, a new queue record for the same key
  (SendMessage with DelaySeconds) returns shortly before the slot, and this record ends. The slot stays in the
  schedule, under the message's sort key: when an earlier message of the chat reaches a sender after a later one
  took its slot, the later ones still in the queue make way, so a chat's messages go in the order written. That
  is not a receive: ChangeMessageVisibility would hand back the same record, and SQS counts every receive of a
  record toward the dead-letter queue's maxReceiveCount, so a message waiting its turn in a busy hour would use
  up its retries, or be dead-lettered without ever failing. The new record's body carries the receives its
  predecessors had (`receives`), so failures count as before across the change of record (see receive_count and
  dead_letter).
- Before the send: POST /api/sendSeen for the guest's message it answers, POST /api/startTyping, a pause that
  grows with the text (at most TYPING_SECONDS_MAX), POST /api/stopTyping, then the send, at its slot. None of
  these can hold the send up: each call's time is bounded to end before the slot, and a failure is only logged.
"""

from __future__ import annotations

import bisect
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from concierge import aws_clients, keys, store
from concierge.config import pacing_settings, settings
from concierge.sending import outbox, waha

logger = Logger(child=True)

NOT_ON_WHATSAPP = "not on WhatsApp"
# Slots are this much further apart than the settings say, and a sender more than LATE_SECONDS behind its slot
# does not send at it: then the gaps WhatsApp sees are never shorter than the settings, whatever the jitter.
SLOT_SLACK_SECONDS = 0.25
LATE_SECONDS = 0.15
# A slot this close (to the start of its typing) is waited for in the invocation; a later one is queued for.
MAX_WAIT_SECONDS = 5.0
# A queued record comes back this long before its typing starts: Lambda's poll and batching window take up to ~2 s.
RETURN_EARLY_SECONDS = 2
# SQS's longest DelaySeconds; a record waiting longer comes back, finds its slot still ahead and waits again.
MAX_DELAY_SECONDS = 900
# Typing takes about this long per character, never less than MIN_TYPING_SECONDS (and never more than the setting).
CHARACTERS_PER_SECOND = 40
MIN_TYPING_SECONDS = 0.5
# Without typing, a paced reply is marked seen this long before its slot.
SEEN_LEAD_SECONDS = 0.3
# A slot taken for now lies this far ahead: the claim's write comes between taking it and the send.
CLAIM_SECONDS = 0.25
# Between two messages sent one after another in one invocation: the outcome's and the next claim's writes.
LOCAL_GAP_SECONDS = 0.3
# A message queued again gets a slot at least this far ahead, so that its record is back in time for it.
COME_BACK_SECONDS = 3.0
# A reserved slot further off than this belongs to a record in the queue, never to one a sender waits for (a slot
# waited for is at most MAX_WAIT_SECONDS + a typing pause away, and a queued record comes back RETURN_EARLY_SECONDS
# before its typing starts): such slots may move to make way for an earlier message of the chat.
SWAP_HORIZON_SECONDS = 12.0
# Beyond the slot and the claim's lease, what an invocation must have left to wait for a slot (the sender checks
# the lease again before its claim, and hands back a record that no longer fits).
PLAN_MARGIN_MILLIS = 500
# The checks of numbers in one batch share this long (each at most CHECK_TIMEOUT_SECONDS).
CHECKS_SECONDS = 4.0
# stopTyping goes out this long before the slot (at most a third of the pause).
STOP_LEAD_SECONDS = 0.3
# The longest a sendSeen or typing call may take; and the check of a number, made before any slot is taken.
PRESENCE_TIMEOUT_SECONDS = 2.0
CHECK_TIMEOUT_SECONDS = 2.0
# A "not on WhatsApp" is asked again after this long: a number can join WhatsApp (a "yes" is kept).
NOT_ON_WHATSAPP_RECHECK_DAYS = 30
# Conditional writes of the schedule lost to other senders before a record gives up and comes back in a second.
RESERVE_ATTEMPTS = 8
CONTENDED_RETRY_SECONDS = 1
# The guest's profile: whether their number is on WhatsApp, and when that was asked.
ON_WHATSAPP = "on_whatsapp"
WHATSAPP_CHECKED_AT = "whatsapp_checked_at"


class NotYet(Exception):
    """The record must wait for its slot but could not be queued again: it is handed back (a receive is spent)."""


class NoSlot(waha.WahaError):
    """The sender fell behind its slot after claiming the message: this attempt fails and is retried."""


def typing_seconds(text: str) -> float:
    """How long the typing indicator shows before a text: longer for longer texts, at most TYPING_SECONDS_MAX."""
    limit = pacing_settings().typing_seconds_max
    if limit <= 0:
        return 0.0
    return min(limit, max(MIN_TYPING_SECONDS, len(text) / CHARACTERS_PER_SECOND))


def _body(record: dict[str, Any]) -> dict[str, Any]:
    try:
        value = json.loads(record.get("body") or "")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _earlier_receives(record: dict[str, Any]) -> int:
    receives = _body(record).get("receives")
    return receives if isinstance(receives, int) and not isinstance(receives, bool) and receives > 0 else 0


def _own_receives(record: dict[str, Any]) -> int:
    return int(record.get("attributes", {}).get("ApproximateReceiveCount", "1"))


def receive_count(record: dict[str, Any]) -> int:
    """The message's receives as SQS would count them had it stayed one record: this record's, and those of the
    records it replaced while it waited for a slot (waiting itself never counts)."""
    return _own_receives(record) + _earlier_receives(record)


def ordered(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A batch's records oldest message first (the sort key starts with its creation time), so that slots are
    reserved in the order the messages were written."""

    def created(record: dict[str, Any]) -> str:
        sort_key = _body(record).get("sk")
        return sort_key if isinstance(sort_key, str) else ""

    return sorted(records, key=created)


def dead_letter(record: dict[str, Any], key: keys.Key) -> bool:
    """Moves a message whose last attempt failed to the dead-letter queue when SQS would not: its record replaced
    others, so SQS's own count of receives is below maxReceiveCount. True when moved (the record then ends)."""
    if _own_receives(record) >= settings().outbound_max_receive_count:
        return False  # SQS moves it itself on the next receive
    try:
        # The plain key, as every other record: a redrive starts it afresh.
        aws_clients.sqs().send_message(QueueUrl=settings().outbound_dead_letter_queue_url, MessageBody=outbox.body(key))
    except (BotoCoreError, ClientError):
        logger.exception("could not move a failed message to the dead-letter queue; it is retried")
        return False
    return True


def keys_to_read(message_keys: list[keys.Key]) -> list[keys.Key]:
    """What the sender reads along with a batch's messages, in the same BatchGetItem: each guest's profile (is the
    number on WhatsApp?) and, when sends are paced, the account's schedule."""
    wanted = [keys.user(user) for user in sorted({keys.user_id_of(key["pk"]) for key in message_keys})]
    if pacing_settings().paces:
        wanted.append(keys.send_pacing(settings().waha_session))
    return wanted


def _decimal(seconds: float) -> Decimal:
    return Decimal(f"{seconds:.3f}")


@dataclass
class _Schedule:
    """The account's pacing item: the slots reserved from now on, and each chat's (user's) reservations, the slot of
    each of its messages by the message's sort key (which starts with its creation time)."""

    version: int = 0
    slots: list[float] = field(default_factory=list)
    chats: dict[str, dict[str, float]] = field(default_factory=dict)

    @classmethod
    def of(cls, item: dict[str, Any] | None) -> _Schedule:
        if not item:
            return cls()
        return cls(
            int(item.get("version", 0)),
            sorted(float(slot) for slot in item.get("slots", [])),
            {
                user: {message: float(slot) for message, slot in reserved.items()}
                for user, reserved in item.get("chats", {}).items()
                if isinstance(reserved, dict)
            },
        )

    def item(self, session: str) -> dict[str, Any]:
        return {
            **keys.send_pacing(session),
            "type": "SendPacing",
            "version": self.version,
            "slots": [_decimal(slot) for slot in self.slots],
            "chats": {
                user: {message: _decimal(slot) for message, slot in reserved.items()}
                for user, reserved in self.chats.items()
            },
        }

    def slot_of(self, user_id: str, message_sk: str) -> float | None:
        return self.chats.get(user_id, {}).get(message_sk)


def first_free(start: float, slots: list[float], gap: float) -> float:
    """The earliest time from `start` at least `gap` away from every one of the (sorted) slots."""
    candidate = start
    for slot in slots:
        if slot <= candidate - gap:
            continue
        if slot >= candidate + gap:
            break
        candidate = slot + gap
    return candidate


@dataclass
class _Entry:
    """One record of the batch as the plan sees it."""

    record: dict[str, Any]
    key: keys.Key
    message: dict[str, Any]
    receives: int
    typing: float = 0.0
    lead: float = 0.0
    send_at: float | None = None
    # "not_on_whatsapp", "deferred" (queued again), "handed_back" (could not be queued again: NotYet), or None
    # when it is sent in this invocation at send_at.
    outcome: str | None = None

    @property
    def user_id(self) -> str:
        return keys.user_id_of(self.key["pk"])


def _sendable(message: dict[str, Any] | None, now_iso: str) -> bool:
    # What the sender would claim (delivery.Batch._settled decides for good): the plan leaves the rest alone.
    if not message or not message.get("chat_id"):
        return False
    status = message.get("status")
    return status in (store.PENDING, store.FAILED) or (status == "SENDING" and message.get("lease_until", "") < now_iso)


class Pacer:
    """A batch's pacing: what it read with the messages, the plan of its sends, and the schedule as last seen.

    plan() runs once, before the first record is delivered: it asks WAHA about numbers not checked yet, takes the
    slots of every message in one write of the schedule, and queues again, in one SendMessageBatch, the messages
    whose slot is too far off to wait for here. The others go out in the order of their slots (send_order).
    """

    def __init__(self, found: dict[tuple[str, str], dict[str, Any]], remaining_millis: Callable[[], int]) -> None:
        self._found = found
        self._remaining_millis = remaining_millis
        self._session = settings().waha_session
        self._schedule = _Schedule.of(found.get(store.identity(keys.send_pacing(self._session))))
        self._plan: dict[str, _Entry] = {}

    # --- the plan ----------------------------------------------------------------------------------------

    def plan(self, client: waha.WahaClient, records: list[dict[str, Any]], claim_millis: float) -> None:
        """Plans every record whose message looks sendable; the others are left to delivery as they are."""
        now_iso = store.iso(datetime.now(UTC))
        entries = []
        for record in records:
            try:
                key = outbox.parse_body(record["body"])
            except (ValueError, KeyError):
                continue
            message = self._found.get(store.identity(key))
            if _sendable(message, now_iso) and record.get("messageId") not in self._plan:
                assert message is not None
                entry = _Entry(record, key, message, receive_count(record))
                entries.append(entry)
                self._plan[record.get("messageId", "")] = entry
        self._plan_entries(client, entries, claim_millis)

    def _plan_entries(self, client: waha.WahaClient, entries: list[_Entry], claim_millis: float) -> None:
        checks_until = time.time() + CHECKS_SECONDS
        for entry in entries:
            if not self._on_whatsapp(client, entry.key, entry.message, checks_until):
                entry.outcome = self._not_on_whatsapp(entry.key, entry.message)
        config = pacing_settings()
        waiting = [entry for entry in entries if entry.outcome is None]
        for entry in waiting:
            entry.typing = typing_seconds(entry.message.get("text") or "")
            seen = entry.message.get("in_reply_to_waha_id")
            entry.lead = entry.typing or (SEEN_LEAD_SECONDS if seen and config.paces else 0.0)
        if not config.paces:
            return  # each typed just before its own send (slot_for)
        now = time.time()
        windows: list[tuple[float, float]] = []
        fresh = []
        for entry in waiting:
            kept = self._schedule.slot_of(entry.user_id, entry.key["sk"])
            if kept is not None and now <= kept + LATE_SECONDS:
                # Its slot was taken before it was queued again (and may have moved since, to make way for an
                # earlier message of its chat): the schedule says which it is.
                entry.send_at = kept
                if self._fits(entry, now, claim_millis):
                    windows.append((entry.send_at - entry.lead - LOCAL_GAP_SECONDS, entry.send_at))
                else:
                    entry.outcome = "deferred"
            else:
                fresh.append(entry)
        if fresh:
            try:
                self._reserve(fresh, windows, now, claim_millis)
            except _Contended:
                for entry in fresh:
                    entry.send_at, entry.outcome = None, "deferred"
        self._queue_again([entry for entry in waiting if entry.outcome == "deferred"])

    def _fits(self, entry: _Entry, now: float, claim_millis: float) -> bool:
        """Whether the entry's slot is near enough to wait for here, with time left to send after it."""
        assert entry.send_at is not None
        wait = entry.send_at - entry.lead - now
        needed_millis = (entry.send_at - now) * 1000 + claim_millis + PLAN_MARGIN_MILLIS
        return wait <= MAX_WAIT_SECONDS and self._remaining_millis() >= needed_millis

    def _reserve(
        self, fresh: list[_Entry], kept_windows: list[tuple[float, float]], now: float, claim_millis: float
    ) -> None:
        """Takes a slot for each entry (oldest message first) in one conditional write of the schedule."""
        config = pacing_settings()
        per_minute = config.max_messages_per_minute
        account_gap = 60 / per_minute + SLOT_SLACK_SECONDS if per_minute else 0.0
        per_chat = config.min_seconds_between_messages_per_chat
        chat_gap = per_chat + SLOT_SLACK_SECONDS if per_chat else 0.0
        schedule = self._schedule
        for _ in range(RESERVE_ATTEMPTS):
            # Slots and reservations that no longer constrain anything are dropped, which keeps the item small.
            slots = sorted(slot for slot in schedule.slots if slot > now - account_gap) if account_gap else []
            chats = {
                user: kept
                for user, reserved in schedule.chats.items()
                if (kept := {sk: slot for sk, slot in reserved.items() if slot > now - chat_gap})
            }
            windows = sorted(kept_windows)
            for entry in fresh:
                mine = chats.setdefault(entry.user_id, {})
                mine.pop(entry.key["sk"], None)  # a slot it missed
                if self._make_way(entry, mine, slots, now, account_gap, chat_gap):
                    continue
                after = max(mine.values()) + chat_gap if mine else 0.0
                earliest = max(now + entry.lead + CLAIM_SECONDS, after)
                # Sent here, one after another: its typing must not overlap the others'.
                entry.send_at, entry.outcome = _search(earliest, slots, account_gap, windows, entry.lead), None
                if self._fits(entry, now, claim_millis):
                    windows.append((entry.send_at - entry.lead - LOCAL_GAP_SECONDS, entry.send_at))
                    windows.sort()
                else:
                    # Queued again: any slot another sender can take, once the record has had time to come back.
                    earliest = max(earliest, now + entry.lead + COME_BACK_SECONDS)
                    entry.send_at, entry.outcome = _search(earliest, slots, account_gap, [], entry.lead), "deferred"
                if account_gap:
                    bisect.insort(slots, entry.send_at)
                mine[entry.key["sk"]] = entry.send_at
            wanted = _Schedule(schedule.version + 1, slots, chats)
            seen = self._write(schedule.version, wanted)
            if seen is None:
                self._schedule = wanted
                return
            schedule = seen
        self._schedule = schedule
        raise _Contended

    @staticmethod
    def _make_way(
        entry: _Entry, mine: dict[str, float], slots: list[float], now: float, account_gap: float, chat_gap: float
    ) -> bool:
        """When later messages of the entry's chat took slots first (their records reached a sender sooner) and
        still wait in the queue, the entry takes the first of those slots and each of them the next one, the last
        a new slot: the chat's messages go in the order they were written. Only slots further off than
        SWAP_HORIZON_SECONDS move: no sender can be waiting for them in an invocation. True when it did so."""
        later = sorted((sk, slot) for sk, slot in mine.items() if sk > entry.key["sk"])
        movable = [(sk, slot) for sk, slot in later if slot > now + SWAP_HORIZON_SECONDS]
        if not movable:
            return False
        fixed = [slot for sk, slot in mine.items() if (sk, slot) not in movable]
        taken = sorted(slot for _, slot in movable)
        if fixed and taken[0] < max(fixed) + chat_gap:
            return False
        last = _search(taken[-1] + chat_gap, slots, account_gap, [], 0.0)
        for (sk, _), slot in zip(movable, [*taken[1:], last], strict=True):
            mine[sk] = slot
        if account_gap:
            bisect.insort(slots, last)
        entry.send_at, entry.outcome = taken[0], "deferred"
        mine[entry.key["sk"]] = entry.send_at
        return True

    def send_order(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The records in the order to deliver them: those not sent here first (they end at once), then the
        others by their slot."""

        def position(indexed: tuple[int, dict[str, Any]]) -> tuple[float, int]:
            entry = self._plan.get(indexed[1].get("messageId", ""))
            if entry is None or entry.outcome is not None or entry.send_at is None:
                return (0.0, indexed[0])
            return (entry.send_at, indexed[0])

        return [record for _, record in sorted(enumerate(records), key=position)]

    def slot_for(
        self,
        client: waha.WahaClient,
        key: keys.Key,
        message: dict[str, Any],
        record: dict[str, Any],
        receives: int,
        claim_millis: float,
    ) -> Slot | str:
        """The planned slot to send this message at, here; or what happened instead: "not_on_whatsapp" (FAILED,
        nothing sent) or "deferred" (queued again for its slot). Raises NotYet when it could not be queued again.
        A record the plan did not cover (its message changed since the batch's read) is planned on its own now."""
        entry = self._plan.get(record.get("messageId", ""))
        if entry is None or entry.key != key:
            entry = _Entry(record, key, message, receives)
            self._plan[record.get("messageId", "")] = entry
            self._plan_entries(client, [entry], claim_millis)
        if entry.outcome == "handed_back":
            raise NotYet("waiting for a send slot")
        if entry.outcome is not None:
            return entry.outcome
        seen_id = entry.message.get("in_reply_to_waha_id")
        if entry.send_at is None:
            # Not paced: typing starts now, the send follows it.
            return Slot(time.time() + entry.lead, entry.typing, seen_id)
        return Slot(entry.send_at, entry.typing, seen_id)

    # --- is the number on WhatsApp? ----------------------------------------------------------------------

    def _on_whatsapp(self, client: waha.WahaClient, key: keys.Key, message: dict[str, Any], until: float) -> bool:
        profile_key = keys.user(keys.user_id_of(key["pk"]))
        profile = self._found.get(store.identity(profile_key))
        known = profile.get(ON_WHATSAPP) if profile else None
        if message.get("in_reply_to"):
            # The guest wrote to us: on WhatsApp, whatever an older answer said.
            if known is False and profile is not None:
                self._remember(profile_key, profile, True)
            return True
        if known is True:
            return True
        if known is False and not _stale(profile.get(WHATSAPP_CHECKED_AT) if profile else None):
            return False
        # Checks share a few seconds per batch, so that a hanging WAHA cannot eat the invocation.
        exists = client.number_exists(message["chat_id"], min(CHECK_TIMEOUT_SECONDS, max(until - time.time(), 0.2)))
        if exists is None:
            logger.warning("WAHA could not tell whether the number is on WhatsApp; sending as usual")
            return True
        if profile is not None:
            self._remember(profile_key, profile, exists)
        return exists

    def _remember(self, profile_key: keys.Key, profile: dict[str, Any], exists: bool) -> None:
        now = store.iso(datetime.now(UTC))
        # Conditional: an erased guest's profile must not come back.
        stored = store.update_item(
            profile_key,
            f"SET {ON_WHATSAPP} = :exists, {WHATSAPP_CHECKED_AT} = :now",
            {":exists": exists, ":now": now},
        )
        if stored:
            # The batch's other messages to this guest go by the answer too.
            profile.update({ON_WHATSAPP: exists, WHATSAPP_CHECKED_AT: now})

    @staticmethod
    def _not_on_whatsapp(key: keys.Key, message: dict[str, Any]) -> str:
        finished = store.update_item(
            key,
            "SET #status = :failed, last_error = :reason REMOVE outbox_pk, outbox_sk, delivery_unknown",
            {":failed": store.FAILED, ":reason": NOT_ON_WHATSAPP, ":pending": store.PENDING},
            condition="#status IN (:pending, :failed)",
            names={"#status": "status"},
        )
        logger.warning(
            "the number is not on WhatsApp; message not sent",
            extra={"message_id": message.get("message_id"), "recorded": finished},
        )
        return "not_on_whatsapp"

    # --- the schedule --------------------------------------------------------------------------------------

    def _write(self, version: int, wanted: _Schedule) -> _Schedule | None:
        """Writes the schedule if nobody changed it since `version`; None when written, else the one found."""
        if version:
            action = store.put(wanted.item(self._session), "version = :seen", {":seen": version})
        else:
            action = store.put(wanted.item(self._session), "attribute_not_exists(pk)")
        try:
            aws_clients.dynamodb().put_item(**action["Put"])
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            item = error.response.get("Item")
            return _Schedule.of(store.from_item(item) if item else None)
        return None

    # --- waiting in the queue ----------------------------------------------------------------------------

    def _queue_again(self, entries: list[_Entry]) -> None:
        """New records for the entries' keys, visible shortly before each slot and carrying it with the receives so
        far (this one does not count), ten to a SendMessageBatch; each such record then ends. An entry SQS did not
        take waits in its own record instead (its visibility is changed; NotYet when it is delivered)."""
        now = time.time()
        for start in range(0, len(entries), 10):
            chunk = entries[start : start + 10]
            requests = [
                {
                    "Id": str(index),
                    "MessageBody": _requeued_body(entry),
                    "DelaySeconds": _delay(entry, now),
                }
                for index, entry in enumerate(chunk)
            ]
            try:
                response = aws_clients.sqs().send_message_batch(
                    QueueUrl=settings().outbound_queue_url, Entries=requests
                )
                taken = {int(success["Id"]) for success in response.get("Successful", [])}
            except (BotoCoreError, ClientError):
                logger.exception("could not queue messages for their send slots; their records wait instead")
                taken = set()
            for index, entry in enumerate(chunk):
                if index in taken:
                    continue
                entry.outcome = "handed_back"
                _change_visibility(entry.record, _delay(entry, now))
        for entry in entries:
            if entry.outcome == "deferred":
                logger.info("message queued again for its send slot", extra={"message_sk": entry.key["sk"]})


def _requeued_body(entry: _Entry) -> str:
    # The slot itself stays in the schedule, which may move it; only the receives so far travel with the key.
    body = {"pk": entry.key["pk"], "sk": entry.key["sk"], "receives": max(entry.receives - 1, 0)}
    return json.dumps(body, separators=(",", ":"))


def _delay(entry: _Entry, now: float) -> int:
    if entry.send_at is None:
        return CONTENDED_RETRY_SECONDS
    return min(max(int(entry.send_at - entry.lead - now) - RETURN_EARLY_SECONDS, 0), MAX_DELAY_SECONDS)


def _change_visibility(record: dict[str, Any], delay: int) -> None:
    outbox.retry_after(record, settings().outbound_queue_url, delay)


def _search(earliest: float, slots: list[float], gap: float, windows: list[tuple[float, float]], lead: float) -> float:
    """The earliest slot from `earliest` at least `gap` from every account slot, whose typing (`lead` before it)
    overlaps none of `windows` (sorted)."""
    candidate = earliest
    while True:
        spaced = first_free(candidate, slots, gap) if gap else candidate
        candidate = spaced
        for begin, end in windows:
            if candidate - lead - LOCAL_GAP_SECONDS < end and begin < candidate:
                candidate = end + lead + LOCAL_GAP_SECONDS
        if candidate == spaced:
            return candidate


class _Contended(Exception):
    """Other senders kept changing the schedule between this sender's read and write."""


def _stale(checked_at: str | None) -> bool:
    if not checked_at:
        return True
    checked = datetime.strptime(checked_at, store.ISO_FORMAT).replace(tzinfo=UTC)
    return datetime.now(UTC) - checked > timedelta(days=NOT_ON_WHATSAPP_RECHECK_DAYS)


@dataclass
class Slot:
    """When one message goes out, and what a person would do before it: read the guest's message, type."""

    send_at: float
    typing_seconds: float
    seen_id: str | None

    def lease_millis(self) -> float:
        """What the claim's lease must cover beyond the send: the wait for the slot."""
        return max(self.send_at - time.time(), 0) * 1000

    def before_send(self, client: waha.WahaClient, chat_id: str) -> None:
        """Seen, typing, the pause and its end, each in its time before the slot; then waits for the slot.
        Raises NoSlot when the sender is behind its slot (a look-up in WAHA took long): sending then could come too
        close to the next slot's message."""
        self._check_on_time()
        stop_at = self.send_at - min(STOP_LEAD_SECONDS, self.typing_seconds / 3)
        _sleep_until(self.send_at - self.typing_seconds)
        if self.seen_id:
            # Half the pause at most, so that a slow sendSeen leaves typing its turn.
            seen_by = stop_at - (stop_at - time.time()) / 2 if self.typing_seconds else stop_at
            self._try("sendSeen", lambda timeout: client.send_seen(chat_id, self.seen_id or "", timeout), seen_by)
        if self.typing_seconds:
            self._try("startTyping", lambda timeout: client.typing(chat_id, True, timeout), stop_at)
            _sleep_until(stop_at)
            self._try("stopTyping", lambda timeout: client.typing(chat_id, False, timeout), self.send_at)
        _sleep_until(self.send_at)
        self._check_on_time()

    def _check_on_time(self) -> None:
        if pacing_settings().paces and time.time() > self.send_at + LATE_SECONDS:
            logger.warning("the sender fell behind its send slot; this attempt is retried")
            raise NoSlot("fell behind its send slot")

    @staticmethod
    def _try(call: str, request: Any, deadline: float) -> None:
        timeout = PRESENCE_TIMEOUT_SECONDS
        if pacing_settings().paces:
            # Never past the deadline: the send keeps its slot whatever WAHA does.
            timeout = min(timeout, deadline - time.time())
            if timeout <= 0.01:
                logger.info("no time left before the send slot; skipped", extra={"call": call})
                return
        try:
            request(timeout)
        except waha.WahaError as error:
            logger.info("WAHA refused a courtesy call; sending anyway", extra={"call": call, "reason": error.reason})


def _sleep_until(moment: float) -> None:
    delay = moment - time.time()
    if delay > 0:
        time.sleep(delay)
