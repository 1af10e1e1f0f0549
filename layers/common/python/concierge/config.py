"""Settings read once per container from the function's environment."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import cache


class MissingSetting(RuntimeError):
    """A required environment variable is not set: a deployment or local-stack mistake."""


class InvalidSetting(RuntimeError):
    """An environment variable holds a value the stack cannot run with: a deployment or local-stack mistake."""


# The envelope limits a session name to this many bytes (it is part of table keys); so must the setting.
MAX_SESSION_NAME_BYTES = 100
DEFAULT_WEBHOOK_MAX_AGE_HOURS = 24
# A year: enough for any WAHA outage; beyond it a replay window is no window at all.
MAX_WEBHOOK_MAX_AGE_HOURS = 8760
# How far ahead of our clock an event's time may be (WAHA's host clock may run a little fast).
WEBHOOK_CLOCK_SKEW_SECONDS = 300
DEFAULT_WEBHOOK_EVENT_TTL_DAYS = 7


def _required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise MissingSetting(f"environment variable {name} is not set")
    return value


def _waha_sessions(raw: str | None) -> tuple[str, ...]:
    """WAHA_SESSION: one session name, or several separated by commas (the first is the one we send from)."""
    names = tuple(name.strip() for name in (raw or "").split(",") if name.strip())
    if not names:
        return ("default",)
    for name in names:
        if len(name.encode("utf-8", "surrogatepass")) > MAX_SESSION_NAME_BYTES:
            raise InvalidSetting(f"WAHA_SESSION: a session name is longer than {MAX_SESSION_NAME_BYTES} bytes")
    return tuple(dict.fromkeys(names))


def _hours(name: str, default: int) -> int:
    return _whole_number(name, default, 1, MAX_WEBHOOK_MAX_AGE_HOURS)


def webhook_event_ttl_days(max_age_hours: int) -> int:
    """How long a delivery's dedupe marker lives: always longer than the window in which a delivery is accepted.

    A replay is then either too old to be accepted or meets the marker of its first delivery.
    """
    window_days = (max_age_hours * 3600 + WEBHOOK_CLOCK_SKEW_SECONDS) / 86400
    return max(DEFAULT_WEBHOOK_EVENT_TTL_DAYS, math.ceil(window_days) + 1)


DEFAULT_MESSAGE_RETENTION_DAYS = 365
# Ten years: a larger number is more likely a unit mistake (hours, seconds) than a retention policy.
MAX_MESSAGE_RETENTION_DAYS = 3650


def _retention_days() -> int:
    """MESSAGE_RETENTION_DAYS: how long a stay's messages are kept after it ends."""
    return _whole_number("MESSAGE_RETENTION_DAYS", DEFAULT_MESSAGE_RETENTION_DAYS, 1, MAX_MESSAGE_RETENTION_DAYS)


@dataclass(frozen=True)
class Settings:
    table_name: str
    outbound_queue_url: str
    default_phone_region: str
    waha_host: str
    waha_api_path: str
    waha_session: str
    outbound_max_receive_count: int
    retry_base_seconds: int
    webhook_event_ttl_days: int = DEFAULT_WEBHOOK_EVENT_TTL_DAYS
    # Every WAHA session this stack serves; waha_session (the one we send from) is the first.
    waha_sessions: tuple[str, ...] = ()
    webhook_max_age_hours: int = DEFAULT_WEBHOOK_MAX_AGE_HOURS
    outbound_dead_letter_queue_url: str = ""
    message_retention_days: int = DEFAULT_MESSAGE_RETENTION_DAYS
    # Guests' photos and files: the copy jobs' queue, the bucket they are kept in (concierge.sending.media).
    media_queue_url: str = ""
    media_bucket: str = ""
    # Only the health answer reads it (jobs that failed every receive).
    media_dead_letter_queue_url: str = ""
    media_max_receive_count: int = 6
    # Guests' messages waiting for an answer from the hotel's knowledge (concierge.answers); empty: none queued.
    answer_queue_url: str = ""
    answer_max_receive_count: int = 5
    # Only the health answer reads it (guests' messages the answering function failed on every receive).
    answer_dead_letter_queue_url: str = ""

    def __post_init__(self) -> None:
        if not self.waha_sessions:
            object.__setattr__(self, "waha_sessions", (self.waha_session,))
        if self.waha_sessions[0] != self.waha_session:
            raise InvalidSetting("waha_session must be the first of waha_sessions")
        window_seconds = self.webhook_max_age_hours * 3600 + WEBHOOK_CLOCK_SKEW_SECONDS
        if self.webhook_event_ttl_days * 86400 <= window_seconds:
            # A marker gone before its event stops being accepted would let a replay be stored twice.
            raise InvalidSetting("the webhook dedupe marker must outlive WEBHOOK_MAX_AGE_HOURS")


