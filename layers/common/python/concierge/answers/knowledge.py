"""A hotel's knowledge file (TOML): its FAQ answers and its departments, checked when it loads.

The format is the hotel's (hotels/README.md): `[hotel]` with `name` and `languages`, `[[faq]]` entries with
`questions` and an `answer` per language, `[[request]]` entries with `examples` and a `reply` per language.
A file that breaks a rule is refused as a whole, with a message naming the entry, so a typo in one answer
never reaches a guest. KNOWLEDGE_FILE names it: a path, or `s3://bucket/key` when deployed; it is read once
per container, like a secret.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

_NAME = re.compile(r"[a-z0-9_]+")


class KnowledgeError(ValueError):
    """A knowledge file that cannot be used: says which entry breaks which rule."""


@dataclass(frozen=True)
class Faq:
    id: str
    questions: dict[str, tuple[str, ...]]
    answer: dict[str, str]


@dataclass(frozen=True)
class Department:
    name: str
    examples: dict[str, tuple[str, ...]]
    reply: dict[str, str]


# Compared and hashed by identity: one loaded file is one engine (concierge.answers.retrieval.for_knowledge).
@dataclass(frozen=True, eq=False)
class Knowledge:
    hotel_name: str
    timezone: str | None
    languages: tuple[str, ...]
    faqs: tuple[Faq, ...]
    departments: tuple[Department, ...]

    def faq(self, faq_id: str) -> Faq | None:
        return next((faq for faq in self.faqs if faq.id == faq_id), None)

    def department(self, name: str) -> Department | None:
        return next((department for department in self.departments if department.name == name), None)

    def text_language(self, language: str | None) -> str:
        """The file's language closest to the one wanted: itself, else the file's first."""
        return language if language in self.languages else self.languages[0]


def parse(text: str, source: str = "knowledge file") -> Knowledge:
    """The knowledge in a file's text; KnowledgeError naming the entry when a rule is broken."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise KnowledgeError(f"{source}: not valid TOML ({error})") from error
    hotel = data.get("hotel")
    if not isinstance(hotel, dict):
        raise KnowledgeError(f"{source}: [hotel] is missing")
    name = _text(hotel.get("name"), f"{source}: hotel.name")
    languages = hotel.get("languages")
    if not isinstance(languages, list) or not languages:
        raise KnowledgeError(f"{source}: hotel.languages must be a non-empty list")
    languages = tuple(_text(language, f"{source}: hotel.languages") for language in languages)
    if len(set(languages)) != len(languages):
        raise KnowledgeError(f"{source}: hotel.languages lists a language twice")
    timezone = hotel.get("timezone")
    if timezone is not None:
        timezone = _text(timezone, f"{source}: hotel.timezone")

    faqs = tuple(_faq(entry, index, languages, source) for index, entry in enumerate(_entries(data, "faq", source)))
    departments = tuple(
        _department(entry, index, languages, source) for index, entry in enumerate(_entries(data, "request", source))
    )
    _unique([faq.id for faq in faqs], f"{source}: faq id")
    _unique([department.name for department in departments], f"{source}: request department")
    if not faqs and not departments:
        raise KnowledgeError(f"{source}: no [[faq]] and no [[request]] entries")
    return Knowledge(name, timezone, languages, faqs, departments)


def _entries(data: dict[str, Any], table: str, source: str) -> list[dict[str, Any]]:
    entries = data.get(table, [])
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise KnowledgeError(f"{source}: [[{table}]] must be a list of tables")
    return entries


def _faq(entry: dict[str, Any], index: int, languages: tuple[str, ...], source: str) -> Faq:
    faq_id = _identifier(entry.get("id"), f"{source}: faq #{index + 1} id")
    where = f"{source}: faq {faq_id!r}"
    return Faq(
        id=faq_id,
        questions=_per_language_lists(entry.get("questions"), languages, f"{where} questions"),
        answer=_per_language_texts(entry.get("answer"), languages, f"{where} answer"),
    )


def _department(entry: dict[str, Any], index: int, languages: tuple[str, ...], source: str) -> Department:
    name = _identifier(entry.get("department"), f"{source}: request #{index + 1} department")
    where = f"{source}: request {name!r}"
    return Department(
        name=name,
        examples=_per_language_lists(entry.get("examples"), languages, f"{where} examples"),
        reply=_per_language_texts(entry.get("reply"), languages, f"{where} reply"),
    )


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise KnowledgeError(f"{where} must be a non-empty string")
    return value


def _identifier(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise KnowledgeError(f"{where} must match [a-z0-9_]+")
    return value


def _per_language(value: Any, languages: tuple[str, ...], where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise KnowledgeError(f"{where} must have a value per language ({', '.join(languages)})")
    missing = [language for language in languages if language not in value]
    if missing:
        raise KnowledgeError(f"{where} has no {', '.join(missing)}")
    return value


def _per_language_texts(value: Any, languages: tuple[str, ...], where: str) -> dict[str, str]:
    given = _per_language(value, languages, where)
    return {language: _text(given[language], f"{where}.{language}") for language in languages}


def _per_language_lists(value: Any, languages: tuple[str, ...], where: str) -> dict[str, tuple[str, ...]]:
    given = _per_language(value, languages, where)
    lists = {}
    for language in languages:
        items = given[language]
        if not isinstance(items, list) or not items:
            raise KnowledgeError(f"{where}.{language} must be a non-empty list")
        lists[language] = tuple(_text(item, f"{where}.{language}") for item in items)
    return lists


def _unique(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise KnowledgeError(f"{what} {name!r} appears twice")
        seen.add(name)


def read(source: str) -> str:
    """A knowledge file's text from a path or an `s3://bucket/key` address."""
    if source.startswith("s3://"):
        bucket, _, key = source.removeprefix("s3://").partition("/")
        if not bucket or not key:
            raise KnowledgeError(f"{source}: an S3 address is s3://bucket/key")
        # Imported here: only a deployed stack reads its file from S3.
        from concierge import aws_clients

        body = aws_clients.s3().get_object(Bucket=bucket, Key=key)["Body"].read()
        return body.decode("utf-8")
    return Path(source).read_text(encoding="utf-8")


@cache
def configured() -> Knowledge | None:
    """The hotel's knowledge named by KNOWLEDGE_FILE, read once per container; None when none is set."""
    source = os.environ.get("KNOWLEDGE_FILE", "").strip()
    if not source:
        return None
    return parse(read(source), source)
