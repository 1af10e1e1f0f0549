"""Registering a checked-in guest: user, check-in, active chat session and welcome, in one transaction.

A phone number is not a person: numbers are recycled and shared in families. A registration on a
known phone is the same guest only when the full name or the email matches the stored guest; anyone
else becomes a new user, the phone points to them from now on, and the earlier guest keeps their own
history. A returning guest keeps their user id; their new stay gets a new session and the session
still active is closed in the same transaction. A repeated registration (the same stay of the same
person, or the same Idempotency-Key) answers with the first one's ids.

The welcome's key is known before the transaction (the phone's lookup item is read first), so it is
queued before the rows are committed: a committed message has always reached the queue, or carries
the outbox index's `UNQUEUED` marker for the sweeper (see `outbox`).
"""

from __future__ import annotations

import hashlib
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from aws_lambda_powertools import Logger
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from concierge import keys, phone, store, templates
from concierge.config import settings
from concierge.conversations import stays
from concierge.sending import outbox

logger = Logger(child=True)

REGISTRATION_KEY_TTL_SECONDS = 24 * 3600
# Each attempt re-reads the phone's lookup item; only registrations of one phone racing each
# other need more than one, and the loser of the last attempt is told to retry (409).
MAX_ATTEMPTS = 6
INVALID_PHONE_REASON = "invalid phone number"

WHATSAPP_QUEUED = "queued"
WHATSAPP_INVALID_PHONE = "invalid_phone"
WHATSAPP_OPTED_OUT = "opted_out"
OPTED_OUT_REASON = "guest opted out of automated messages"


def _room_text(value: object) -> object:
    # Hotel systems send rooms as numbers too; a boolean or fraction is not a room.
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return str(int(value))
    return value


def _iso_date_text(value: object) -> object:
    # Only "YYYY-MM-DD": pydantic would otherwise read numbers as Unix timestamps.
    if not isinstance(value, str) or len(value) != 10 or value[4] != "-" or value[7] != "-":
        raise ValueError("must be a date written YYYY-MM-DD")
    return value


# Characters an unquoted local part may not hold (RFC 5322's specials); quoted local parts are not accepted.
_SPECIALS = frozenset('()<>[]:;@\\,"')


def _email_address(value: str) -> str:
    """A syntactic check of an email address: one @, a local part, a domain of dot-separated labels; the domain is
    kept in lower case. Nothing is ever sent to it, so this replaces email-validator (EmailStr), whose import alone
    cost the register function's cold start about 20 ms. As EmailStr did, "Name <address>" gives the address."""
    if value.endswith(">") and "<" in value:
        value = value[value.rindex("<") + 1 : -1]
    local, at, domain = value.rpartition("@")
    labels = domain.split(".")
    problem = None
    if not at or "@" in local:
        problem = "it must have exactly one @-sign"
    elif any(character.isspace() or not character.isprintable() for character in value):
        problem = "it must not contain spaces or control characters"
    elif not 0 < len(local) <= 64 or local[0] == "." or local[-1] == "." or ".." in local or _SPECIALS & set(local):
        problem = "the part before the @-sign is not valid"
    elif len(labels) < 2 or labels[-1].isdigit():
        problem = "the part after the @-sign must be a domain name with a period"
    elif any(not _domain_label(label) for label in labels):
        problem = "the part after the @-sign is not a valid domain name"
    if problem:
        raise PydanticCustomError("value_error", "value is not a valid email address: {reason}", {"reason": problem})
    return f"{local}@{domain.lower()}"


def _domain_label(label: str) -> bool:
    # Letters (any script: internationalised domains), digits and inner hyphens.
    return (
        0 < len(label) <= 63
        and label.replace("-", "").isalnum()
        and not label.startswith("-")
        and not label.endswith("-")
    )


