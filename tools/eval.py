"""Measures the answering engines on the labelled evaluation sets (tests/ai/eval/*.toml) and writes docs/ai.md.

    .venv/bin/python -m tools.eval            # prints the figures and writes docs/ai.md (make eval)
    .venv/bin/python -m tools.eval --print    # prints only

Each set names its hotel file (hotels/ or tests/ai/hotels/). For each engine and language: the share of
answerable messages answered correctly, the share of them handed to staff, and wrong answers (an FAQ or
department other than the expected, or any answer where staff was expected) over all messages. The built-in
engine always runs; Bedrock runs only when AI_MODEL_ID is set and AWS is reachable (its simulator matches exact
wording only, so measuring it there would say nothing).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "layers" / "common" / "python"))

from concierge.answers import knowledge as knowledge_file  # noqa: E402
from concierge.answers import retrieval  # noqa: E402
from concierge.answers.verdict import Verdict  # noqa: E402

EVAL_DIR = REPO_ROOT / "tests" / "ai" / "eval"
HOTEL_DIRS = (REPO_ROOT / "hotels", REPO_ROOT / "tests" / "ai" / "hotels")
REPORT = REPO_ROOT / "docs" / "ai.md"
LANGUAGES = ("id", "en", "mixed")
GOAL_WRONG = 0.01
GOAL_ANSWERED = 0.80


@dataclass(frozen=True)
class Case:
    text: str
    lang: str
    category: str
    expect: frozenset[str]


@dataclass
class Tally:
    messages: int = 0
    answerable: int = 0
    correct: int = 0
    to_staff_answerable: int = 0
    partial: int = 0
    wrong: int = 0
    wrong_cases: list[tuple[Case, tuple[str, ...]]] = field(default_factory=list)

    def add(self, case: Case, got: tuple[str, ...]) -> None:
        self.messages += 1
        predicted = frozenset(got)
        answerable = case.expect != {"staff"}
        self.answerable += answerable
        if predicted == case.expect:
            self.correct += answerable
        elif predicted == {"staff"}:
            self.to_staff_answerable += answerable
        elif answerable and predicted < case.expect:
            self.partial += 1  # answered some of what was asked, nothing that was not
        else:
            self.wrong += 1
            self.wrong_cases.append((case, got))

    def shares(self) -> dict[str, float]:
        return {
            "answered": self.correct / self.answerable if self.answerable else 0.0,
            "to_staff": self.to_staff_answerable / self.answerable if self.answerable else 0.0,
            "wrong": self.wrong / self.messages if self.messages else 0.0,
        }


def load_set(path: Path) -> tuple[knowledge_file.Knowledge, list[Case]]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    hotel = next(directory / data["hotel"] for directory in HOTEL_DIRS if (directory / data["hotel"]).is_file())
    knowledge = knowledge_file.parse(hotel.read_text(encoding="utf-8"), str(hotel.relative_to(REPO_ROOT)))
    cases = [Case(c["text"], c["lang"], c["category"], frozenset(c["expect"])) for c in data["case"]]
    return knowledge, cases


def engines() -> dict[str, Callable[[knowledge_file.Knowledge], Callable[[str], Verdict]]]:
    found: dict[str, Callable[[knowledge_file.Knowledge], Callable[[str], Verdict]]] = {
        "built-in": lambda knowledge: retrieval.Retriever(knowledge).classify
    }
    model_id = os.environ.get("AI_MODEL_ID", "").strip()
    if model_id:
        from concierge.answers import bedrock

        found[f"bedrock ({model_id})"] = lambda knowledge: lambda text: bedrock.classify(text, knowledge, [], model_id)
    return found


def evaluate() -> dict[str, Any]:
    results: dict[str, Any] = {}
    for path in sorted(EVAL_DIR.glob("*.toml")):
        knowledge, cases = load_set(path)
        for engine, build in engines().items():
            classify = build(knowledge)
            by_language = {language: Tally() for language in (*LANGUAGES, "all")}
            by_category: dict[str, Tally] = {}
            language_right = language_known = 0
            started = time.perf_counter()
            for case in cases:
                verdict = classify(case.text)
                got = verdict.labels()
                for key in (case.lang, "all"):
                    by_language[key].add(case, got)
                by_category.setdefault(case.category, Tally()).add(case, got)
                if not verdict.to_staff and case.lang in ("id", "en"):
                    language_known += 1
                    # The engine's guess, else the guest's stored language (this set's guests are all Indonesian).
                    language_right += (verdict.language or "id") == case.lang
            per_message_ms = (time.perf_counter() - started) * 1000 / len(cases)
            results[f"{path.stem} / {engine}"] = {
                "hotel": knowledge.hotel_name,
                "by_language": by_language,
                "by_category": by_category,
                "language": (language_right, language_known),
                "per_message_ms": per_message_ms,
            }
    return results


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def render(results: dict[str, Any]) -> str:
    lines = [
        "# Answering engines: measured",
        "",
        "Written by `make eval` (`tools/eval.py`) from the labelled sets in `tests/ai/eval/`; do not edit by hand.",
        "How the engines work and why: `docs/architecture.md` (Answering guests) and",
        "`layers/common/python/concierge/answers/retrieval.py`.",
        "",
        f"Goals for the built-in engine: at most {_pct(GOAL_WRONG)} wrong answers, at least {_pct(GOAL_ANSWERED)}"
        " of answerable questions answered.",
        "",
        "- **answered**: answerable messages (an FAQ or a department expected) given exactly the expected answers;",
        "- **to staff**: answerable messages handed to staff instead (safe, but a person has to answer);",
        "- **wrong**: messages, of all, answered with an FAQ or department that was not expected, or answered",
        '  when staff was expected. A wrong answer is worse than "staff will answer".',
        "",
    ]
    if not any("bedrock" in name for name in results):
        lines += [
            "Bedrock: not measured here (no AWS access on this machine). `AI_MODEL_ID=<model> make eval` with AWS",
            "credentials adds its rows.",
            "",
        ]
    for name, result in results.items():
        tallies = result["by_language"]
        right, known = result["language"]
        lines += [f"## {name} ({result['hotel']})", ""]
        rows = []
        for language in (*LANGUAGES, "all"):
            tally = tallies[language]
            shares = tally.shares()
            rows.append(
                [
                    language,
                    str(tally.messages),
                    str(tally.answerable),
                    _pct(shares["answered"]),
                    _pct(shares["to_staff"]),
                    str(tally.partial),
                    f"{tally.wrong} ({_pct(shares['wrong'])})",
                ]
            )
        lines += _table(["language", "messages", "answerable", "answered", "to staff", "partly", "wrong"], rows)
        lines += [
            "",
            f"Reply language right for {right} of {known} answered Indonesian or English messages. "
            f"Time per message: {result['per_message_ms']:.2f} ms.",
            "",
        ]
        category_rows = []
        for category, tally in sorted(result["by_category"].items()):
            shares = tally.shares()
            category_rows.append(
                [category, str(tally.messages), _pct(shares["answered"]) if tally.answerable else "–", str(tally.wrong)]
            )
        lines += _table(["category", "messages", "answered", "wrong"], category_rows)
        wrong = tallies["all"].wrong_cases
        if wrong:
            lines += ["", "Wrong answers:", ""]
            lines += [
                f"- `{case.text}`: expected {', '.join(sorted(case.expect))}; got {', '.join(got)}"
                for case, got in wrong
            ]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--print", action="store_true", help="print only; do not write docs/ai.md")
    arguments = parser.parse_args()
    report = render(evaluate())
    print(report)
    if not arguments.print:
        REPORT.write_text(report, encoding="utf-8")


if __name__ == "__main__":
    main()
