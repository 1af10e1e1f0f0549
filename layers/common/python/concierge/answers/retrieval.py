"""The built-in engine: finds which of the hotel's FAQ questions or request examples a guest's message is,
offline and with no model, or hands the message to staff when it is not sure.

Each FAQ and department is one document made of its questions (or examples) in every language, and of its
answer (or reply) at a lower weight. A message's words are normalised (chat spellings, Snowball stems for
Indonesian and English, a hotel vocabulary that puts "selimut" and "pillow" in one subject, close spellings of
the file's own words for typos) and each is weighted by how rare it is among the documents, as BM25's idf
does; a word the file never uses weighs as much as the rarest. The message is read part by part (sentences,
clauses joined by "and"/"dan"): a part is answered only when one document's words carry most of its weight
(`coverage`) and clearly more than the next document's (`margin`). A part that says something the file does
not (a complaint, a detail no answer covers) keeps weight no document explains, and the whole message goes to
staff: several answers are sent only when every part has one. Words that always need a person (discounts,
complaints, other guests, attempts to change the rules) send the message to staff whatever else it says.
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from concierge.answers.knowledge import Knowledge
from concierge.answers.verdict import Verdict, staff

LEXICON_FILE = Path(__file__).resolve().parent / "lexicon.toml"
# Chosen on the sample hotel's evaluation set and checked on a second hotel's (make eval, docs/ai.md).
MIN_COVERAGE = 0.65
MIN_MARGIN = 0.35
# A word the file never uses weighs this share of the rarest word's weight: it may be a detail of the
# question ("24h", "tomorrow") or a subject the file does not cover ("halal"); either way it counts.
UNKNOWN_WORD_FACTOR = 1.25
# The matched words must weigh at least this much: one word every document shares is not a subject.
MIN_MATCHED_WEIGHT = 1.0
# An answer's or reply's own words say less about what guests ask than the questions do.
ANSWER_WORD_FACTOR = 0.3
# How alike a misspelt word must be to one of the file's (difflib's ratio): "pasword" / "password" is 0.93.
TYPO_CUTOFF = 0.84
MIN_TYPO_LENGTH = 4
# Shorter words ending in -in are words of their own ("main", "ingin").
COLLOQUIAL_MIN_LENGTH = 5
# Words only one language uses that a message needs before its language is taken as known.
MIN_LANGUAGE_WORDS = 2

_PART_BREAK = re.compile(r"[?!.;,\n]+|\s(?:and|dan|terus|trus|sama|juga|also|plus|&)\s")
_WORD = re.compile(r"[^\W_]+")
_INNER_HYPHEN = re.compile(r"(?<=\w)[-‐‑](?=\w)")


@dataclass(frozen=True)
class Lexicon:
    phrases: tuple[tuple[re.Pattern[str], str], ...]
    slang: dict[str, str]
    stopwords: frozenset[str]
    stopwords_by_language: dict[str, frozenset[str]]
    staff_cues: frozenset[str]
    # Each word of a [concepts] group -> the group's name.
    concepts: dict[str, str]


@cache
def lexicon() -> Lexicon:
    data: dict[str, Any] = tomllib.loads(LEXICON_FILE.read_text(encoding="utf-8"))
    phrases = dict(data["phrases"])
    concepts: dict[str, str] = {}
    for concept, members in data["concepts"].items():
        for member in members:
            word = member.replace(" ", "")
            if " " in member:
                phrases.setdefault(member, word)  # "toilet paper" is compared as one word
            concepts[word] = concept
    # Longer phrases first, so that "air conditioning" is joined before anything inside it.
    ordered = sorted(phrases.items(), key=lambda item: len(item[0]), reverse=True)
    patterns = tuple((re.compile(r"\b" + re.escape(phrase) + r"\b"), word) for phrase, word in ordered)
    by_language = {language: frozenset(words) for language, words in data["stopwords"].items()}
    return Lexicon(
        phrases=patterns,
        slang=dict(data["slang"]),
        stopwords=frozenset().union(*by_language.values()),
        stopwords_by_language=by_language,
        staff_cues=frozenset(data["staff_cues"]["words"]),
        concepts=concepts,
    )


@cache
def _stemmers() -> dict[str, Any]:
    # Imported here: only the answering function stems words.
    from snowballstemmer.english_stemmer import EnglishStemmer
    from snowballstemmer.indonesian_stemmer import IndonesianStemmer

    return {"en": EnglishStemmer(), "id": IndonesianStemmer()}


def _raw_words(text: str) -> list[str]:
    lex = lexicon()
    text = _INNER_HYPHEN.sub("", unicodedata.normalize("NFKC", text).lower())
    for pattern, word in lex.phrases:
        text = pattern.sub(word, text)
    return [lex.slang.get(raw, raw) for raw in _WORD.findall(text)]


def words(text: str) -> list[str]:
    """A message's words as the engine compares them: lower case, chat spellings written out, no fillers."""
    stop = lexicon().stopwords
    return [word for word in _raw_words(text) if not word.isdigit() and len(word) > 1 and word not in stop]