EmailAddress = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=254),
    AfterValidator(_email_address),
    Field(json_schema_extra={"format": "email"}),
]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
RoomNumber = Annotated[
    str,
    BeforeValidator(_room_text),
    StringConstraints(strip_whitespace=True, min_length=1, max_length=20, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$"),
]
IsoDate = Annotated[date, BeforeValidator(_iso_date_text)]
PhoneText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]


class RegistrationRequest(BaseModel):
    """The fields a registration reads; anything else a hotel system sends is ignored and reported."""

    model_config = ConfigDict(extra="ignore")

    full_name: Name
    room_number: RoomNumber
    checkin_date: IsoDate
    email: EmailAddress | None = None
    phone_number: PhoneText
    checkout_date: IsoDate | None = None
    language: Literal["id", "en"] | None = None

    @model_validator(mode="after")
    def _checkout_not_before_checkin(self) -> RegistrationRequest:
        if self.checkout_date is not None and self.checkout_date < self.checkin_date:
            raise ValueError("checkout_date must not be before checkin_date")
        return self

    @classmethod
    def unknown_fields(cls, data: dict[str, Any]) -> list[str]:
        return sorted(name for name in data if name not in cls.model_fields)

    def whatsapp_number(self) -> str | None:
        """The phone in E.164 when libphonenumber holds it valid; None means no WhatsApp for this guest."""
        try:
            return phone.to_e164(self.phone_number, settings().default_phone_region)
        except phone.InvalidPhoneNumber:
            return None

    def fingerprint(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


class Registration(BaseModel):
    user_id: str
    checkin_id: str
    session_id: str
    full_name: str
    room_number: str
    checkin_date: str
    email: str | None
    phone_number: str
    checkout_date: str | None = None
    language: str = templates.DEFAULT_LANGUAGE
    status: str = "active"
    whatsapp: str = WHATSAPP_QUEUED


class IdempotencyKeyReused(Exception):
    """The Idempotency-Key was first used for a different registration."""


class RegistrationConflict(Exception):
    """Other registrations of the same phone kept winning the race; a retry resolves it."""


def same_person(stored: dict[str, Any], request: RegistrationRequest) -> bool:
    """The full name (case and spacing aside) or the email matches the guest stored for this phone."""
    if _normalised_name(stored.get("full_name") or "") == _normalised_name(request.full_name):
        return True
    stored_email = stored.get("email")
    return bool(request.email and stored_email and str(request.email).lower() == str(stored_email).lower())


def _normalised_name(name: str) -> str:
    return " ".join(name.split()).casefold()


def _same_stay(lookup: dict[str, Any], request: RegistrationRequest) -> bool:
    return (
        bool(lookup.get("active_session_id"))
        and lookup.get("room_number") == request.room_number
        and lookup.get("checkin_date") == request.checkin_date.isoformat()
        and same_person(lookup, request)
    )


@dataclass
class _Attempt:
    """What one write of a registration needs to know about what is already stored."""

    now: datetime
    lookup: dict[str, Any] | None
    old_session_end: str | None = None
    ids: dict[str, str] = field(default_factory=dict)


def register_guest(request: RegistrationRequest, idempotency_key: str | None = None) -> Registration:
    """Stores the stay and queues the welcome; a WhatsApp or queue failure never fails it."""
    e164 = request.whatsapp_number()
    now = datetime.now(UTC)
    # The new stay's ids stay the same across attempts, so one queued welcome key serves them all.
    ids = {"checkin_id": str(uuid.uuid4()), "session_id": str(uuid.uuid4()), "welcome_id": str(uuid.uuid4())}
    queued_key: keys.Key | None = None
    queued = False
    old_session_end: str | None = None
    for attempt in range(MAX_ATTEMPTS):
        lookup, earlier = _read_phone_and_key(e164, idempotency_key)
        if earlier is not None:
            # A retry of a request already answered (or the key reused for another): nothing is written.
            return _replay(earlier, request)
        if lookup is not None and _same_stay(lookup, request):
            return _repeat_of_stay(lookup, request)
        returning = lookup is not None and same_person(lookup, request)
        user_id = (
            lookup["user_id"] if lookup is not None and returning else ids.setdefault("new_user_id", str(uuid.uuid4()))
        )
        opted_out = bool(returning and lookup and lookup.get("opted_out"))
        welcome_key = keys.message(user_id, store.iso(now), ids["welcome_id"])
        if e164 and not opted_out and welcome_key != queued_key:
            queued, queued_key = outbox.enqueue(welcome_key), welcome_key
        state = _Attempt(now=now, lookup=lookup, old_session_end=old_session_end, ids=ids)
        try:
            return _write(request, idempotency_key, e164, user_id, state, queued)
        except _Retry as retry:
            old_session_end = retry.old_session_end or old_session_end
            # Jitter spreads racing registrations of one phone apart.
            time.sleep(random.uniform(0, 0.01 * 2**attempt))  # noqa: S311 - jitter, not a secret
    logger.warning("registration kept losing to concurrent registrations of the same phone")
    raise RegistrationConflict("another registration of this phone number was in progress; retry the request")


def _read_phone_and_key(
    e164: str | None, idempotency_key: str | None
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The phone's lookup item and the Idempotency-Key's record, in one consistent read."""
    wanted = [key for key in (keys.phone(e164) if e164 else None, _idempotency_key(idempotency_key)) if key]
    if not wanted:
        return None, None
    if len(wanted) == 1 and not idempotency_key:
        return store.get(wanted[0], consistent=True), None
    found = store.get_many(wanted)
    lookup = found.get(store.identity(keys.phone(e164))) if e164 else None
    earlier = found.get(store.identity(keys.registration_request(idempotency_key))) if idempotency_key else None
    return lookup, earlier


def _idempotency_key(idempotency_key: str | None) -> keys.Key | None:
    return keys.registration_request(idempotency_key) if idempotency_key else None


class _Retry(Exception):
    def __init__(self, old_session_end: str | None = None) -> None:
        super().__init__("the phone's stay changed between the read and the write")
        self.old_session_end = old_session_end


def _repeat_of_stay(lookup: dict[str, Any], request: RegistrationRequest) -> Registration:
    """The stay is already registered: answer with its ids; a corrected name or email updates the profile."""
    registration = Registration(
        user_id=lookup["user_id"],
        checkin_id=lookup["active_checkin_id"],
        session_id=lookup["active_session_id"],
        full_name=request.full_name,
        room_number=lookup["room_number"],
        checkin_date=lookup["checkin_date"],
        email=str(request.email) if request.email else lookup.get("email"),
        phone_number=lookup["e164"],
        checkout_date=lookup.get("checkout_date"),
        language=lookup.get("language") or templates.DEFAULT_LANGUAGE,
        whatsapp=WHATSAPP_OPTED_OUT if lookup.get("opted_out") else WHATSAPP_QUEUED,
    )
    if (registration.full_name, registration.email) != (lookup.get("full_name"), lookup.get("email")):
        _update_profile(lookup, registration)
    logger.info("registration repeated for the current stay", extra={"phone": phone.mask(lookup["e164"])})
    return registration


def _name_and_email(registration: Registration) -> tuple[str, dict[str, Any]]:
    """SET of the guest's name and (when known) email: a registration without an email keeps the stored one."""
    if registration.email is None:
        return "SET full_name = :full_name", {":full_name": registration.full_name}
    return "SET full_name = :full_name, email = :email", {
        ":full_name": registration.full_name,
        ":email": registration.email,
    }


def _update_profile(lookup: dict[str, Any], registration: Registration) -> None:
    expression, changes = _name_and_email(registration)
    try:
        store.transact(
            [
                store.update(
                    keys.phone(lookup["e164"]),
                    expression,
                    {**changes, ":seen": lookup["active_session_id"]},
                    "active_session_id = :seen",
                ),
                store.update(
                    keys.user(registration.user_id),
                    expression + ", updated_at = :now",
                    {**changes, ":now": store.iso(datetime.now(UTC))},
                    "attribute_exists(pk)",
                ),
            ]
        )
    except store.TransactionConflict:
        # The stay moved on meanwhile (a newer registration); the ids answered are still this stay's.
        logger.info("profile correction skipped: the stay changed meanwhile")


def _welcome(
    request: RegistrationRequest,
    e164: str | None,
    user_id: str,
    state: _Attempt,
    queued: bool,
    opted_out: bool,
    language: str,
) -> store.StoredMessage:
    status, reason = store.PENDING, None
    if e164 is None:
        status, reason = store.FAILED, INVALID_PHONE_REASON
    elif opted_out:
        status, reason = store.SKIPPED, OPTED_OUT_REASON
    return store.StoredMessage(
        user_id=user_id,
        message_id=state.ids["welcome_id"],
        session_id=state.ids["session_id"],
        role="System",
        text=templates.welcome(request.full_name, request.room_number, language),
        created_at=store.iso(state.now),
        status=status,
        chat_id=phone.chat_id(e164) if e164 else None,
        queued=queued,
        extra={"kind": "welcome", "language": language, **({"last_error": reason} if reason else {})},
    )


def _write(
    request: RegistrationRequest,
    idempotency_key: str | None,
    e164: str | None,
    user_id: str,
    state: _Attempt,
    queued: bool,
) -> Registration:
    created_at = store.iso(state.now)
    lookup = state.lookup
    returning = lookup is not None and lookup["user_id"] == user_id
    opted_out = bool(returning and lookup and lookup.get("opted_out"))
    whatsapp = WHATSAPP_QUEUED
    if e164 is None:
        whatsapp = WHATSAPP_INVALID_PHONE
    elif opted_out:
        whatsapp = WHATSAPP_OPTED_OUT
    registration = Registration(
        user_id=user_id,
        checkin_id=state.ids["checkin_id"],
        session_id=state.ids["session_id"],
        full_name=request.full_name,
        room_number=request.room_number,
        checkin_date=request.checkin_date.isoformat(),
        email=str(request.email) if request.email else (lookup or {}).get("email") if returning else None,
        phone_number=e164 or request.phone_number,
        checkout_date=request.checkout_date.isoformat() if request.checkout_date else None,
        language=templates.language_for(request.language, e164, (lookup or {}).get("language") if returning else None),
        whatsapp=whatsapp,
    )
    welcome = _welcome(request, e164, user_id, state, queued, opted_out, registration.language)
    profile = {
        **keys.user(user_id),
        "type": "User",
        "user_id": user_id,
        "role": "guest",
        "full_name": registration.full_name,
        "email": registration.email,
        "phone_e164": e164,
        "phone_as_given": None if e164 else request.phone_number,
        "language": registration.language,
    }
    actions: list[dict[str, Any]] = []
    if e164:
        actions.append(_point_phone_at(e164, registration, created_at, lookup, opted_out))
    if returning:
        actions.append(
            store.update(
                keys.user(user_id),
                _name_and_email(registration)[0] + ", updated_at = :now, #language = :language",
                {**_name_and_email(registration)[1], ":now": created_at, ":language": registration.language},
                "attribute_exists(pk)",
                names={"#language": "language"},
            )
        )
    else:
        actions.append(store.put_new({**profile, "created_at": created_at}))
    closing = lookup is not None and bool(lookup.get("active_session_id"))
    if closing and lookup is not None:
        actions.append(
            stays.close(
                lookup["user_id"],
                lookup["active_session_id"],
                lookup["active_session_start"],
                state.now,
                state.old_session_end,
            )
        )
    actions += [
        store.put_new(
            {
                **keys.checkin(user_id, registration.checkin_id),
                "type": "CheckIn",
                "checkin_id": registration.checkin_id,
                "user_id": user_id,
                "room_number": registration.room_number,
                "checkin_date": registration.checkin_date,
                "checkout_date": registration.checkout_date,
                "session_id": registration.session_id,
                "created_at": created_at,
            }
        ),
        store.put_new(_open_session(registration, welcome, e164, request, state.now)),
        store.put_new(
            {
                **keys.session_ref(registration.session_id),
                "type": "SessionRef",
                "user_id": user_id,
                "session_id": registration.session_id,
                "phone_e164": e164,
            }
        ),
        store.put_new(welcome.item()),
    ]
    if idempotency_key:
        actions.append(
            store.put_new(
                {
                    **keys.registration_request(idempotency_key),
                    "type": "RegistrationRequest",
                    "fingerprint": request.fingerprint(),
                    "response": registration.model_dump(),
                    "expires_at": int(state.now.timestamp()) + REGISTRATION_KEY_TTL_SECONDS,
                }
            )
        )
    try:
        store.transact(actions)
    except store.TransactionConflict as conflict:
        if idempotency_key and conflict.failed(len(actions) - 1):
            return _replay(conflict.old_item(len(actions) - 1) or {}, request)
        close_index = 2 if closing and e164 else None
        if close_index is not None and conflict.failed(close_index):
            raise _Retry(stays.later_end(conflict.old_item(close_index))) from conflict
        raise _Retry() from conflict
    logger.info(
        "guest registered",
        extra={"user_id": user_id, "phone": phone.mask(e164 or ""), "whatsapp": registration.whatsapp},
    )
    return registration


def _open_session(
    registration: Registration,
    welcome: store.StoredMessage,
    e164: str | None,
    request: RegistrationRequest,
    now: datetime,
) -> dict[str, Any]:
    return {
        **keys.session(registration.user_id, registration.session_id),
        "type": "ChatSession",
        "session_id": registration.session_id,
        "user_id": registration.user_id,
        "checkin_id": registration.checkin_id,
        "is_active": True,
        "start": welcome.created_at,
        "last_message_at": welcome.created_at,
        "last_message": stays.preview(welcome),
        "guest_name": registration.full_name,
        "room_number": registration.room_number,
        "phone_e164": e164,
        "checkout_date": registration.checkout_date,
        "language": registration.language,
        "close_at": stays.close_at(now, request.checkout_date),
        "open_pk": keys.OPEN_SESSIONS,
        "open_sk": welcome.created_at,
    }


def _point_phone_at(
    e164: str, registration: Registration, created_at: str, lookup: dict[str, Any] | None, opted_out: bool
) -> dict[str, Any]:
    item = {
        **keys.phone(e164),
        "type": "PhoneLookup",
        "e164": e164,
        "user_id": registration.user_id,
        "full_name": registration.full_name,
        "email": registration.email,
        "room_number": registration.room_number,
        "checkin_date": registration.checkin_date,
        "checkout_date": registration.checkout_date,
        "active_checkin_id": registration.checkin_id,
        "active_session_id": registration.session_id,
        "active_session_start": created_at,
        # The bot's memory starts afresh with each stay; the opt-out is the person's and carries over.
        "opted_out": opted_out,
        "language": registration.language,
        "state_version": int((lookup or {}).get("state_version", 0)) + 1,
    }
    if lookup is None:
        return store.put_new(item)
    # Only the registration that saw the phone's current stay may replace it.
    if lookup.get("active_session_id"):
        return store.put(item, "active_session_id = :seen", {":seen": lookup["active_session_id"]})
    return store.put(item, "attribute_exists(pk) AND attribute_not_exists(active_session_id)")


def _replay(earlier: dict[str, Any], request: RegistrationRequest) -> Registration:
    if earlier.get("fingerprint") != request.fingerprint():
        raise IdempotencyKeyReused("Idempotency-Key was already used for a different registration")
    return Registration(**earlier["response"])
