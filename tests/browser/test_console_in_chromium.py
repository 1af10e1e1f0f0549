"""The reception console in a real browser (Debian's chromium, headless, driven by Playwright) against the local
stack as `make run` starts it: sign in, a guest's message appears without reloading, a reply reaches WhatsApp
under the signed-in person's name and its tick turns to read, check-out takes the conversation off the list.

Screenshots at a desktop's and a phone's width are saved under tests/artifacts/ (not committed).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3

from devstack.stack import LocalStack, StackConfig
from devstack.template import REPO_ROOT
from tests.driver import GUEST

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO_ROOT / "tests" / "artifacts"
API_KEY = "browser-tests-api-key"
STAFF_EMAIL = "rina@example.com"
STAFF_PASSWORD = "Browser-tests-2025"
PHONE = "081234500777"
TIMEOUT_MS = 30_000


def _chromium_or_fail() -> None:
    # No skip: CI installs chromium (.ci/run), and a machine without it must say so rather than pass quietly.
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the console's browser tests need Debian's chromium "
            "(sudo apt-get install -y chromium; .ci/run installs it)",
            pytrace=False,
        )


class Stack:
    def __init__(self, stack: LocalStack) -> None:
        assert stack.api_url and stack.waha_url
        self.stack = stack
        self.api_url = stack.api_url
        self.waha_url = stack.waha_url
        self.http = urllib3.PoolManager(retries=False, timeout=10.0)

    def post(self, url: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        response = self.http.request(
            "POST", url, body=json.dumps(body).encode(), headers={"Content-Type": "application/json", **(headers or {})}
        )
        return response.status, json.loads(response.data) if response.data else None

    def get(self, url: str, headers: dict[str, str] | None = None) -> Any:
        response = self.http.request("GET", url, headers=headers or {})
        assert response.status == 200, response.data
        return json.loads(response.data)


@pytest.fixture(scope="module")
def running() -> Iterator[Stack]:
    _chromium_or_fail()
    config = StackConfig(
        api_port=0,
        moto_port=0,
        waha_sim_port=0,
        api_key=API_KEY,
        staff_email=STAFF_EMAIL,
        staff_password=STAFF_PASSWORD,
        # WhatsApp's ticks come quickly here, so that the page shows READ within the test.
        waha_sim_ack_delivered_seconds=0.2,
        waha_sim_ack_read_seconds=0.2,
    )
    with LocalStack(config) as stack:
        yield Stack(stack)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _chromium_or_fail()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-dev-shm-usage",
            ],
        )
        yield browser
        browser.close()


def test_reception_answers_a_guest_from_the_console(running: Stack, browser: Any) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{running.api_url}/console")

    # Sign in with the staff account moto's user pool holds.
    page.get_by_label("Email").fill(STAFF_EMAIL)
    page.get_by_label("Password", exact=True).fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#who")).to_have_text(STAFF_EMAIL)
    assert page.evaluate("() => sessionStorage.getItem('concierge.idToken')")

    # The hotel's system registers a guest; the guest writes; the list shows it without a reload.
    status, guest = running.post(
        f"{running.api_url}/api/v1/guests/register",
        {**GUEST, "full_name": "Ayu Wulandari", "room_number": "512", "phone_number": PHONE},
        {"x-api-key": API_KEY},
    )
    assert status == 201, guest
    running.post(f"{running.waha_url}/api/sim/inbound", {"phone": PHONE, "text": "Could I have two more towels?"})
    item = page.locator("li.session", has_text="Ayu Wulandari")
    expect(item).to_contain_text("room 512")
    # Waiting for staff (the bot's auto-reply, the last message, does not answer for them), and counted.
    expect(item).to_have_class("session waiting")
    expect(page.locator("#waiting-count")).to_contain_text("1 waiting")

    # Open it and answer: Enter sends.
    item.click()
    expect(page.locator("#messages")).to_contain_text("Could I have two more towels?")
    page.get_by_label("Reply to the guest").fill("Of course, they are on their way.")
    page.get_by_label("Reply to the guest").press("Enter")
    reply = page.locator("li.message.ours", has_text="Of course, they are on their way.")
    expect(reply).to_contain_text(f"Staff: {STAFF_EMAIL}")

    # WhatsApp got it, under the signed-in person's name; the simulator's acks turn its tick to read.
    expect(reply).to_have_attribute("data-status", "READ", timeout=TIMEOUT_MS)
    expect(reply.locator(".tick.read")).to_be_visible()
    sent = running.get(f"{running.waha_url}/api/sim/messages")
    assert "Of course, they are on their way." in json.dumps(sent)
    history = running.get(f"{running.api_url}/api/v1/guests/{guest['user_id']}/messages", {"x-api-key": API_KEY})
    staff = [message for message in history["messages"] if message["role"] == "Staff"]
    assert [(message["author"], message["status"]) for message in staff] == [(STAFF_EMAIL, "READ")]

    page.screenshot(path=str(ARTIFACTS / "console-desktop.png"))
    page.set_viewport_size({"width": 360, "height": 740})
    expect(page.get_by_role("button", name="Back to the list")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "console-phone.png"))
    page.set_viewport_size({"width": 1280, "height": 800})

    # Check out (confirmed): the conversation leaves the list.
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Check out").click()
    expect(page.locator("li.session", has_text="Ayu Wulandari")).to_have_count(0)
    expect(page.locator("#chat-pane")).to_be_hidden()
    page.close()


def test_a_wrong_password_keeps_the_desk_closed(running: Stack, browser: Any) -> None:
    from playwright.sync_api import expect

    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{running.api_url}/console/")
    page.get_by_label("Email").fill(STAFF_EMAIL)
    page.get_by_label("Password", exact=True).fill("Not-the-password-1")
    page.get_by_role("button", name="Sign in").click()

    expect(page.locator("#sign-in-error")).not_to_be_empty()
    expect(page.locator("#desk")).to_be_hidden()
    page.close()


def test_an_account_created_by_an_administrator_sets_its_password_at_first_sign_in(
    running: Stack, browser: Any
) -> None:
    import boto3
    from playwright.sync_api import expect

    assert running.stack.staff_pool is not None
    cognito = boto3.client("cognito-idp", endpoint_url=running.stack.aws_endpoint, region_name="us-east-1")
    cognito.admin_create_user(
        UserPoolId=running.stack.staff_pool.pool_id,
        Username="new.colleague@example.com",
        TemporaryPassword="Temporary-2025",
        MessageAction="SUPPRESS",
    )
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{running.api_url}/console/")
    page.get_by_label("Email").fill("new.colleague@example.com")
    page.get_by_label("Password", exact=True).fill("Temporary-2025")
    page.get_by_role("button", name="Sign in").click()

    page.get_by_label("New password (first sign-in)").fill("Chosen-password-2025")
    page.get_by_role("button", name="Sign in").click()

    expect(page.locator("#who")).to_have_text("new.colleague@example.com")
    expect(page.locator("#desk")).to_be_visible()
    page.close()
