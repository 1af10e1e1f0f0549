"""Sending like a person, so that WhatsApp has no reason to ban the hotel's number.

WAHA's advice against bans: mark the guest's message seen, show typing for a while, never flood a chat, and do
not write to numbers that are not on WhatsApp. So, for each message the sender is about to send:

- Before the first message to a number (one that answers no guest's message), WAHA is asked whether the number
  is on WhatsApp. The answer is kept on the guest's profile, which the sender reads with the batch's messages
  anyway. A "no" ends the message FAILED with `not on WhatsApp`, and every later one too; a check that fails
  (WAHA down, an engine without the endpoint) is not a "no": the message is sent as before.
- Sends take slots. One item per WhatsApp account (keys.send_pacing) holds the slots reserved from now on and
  each chat's last slot, and every sender changes it with a conditional PutItem on its version, so the several
  sender instances that run at once share one schedule. A slot is at least MIN_SECONDS_BETWEEN_MESSAGES_PER_CHAT
  after the chat's last one (so a chat's messages keep the order they were reserved in) and at least 60 s /
  MAX_MESSAGES_PER_MINUTE away from every other slot of the account, earlier gaps included: a chat whose next
  slot lies far ahead holds up no other chat.
- A slot a few seconds away is waited for in the invocation. A later one is kept in a new queue record for the
  same key (SendMessage with DelaySeconds, which returns it shortly before its slot), and this record ends. That
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

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from concierge import aws_clients, keys, outbox, store, waha
from concierge.config import pacing_settings, settings

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
    profiles = {keys.user(keys.user_id_of(key["pk"]))["pk"] for key in message_keys}
    wanted = [keys.user(keys.user_id_of(partition)) for partition in sorted(profiles)]
    if pacing_settings().paces:
        wanted.append(keys.send_pacing(settings().waha_session))
    return wanted


def _decimal(seconds: float) -> Decimal:
    return Decimal(f"{seconds:.3f}")


@dataclass
class _Schedule:
    """The account's pacing item: the slots reserved from now on, and each chat's (user's) last slot."""

    version: int = 0
    slots: list[float] = field(default_factory=list)
    chats: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, item: dict[str, Any] | None) -> _Schedule:
        if not item:
            return cls()
        return cls(
            int(item.get("version", 0)),
            sorted(float(slot) for slot in item.get("slots", [])),
            {user: float(slot) for user, slot in item.get("chats", {}).items()},
        )

    def item(self, session: str) -> dict[str, Any]:
        return {
            **keys.send_pacing(session),
            "type": "SendPacing",
            "version": self.version,
            "slots": [_decimal(slot) for slot in self.slots],
            "chats": {user: _decimal(slot) for user, slot in self.chats.items()},
        }


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


