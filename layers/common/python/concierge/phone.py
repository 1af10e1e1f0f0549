"""Phone numbers: the one place that reads them, stores them (E.164) and turns them into WhatsApp chat ids."""

from __future__ import annotations

import phonenumbers

CHAT_ID_SUFFIXES = ("@c.us", "@s.whatsapp.net")


class InvalidPhoneNumber(ValueError):
    """libphonenumber does not hold the number valid."""


def to_e164(raw: str, default_region: str = "ID") -> str:
    """'081234567890', '+62 812-3456-7890' and '6281234567890' all give '+6281234567890'."""
    candidate = raw.strip()
    parsed = _parse(candidate, default_region)
    # A number written with its country code but without '+' (as WhatsApp ids are) reads as a
    # national number of the default region; try it as international before giving up.
    if (parsed is None or not phonenumbers.is_valid_number(parsed)) and candidate[:1].isdigit():
        parsed = _parse("+" + candidate, default_region)
    if parsed is None or not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneNumber(f"not a valid phone number for region {default_region}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _parse(candidate: str, default_region: str) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(candidate, default_region)
    except phonenumbers.NumberParseException:
        return None


def chat_id(e164: str) -> str:
    """WAHA's chat id for a person: digits of the E.164 number and '@c.us'."""
    return f"{e164.lstrip('+')}@c.us"


def from_chat_id(value: str) -> str | None:
    """The E.164 number behind a person's chat id, or None for groups, channels, broadcasts and @lid ids."""
    for suffix in CHAT_ID_SUFFIXES:
        if value.endswith(suffix):
            digits = value[: -len(suffix)]
            if digits.isdigit():
                try:
                    return to_e164("+" + digits)
                except InvalidPhoneNumber:
                    return None
    return None


def mask(value: str) -> str:
    """Keeps the last four digits, so logs can tell guests apart without holding their numbers."""
    digits = [char for char in value if char.isdigit()]
    return "*" * max(len(digits) - 4, 0) + "".join(digits[-4:])
