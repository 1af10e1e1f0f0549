"""Phone numbers: every written form of a number is one guest; chat ids and masks."""

from __future__ import annotations

import pytest

from concierge import phone


@pytest.mark.parametrize(
    "written", ["081234567890", "+6281234567890", "6281234567890", "0812-3456-7890", " 0812 3456 7890 "]
)
def test_indonesian_forms_are_one_number(written: str) -> None:
    """The guide's forms all become +6281234567890 and chat id 6281234567890@c.us."""
    assert phone.to_e164(written, "ID") == "+6281234567890"
    assert phone.chat_id(phone.to_e164(written, "ID")) == "6281234567890@c.us"


def test_international_number_keeps_its_country() -> None:
    """A UK mobile written with its country code is not read as Indonesian."""
    assert phone.to_e164("+44 7911 123456", "ID") == "+447911123456"


def test_default_region_reads_national_numbers() -> None:
    """With DEFAULT_PHONE_REGION=GB a national UK number is read as British."""
    assert phone.to_e164("07911 123456", "GB") == "+447911123456"


@pytest.mark.parametrize("written", ["", "12345", "abc", "+62 000", "0812345678901234567890"])
def test_invalid_numbers_are_refused(written: str) -> None:
    """Numbers libphonenumber does not hold valid raise InvalidPhoneNumber."""
    with pytest.raises(phone.InvalidPhoneNumber):
        phone.to_e164(written, "ID")


@pytest.mark.parametrize(
    ("chat", "expected"),
    [
        ("6281234567890@c.us", "+6281234567890"),
        ("6281234567890@s.whatsapp.net", "+6281234567890"),
        ("120363000000000000@g.us", None),
        ("123456789012345@lid", None),
        ("status@broadcast", None),
        ("12@c.us", None),
    ],
)
def test_from_chat_id(chat: str, expected: str | None) -> None:
    """Only a person's chat id gives a phone number; groups, @lid ids and broadcasts do not."""
    assert phone.from_chat_id(chat) == expected


def test_mask_keeps_only_the_last_four_digits() -> None:
    """Logs can tell guests apart without holding their numbers."""
    assert phone.mask("+6281234567890") == "*********7890"
    assert phone.mask("") == ""
