"""The labelled evaluation sets (tests/ai/eval) are a fair measure: enough cases, every label names a real entry of
its hotel file, every kind of guest message is present, and the mix stays close to what the issue asks for.

Reads the files with tomllib only, so a broken set is caught without any answering engine."""

from __future__ import annotations

import os
import re
import tomllib
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
EVAL_DIR = REPO / "tests" / "ai" / "eval"
TEST_HOTELS_DIR = REPO / "tests" / "ai" / "hotels"
EVAL_SETS = sorted(path.name for path in EVAL_DIR.glob("*.toml"))

CATEGORIES = {
    "paraphrase",
    "typo",
    "slang",
    "mixed",
    "request",
    "smalltalk",
    "complaint",
    "out_of_scope",
    "manipulative",
    "multi",
    "exact",
}
LANGS = {"id", "en", "mixed"}
CASE_KEYS = {"text", "lang", "category", "expect"}
NAME = re.compile(r"[a-z0-9_]+")
MIN_CASES = 120
MIN_CASES_PER_ENTRY = 3


@cache
def _hotel_path(name: str) -> Path:
    # The test hotels live beside the sets; the sample hotel lives wherever the project keeps its default file.
    if (TEST_HOTELS_DIR / name).is_file():
        return TEST_HOTELS_DIR / name
    for root, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in {"node_modules", "__pycache__"}]
        # The eval sets are named after their hotels, so their own folder is not where a hotel is.
        if name in files and Path(root) != EVAL_DIR:
            return Path(root) / name
    pytest.fail(f"hotel file {name!r} named by an eval set is not in the project")


@cache
def _load(path: Path) -> dict[str, Any]:
    with path.open("rb") as file:
        return tomllib.load(file)


def _eval_set(name: str) -> dict[str, Any]:
    return _load(EVAL_DIR / name)


def _cases(name: str) -> list[dict[str, Any]]:
    return _eval_set(name)["case"]


def _hotel(name: str) -> dict[str, Any]:
    return _load(_hotel_path(_eval_set(name)["hotel"]))


def _labels(hotel: dict[str, Any]) -> set[str]:
    return {f"faq:{faq['id']}" for faq in hotel["faq"]} | {
        f"request:{request['department']}" for request in hotel["request"]
    }


def _normalised(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def test_both_hotels_have_an_eval_set() -> None:
    assert {"sample-hotel.toml", "second-hotel.toml"} <= set(EVAL_SETS)


@pytest.mark.parametrize("name", EVAL_SETS)
def test_each_set_has_enough_cases(name: str) -> None:
    assert len(_cases(name)) >= MIN_CASES


@pytest.mark.parametrize("name", EVAL_SETS)
def test_every_case_is_well_formed(name: str) -> None:
    for case in _cases(name):
        assert set(case) == CASE_KEYS, case
        assert isinstance(case["text"], str) and case["text"].strip(), case
        assert case["lang"] in LANGS, case
        assert case["category"] in CATEGORIES, case
        expect = case["expect"]
        assert isinstance(expect, list) and expect, case
        assert len(set(expect)) == len(expect), case
        # "staff" means nothing in the message can be answered, so it never sits beside an answer.
        assert expect == ["staff"] or "staff" not in expect, case


@pytest.mark.parametrize("name", EVAL_SETS)
def test_every_label_names_an_entry_of_its_hotel(name: str) -> None:
    known = _labels(_hotel(name))

    unknown = {label for case in _cases(name) for label in case["expect"] if label != "staff"} - known

    assert not unknown, f"{name}: labels not in {_eval_set(name)['hotel']}: {sorted(unknown)}"


@pytest.mark.parametrize("name", EVAL_SETS)
def test_every_category_appears(name: str) -> None:
    assert {case["category"] for case in _cases(name)} == CATEGORIES


@pytest.mark.parametrize("name", EVAL_SETS)
def test_every_faq_and_department_is_asked_at_least_three_times(name: str) -> None:
    counts = Counter(label for case in _cases(name) for label in case["expect"])

    rare = {label: counts[label] for label in _labels(_hotel(name)) if counts[label] < MIN_CASES_PER_ENTRY}

    assert not rare, f"{name}: entries with fewer than {MIN_CASES_PER_ENTRY} cases: {rare}"


@pytest.mark.parametrize("name", EVAL_SETS)
def test_no_text_appears_twice(name: str) -> None:
    counts = Counter(_normalised(case["text"]) for case in _cases(name))

    assert [text for text, count in counts.items() if count > 1] == []


@pytest.mark.parametrize("name", EVAL_SETS)
def test_only_exact_cases_copy_the_hotel_files_wording(name: str) -> None:
    # Other categories measure what the file's own sentences do not say, so they must not be its sentences.
    hotel = _hotel(name)
    own = {
        _normalised(text)
        for entry, key in [(faq, "questions") for faq in hotel["faq"]]
        + [(request, "examples") for request in hotel["request"]]
        for texts in entry[key].values()
        for text in texts
    }

    copies = [case["text"] for case in _cases(name) if case["category"] != "exact" and _normalised(case["text"]) in own]

    assert copies == []


@pytest.mark.parametrize("name", EVAL_SETS)
def test_the_mix_of_messages_and_languages_is_roughly_as_asked(name: str) -> None:
    cases = _cases(name)
    total = len(cases)
    answerable = sum(all(label.startswith("faq:") for label in case["expect"]) for case in cases)
    requests = sum(all(label.startswith("request:") for label in case["expect"]) for case in cases)
    staff = sum(case["expect"] == ["staff"] for case in cases)
    langs = Counter(case["lang"] for case in cases)

    assert 0.35 <= answerable / total <= 0.55
    assert 0.12 <= requests / total <= 0.30
    assert 0.25 <= staff / total <= 0.45
    assert 0.40 <= langs["id"] / total <= 0.60
    assert 0.30 <= langs["en"] / total <= 0.50
    assert 0.05 <= langs["mixed"] / total <= 0.20


@pytest.mark.parametrize("name", sorted(path.name for path in TEST_HOTELS_DIR.glob("*.toml")))
def test_the_test_hotels_follow_the_knowledge_format(name: str) -> None:
    hotel = _load(TEST_HOTELS_DIR / name)
    languages = hotel["hotel"]["languages"]
    assert hotel["hotel"]["name"] and languages

    for kind, key, texts in [("faq", "id", ("questions", "answer")), ("request", "department", ("examples", "reply"))]:
        names = [entry[key] for entry in hotel[kind]]
        assert len(names) == len(set(names)), f"{name}: duplicate {key}"
        for entry in hotel[kind]:
            assert NAME.fullmatch(entry[key]), entry[key]
            for field in texts:
                assert set(entry[field]) == set(languages), f"{name}: {entry[key]}.{field}"
                for value in entry[field].values():
                    values = value if isinstance(value, list) else [value]
                    assert values and all(isinstance(v, str) and v.strip() for v in values), entry[key]
