"""Every text the system sends comes from the copy files, in the guest's language (Indonesian or English)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from concierge import templates
from tests.driver import Concierge, waha_message

UK_PHONE = "+44 7911 123456"


def _sent_texts(concierge: Concierge) -> list[str]:
    concierge.deliver_queued()
    return [message["text"] for message in concierge.waha.sent_messages()]


# --- the copy files ------------------------------------------------------------------------------


def test_the_shipped_copy_loads_with_every_template_in_both_languages() -> None:
    copy = templates.load(templates.COPY_DIR)

    assert set(copy.texts) == {"id", "en"}
    for language in ("id", "en"):
        assert set(copy.texts[language]) == set(templates.SPECS)


@pytest.fixture
def copy_dir(tmp_path: Path) -> Path:
    for language in templates.LANGUAGES:
        shutil.copy(templates.COPY_DIR / f"{language}.toml", tmp_path / f"{language}.toml")
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        ("kamar {room_number}", "kamar {room}", "unknown placeholder"),
        ("kamar {room_number}", "kamar", "lacks placeholder"),
        ("mulai pukul {opens_at}", "segera", "lacks placeholder"),
        ("auto_reply = ", "auto_answer = ", "unknown template"),
        ('hotel_name = "hotel kami"', "", "hotel_name is missing"),
    ],
)
def test_a_broken_copy_file_is_refused_naming_the_template(copy_dir: Path, old: str, new: str, complaint: str) -> None:
    _edit(copy_dir / "id.toml", old, new)

    with pytest.raises(templates.TemplateError, match=complaint):
        templates.load(copy_dir)


def test_a_hotel_can_change_the_copy_and_name_itself(
    concierge: Concierge, copy_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TEMPLATES_DIR and HOTEL_NAME change what guests read, without touching code."""
    _edit(copy_dir / "id.toml", "Selamat datang di hotel kami.", "Selamat datang di {hotel_name}.")
    monkeypatch.setenv("TEMPLATES_DIR", str(copy_dir))
    monkeypatch.setenv("HOTEL_NAME", "Hotel Melati")
    templates.copy.cache_clear()
    try:
        _, guest = concierge.register()
        concierge.checkout(guest["user_id"])
        welcome, farewell = _sent_texts(concierge)
    finally:
        templates.copy.cache_clear()

    assert "Selamat datang di Hotel Melati." in welcome
    assert "sampai jumpa kembali di Hotel Melati!" in farewell


# --- the guest's language ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "language", "greeting"),
    [
        ({}, "id", "Halo Test Guest! 👋"),
        ({"phone_number": UK_PHONE}, "en", "Hello Test Guest! 👋"),
        ({"language": "en"}, "en", "Hello Test Guest! 👋"),
        ({"phone_number": UK_PHONE, "language": "id"}, "id", "Halo Test Guest! 👋"),
    ],
)
def test_the_welcome_is_in_the_guests_language(
    concierge: Concierge, changes: dict, language: str, greeting: str
) -> None:
    """Asked for, else by the phone's country: +62 reads Indonesian, every other country English."""
    status, guest = concierge.register(**changes)

    assert status == 201 and guest["language"] == language
    (welcome,) = concierge.conversation(guest["user_id"])
    assert welcome["language"] == language
    assert _sent_texts(concierge)[0].startswith(greeting)


@pytest.mark.parametrize("language", ["fr", "ID", "", 1])
def test_another_language_is_422(concierge: Concierge, language: object) -> None:
    status, answer = concierge.register(language=language)

    assert status == 422 and "language" in {detail["field"] for detail in answer["details"]}
    assert concierge.items() == []


def test_every_automated_message_follows_the_guests_language(concierge: Concierge) -> None:
    _, guest = concierge.register(language="en")

    for text in ("Hello", "STOP", "START"):
        concierge.webhook(waha_message(text=text))
    concierge.checkout(guest["user_id"])
    texts = _sent_texts(concierge)

    assert [text.split()[0] for text in texts] == ["Hello", "Thank", "You", "Automated", "Thank"]
    assert texts[-1].startswith("Thank you for staying with us, Test Guest.")
    languages = {message["language"] for message in concierge.conversation(guest["user_id"])}
    assert languages == {"en"}


def test_a_returning_guest_keeps_their_language(concierge: Concierge) -> None:
    _, first = concierge.register(language="en")

    _, again = concierge.register(room_number="505", checkin_date="2026-02-02")

    assert again["user_id"] == first["user_id"] and again["language"] == "en"
