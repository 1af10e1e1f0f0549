"""Answering a guest's message from the hotel's knowledge, after the webhook has stored it.

The webhook queues the message's key on the answer queue instead of deciding a reply itself (it never waits
for an engine). Here, for each message: one consistent read of the message and the guest's profile, one of
the phone's lookup (the bot's memory: handoff, opt-out, cooldown), the engine's verdict, the replies' keys
queued for the sender, and one transaction:
- the message is marked `routed` (condition: not yet), so a redelivered job answers nothing twice;
- the replies: the file's answers (`kind: answer`, `faq_id`) or the department's reply (`kind: request`),
  which no cooldown limits; or, for anything else, the guide's auto-reply under its usual rules
  (concierge.conversations.auto_replies: cooldown, out-of-hours text, once each, decided on the lookup's state version);
- the session: its last activity, and for a request or a message for staff, `waiting_since` (a request also
  says which department and what was asked, until staff reply or resolve);
- the lookup: unchanged since it was read (a staff reply or an opt-out in between cancels the answer, which
  is then decided again on what is there now).
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from concierge import aws_clients, keys, phone, store, templates
from concierge.answers import knowledge as knowledge_file
from concierge.answers.verdict import Verdict, staff
from concierge.config import conversation_settings, settings
from concierge.conversations import auto_replies, stays
from concierge.conversations.conversation import policy
from concierge.sending import outbox

logger = Logger(child=True)

ANSWER_ATTEMPTS = 4
# How much of the conversation the Bedrock engine sees besides the message (this session's only): as many as it
# sends (bedrock.MAX_RECENT_MESSAGES; not imported from there, which would load it without a model set).
RECENT_MESSAGES = 10
# A queued key whose message row is still missing after this long was never committed (see concierge.sending.delivery).
UNCOMMITTED_WINDOW_SECONDS = 120
UNCOMMITTED_RETRY_SECONDS = 1
REQUEST_TEXT_CHARACTERS = stays.LAST_MESSAGE_PREVIEW_CHARACTERS


class AnswerLater(Exception):
    """This record goes back to the queue: its message is not written yet, or writing kept conflicting."""


@dataclass(frozen=True)
class _Stay:
    """What one message is answered from: the message row, the guest's phone and the bot's memory of the stay."""

    inbound: dict[str, Any]
    e164: str
    lookup: dict[str, Any]


def _knowledge() -> knowledge_file.Knowledge | None:
    """The hotel's knowledge, or None: none configured, or a file that cannot be used (a deployment mistake: the
    guests' messages then go to staff, and every batch logs why, naming the entry)."""
    try:
        return knowledge_file.configured()
    except (knowledge_file.KnowledgeError, OSError, UnicodeDecodeError, BotoCoreError, ClientError) as error:
        logger.error("the hotel's knowledge file cannot be used; messages go to staff", extra={"error": str(error)})
        return None


def prepare() -> None:
    """Reads the knowledge and builds the built-in engine's index during init, not on the first message (and so
    that a SnapStart snapshot holds them)."""
    knowledge = _knowledge()
    if knowledge is not None:
        from concierge.answers import retrieval

        retrieval.for_knowledge(knowledge).classify("")


def classify(text: str, recent: list[tuple[str, str]] | None = None) -> Verdict:
    """The verdict of the configured engine: Bedrock when AI_MODEL_ID is set (the built-in engine when it
    fails), else the built-in engine; staff when no knowledge file is configured or it cannot be used."""
    knowledge = _knowledge()
    if knowledge is None:
        return staff("no usable knowledge file")
    from concierge.answers import retrieval

    model_id = _model_id()
    if model_id and time.monotonic() >= _bedrock_resting_until[0]:
        from concierge.answers import bedrock

        try:
            return bedrock.classify(text, knowledge, recent or [], model_id)
        except bedrock.BedrockUnavailable:
            # A slow or failing Bedrock must not take a whole batch past the function's timeout.
            _bedrock_resting_until[0] = time.monotonic() + BEDROCK_REST_SECONDS
            logger.warning("Bedrock did not classify the message; the built-in engine does", exc_info=True)
    return retrieval.for_knowledge(knowledge).classify(text)


