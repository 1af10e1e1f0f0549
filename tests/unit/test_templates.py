"""The hotel's message copy is sent word for word as its guide gives it."""

from __future__ import annotations

import re
from pathlib import Path

from concierge import templates

GUIDE = Path(__file__).resolve().parents[3] / "shared" / "spec" / "waha-integration-guide.md"


def _guide_block(heading: str) -> str:
    text = GUIDE.read_text()
    match = re.search(rf"### {heading}\n\n```\n(.*?)\n```", text, re.S)
    assert match, heading
    return match.group(1)


def test_templates_match_the_guide_word_for_word() -> None:
    """WELCOME and AUTO_REPLY equal the guide's Indonesian templates, when the guide is at hand."""
    if GUIDE.exists():
        assert templates.copy().texts["id"]["welcome"] == _guide_block("Welcome Message")
        assert templates.copy().texts["id"]["auto_reply"] == _guide_block("Auto-Reply Message")
    welcome = templates.copy().texts["id"]["welcome"]
    assert welcome.startswith("Halo {guest_name}! 👋") and "{room_number}." in welcome


def test_welcome_fills_name_and_room_even_with_braces_in_the_name() -> None:
    """A guest's name with braces is inserted as written, not read as a placeholder."""
    text = templates.welcome("Ana {room_number}", "7B")

    assert text.startswith("Halo Ana {room_number}! 👋") and "di kamar 7B." in text