class Pacer:
    """A batch's view of the pacing: what it read with the messages, and the schedule as this sender last saw it."""

    def __init__(self, found: dict[tuple[str, str], dict[str, Any]], remaining_millis: Any) -> None:
        self._found = found
        self._remaining_millis = remaining_millis
        self._session = settings().waha_session
        self._schedule = _Schedule.of(found.get(store.identity(keys.send_pacing(self._session))))

    def prepare(
        self,
        client: waha.WahaClient,
        key: keys.Key,
        message: dict[str, Any],
        record: dict[str, Any],
        receives: int,
        claim_millis: float,
    ) -> Slot | str:
        """The slot to send this message at, waited for in this invocation; or what happened instead:
        "not_on_whatsapp" (FAILED, nothing sent) or "deferred" (queued again for its slot). Raises NotYet."""
        if not self._on_whatsapp(client, key, message):
            return self._not_on_whatsapp(key, message)
        config = pacing_settings()
        typing = typing_seconds(message.get("text") or "")
        seen_id = message.get("in_reply_to_waha_id")
        lead = typing if typing else (SEEN_LEAD_SECONDS if seen_id and config.paces else 0.0)
        now = time.time()
        if not config.paces:
            return Slot(now + lead, typing, seen_id)
        kept = _body(record).get("send_at")
        if isinstance(kept, (int, float)) and not isinstance(kept, bool) and now <= kept + LATE_SECONDS:
            send_at = float(kept)
        else:
            try:
                send_at = self._reserve(keys.user_id_of(key["pk"]), now + lead + CLAIM_SECONDS)
            except _Contended:
                self._queue_again(record, key, None, CONTENDED_RETRY_SECONDS, receives)
                return "deferred"
        wait = send_at - lead - now
        needed_millis = max(send_at - now, 0) * 1000 + claim_millis
        if wait <= MAX_WAIT_SECONDS and self._remaining_millis() >= needed_millis:
            return Slot(send_at, typing, seen_id)
        delay = max(int(wait) - RETURN_EARLY_SECONDS, 0)
        self._queue_again(record, key, send_at, delay, receives)
        logger.info("message waits for its send slot", extra={"message_sk": key["sk"], "seconds": round(wait, 1)})
        return "deferred"

    # --- is the number on WhatsApp? ----------------------------------------------------------------------

    def _on_whatsapp(self, client: waha.WahaClient, key: keys.Key, message: dict[str, Any]) -> bool:
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
        exists = client.number_exists(message["chat_id"], CHECK_TIMEOUT_SECONDS)
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

    # --- slots -------------------------------------------------------------------------------------------

    def _reserve(self, user_id: str, earliest: float) -> float:
        """Takes the first slot from `earliest` that keeps both limits; its time (epoch seconds)."""
        config = pacing_settings()
        account_gap = 60 / config.max_messages_per_minute + SLOT_SLACK_SECONDS if config.max_messages_per_minute else 0
        chat_gap = (
            config.min_seconds_between_messages_per_chat + SLOT_SLACK_SECONDS
            if config.min_seconds_between_messages_per_chat
            else 0
        )
        schedule = self._schedule
        for _ in range(RESERVE_ATTEMPTS):
            now = time.time()
            # Slots and chats that no longer constrain anything are dropped, which keeps the item small.
            slots = [slot for slot in schedule.slots if slot > now - account_gap] if account_gap else []
            chats = {user: slot for user, slot in schedule.chats.items() if slot > now - chat_gap} if chat_gap else {}
            start = max(earliest, chats[user_id] + chat_gap) if user_id in chats else earliest
            slot = first_free(start, slots, account_gap) if account_gap else start
            wanted = _Schedule(
                schedule.version + 1,
                sorted([*slots, slot]) if account_gap else [],
                {**chats, user_id: slot} if chat_gap else {},
            )
            seen = self._write(schedule.version, wanted)
            if seen is None:
                self._schedule = wanted
                return slot
            schedule = seen
        self._schedule = schedule
        raise _Contended

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

    @staticmethod
    def _queue_again(record: dict[str, Any], key: keys.Key, send_at: float | None, delay: int, receives: int) -> None:
        """A new record for the key that becomes visible after `delay` seconds, carrying the slot and the receives so
        far (this one does not count); this record then ends. If SQS refuses, this record itself waits (NotYet)."""
        body: dict[str, Any] = {"pk": key["pk"], "sk": key["sk"], "receives": max(receives - 1, 0)}
        if send_at is not None:
            body["send_at"] = round(send_at, 3)
        delay = min(max(delay, 0), MAX_DELAY_SECONDS)
        try:
            aws_clients.sqs().send_message(
                QueueUrl=settings().outbound_queue_url,
                MessageBody=json.dumps(body, separators=(",", ":")),
                DelaySeconds=delay,
            )
        except (BotoCoreError, ClientError) as error:
            logger.exception("could not queue a message for its send slot; the record waits instead")
            try:
                aws_clients.sqs().change_message_visibility(
                    QueueUrl=settings().outbound_queue_url,
                    ReceiptHandle=record["receiptHandle"],
                    VisibilityTimeout=delay,
                )
            except (BotoCoreError, ClientError):
                logger.exception("could not delay the record")
            raise NotYet("waiting for a send slot") from error


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
            self._try("sendSeen", lambda timeout: client.send_seen(chat_id, self.seen_id or "", timeout), stop_at)
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
