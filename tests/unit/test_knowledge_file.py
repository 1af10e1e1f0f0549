"""The hotel's knowledge file: any file in the format loads; a file breaking a rule is refused, naming the entry."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from concierge.answers import knowledge
from devstack.resources import LocalResources

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "hotels" / "sample-hotel.toml"

VALID = """
[hotel]
name = "Wisma Uji"
languages = ["id", "en"]

[[faq]]
id = "wifi"
questions.id = ["Apa password wifi?"]
questions.en = ["What is the wifi password?"]
answer.id = "Sandi: uji123"
answer.en = "Password: uji123"

[[request]]
department = "housekeeping"
examples.id = ["Minta handuk"]
examples.en = ["More towels please"]
reply.id = "Baik."
reply.en = "Certainly."
"""


def test_the_sample_and_the_test_hotels_load() -> None:
    sample = knowledge.parse(SAMPLE.read_text(encoding="utf-8"))
    assert sample.hotel_name == "Hotel Cendana Bali"
    assert sample.languages == ("id", "en")
    assert sample.faq("wifi") is not None and sample.department("housekeeping") is not None
    for path in (REPO / "tests" / "ai" / "hotels").glob("*.toml"):
        loaded = knowledge.parse(path.read_text(encoding="utf-8"), path.name)
        assert loaded.faqs and loaded.departments


def test_the_sample_is_the_shared_one_unchanged() -> None:
    shared = REPO.parent / "shared" / "hotel" / "sample-hotel.toml"
    if shared.is_file():  # beside the checkout on the developers' machines; the copy is what ships
        assert SAMPLE.read_bytes() == shared.read_bytes()


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (('name = "Wisma Uji"', ""), "hotel.name"),
        (('languages = ["id", "en"]', "languages = []"), "hotel.languages"),
        (('answer.en = "Password: uji123"', ""), "faq 'wifi' answer has no en"),
        (('questions.id = ["Apa password wifi?"]', "questions.id = []"), "faq 'wifi' questions.id"),
        (('answer.id = "Sandi: uji123"', 'answer.id = "  "'), "faq 'wifi' answer.id"),
        (('id = "wifi"', 'id = "Wi-Fi"'), "faq #1 id"),
        (('reply.en = "Certainly."', ""), "request 'housekeeping' reply has no en"),
        (('department = "housekeeping"', 'department = ""'), "request #1 department"),
        (('examples.en = ["More towels please"]', 'examples.en = "More towels"'), "request 'housekeeping' examples.en"),
        (("[hotel]", "[hotel"), "not valid TOML"),
    ],
)
def test_a_file_breaking_a_rule_is_refused_naming_the_entry(change: tuple[str, str], named: str) -> None:
    broken = VALID.replace(*change)
    assert broken != VALID

    with pytest.raises(knowledge.KnowledgeError, match=named.replace("(", r"\(")):
        knowledge.parse(broken, "uji.toml")


def test_ids_and_departments_are_unique() -> None:
    twice = VALID + VALID[VALID.index("[[faq]]") : VALID.index("[[request]]")]
    with pytest.raises(knowledge.KnowledgeError, match="faq id 'wifi' appears twice"):
        knowledge.parse(twice)


def test_the_configured_file_is_read_from_s3_once(aws: LocalResources, monkeypatch: pytest.MonkeyPatch) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="hotel-knowledge")
    s3.put_object(Bucket="hotel-knowledge", Key="cendana.toml", Body=SAMPLE.read_bytes())
    monkeypatch.setenv("KNOWLEDGE_FILE", "s3://hotel-knowledge/cendana.toml")
    knowledge.configured.cache_clear()

    loaded = knowledge.configured()
    s3.delete_object(Bucket="hotel-knowledge", Key="cendana.toml")

    assert loaded is not None and loaded.hotel_name == "Hotel Cendana Bali"
    assert knowledge.configured() is loaded  # cached for the container's life: the object is not read again
    knowledge.configured.cache_clear()


def test_no_file_configured_means_no_knowledge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KNOWLEDGE_FILE", raising=False)
    knowledge.configured.cache_clear()
    assert knowledge.configured() is None