# After a Bedrock failure this container uses the built-in engine for a while (a per-container circuit breaker).
BEDROCK_REST_SECONDS = 60
_bedrock_resting_until = [0.0]


def _model_id() -> str:
    return conversation_settings().ai_model_id


class Batch:
    """One SQS batch of answer jobs: messages and profiles read in one call, lookups in a second."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        wanted = []
        for record in records:
            try:
                wanted.append(outbox.parse_body(record["body"]))
            except ValueError:
                continue  # reported when its record is processed
        self._stays = _read_stays(wanted) if wanted else {}

    def answer(self, record: dict[str, Any]) -> str:
        """Answers one record's message; returns what happened, raises AnswerLater to retry it."""
        try:
            key = outbox.parse_body(record["body"])
        except ValueError as error:
            raise AnswerLater("queue record is not a message key") from error
        stay = self._stays.get(store.identity(key))
        for attempt in range(ANSWER_ATTEMPTS):
            if stay is None:
                return _missing(key, record)
            if isinstance(stay, str):
                return stay
            try:
                outcome, lookup = _answer(stay, datetime.now(UTC))
            except _Changed:
                # Jitter spreads apart this guest's messages answered at once on several instances.
                time.sleep(random.uniform(0, 0.01 * 2**attempt))  # noqa: S311 - not a secret
                stay = _read_stays([key]).get(store.identity(key))
                continue
            self._remember(stay.e164, lookup)
            return outcome
        raise AnswerLater("the guest's stay kept changing while the answer was written")

    def _remember(self, e164: str, lookup: dict[str, Any]) -> None:
        """The guest's other messages in this batch are decided on the bot's memory as this one left it (three
        quick lines in one batch then cost no cancelled transaction)."""
        for identity, stay in self._stays.items():
            if isinstance(stay, _Stay) and stay.e164 == e164:
                self._stays[identity] = replace(stay, lookup=lookup)


def _read_stays(message_keys: list[keys.Key]) -> dict[tuple[str, str], _Stay | str]:
    """Each message's stay, or why it has none to answer in (a string outcome)."""
    profile_keys = [keys.user(keys.user_id_of(key["pk"])) for key in message_keys]
    rows = store.get_many(message_keys + profile_keys)
    phones: dict[tuple[str, str], str] = {}
    stays_found: dict[tuple[str, str], _Stay | str] = {}
    for key, profile_key in zip(message_keys, profile_keys, strict=True):
        inbound = rows.get(store.identity(key))
        profile = rows.get(store.identity(profile_key))
        if inbound is None:
            continue
        if inbound.get("routed"):
            stays_found[store.identity(key)] = "duplicate"
        elif not profile or not profile.get("phone_e164"):
            stays_found[store.identity(key)] = "no_active_session"
        else:
            phones[store.identity(key)] = profile["phone_e164"]
    lookups = store.get_many([keys.phone(e164) for e164 in set(phones.values())]) if phones else {}
    for identity, e164 in phones.items():
        inbound = rows[identity]
        lookup = lookups.get(store.identity(keys.phone(e164)))
        if not lookup or lookup.get("active_session_id") != inbound["session_id"]:
            # Checked out, a new stay, or the phone now belongs to someone else: nobody to answer.
            stays_found[identity] = "no_active_session"
        else:
            stays_found[identity] = _Stay(inbound, e164, lookup)
    return stays_found


def _missing(key: keys.Key, record: dict[str, Any]) -> str:
    attributes = record.get("attributes", {})
    sent_millis = int(attributes.get("SentTimestamp") or 0)
    receive_count = int(attributes.get("ApproximateReceiveCount") or 1)
    last_receive = receive_count >= settings().answer_max_receive_count
    if datetime.now(UTC).timestamp() - sent_millis / 1000 < UNCOMMITTED_WINDOW_SECONDS and not last_receive:
        # The webhook queues the key before it commits the row: look again after 1 s, 2 s, 4 s...
        outbox.retry_after(record, settings().answer_queue_url, UNCOMMITTED_RETRY_SECONDS * 2 ** (receive_count - 1))
        raise AnswerLater("message row not written yet")
    # Its webhook transaction was cancelled (a redelivery stored by another copy), or the guest was erased.
    logger.info("message to answer is not in the table; dropped", extra={"message_sk": key["sk"]})
    return "missing"


