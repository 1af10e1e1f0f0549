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
MIN_MARGIN = 0.3
# A word the file never uses weighs this share of the rarest word's weight: it may be a detail of the
# question ("24h", "tomorrow") or a subject the file does not cover ("halal"); either way it counts.
UNKNOWN_WORD_FACTOR = 1.25
# The matched words must weigh at least this share of the rarest word's weight: one word every document
# shares is not a subject. (Shares, not weights: a word's weight grows with the number of documents.)
MIN_MATCHED_SHARE = 0.36
# A part of a message whose words the file knows but which weigh less than this share of the rarest word's
# together names no subject of its own ("we're leaving", "room 12"): it is left out, neither answered nor
# sent to staff.
SUBJECT_SHARE = 0.54
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
    # Each question or example as the forms of its words, to find the one the message is closest to.
    examples: tuple[tuple[frozenset[str], ...], ...]


class Retriever:
    """The built-in engine for one knowledge file; built once per container (`for_knowledge`)."""

    def __init__(self, knowledge: Knowledge) -> None:
        self.knowledge = knowledge
        self._document_counts: dict[frozenset[str], int] = {}
        self._hotel_words = frozenset(words(knowledge.hotel_name))
        self._spellings: set[str] = set()
        documents = [self._document(f"faq:{faq.id}", faq.questions, faq.answer) for faq in knowledge.faqs]
        documents += [
            self._document(f"request:{department.name}", department.examples, department.reply)
            for department in knowledge.departments
        ]
        self._documents = tuple(documents)
        # A typo is corrected to a word of the file or of the hotel vocabulary ("swiming" -> "swimming").
        self._sorted_spellings = sorted(self._spellings | set(lexicon().concepts))
        self._rarest = math.log(1 + len(documents))
        self._language_words = self._words_by_language()

    def _document(self, label: str, questions: dict[str, tuple[str, ...]], answer: dict[str, str]) -> _Document:
        examples = tuple(self._forms_of(text) for texts in questions.values() for text in texts)
        asked = set().union(*(forms for example in examples for forms in example))
        answered = set().union(
            *(forms for forms in (self._forms_of(text) for text in answer.values()) for forms in forms)
        )
        return _Document(label, frozenset(asked), frozenset(answered - asked), examples)

    def _forms_of(self, text: str) -> tuple[frozenset[str], ...]:
        found = []
        for word in words(text):
            if word not in self._hotel_words:
                self._spellings.add(word)
                found.append(_forms(word))
        return tuple(found)

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
        return self._documents_with(forms) > 0

    @cache  # noqa: B019 - one engine per container, kept for its life anyway
    def _matched(self, word: str) -> frozenset[str]:
        """The forms of a word, a typo corrected to the file's closest spelling when the file has none of them."""
        forms = _forms(word)
        if self._known(forms) or len(word) < MIN_TYPO_LENGTH:
            return forms
        close = difflib.get_close_matches(word, self._sorted_spellings, n=1, cutoff=TYPO_CUTOFF)
        # Typing slips rarely touch the first letter; a different first letter is more often another word
        # ("flight" is not "light").
        return _forms(close[0]) if close and close[0][0] == word[0] else forms

    def _says_nothing(self, matched: list[frozenset[str]]) -> bool:
        """No word of substance: none at all, or only words the file uses everywhere ("room")."""
        if any(not self._known(forms) for forms in matched):
            return False
        return sum(self._weight(forms) for forms in matched) < SUBJECT_SHARE * self._rarest

    def _best(self, matched: list[frozenset[str]]) -> str | None:
        """The one document the words are about, or None when no document clearly explains them.

        A document must explain most of the message's weight (its questions fully, its answer's words in part);
        documents are ranked by their closest question, counting both what of the message it explains and
        what of itself the message leaves out, so "check-out time?" prefers "What time is check-out?" to
        "Can I have a late check-out?"."""
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
            closest = max((self._closeness(example, matched, weights) for example in doc.examples), default=0.0)
            scored.append((closest, explained, doc.label))
        scored.sort(reverse=True)
        closest, explained, label = scored[0]
        runner_up = scored[1][0] if len(scored) > 1 else 0.0
        if (
            explained < MIN_MATCHED_SHARE * self._rarest
            or explained / total < MIN_COVERAGE
            or closest - runner_up < MIN_MARGIN
        ):
            return None
        return label

    def _closeness(
        self, example: tuple[frozenset[str], ...], matched: list[frozenset[str]], weights: list[float]
    ) -> float:
        """How alike a message part and one question are: the harmonic mean of the share of the message's weight
        the question has and the share of the question's weight the message has."""
        if not example:
            return 0.0
        example_forms = frozenset().union(*example)
        message_forms = frozenset().union(*matched)
        recall = sum(w for forms, w in zip(matched, weights, strict=True) if forms & example_forms) / sum(weights)
        example_weights = [self._weight(forms) for forms in example]
        covered = sum(w for forms, w in zip(example, example_weights, strict=True) if forms & message_forms)
        precision = covered / sum(example_weights)
        return 2 * precision * recall / (precision + recall) if precision + recall else 0.0

    def _documents_with(self, forms: frozenset[str]) -> int:
        # Memoised per container: a guest's words repeat across messages, and each is asked about often.
        count = self._document_counts.get(forms)
        if count is None:
            count = sum(1 for doc in self._documents if forms & (doc.question_forms | doc.answer_forms))
            self._document_counts[forms] = count
        return count

    def _weight(self, forms: frozenset[str]) -> float:
        documents = self._documents_with(forms)
        if documents == 0:
            return self._rarest * UNKNOWN_WORD_FACTOR
        return math.log(1 + len(self._documents) / documents)


@cache
def for_knowledge(knowledge: Knowledge) -> Retriever:
    return Retriever(knowledge)