@cache
def settings() -> Settings:
    sessions = _waha_sessions(os.environ.get("WAHA_SESSION"))
    max_age_hours = _hours("WEBHOOK_MAX_AGE_HOURS", DEFAULT_WEBHOOK_MAX_AGE_HOURS)
    return Settings(
        table_name=_required("TABLE_NAME"),
        outbound_queue_url=os.environ.get("OUTBOUND_QUEUE_URL", ""),
        default_phone_region=os.environ.get("DEFAULT_PHONE_REGION", "ID"),
        waha_host=os.environ.get("WAHA_HOST", "http://localhost:3000").rstrip("/"),
        waha_api_path=os.environ.get("WAHA_API_PATH", "/api/sendText"),
        waha_session=sessions[0],
        outbound_max_receive_count=int(os.environ.get("OUTBOUND_MAX_RECEIVE_COUNT", "5")),
        retry_base_seconds=int(os.environ.get("OUTBOUND_RETRY_BASE_SECONDS", "10")),
        webhook_event_ttl_days=webhook_event_ttl_days(max_age_hours),
        waha_sessions=sessions,
        webhook_max_age_hours=max_age_hours,
        outbound_dead_letter_queue_url=os.environ.get("OUTBOUND_DEAD_LETTER_QUEUE_URL", ""),
        message_retention_days=_retention_days(),
        media_queue_url=os.environ.get("MEDIA_QUEUE_URL", ""),
        media_bucket=os.environ.get("MEDIA_BUCKET", ""),
        media_dead_letter_queue_url=os.environ.get("MEDIA_DEAD_LETTER_QUEUE_URL", ""),
        media_max_receive_count=int(os.environ.get("MEDIA_MAX_RECEIVE_COUNT", "6")),
        answer_queue_url=os.environ.get("ANSWER_QUEUE_URL", ""),
        answer_max_receive_count=int(os.environ.get("ANSWER_MAX_RECEIVE_COUNT", "5")),
        answer_dead_letter_queue_url=os.environ.get("ANSWER_DEAD_LETTER_QUEUE_URL", ""),
    )


def _whole_number(name: str, default: int, low: int, high: int) -> int:
    raw = os.environ.get(name, "").strip() or str(default)
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidSetting(f"{name} must be a whole number from {low} to {high}")
    return int(raw)


_SWITCH = {"on": True, "off": False}


def _switch(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in _SWITCH:
        raise InvalidSetting(f"{name} must be on or off")
    return _SWITCH[raw]


@dataclass(frozen=True)
class ConversationSettings:
    """How the bot behaves in a conversation and when a stay closes by itself."""

    auto_reply_cooldown_minutes: int
    handoff_minutes: int
    business_hours: str | None
    hotel_timezone: str
    session_grace_hours: int
    session_max_days: int
    # AI_ANSWERS: guests' questions answered from the hotel's knowledge and requests routed to departments
    # (concierge.answers); off, every message gets the guide's auto-reply and waits for staff.
    ai_answers: bool = True
    # AI_MODEL_ID: a Bedrock model (Converse) classifies instead of the built-in engine (concierge.answers.bedrock).
    ai_model_id: str = ""


@cache
def conversation_settings() -> ConversationSettings:
    return ConversationSettings(
        auto_reply_cooldown_minutes=_whole_number("AUTO_REPLY_COOLDOWN_MINUTES", 10, 0, 7 * 24 * 60),
        handoff_minutes=_whole_number("HANDOFF_MINUTES", 30, 0, 7 * 24 * 60),
        business_hours=os.environ.get("BUSINESS_HOURS", "").strip() or None,
        hotel_timezone=os.environ.get("HOTEL_TIMEZONE", "").strip() or "Asia/Jakarta",
        session_grace_hours=_whole_number("SESSION_GRACE_HOURS", 12, 0, 24 * 30),
        session_max_days=_whole_number("SESSION_MAX_DAYS", 30, 1, 365),
        ai_answers=_switch("AI_ANSWERS", True),
        ai_model_id=os.environ.get("AI_MODEL_ID", "").strip(),
    )


def _seconds(name: str, default: float, high: float) -> float:
    """A non-negative number of seconds, decimals allowed (tests pace in fractions of a second)."""
    raw = os.environ.get(name, "").strip() or str(default)
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not raw.isascii() or not 0 <= value <= high:
        raise InvalidSetting(f"{name} must be a number of seconds from 0 to {high:g}")
    return value


@dataclass(frozen=True)
class PacingSettings:
    """How the sender paces WhatsApp messages like a person (concierge.sending.pacing); 0 turns each off."""

    typing_seconds_max: float
    min_seconds_between_messages_per_chat: float
    max_messages_per_minute: int

    @property
    def paces(self) -> bool:
        """Whether sends wait for a slot at all (either limit on)."""
        return self.min_seconds_between_messages_per_chat > 0 or self.max_messages_per_minute > 0


@cache
def pacing_settings() -> PacingSettings:
    return PacingSettings(
        typing_seconds_max=_seconds("TYPING_SECONDS_MAX", 3, 5),
        min_seconds_between_messages_per_chat=_seconds("MIN_SECONDS_BETWEEN_MESSAGES_PER_CHAT", 2, 3600),
        max_messages_per_minute=_whole_number("MAX_MESSAGES_PER_MINUTE", 30, 0, 6000),
    )