class _Changed(Exception):
    """The stay changed between our read and write: decide again on what is there now."""


def _answer(stay: _Stay, now: datetime) -> tuple[str, dict[str, Any]]:
    """Routes one message; returns the outcome and the phone's lookup as the transaction left it."""
    inbound = stay.inbound
    state = auto_replies.ConversationState.of(stay.lookup)
    if state.opted_out or state.in_handoff(now):
        # Staff took the conversation (or the guest opted out) after the webhook sent it here.
        verdict = staff("staff are handling the conversation")
    elif not conversation_settings().ai_answers:
        verdict = staff("AI_ANSWERS is off")
    else:
        verdict = classify(str(inbound.get("text", "")), _recent(stay, now) if _model_id() else None)
    language = verdict.language if verdict.language in templates.LANGUAGES else state.language
    decision = None
    replies: list[store.StoredMessage] = []
    if verdict.to_staff:
        # The guide's rules, exactly as the webhook applies them with AI_ANSWERS off (the guest's stored language).
        decision = auto_replies.decide("", state, policy(), now)
        if decision.reply and decision.text:
            replies.append(_reply(stay, decision.reply.value, decision.text, state.language, now, {}))
    else:
        replies = _knowledge_replies(stay, verdict, language, now)
    replies = [replace(reply, queued=outbox.enqueue(reply.key)) for reply in replies]
    actions = [_mark_routed(inbound, verdict)]
    actions += [store.put_new(reply.item()) for reply in replies]
    actions.append(_session_share(stay, verdict, replies))
    changes = decision.changes if decision else None
    actions.append(_lookup_share(stay, state, changes))
    try:
        store.transact(actions)
    except store.TransactionConflict as conflict:
        if conflict.failed(0):
            logger.info("message answered already", extra={"user_id": inbound["user_id"]})
            return "duplicate", stay.lookup
        raise _Changed from conflict
    outcome = "answered" if verdict.faqs else "request" if verdict.department else "to_staff"
    logger.info(
        "guest message routed",
        extra={
            "user_id": inbound["user_id"],
            "phone": phone.mask(stay.e164),
            "route": verdict.labels(),
            "engine": verdict.engine,
            "reason": verdict.reason or None,
            "replies": len(replies),
        },
    )
    lookup = {**stay.lookup, "state_version": state.version + 1, **changes} if changes else stay.lookup
    return outcome, lookup


def _knowledge_replies(stay: _Stay, verdict: Verdict, language: str, now: datetime) -> list[store.StoredMessage]:
    knowledge = knowledge_file.configured()
    assert knowledge is not None  # a verdict that is not for staff came from the file
    text_language = knowledge.text_language(language)
    replies = []
    for index, faq_id in enumerate(verdict.faqs):
        faq = knowledge.faq(faq_id)
        if faq is not None:
            at = now + timedelta(microseconds=index)
            extra = {"faq_id": faq_id, "engine": verdict.engine}
            replies.append(_reply(stay, "answer", faq.answer[text_language], text_language, at, extra))
    if verdict.department:
        department = knowledge.department(verdict.department)
        if department is not None:
            at = now + timedelta(microseconds=len(replies))
            extra = {"department": department.name, "engine": verdict.engine}
            replies.append(_reply(stay, "request", department.reply[text_language], text_language, at, extra))
    return replies


