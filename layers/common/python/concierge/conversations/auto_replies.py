"""What the bot says back to a guest's message, if anything: one place for the rules a person would follow.

- STOP/BERHENTI opts the guest out of automated messages (one confirmation); START/MULAI opts back in.
- An opted-out guest gets no automated message; staff still reach them.
- While staff handle the conversation (handoff), the bot stays quiet.
- With AI_ANSWERS on, any other text goes first to the answering function (concierge.answers), which sends
  the hotel's own answer or request reply, or comes back here for the rules below.
- Outside BUSINESS_HOURS: one out-of-hours text per night. Inside: the guide's auto-reply, at most once
  per AUTO_REPLY_COOLDOWN_MINUTES in a session.

The decision is made from the conversation state read with the guest's phone (`ConversationState`);
the webhook's transaction then makes it atomic with a condition on that state's version.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from concierge import store, templates
from concierge.conversations.business_hours import BusinessHours

OPT_OUT_WORDS = frozenset({"STOP", "BERHENTI"})
OPT_IN_WORDS = frozenset({"START", "MULAI"})


class ReplyKind(StrEnum):
    AUTO_REPLY = "auto_reply"
    OUT_OF_HOURS = "out_of_hours"
    OPTED_OUT = "opt_out_confirmation"
    OPTED_IN = "opt_in_confirmation"


@dataclass(frozen=True)
class Policy:
    cooldown: timedelta
    business_hours: BusinessHours | None = None


@dataclass(frozen=True)
class ConversationState:
    """The bot's memory of a stay, kept on the phone's lookup item (read with every guest message)."""

    version: int = 0
    opted_out: bool = False
    last_auto_reply_at: str | None = None
    handoff_until: str | None = None
    out_of_hours_night: str | None = None
    language: str = templates.DEFAULT_LANGUAGE

    @classmethod
    def of(cls, lookup: dict[str, Any]) -> ConversationState:
        return cls(
            version=int(lookup.get("state_version", 0)),
            opted_out=bool(lookup.get("opted_out", False)),
            last_auto_reply_at=lookup.get("last_auto_reply_at"),
            handoff_until=lookup.get("handoff_until"),
            out_of_hours_night=lookup.get("out_of_hours_night"),
            language=lookup.get("language") or templates.DEFAULT_LANGUAGE,
        )

    def in_handoff(self, now: datetime) -> bool:
        return bool(self.handoff_until and self.handoff_until > store.iso(now))


@dataclass(frozen=True)
class Decision:
    """The reply to send (None: stay quiet) and the state fields to change with the message."""

    reply: ReplyKind | None
    text: str | None = None
    changes: dict[str, Any] | None = None
    # The message goes to the answering function, which decides after the webhook has stored it.
    to_answer: bool = False


def _command(text: str) -> str:
    return " ".join(text.split()).upper()


def decide(text: str, state: ConversationState, policy: Policy, now: datetime, answer_first: bool = False) -> Decision:
    command = _command(text)
    if command in OPT_OUT_WORDS:
        if state.opted_out:
            return Decision(None)
        return Decision(ReplyKind.OPTED_OUT, templates.opted_out(state.language), {"opted_out": True})
    if command in OPT_IN_WORDS:
        if not state.opted_out:
            return Decision(None)
        return Decision(ReplyKind.OPTED_IN, templates.opted_in(state.language), {"opted_out": False})
    if state.opted_out or state.in_handoff(now):
        return Decision(None)
    if answer_first:
        return Decision(None, to_answer=True)
    hours = policy.business_hours
    if hours is not None and not hours.is_open(now):
        night = hours.night(now)
        if state.out_of_hours_night == night:
            return Decision(None)
        return Decision(
            ReplyKind.OUT_OF_HOURS,
            templates.out_of_hours(hours.opens_at(), state.language),
            {"out_of_hours_night": night},
        )
    if state.last_auto_reply_at and state.last_auto_reply_at > store.iso(now - policy.cooldown):
        return Decision(None)
    return Decision(ReplyKind.AUTO_REPLY, templates.auto_reply(state.language), {"last_auto_reply_at": store.iso(now)})
