"""Registering a checked-in guest: user, check-in, active chat session and welcome, in one transaction.

A guest is known by their phone number (E.164). A returning guest keeps their user id; their
new stay gets a new session and any session still active is closed in the same transaction.
A repeated registration (the same stay, or the same Idempotency-Key) answers with the first one's ids.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Any

from aws_lambda_powertools import Logger
from pydantic import BaseModel, BeforeValidator, ConfigDict, EmailStr, StringConstraints, field_validator

from concierge import keys, outbox, phone, store, templates
from concierge.config import settings

logger = Logger(child=True)

REGISTRATION_KEY_TTL_SECONDS = 24 * 3600
MAX_TRANSACTION_ATTEMPTS = 3

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
RoomNumber = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$")
]


def _iso_date_text(value: object) -> object:
    # Only "YYYY-MM-DD": pydantic would otherwise read numbers as Unix timestamps.
    if not isinstance(value, str) or len(value) != 10 or value[4] != "-" or value[7] != "-":
        raise ValueError("checkin_date must be a date written YYYY-MM-DD")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date_text)]


class RegistrationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    full_name: Name
    room_number: RoomNumber
    checkin_date: IsoDate
    email: Annotated[EmailStr, StringConstraints(max_length=254)]
    phone_number: Annotated[str, StringConstraints(max_length=32)]

    @field_validator("phone_number")
    @classmethod
    def _phone_is_valid(cls, value: str) -> str:
        try:
            return phone.to_e164(value, settings().default_phone_region)
        except phone.InvalidPhoneNumber as error:
            raise ValueError(str(error)) from error

    def fingerprint(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


class Registration(BaseModel):
    user_id: str
    checkin_id: str
    session_id: str
    full_name: str
    room_number: str
    checkin_date: str
    email: str
    phone_number: str
    status: str = "active"


class IdempotencyKeyReused(Exception):
    """The Idempotency-Key was first used for a different registration."""


def register_guest(request: RegistrationRequest, idempotency_key: str | None = None) -> Registration:
    """Stores the stay and queues the welcome; a WhatsApp or queue failure never fails it."""
    # Optimistic: a new guest costs one transaction. Only when the phone is taken does the
    # cancelled transaction hand back the guest's lookup item, and we write again as a returning guest.
    known_guest: dict[str, Any] | None = None
    for _ in range(MAX_TRANSACTION_ATTEMPTS):
        try:
            registration, welcome = _write(request, idempotency_key, datetime.now(UTC), known_guest)
        except _ReturningGuest as returning:
            known_guest = returning.phone_item
            continue
        if welcome is not None:
            outbox.enqueue(welcome.key)
        return registration
    raise RuntimeError("registration kept conflicting with concurrent registrations of the same guest")


class _ReturningGuest(Exception):
    def __init__(self, phone_item: dict[str, Any] | None) -> None:
        super().__init__("guest already registered")
        self.phone_item = phone_item


def _same_stay(phone_item: dict[str, Any], request: RegistrationRequest) -> bool:
    return (
        bool(phone_item.get("active_session_id"))
        and phone_item.get("room_number") == request.room_number
        and phone_item.get("checkin_date") == request.checkin_date.isoformat()
    )


def _registration_from(phone_item: dict[str, Any]) -> Registration:
    return Registration(
        user_id=phone_item["user_id"],
        checkin_id=phone_item["active_checkin_id"],
        session_id=phone_item["active_session_id"],
        full_name=phone_item["full_name"],
        room_number=phone_item["room_number"],
        checkin_date=phone_item["checkin_date"],
        email=phone_item["email"],
        phone_number=phone_item["e164"],
    )


def _write(
    request: RegistrationRequest, idempotency_key: str | None, now: datetime, known_guest: dict[str, Any] | None
) -> tuple[Registration, store.StoredMessage | None]:
    if known_guest is not None and _same_stay(known_guest, request):
        logger.info("registration repeated for the current stay", extra={"phone": phone.mask(request.phone_number)})
        return _registration_from(known_guest), None

    created_at = store.iso(now)
    user_id = known_guest["user_id"] if known_guest else str(uuid.uuid4())
    registration = Registration(
        user_id=user_id,
        checkin_id=str(uuid.uuid4()),
        session_id=str(uuid.uuid4()),
        full_name=request.full_name,
        room_number=request.room_number,
        checkin_date=request.checkin_date.isoformat(),
        email=str(request.email),
        phone_number=request.phone_number,
    )
    welcome = store.StoredMessage(
        user_id=user_id,
        message_id=str(uuid.uuid4()),
        session_id=registration.session_id,
        role="System",
        text=templates.welcome(request.full_name, request.room_number),
        created_at=created_at,
        status=store.PENDING,
        chat_id=phone.chat_id(request.phone_number),
        extra={"kind": "welcome"},
    )
    phone_item = {
        **keys.phone(request.phone_number),
        "type": "PhoneLookup",
        "e164": request.phone_number,
        "user_id": user_id,
        "full_name": registration.full_name,
        "email": registration.email,
        "room_number": registration.room_number,
        "checkin_date": registration.checkin_date,
        "active_checkin_id": registration.checkin_id,
        "active_session_id": registration.session_id,
        "active_session_start": created_at,
    }
    profile = {
        "type": "User",
        "user_id": user_id,
        "role": "guest",
        "full_name": registration.full_name,
        "email": registration.email,
        "phone_e164": request.phone_number,
    }
    actions: list[dict[str, Any]] = []
    if known_guest is None:
        actions.append(store.put_new(phone_item))
        actions.append(store.put_new({**keys.user(user_id), **profile, "created_at": created_at}))
    else:
        actions.append(store.put(phone_item, *_unchanged_stay(known_guest)))
        actions.append(
            store.update(
                keys.user(user_id),
                "SET full_name = :full_name, email = :email, updated_at = :now",
                {":full_name": registration.full_name, ":email": registration.email, ":now": created_at},
                "attribute_exists(pk)",
            )
        )
        if known_guest.get("active_session_id"):
            actions.append(_close_session(known_guest, now))
    actions += [
        store.put_new(
            {
                **keys.checkin(user_id, registration.checkin_id),
                "type": "CheckIn",
                "checkin_id": registration.checkin_id,
                "user_id": user_id,
                "room_number": registration.room_number,
                "checkin_date": registration.checkin_date,
                "session_id": registration.session_id,
                "created_at": created_at,
            }
        ),
        store.put_new(
            {
                **keys.session(user_id, registration.session_id),
                "type": "ChatSession",
                "session_id": registration.session_id,
                "user_id": user_id,
                "checkin_id": registration.checkin_id,
                "is_active": True,
                "start": created_at,
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
                    "expires_at": int(now.timestamp()) + REGISTRATION_KEY_TTL_SECONDS,
                }
            )
        )
    try:
        store.transact(actions)
    except store.TransactionConflict as conflict:
        return _resolve_conflict(conflict, request, idempotency_key)
    logger.info("guest registered", extra={"user_id": user_id, "phone": phone.mask(request.phone_number)})
    return registration, welcome


def _unchanged_stay(known_guest: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    # Two registrations of one guest racing: only the one that saw the current stay may replace it.
    if known_guest.get("active_session_id"):
        return "active_session_id = :seen_session", {":seen_session": known_guest["active_session_id"]}
    return "attribute_exists(pk) AND attribute_not_exists(active_session_id)", {}


def _close_session(known_guest: dict[str, Any], now: datetime) -> dict[str, Any]:
    started = datetime.strptime(known_guest["active_session_start"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return store.update(
        keys.session(known_guest["user_id"], known_guest["active_session_id"]),
        "SET is_active = :false, #end = :end, #duration = :duration",
        {
            ":false": False,
            ":true": True,
            ":end": store.iso(now),
            ":duration": max(int((now - started).total_seconds()), 0),
        },
        "is_active = :true",
        names={"#end": "end", "#duration": "duration"},
    )


def _resolve_conflict(
    conflict: store.TransactionConflict, request: RegistrationRequest, idempotency_key: str | None
) -> tuple[Registration, None]:
    if idempotency_key and conflict.failed(len(conflict.reasons) - 1):
        earlier = conflict.old_item(len(conflict.reasons) - 1) or {}
        if earlier.get("fingerprint") != request.fingerprint():
            raise IdempotencyKeyReused("Idempotency-Key was already used for a different registration")
        return Registration(**earlier["response"]), None
    # The phone is taken (its item comes back with the cancellation), or the guest's stay changed
    # between our read and write (no item: the next attempt reads it again).
    raise _ReturningGuest(conflict.old_item(0) if conflict.failed(0) else None)