def _reply(
    stay: _Stay, kind: str, text: str, language: str, at: datetime, extra: dict[str, Any]
) -> store.StoredMessage:
    inbound = stay.inbound
    return store.StoredMessage(
        user_id=inbound["user_id"],
        message_id=str(uuid.uuid4()),
        session_id=inbound["session_id"],
        role="System",
        text=text,
        created_at=store.iso(at),
        status=store.PENDING,
        chat_id=phone.chat_id(stay.e164),
        extra={
            "kind": kind,
            "in_reply_to": inbound["message_id"],
            # The sender marks that message seen before replying (concierge.sending.pacing).
            "in_reply_to_waha_id": inbound.get("waha_message_id"),
            "language": language,
            **extra,
        },
    )


def _mark_routed(inbound: dict[str, Any], verdict: Verdict) -> dict[str, Any]:
    """The message's share: where it went (the history shows it), once; its sweeper marker, if any, removed."""
    routed: dict[str, Any] = {"to": "staff" if verdict.to_staff else "answer" if verdict.faqs else "request"}
    routed["engine"] = verdict.engine
    if verdict.faqs:
        routed["faqs"] = list(verdict.faqs)
    if verdict.department:
        routed["department"] = verdict.department
    return store.update(
        {"pk": inbound["pk"], "sk": inbound["sk"]},
        "SET routed = :routed REMOVE outbox_pk, outbox_sk",
        {":routed": routed},
        "attribute_exists(pk) AND attribute_not_exists(routed)",
    )


def _session_share(stay: _Stay, verdict: Verdict, replies: list[store.StoredMessage]) -> dict[str, Any]:
    inbound = stay.inbound
    user_id, session_id = inbound["user_id"], inbound["session_id"]
    waits = verdict.to_staff or verdict.department is not None
    request = None
    if verdict.department:
        request = {
            "department": verdict.department,
            "text": str(inbound.get("text", ""))[:REQUEST_TEXT_CHARACTERS],
            "at": inbound["created_at"],
        }
    if replies:
        return stays.activity(
            user_id,
            session_id,
            replies[-1],
            guest_waiting_since=inbound["created_at"] if waits else None,
            extra_sets={"open_request": request} if request else None,
        )
    return stays.waiting(user_id, session_id, inbound["created_at"])


def _lookup_share(stay: _Stay, state: auto_replies.ConversationState, changes: dict[str, Any] | None) -> dict:
    """The bot's memory as read (no staff reply, opt-out or other reply since), moved on when it changes."""
    session_id = stay.inbound["session_id"]
    seen = "state_version = :seen" if state.version else "attribute_not_exists(state_version)"
    values: dict[str, Any] = {":session": session_id}
    if state.version:
        values[":seen"] = state.version
    condition = f"active_session_id = :session AND {seen}"
    if not changes:
        return store.condition_check(keys.phone(stay.e164), condition, values)
    sets = ["state_version = :next"] + [f"{name} = :{name}" for name in changes]
    values.update({":next": state.version + 1, **{f":{name}": value for name, value in changes.items()}})
    return store.update(keys.phone(stay.e164), "SET " + ", ".join(sets), values, condition)


def _recent(stay: _Stay, now: datetime) -> list[tuple[str, str]]:
    """This session's last messages before the one being answered, oldest first, for the Bedrock engine."""
    inbound = stay.inbound
    start = stay.lookup.get("active_session_start") or inbound["created_at"]
    low, high = keys.messages_between(start, inbound["created_at"])
    # One page, newest first: only the last few messages matter.
    response = aws_clients.dynamodb().query(
        TableName=settings().table_name,
        KeyConditionExpression="pk = :pk AND sk BETWEEN :low AND :high",
        ExpressionAttributeValues=store.to_item(
            {":pk": keys.user_partition(inbound["user_id"]), ":low": low, ":high": high}
        ),
        ScanIndexForward=False,
        Limit=RECENT_MESSAGES + 1,
    )
    items = [store.from_item(item) for item in response.get("Items", [])]
    same_session = [
        item
        for item in items
        if item.get("session_id") == inbound["session_id"] and item.get("message_id") != inbound["message_id"]
    ]
    return [(str(item["role"]), str(item.get("text", ""))) for item in reversed(same_session[:RECENT_MESSAGES])]
