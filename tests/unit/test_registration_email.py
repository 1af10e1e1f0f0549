"""The registration's email: a syntactic check of our own (no email-validator on the cold start), refusing with a
422 that names the field, keeping the domain in lower case, as EmailStr did."""

from __future__ import annotations

import pytest

from tests.driver import Concierge


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("guest@example.com", "guest@example.com"),
        ("Guest.Name+stay@Example.CO.ID", "Guest.Name+stay@example.co.id"),
        ("  guest@example.com ", "guest@example.com"),
        ("Test Guest <guest@example.com>", "guest@example.com"),
        ("tamu@contoh.例え.jp", "tamu@contoh.例え.jp"),
    ],
)
def test_an_address_is_accepted_with_its_domain_in_lower_case(concierge: Concierge, given: str, stored: str) -> None:
    status, answer = concierge.register(email=given)

    assert status == 201 and answer["email"] == stored
    (user,) = concierge.items_of_type("User")
    assert user["email"] == stored


@pytest.mark.parametrize(
    "email",
    [
        "guest",
        "guest@",
        "@example.com",
        "guest@example",
        "guest@@example.com",
        "gu est@example.com",
        "guest@exa_mple.com",
        "guest@-example.com",
        "guest@example..com",
        ".guest@example.com",
        "gu..est@example.com",
        "gu,est@example.com",
        '"guest"@example.com',
        "guest@192.168.0.1",
        "g" * 65 + "@example.com",
        "guest@" + "e" * 64 + ".com",
    ],
)
def test_an_address_that_is_not_one_is_a_422_naming_email_and_writes_nothing(concierge: Concierge, email: str) -> None:
    status, answer = concierge.register(email=email)

    assert status == 422 and answer["error"] == "validation_error"
    (detail,) = answer["details"]
    assert detail["field"] == "email" and detail["message"].startswith("value is not a valid email address: ")
    assert concierge.items() == []
