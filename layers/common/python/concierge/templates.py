"""Every text the system sends, from data files per language (`copy/<language>.toml`), rendered in one place.

The Indonesian welcome and auto-reply are the hotel guide's templates, word for word; the English file is
their translation, and both carry our own copy for what the guide plans but does not word. A hotel changes
the copy by editing the files (or pointing TEMPLATES_DIR at its own), never the code. Each file is checked
when it loads: every template present, no placeholder a template cannot be given, none it needs missing,
so a broken file fails the tests and the start of a function, never a guest's message.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

LANGUAGES = ("id", "en")
DEFAULT_LANGUAGE = "id"
COPY_DIR = Path(__file__).resolve().parent / "copy"

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Placeholders:
    required: frozenset[str]
    allowed: frozenset[str]


def _spec(required: set[str], optional: set[str] | None = None) -> Placeholders:
    return Placeholders(frozenset(required), frozenset(required | (optional or set()) | {"hotel_name"}))


SPECS: dict[str, Placeholders] = {
    "welcome": _spec({"guest_name", "room_number"}),
    "auto_reply": _spec(set()),
    "out_of_hours": _spec({"opens_at"}),
    "farewell": _spec(set(), {"guest_name"}),
    "opt_out_confirmation": _spec(set()),
    "opt_in_confirmation": _spec(set()),
}


class TemplateError(ValueError):
    """A copy file that cannot be sent as it is: says which file, template and placeholder."""


@dataclass(frozen=True)
class Copy:
    texts: dict[str, dict[str, str]]
    hotel_names: dict[str, str]

    def render(self, name: str, language: str, **values: str) -> str:
        language = language if language in self.texts else DEFAULT_LANGUAGE
        hotel_name = os.environ.get("HOTEL_NAME", "").strip() or self.hotel_names[language]
        given = {"hotel_name": hotel_name, **values}
        # One pass over the template: a guest's name holding "{room_number}" stays as written.
        return _PLACEHOLDER.sub(lambda match: given[match.group(1)], self.texts[language][name])


def check(name: str, text: str, where: str) -> None:
    spec = SPECS[name]
    used = set(_PLACEHOLDER.findall(text))
    unknown = used - spec.allowed
    if unknown:
        raise TemplateError(f"{where}: template {name} uses unknown placeholder(s) {sorted(unknown)}")
    missing = spec.required - used
    if missing:
        raise TemplateError(f"{where}: template {name} lacks placeholder(s) {sorted(missing)}")


def load(directory: Path) -> Copy:
    texts: dict[str, dict[str, str]] = {}
    hotel_names: dict[str, str] = {}
    for language in LANGUAGES:
        path = directory / f"{language}.toml"
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise TemplateError(f"{path}: {error}") from error
        templates = data.get("templates")
        if not isinstance(templates, dict):
            raise TemplateError(f"{path}: no [templates] table")
        for name in sorted(set(templates) - set(SPECS)):
            raise TemplateError(f"{path}: unknown template {name}")
        for name in SPECS:
            text = templates.get(name)
            if not isinstance(text, str) or not text.strip():
                raise TemplateError(f"{path}: template {name} is missing or empty")
            check(name, text, str(path))
        hotel_name = (data.get("defaults") or {}).get("hotel_name")
        if not isinstance(hotel_name, str) or not hotel_name.strip():
            raise TemplateError(f"{path}: [defaults] hotel_name is missing")
        texts[language] = dict(templates)
        hotel_names[language] = hotel_name
    return Copy(texts, hotel_names)


@cache
def copy() -> Copy:
    return load(Path(os.environ.get("TEMPLATES_DIR", "").strip() or COPY_DIR))


def language_for(requested: str | None, e164: str | None, stored: str | None = None) -> str:
    """The guest's language: as asked, else as stored for them, else by their phone's country (+62 speaks id)."""
    if requested:
        return requested
    if stored in LANGUAGES:
        return str(stored)
    if e164 is None:
        return DEFAULT_LANGUAGE
    return "id" if e164.startswith("+62") else "en"


def welcome(guest_name: str, room_number: str, language: str = DEFAULT_LANGUAGE) -> str:
    return copy().render("welcome", language, guest_name=guest_name, room_number=room_number)


def auto_reply(language: str = DEFAULT_LANGUAGE) -> str:
    return copy().render("auto_reply", language)


def out_of_hours(opens_at: str, language: str = DEFAULT_LANGUAGE) -> str:
    return copy().render("out_of_hours", language, opens_at=opens_at)


def farewell(guest_name: str, language: str = DEFAULT_LANGUAGE) -> str:
    return copy().render("farewell", language, guest_name=guest_name)


def opted_out(language: str = DEFAULT_LANGUAGE) -> str:
    return copy().render("opt_out_confirmation", language)


def opted_in(language: str = DEFAULT_LANGUAGE) -> str:
    return copy().render("opt_in_confirmation", language)
