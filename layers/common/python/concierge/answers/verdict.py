"""What an engine decides about a guest's message: the FAQ answers to send, the department to call, or staff.

Every engine (built-in retrieval, Amazon Bedrock) gives one of these and nothing else: the text a guest then
receives is always the hotel file's own answer or reply, never an engine's words.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    faqs: tuple[str, ...] = ()
    department: str | None = None
    # The language the guest wrote in, when the engine is sure of it; else the guest's stored language is used.
    language: str | None = None
    engine: str = "builtin"
    # Why staff get it, for the logs (never the guest's words).
    reason: str = ""

    @property
    def to_staff(self) -> bool:
        return not self.faqs and self.department is None

    def labels(self) -> tuple[str, ...]:
        """`faq:<id>` and `request:<department>` in the order they are answered, or `staff`."""
        labels = tuple(f"faq:{faq_id}" for faq_id in self.faqs)
        if self.department is not None:
            labels += (f"request:{self.department}",)
        return labels or ("staff",)


def staff(reason: str, language: str | None = None, engine: str = "builtin") -> Verdict:
    return Verdict(language=language, engine=engine, reason=reason)