@cache
def _forms(word: str) -> frozenset[str]:
    """The forms a word may take in the file: as written, its Indonesian and English stems, and the subject
    ([concepts] group) it names."""
    stemmers = _stemmers()
    forms = {word, stemmers["id"].stemWord(word), stemmers["en"].stemWord(word)}
    if word.endswith("in") and len(word) > COLLOQUIAL_MIN_LENGTH:
        # Jakarta speech makes verbs with -in where the standard has -kan or -i: "pesenin", "nyalain", "bawain".
        base = word[:-2]
        forms |= {base, stemmers["id"].stemWord(base)}
    concepts = lexicon().concepts
    return frozenset(forms | {"~" + concepts[form] for form in forms if form in concepts})


@dataclass(frozen=True)
class _Document:
    label: str
    question_forms: frozenset[str]
    answer_forms: frozenset[str]


class Retriever:
    """The built-in engine for one knowledge file; built once per container (`for_knowledge`)."""

    def __init__(self, knowledge: Knowledge) -> None:
        self.knowledge = knowledge
        self._hotel_words = frozenset(words(knowledge.hotel_name))
        self._spellings: set[str] = set()
        documents = [self._document(f"faq:{faq.id}", faq.questions, faq.answer) for faq in knowledge.faqs]
        documents += [
            self._document(f"request:{department.name}", department.examples, department.reply)
            for department in knowledge.departments
        ]
        self._documents = tuple(documents)
        self._sorted_spellings = sorted(self._spellings)
        self._rarest = math.log(1 + len(documents))
        self._language_words = self._words_by_language()

    def _document(self, label: str, questions: dict[str, tuple[str, ...]], answer: dict[str, str]) -> _Document:
        asked: set[str] = set()
        for text in (text for texts in questions.values() for text in texts):
            asked |= self._forms_of(text)
        answered: set[str] = set()
        for text in answer.values():
            answered |= self._forms_of(text)
        return _Document(label, frozenset(asked), frozenset(answered - asked))

    def _forms_of(self, text: str) -> set[str]:
        found: set[str] = set()
        for word in words(text):
            if word not in self._hotel_words:
                self._spellings.add(word)
                found |= _forms(word)
        return found

    def _words_by_language(self) -> dict[str, frozenset[str]]:
        """Words only one language uses, in the file's questions and examples and the lexicon's fillers."""
        seen: dict[str, set[str]] = {
            language: set(words) for language, words in lexicon().stopwords_by_language.items()
        }
        entries = [faq.questions for faq in self.knowledge.faqs]
        entries += [department.examples for department in self.knowledge.departments]
        for entry in entries:
            for language, texts in entry.items():
                seen.setdefault(language, set()).update(_raw_words(" ".join(texts)))
        return {
            language: frozenset(vocabulary.difference(*(other for name, other in seen.items() if name != language)))
            for language, vocabulary in seen.items()
        }

    def language(self, text: str) -> str | None:
        """The language the guest wrote in, when its words say so clearly; None when unsure."""
        raw = _raw_words(text)
        counts = sorted(
            (sum(word in known for word in raw), language) for language, known in self._language_words.items()
        )
        if not counts:
            return None
        best, language = counts[-1]
        runner_up = counts[-2][0] if len(counts) > 1 else 0
        # One word ("Hello", "ok") says little: the guest's stored language is the better guess then.
        return language if best >= MIN_LANGUAGE_WORDS and best > runner_up else None

    def classify(self, text: str) -> Verdict:
        """Which FAQs, or which department, the message is about; staff unless every part of it is clear."""
        language = self.language(text)
        if lexicon().staff_cues.intersection(words(text)):
            return staff("a word that needs a person", language)
        labels = []
        for part in _PART_BREAK.split(text):
            part_words = [word for word in words(part) if word not in self._hotel_words]
            matched = [self._matched(word) for word in part_words]
            if self._says_nothing(matched):
                continue  # a greeting, a room number, "please"
            best = self._best(matched)
            if best is None:
                return staff("a part of the message the file does not answer", language)
            labels.append(best)
        if not labels:
            return staff("nothing the file answers", language)
        return self._verdict(tuple(dict.fromkeys(labels)), language)

    def _verdict(self, labels: tuple[str, ...], language: str | None) -> Verdict:
        departments = [label.removeprefix("request:") for label in labels if label.startswith("request:")]
        if len(departments) > 1:
            return staff("requests for several departments at once", language)
        faqs = tuple(label.removeprefix("faq:") for label in labels if label.startswith("faq:"))
        return Verdict(faqs=faqs, department=departments[0] if departments else None, language=language)

    def _known(self, forms: frozenset[str]) -> bool:
        return any(forms & (doc.question_forms | doc.answer_forms) for doc in self._documents)

    def _matched(self, word: str) -> frozenset[str]:
        """The forms of a word, a typo corrected to the file's closest spelling when the file has none of them."""
        forms = _forms(word)
        if self._known(forms) or len(word) < MIN_TYPO_LENGTH:
            return forms
        close = difflib.get_close_matches(word, self._sorted_spellings, n=1, cutoff=TYPO_CUTOFF)
        return _forms(close[0]) if close else forms

    def _says_nothing(self, matched: list[frozenset[str]]) -> bool:
        """No word of substance: none at all, or only words the file uses everywhere ("room")."""
        if any(not self._known(forms) for forms in matched):
            return False
        return sum(self._weight(forms) for forms in matched) < MIN_MATCHED_WEIGHT

    def _best(self, matched: list[frozenset[str]]) -> str | None:
        """The one document the words are about, or None when no document clearly explains them."""
        weights = [self._weight(forms) for forms in matched]
        total = sum(weights)
        scored = []
        for doc in self._documents:
            explained = 0.0
            for forms, weight in zip(matched, weights, strict=True):
                if forms & doc.question_forms:
                    explained += weight
                elif forms & doc.answer_forms:
                    explained += weight * ANSWER_WORD_FACTOR
            scored.append((explained, doc.label))
        scored.sort(reverse=True)
        best_weight, best_label = scored[0]
        second_weight = scored[1][0] if len(scored) > 1 else 0.0
        if (
            best_weight < MIN_MATCHED_WEIGHT
            or best_weight / total < MIN_COVERAGE
            or (best_weight - second_weight) / total < MIN_MARGIN
        ):
            return None
        return best_label

    def _weight(self, forms: frozenset[str]) -> float:
        documents = sum(1 for doc in self._documents if forms & (doc.question_forms | doc.answer_forms))
        if documents == 0:
            return self._rarest * UNKNOWN_WORD_FACTOR
        return math.log(1 + len(self._documents) / documents)


@cache
def for_knowledge(knowledge: Knowledge) -> Retriever:
    return Retriever(knowledge)
