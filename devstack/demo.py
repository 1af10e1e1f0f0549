"""`python -m devstack.demo` (make demo): the hotel guide's two manual tests against a running `make run`, then
a conversation as the hotel lives it.

1. The hotel system registers the guide's Test Guest (`POST /api/v1/guests/register` with the x-api-key).
2. The guest writes "Hello, I need help" on WhatsApp: the WAHA simulator posts WAHA's webhook to the API.
   The hotel's file does not answer it, so AnswerGuestFunction sends the guide's auto-reply. The demo waits
   (about ten seconds at most) until the history API shows the welcome and the auto-reply sent.
3. Two more lines the file does not answer follow at once: three lines, one auto-reply
   (AUTO_REPLY_COOLDOWN_MINUTES). The demo waits until the answering function has routed all three.
4. The AI concierge (AI_ANSWERS, the hotel's file in KNOWLEDGE_FILE: `make run` uses hotels/sample-hotel.toml):
   "What's the wifi password?" gets the file's answer word for word; "Could I get two more towels please?" gets
   housekeeping's reply, and the list of conversations shows the request for housekeeping; "Is there a halal
   restaurant nearby?", which the file does not answer, gets no answer and waits for staff. Skipped when
   AI_ANSWERS is off or KNOWLEDGE_FILE names another hotel's file (the lines are the sample hotel's).
5. The front desk sees the guest waiting (`GET /api/v1/sessions?status=waiting`), answers
   (`POST /api/v1/sessions/{session_id}/messages`), and the guest is waiting no more, the request included.
6. The simulator's acks move the staff reply to READ in the history (skipped when its READ acks are off).
7. The guest checks out (`POST /api/v1/guests/{user_id}/checkout`) and gets the farewell.
8. A guest with a UK number registers without a `language`: +44 is not Indonesia's +62, so her welcome and the
   auto-reply to her first line go out in English.
9. She sends a photo (the simulator's `/api/sim/inbound` with `media`): FetchMediaFunction copies it from the
   simulator's `/api/files/` into the media bucket, and the history shows its `media` with a presigned link,
   which the demo fetches once. Then she checks out too.

Then it prints what the simulated WAHA sent. The check-outs end both stays, so a second run registers new ones.
With WAHA_HOST set (a real WAHA, no simulator) only step 1 runs: a real guest has to write from their phone.

The URLs and the API key are those of the running `make run`, which writes them to a state file
(devstack/run_state.py); without one, they come from the same settings as `make run` (environment, then `.env`):
API_PORT, WAHA_SIM_PORT, API_KEY. `--api`, `--waha` and `--api-key` override both. Exit status 1 when the stack is
not running or a step does not do what the guide expects.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs

import urllib3

from devstack import run_state
from devstack.__main__ import _REGISTER_BODY, load_env_file
from devstack.stack import SAMPLE_KNOWLEDGE_FILE, StackConfig

REGISTER_PATH = "/api/v1/guests/register"
HISTORY_PATH = "/api/v1/guests/{user_id}/messages"
SESSIONS_PATH = "/api/v1/sessions?status={status}"
STAFF_MESSAGE_PATH = "/api/v1/sessions/{session_id}/messages"
CHECKOUT_PATH = "/api/v1/guests/{user_id}/checkout"
GUEST_TEXT = "Hello, I need help"
# With GUEST_TEXT, the three lines a guest sends in a row: none of them a question the sample hotel's file answers.
MORE_GUEST_LINES = ("Halo?", "Are you there?")
# Step 4, for the sample hotel's file: a question it answers (FAQ "wifi"), a request for housekeeping, and a
# question it does not answer.
AI_QUESTION, AI_QUESTION_FAQ = "What's the wifi password?", "wifi"
AI_REQUEST, AI_REQUEST_DEPARTMENT = "Could I get two more towels please?", "housekeeping"
AI_UNANSWERED = "Is there a halal restaurant nearby?"
STAFF_REPLY = {
    "text": "Good morning! Your towels are on their way, and Warung Sari, a five-minute walk to the left, is halal.",
    "author": "Front desk",
}
# Step 7's guest: a UK number and no "language", so the copy is English (+62 alone means Indonesian).
ENGLISH_GUEST = {
    "full_name": "Emma Clarke",
    "room_number": "305",
    "checkin_date": "2025-11-22",
    "email": "emma.clarke@example.com",
    "phone_number": "+44 7911 123456",
}
# Not a question the file answers, so her reply is the auto-reply, in the language her number chose.
ENGLISH_TEXT = "Hi, can someone help me?"
# Step 8: a photo with a caption; without "data" the simulator sends its own small sample JPEG as the file.
PHOTO = {"mimetype": "image/jpeg", "filename": "shower.jpg"}
PHOTO_CAPTION = "The shower in my bathroom is leaking"
# A message leaves PENDING when a sender claims it (SENDING) and is sent once WAHA takes it; ticks move it on.
IN_FLIGHT = frozenset({"PENDING", "SENDING"})
SENT_OR_LATER = frozenset({"SENT", "DELIVERED", "READ"})
DEFAULT_WAIT_SECONDS = 10.0
_POLL_SECONDS = 0.2
_PAGE_SIZE = 100
# Addresses a server listens on that a client cannot connect to as written.
_ANY_ADDRESS = {"0.0.0.0", "::", ""}  # noqa: S104

T = TypeVar("T")


class StackNotRunning(RuntimeError):
    """Nothing answers at the URL: the local stack is not up (or listens elsewhere)."""


class DemoFailed(RuntimeError):
    """A step answered, but not as the guide says it should."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any


class Client:
    """JSON over HTTP to the API and the simulator; a refused connection means the stack is not running."""

    def __init__(self, api_url: str, waha_url: str, api_key: str | None) -> None:
        self.api_url = api_url.rstrip("/")
        self.waha_url = waha_url.rstrip("/")
        self.api_key = api_key
        self._http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=2.0, read=20.0))

    def request(self, method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> Answer:
        try:
            response = self._http.request(
                method,
                url,
                body=json.dumps(body).encode() if body is not None else None,
                headers={"Content-Type": "application/json", **(headers or {})},
            )
        except urllib3.exceptions.HTTPError as error:
            raise StackNotRunning(f"nothing answers at {url} ({type(error).__name__})") from error
        try:
            parsed = json.loads(response.data) if response.data else None
        except ValueError:
            parsed = response.data.decode(errors="replace")
        return Answer(response.status, parsed)

    def _key_header(self) -> dict[str, str]:
        return {"x-api-key": self.api_key} if self.api_key else {}

    def api(self, method: str, path: str, body: Any = None) -> Answer:
        return self.request(method, self.api_url + path, body, self._key_header())

    def waha(self, method: str, path: str, body: Any = None) -> Answer:
        return self.request(method, self.waha_url + path, body)

    def download(self, url: str) -> tuple[int, bytes, str]:
        """A plain GET (a presigned link to our copy of a guest's file): status, body and content type."""
        try:
            response = self._http.request("GET", url)
        except urllib3.exceptions.HTTPError as error:
            raise DemoFailed(f"nothing answers at the file's link ({type(error).__name__})") from error
        return response.status, response.data, response.headers.get("Content-Type", "")

    def conversation(self, user_id: str) -> list[dict[str, Any]]:
        """Every stored message of the guest, oldest first, following the history API's pages."""
        messages: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            query = f"?limit={_PAGE_SIZE}" + (f"&cursor={cursor}" if cursor else "")
            answer = self.api("GET", HISTORY_PATH.format(user_id=user_id) + query)
            if answer.status != 200:
                raise DemoFailed(f"the history API answered {answer.status}: {_json(answer.body)}")
            messages += answer.body["messages"]
            cursor = answer.body.get("next_cursor")
            if not cursor:
                return messages


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _indented(text: str, prefix: str = "    ") -> str:
    return "\n".join((prefix + line).rstrip() for line in text.splitlines() or [""])


def _wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    """Polls condition until it holds (True) or timeout seconds have passed (False): sending is asynchronous."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(_POLL_SECONDS)
    return True


def _eventually(probe: Callable[[], T | None], timeout: float) -> T | None:
    """probe()'s first answer that is not None, polled until timeout seconds have passed (then None)."""
    found: list[T] = []

    def answered() -> bool:
        result = probe()
        if result is not None:
            found.append(result)
        return result is not None

    return found[0] if _wait_for(answered, timeout) else None


def _welcome(messages: list[dict[str, Any]], session_id: str) -> dict[str, Any] | None:
    # The stay's first System message is its welcome (a guest's earlier stays have their own).
    return next((m for m in messages if m["session_id"] == session_id and m["role"] == "System"), None)


def _new_reply(messages: list[dict[str, Any]], seen: set[str], text: str = GUEST_TEXT) -> dict[str, Any] | None:
    # The auto-reply is stamped just after the message it answers, so it sorts right behind it.
    for index, message in enumerate(messages[:-1]):
        if message["id"] not in seen and message["role"] == "User" and message["text"] == text:
            following = messages[index + 1]
            return following if following["role"] == "System" else None
    return None


def _who(message: dict[str, Any]) -> str:
    return f"{message['role']} ({message['author']})" if message.get("author") else message["role"]


def print_conversation(client: Client, user_id: str) -> None:
    messages = client.conversation(user_id)
    print(f"\nStored conversation (GET {HISTORY_PATH.format(user_id=user_id)}), {len(messages)} message(s):")
    for message in messages:
        error = f"  error: {message['error']}" if message.get("error") else ""
        read = f"  read {message['read_at']}" if message.get("read_at") else ""
        print(f"  {message['created_at']}  {_who(message):<20}  {message['status']:<9}{read}{error}".rstrip())
        print(_indented(message["text"], "      "))


def print_simulator(client: Client) -> None:
    answer = client.waha("GET", "/api/sim/messages")
    sent = answer.body.get("messages", []) if isinstance(answer.body, dict) else []
    print(f"\nWhat the WAHA simulator sent (GET {client.waha_url}/api/sim/messages), {len(sent)} message(s):")
    for message in sent:
        first_line = (message["text"].splitlines() or [""])[0]
        print(f"  to {message['chatId']}: {first_line}")


def register(client: Client) -> dict[str, Any]:
    print(f"1. Register the guide's Test Guest: POST {client.api_url}{REGISTER_PATH}")
    print(_indented(_json(_REGISTER_BODY)))
    answer = client.api("POST", REGISTER_PATH, _REGISTER_BODY)
    print(f"   -> HTTP {answer.status}")
    print(_indented(_json(answer.body)))
    if answer.status == 403:
        raise DemoFailed("the API refused the key: pass the stack's API_KEY (or --api-key)")
    if answer.status != 201:
        raise DemoFailed(f"registration answered {answer.status}, the guide expects 201")
    return answer.body


def guest_writes(client: Client, registration: dict[str, Any], timeout: float) -> set[str]:
    """The guide's second test; returns the ids of the messages stored before it, for the steps that follow."""
    user_id, session_id = registration["user_id"], registration["session_id"]
    # A rerun against the same stack finds the earlier runs' messages; only this run's reply counts.
    seen = {message["id"] for message in client.conversation(user_id)}
    inbound = {"phone": _REGISTER_BODY["phone_number"], "text": GUEST_TEXT}
    print(f"\n2. The guest writes on WhatsApp: POST {client.waha_url}/api/sim/inbound")
    print(_indented(_json(inbound)))
    answer = client.waha("POST", "/api/sim/inbound", inbound)
    print(f"   -> HTTP {answer.status}")
    print(_indented(_json(answer.body)))
    if answer.status != 200 or not answer.body.get("delivered"):
        raise DemoFailed("the simulator could not deliver the webhook to the API")

    print(f"\nWaiting up to {timeout:.0f} s for the welcome and the auto-reply to be sent...")

    def both_sent() -> bool:
        messages = client.conversation(user_id)
        welcome, reply = _welcome(messages, session_id), _new_reply(messages, seen)
        return bool(welcome and reply and welcome["status"] in SENT_OR_LATER and reply["status"] in SENT_OR_LATER)

    done = _wait_for(both_sent, timeout)
    print_conversation(client, user_id)
    print_simulator(client)
    if not done:
        raise DemoFailed(f"the welcome and the auto-reply were not both sent within {timeout:.0f} s")
    print("\nBoth manual tests passed: the welcome and the auto-reply were sent.")
    return seen


def _count(number: int, noun: str) -> str:
    if noun == "time":
        return {1: "once", 2: "twice"}.get(number, f"{number} times")
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _step(title: str) -> None:
    print(f"\n{'-' * 100}\n{title}")


def _print_waiting(client: Client, session_id: str) -> dict[str, Any] | None:
    """Prints the waiting list; this session's entry when it is on it."""
    path = SESSIONS_PATH.format(status="waiting")
    answer = client.api("GET", path)
    if answer.status != 200:
        raise DemoFailed(f"the list of conversations answered {answer.status}: {_json(answer.body)}")
    sessions = answer.body["sessions"]
    listed = f"{_count(len(sessions), 'conversation')} waiting for staff" + (":" if sessions else "")
    print(f"   GET {path} -> HTTP 200, {listed}")
    for entry in sessions:
        last = entry.get("last_message") or {}
        mark = "  <- this guest" if entry["session_id"] == session_id else ""
        print(
            f"     {entry.get('guest_name')}, room {entry.get('room_number')}, phone {entry.get('phone')}: "
            f"waiting since {entry.get('waiting_since')}{mark}"
        )
        print(f"       last message ({last.get('role')}): {last.get('text')!r}")
        if entry.get("request"):
            request = entry["request"]
            print(f"       request for {request['department']}: {request['text']!r} (at {request['at']})")
    return next((entry for entry in sessions if entry["session_id"] == session_id), None)


def _listed(client: Client, session_id: str, status: str) -> dict[str, Any] | None:
    """This session's entry in the list of conversations (`open` or `waiting`), or None."""
    answer = client.api("GET", SESSIONS_PATH.format(status=status) + f"&limit={_PAGE_SIZE}")
    if answer.status != 200:
        raise DemoFailed(f"the list of conversations answered {answer.status}: {_json(answer.body)}")
    return next((entry for entry in answer.body["sessions"] if entry["session_id"] == session_id), None)


def _say(client: Client, phone: str, text: str) -> None:
    """The guest writes one line on WhatsApp: the simulator posts WAHA's webhook to the API."""
    answer = client.waha("POST", "/api/sim/inbound", {"phone": phone, "text": text})
    print(f"   POST {client.waha_url}/api/sim/inbound {text!r} -> HTTP {answer.status}")
    if answer.status != 200 or not answer.body.get("delivered"):
        raise DemoFailed("the simulator could not deliver the webhook to the API")


def three_lines(client: Client, registration: dict[str, Any], seen: set[str], answering: bool, timeout: float) -> None:
    """Two more lines right after the guide's: the guest wrote three, and one auto-reply answers them."""
    _step(
        "3. The guest keeps typing: two more lines at once, which the hotel's file does not answer either. An"
        "\n   auto-reply goes out at most once per AUTO_REPLY_COOLDOWN_MINUTES, so three lines get one answer, as a"
        "\n   person would give."
    )
    for text in MORE_GUEST_LINES:
        _say(client, _REGISTER_BODY["phone_number"], text)
    expected_lines = 1 + len(MORE_GUEST_LINES)

    def settled() -> list[dict[str, Any]] | None:
        # AnswerGuestFunction marks each line `routed` in the transaction that stores its reply, if any; with
        # AI_ANSWERS off the webhook stored the reply with the line, and nothing is routed.
        new = [message for message in client.conversation(registration["user_id"]) if message["id"] not in seen]
        lines = [message for message in new if message["role"] == "User"]
        if len(lines) < expected_lines or (answering and not all(line.get("routed") for line in lines)):
            return None
        return new

    new = _eventually(settled, timeout)
    if new is None:
        raise DemoFailed(f"the three lines were not all stored and routed within {timeout:.0f} s")
    lines = [message for message in new if message["role"] == "User"]
    replies = [message for message in new if message["role"] == "System"]
    for line in lines:
        if line.get("routed"):
            print(f"   {line['text']!r}: routed {_inline(line['routed'])}")
    print(f"   The guest wrote {_count(len(lines), 'line')}; the bot replied {_count(len(replies), 'time')}.")
    if len(lines) != expected_lines or len(replies) != 1:
        raise DemoFailed(f"expected three lines and one auto-reply, found {len(lines)} and {len(replies)}")


def _inline(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _routed(
    client: Client, user_id: str, before: set[str], text: str
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """The guest's line once AnswerGuestFunction has routed it and each reply it stored has gone out."""
    new = [message for message in client.conversation(user_id) if message["id"] not in before]
    line = next((m for m in new if m["role"] == "User" and m["text"] == text), None)
    replies = [message for message in new if message["role"] == "System"]
    if line is None or not line.get("routed") or any(reply["status"] not in SENT_OR_LATER for reply in replies):
        return None
    return line, replies


def _ask(
    client: Client, registration: dict[str, Any], text: str, timeout: float
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The guest writes `text`; the line as routed, and the bot's replies to it, once sent."""
    user_id = registration["user_id"]
    before = {message["id"] for message in client.conversation(user_id)}
    _say(client, _REGISTER_BODY["phone_number"], text)
    found = _eventually(lambda: _routed(client, user_id, before, text), timeout)
    if found is None:
        raise DemoFailed(f"{text!r} was not routed, and its replies sent, within {timeout:.0f} s")
    line, replies = found
    print(f"     the history's line: routed {_inline(line['routed'])}")
    for reply in replies:
        labels = ", ".join(f"{name} {reply[name]}" for name in ("kind", "faq_id", "department") if reply.get(name))
        print(f"     the bot's reply, {reply['status']} ({labels}, language {reply.get('language')!r}):")
        print(_indented(reply["text"], "         "))
    if not replies:
        print("     the bot's reply: none")
    return line, replies


def _reply_of(
    replies: list[dict[str, Any]], kind: str, label: str, value: str, text: dict[str, str]
) -> dict[str, Any] | None:
    """The one reply of this kind and label whose text is the file's own, in the reply's language; else None."""
    if len(replies) != 1:
        return None
    reply = replies[0]
    matches = reply.get("kind") == kind and reply.get(label) == value
    return reply if matches and reply["text"] == text.get(str(reply.get("language"))) else None


def ai_concierge(client: Client, registration: dict[str, Any], timeout: float) -> None:
    """A question the file answers, a request for a department, and a question for staff."""
    _step(
        "4. The AI concierge. AnswerGuestFunction reads each line the webhook stored against the hotel's file"
        "\n   (KNOWLEDGE_FILE: the sample hotel's, hotels/sample-hotel.toml) with its built-in engine: a question the"
        "\n   file answers gets the file's answer as written, a request gets its department's reply and waits for"
        "\n   that department, and anything else waits for staff. It never answers from outside the file."
    )
    hotel = tomllib.loads(SAMPLE_KNOWLEDGE_FILE.read_text(encoding="utf-8"))
    faq = next(entry for entry in hotel["faq"] if entry["id"] == AI_QUESTION_FAQ)
    department = next(entry for entry in hotel["request"] if entry["department"] == AI_REQUEST_DEPARTMENT)
    session_id = registration["session_id"]

    print("   a) A question the file answers:")
    line, replies = _ask(client, registration, AI_QUESTION, timeout)
    if line["routed"].get("to") != "answer" or not _reply_of(replies, "answer", "faq_id", faq["id"], faq["answer"]):
        raise DemoFailed(f"{AI_QUESTION!r} did not get the file's answer {faq['id']!r}")
    print(f"     The file's answer to {faq['id']!r}, word for word, went out on WhatsApp.")

    print(f"   b) A request for {AI_REQUEST_DEPARTMENT}:")
    line, replies = _ask(client, registration, AI_REQUEST, timeout)
    if line["routed"].get("to") != "request" or not _reply_of(
        replies, "request", "department", AI_REQUEST_DEPARTMENT, department["reply"]
    ):
        raise DemoFailed(f"{AI_REQUEST!r} did not get {AI_REQUEST_DEPARTMENT}'s reply")
    entry = _listed(client, session_id, "waiting")
    request = (entry or {}).get("request") or {}
    print(f"     GET {SESSIONS_PATH.format(status='waiting')}: this guest is waiting, with")
    print(f"       request: {_inline(request)}")
    if request.get("department") != AI_REQUEST_DEPARTMENT or request.get("text") != AI_REQUEST:
        raise DemoFailed(f"the waiting list does not show the request for {AI_REQUEST_DEPARTMENT}")
    print(f"     The front desk sees a request for {AI_REQUEST_DEPARTMENT} until staff reply or resolve it.")

    print("   c) A question the file does not answer:")
    line, replies = _ask(client, registration, AI_UNANSWERED, timeout)
    answered = [reply for reply in replies if reply.get("kind") in ("answer", "request")]
    if line["routed"].get("to") != "staff" or answered:
        raise DemoFailed(f"{AI_UNANSWERED!r} was answered, but the file does not say")
    if not replies:
        print("     No answer from the bot: the file does not say, and its auto-reply went out already (cooldown).")
    if _listed(client, session_id, "waiting") is None:
        raise DemoFailed("the guest is not on the waiting list after a question for staff")
    print("     The conversation waits for staff.")


def front_desk(client: Client, registration: dict[str, Any], timeout: float) -> dict[str, Any]:
    """The front desk finds the waiting guest, answers, and the guest is no longer waiting."""
    session_id = registration["session_id"]
    _step("5. The front desk looks for guests waiting for a person, and answers this one.")
    waiting = _print_waiting(client, session_id)
    if not waiting:
        raise DemoFailed("the guest is not on the waiting list after writing")
    path = STAFF_MESSAGE_PATH.format(session_id=session_id)
    answer = client.api("POST", path, STAFF_REPLY)
    print(f"   POST {client.api_url}{path}")
    print(_indented(_json(STAFF_REPLY), "     "))
    print(f"   -> HTTP {answer.status}")
    print(_indented(_json(answer.body), "     "))
    if answer.status != 202:
        raise DemoFailed(f"the staff reply answered {answer.status}, expected 202")
    print("   The bot now leaves the guest to staff for HANDOFF_MINUTES; the waiting list no longer shows them:")
    if _print_waiting(client, session_id):
        raise DemoFailed("the guest is still on the waiting list after the staff reply")
    if waiting.get("request"):
        entry = _listed(client, session_id, "open")
        if entry is None or entry.get("request") is not None:
            raise DemoFailed("the request is still open after the staff reply")
        print(f"   The staff reply answered the request for {waiting['request']['department']} too (request: null).")
    reply_id = answer.body["id"]

    def sent() -> bool:
        message = _message(client, registration["user_id"], reply_id)
        return bool(message and message["status"] in SENT_OR_LATER)

    if not _wait_for(sent, timeout):
        raise DemoFailed(f"the staff reply was not sent within {timeout:.0f} s")
    print("   The staff reply went out through WAHA.")
    return answer.body


def _message(client: Client, user_id: str, message_id: str) -> dict[str, Any] | None:
    return next((m for m in client.conversation(user_id) if m["id"] == message_id), None)


def read_tick(client: Client, registration: dict[str, Any], staff_message: dict[str, Any], timeout: float) -> None:
    """The simulator's acks (DEVICE, then READ) move the staff reply forward in the history."""
    acks = client.waha("GET", "/api/sim/acks")
    read_seconds = acks.body.get("read_seconds") if acks.status == 200 and isinstance(acks.body, dict) else None
    if read_seconds is None:
        _step("6. Skipped: the simulator sends no READ acks (WAHA_SIM_ACK_READ_SECONDS=off), so no blue ticks.")
        return
    delivered_seconds = acks.body.get("delivered_seconds") or 0
    _step(
        f"6. The guest's phone gets the reply ({delivered_seconds:g} s) and the guest reads it ({read_seconds:g} s"
        " later):\n   WAHA's message.ack webhooks (DEVICE, then READ) move it to DELIVERED, then READ."
    )
    user_id, message_id = registration["user_id"], staff_message["id"]
    seen_statuses: list[str] = []

    def read() -> bool:
        message = _message(client, user_id, message_id)
        status = message["status"] if message else None
        if status and (not seen_statuses or seen_statuses[-1] != status):
            seen_statuses.append(status)
            print(f"   history: {status}" + (f" (read_at {message['read_at']})" if status == "READ" else ""))
        return status == "READ"

    wait = timeout + delivered_seconds + read_seconds
    if not _wait_for(read, wait):
        raise DemoFailed(f"the staff reply was not READ within {wait:.0f} s")


def check_out(client: Client, registration: dict[str, Any], timeout: float) -> None:
    """The guest leaves: the stay ends, and the farewell goes out."""
    user_id = registration["user_id"]
    before = {message["id"] for message in client.conversation(user_id)}
    path = CHECKOUT_PATH.format(user_id=user_id)
    _step(f"7. The guest checks out: POST {client.api_url}{path}")
    answer = client.api("POST", path)
    print(f"   -> HTTP {answer.status}")
    print(_indented(_json(answer.body), "     "))
    if answer.status != 200:
        raise DemoFailed(f"check-out answered {answer.status}, expected 200")

    def farewell_sent() -> dict[str, Any] | None:
        new = [m for m in client.conversation(user_id) if m["id"] not in before and m["role"] == "System"]
        return new[0] if new and new[0]["status"] in SENT_OR_LATER else None

    if not _wait_for(lambda: farewell_sent() is not None, timeout):
        raise DemoFailed(f"the farewell was not sent within {timeout:.0f} s")
    print("   The stay is closed and the farewell went out; the bot answers this stay no more.")


def english_guest(client: Client, timeout: float) -> dict[str, Any]:
    """A guest from abroad: no language asked for, her number's country chooses English for every message."""
    _step(
        '8. A guest with a UK number registers, without "language" in the body: a number outside Indonesia (+62)'
        '\n   gets English ("language": "en" or "id" would choose). She writes; the welcome and the auto-reply'
        "\n   go out in English."
    )
    answer = client.api("POST", REGISTER_PATH, ENGLISH_GUEST)
    language = answer.body.get("language") if isinstance(answer.body, dict) else None
    print(
        f"   POST {client.api_url}{REGISTER_PATH} ({ENGLISH_GUEST['phone_number']}) -> HTTP {answer.status}, "
        f"language {language!r}"
    )
    if answer.status != 201 or language != "en":
        raise DemoFailed(f"registration answered {answer.status} with language {language!r}, expected 201 and 'en'")
    registration: dict[str, Any] = answer.body
    user_id, session_id = registration["user_id"], registration["session_id"]
    # Her earlier stays (an earlier run) have their own messages; only this stay's count.
    seen = {message["id"] for message in client.conversation(user_id)}
    inbound = {"phone": ENGLISH_GUEST["phone_number"], "text": ENGLISH_TEXT}
    delivered = client.waha("POST", "/api/sim/inbound", inbound)
    print(f"   POST {client.waha_url}/api/sim/inbound {ENGLISH_TEXT!r} -> HTTP {delivered.status}")
    if delivered.status != 200 or not delivered.body.get("delivered"):
        raise DemoFailed("the simulator could not deliver the webhook to the API")

    def both_sent() -> list[dict[str, Any]] | None:
        messages = client.conversation(user_id)
        welcome, reply = _welcome(messages, session_id), _new_reply(messages, seen, ENGLISH_TEXT)
        if welcome and reply and welcome["status"] in SENT_OR_LATER and reply["status"] in SENT_OR_LATER:
            return [welcome, reply]
        return None

    if not _wait_for(lambda: both_sent() is not None, timeout):
        raise DemoFailed(f"her welcome and auto-reply were not both sent within {timeout:.0f} s")
    for message in both_sent() or []:
        print(f"   {message['role']} {message['status']}, language {message.get('language')!r}:")
        print(_indented(message["text"], "       "))
        if message.get("language") != "en":
            raise DemoFailed(f"a message to her was stored in {message.get('language')!r}, expected 'en'")
    return registration


def _link(url: str) -> str:
    """A presigned link, shortened for the screen: where it points and how long it works."""
    base, _, query = url.partition("?")
    expires = parse_qs(query).get("X-Amz-Expires", ["?"])[0]
    return f"{base}?X-Amz-... (presigned, valid {expires} s)"


def photo_from_guest(client: Client, registration: dict[str, Any], timeout: float) -> None:
    """A guest's photo: the simulator serves it as WAHA would, the stack copies it and links to its copy."""
    _step(
        "9. She sends a photo. The simulator keeps it as WAHA does (behind its X-Api-Key, for"
        "\n   WHATSAPP_FILES_LIFETIME); FetchMediaFunction copies it into the media bucket at once, off the webhook's"
        "\n   path, and the history links to our copy."
    )
    inbound = {"phone": ENGLISH_GUEST["phone_number"], "text": PHOTO_CAPTION, "media": PHOTO}
    answer = client.waha("POST", "/api/sim/inbound", inbound)
    print(f"   POST {client.waha_url}/api/sim/inbound")
    print(_indented(_json(inbound), "     "))
    print(f"   -> HTTP {answer.status}")
    if answer.status != 200 or not answer.body.get("delivered"):
        raise DemoFailed("the simulator could not deliver the photo's webhook to the API")
    user_id = registration["user_id"]

    def settled() -> dict[str, Any] | None:
        photos = [m for m in client.conversation(user_id) if m["text"] == PHOTO_CAPTION and m.get("media")]
        media = photos[-1]["media"] if photos else {}
        return media if media.get("url") or media.get("error") else None

    if not _wait_for(lambda: settled() is not None, timeout):
        raise DemoFailed(f"the photo was not copied within {timeout:.0f} s")
    media = settled() or {}
    if media.get("error"):
        raise DemoFailed(f"the photo was not copied: {media['error']}")
    print(f"   GET {HISTORY_PATH.format(user_id=user_id)}: the photo's message has")
    print(f"     media: mimetype {media['mimetype']}, filename {media['filename']}, size {media['size']} bytes")
    print(f"     url: {_link(media['url'])}")
    status, content, content_type = client.download(media["url"])
    print(f"   GET <url> -> HTTP {status}, {len(content)} bytes ({content_type})")
    if status != 200 or len(content) != media["size"]:
        raise DemoFailed(
            f"the photo's link answered {status} with {len(content)} bytes, expected 200 and {media['size']}"
        )


def leaves(client: Client, registration: dict[str, Any], timeout: float) -> None:
    """The English-speaking guest checks out too, so that a rerun registers a new stay (the bot answers her again)."""
    user_id = registration["user_id"]
    before = {message["id"] for message in client.conversation(user_id)}
    answer = client.api("POST", CHECKOUT_PATH.format(user_id=user_id))
    if answer.status != 200:
        raise DemoFailed(f"her check-out answered {answer.status}, expected 200")

    def farewell() -> dict[str, Any] | None:
        new = [m for m in client.conversation(user_id) if m["id"] not in before and m["role"] == "System"]
        return new[0] if new and new[0]["status"] in SENT_OR_LATER else None

    if not _wait_for(lambda: farewell() is not None, timeout):
        raise DemoFailed(f"her farewell was not sent within {timeout:.0f} s")
    first_line = ((farewell() or {}).get("text", "").splitlines() or [""])[0]
    print(f"   She checks out (HTTP 200); her farewell went out in English: {first_line!r}")


def conversation_story(
    client: Client, registration: dict[str, Any], seen: set[str], chosen: Target, timeout: float
) -> None:
    three_lines(client, registration, seen, chosen.ai_answers, timeout)
    skipped = _why_no_ai_step(chosen)
    if skipped:
        _step(f"4. Skipped, the AI concierge: {skipped}.")
    else:
        ai_concierge(client, registration, timeout)
    staff_message = front_desk(client, registration, timeout)
    read_tick(client, registration, staff_message, timeout)
    check_out(client, registration, timeout)
    _step("What the history holds now (every stay of the guest):")
    print_conversation(client, registration["user_id"])
    english = english_guest(client, timeout)
    photo_from_guest(client, english, timeout)
    leaves(client, english, timeout)
    print("\n" + "-" * 100)
    print_simulator(client)
    ai = (
        ""
        if skipped
        else "\na question answered from the hotel's file, a towel request sent to housekeeping, a question the file"
        "\ncannot answer left to staff;"
    )
    print(
        "\nThe conversation went as the hotel expects: one reply to three lines;"
        f"{ai} a staff answer read, a check-out;"
        "\nan English-speaking guest answered in English, and her photo kept and linked in the history."
    )


def _why_no_ai_step(chosen: Target) -> str | None:
    """Why step 4 cannot run against this stack (its lines and expected answers are the sample hotel's)."""
    if not chosen.ai_answers:
        return "AI_ANSWERS is off, so every message gets the guide's auto-reply and waits for staff"
    if not _is_sample_hotel(chosen.knowledge_file):
        return f"KNOWLEDGE_FILE is {chosen.knowledge_file or 'unset'}, and the demo's lines are the sample hotel's"
    if chosen.ai_model_id:
        return (
            f"AI_MODEL_ID is set ({chosen.ai_model_id}): what Bedrock answers depends on the model"
            " (the dev stack's Converse simulator knows only the file's own questions, word for word)"
        )
    return None


def _is_sample_hotel(knowledge_file: str) -> bool:
    # A relative KNOWLEDGE_FILE is relative to the repository, where `make run` and `make demo` both run.
    return bool(knowledge_file) and Path(knowledge_file).resolve() == SAMPLE_KNOWLEDGE_FILE.resolve()


def without_simulator(client: Client, registration: dict[str, Any], timeout: float) -> None:
    print(
        "\n2. Skipped: the guest's message needs the WAHA simulator, and WAHA_HOST points at a real WAHA."
        "\n   Write to the hotel's WhatsApp number from the guest's phone to try it."
    )
    user_id, session_id = registration["user_id"], registration["session_id"]

    def welcome_settled() -> bool:
        welcome = _welcome(client.conversation(user_id), session_id)
        return bool(welcome and welcome["status"] not in IN_FLIGHT)

    print(f"\nWaiting up to {timeout:.0f} s for the welcome to be sent (or to fail)...")
    _wait_for(welcome_settled, timeout)
    print_conversation(client, user_id)


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in _ANY_ADDRESS else host


def _parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.demo", description="Run the hotel guide's two manual tests against `make run`."
    )
    parser.add_argument("--api", help="the local API's URL (default: the running `make run`'s)")
    parser.add_argument("--waha", help="the WAHA simulator's URL (default: the running `make run`'s)")
    parser.add_argument("--api-key", help="the x-api-key to send (default: the running `make run`'s)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_WAIT_SECONDS, help="seconds to wait for SENT")
    return parser.parse_args(argv)


@dataclass(frozen=True)
class Target:
    """Where the demo talks to, whether WAHA there is the simulator (which can play the guest), and what the
    stack's answering function works with."""

    api_url: str
    waha_url: str
    api_key: str | None
    simulator: bool
    ai_answers: bool = True
    knowledge_file: str = ""
    ai_model_id: str = ""


def target(arguments: argparse.Namespace, state: run_state.RunState | None, config: StackConfig) -> Target:
    """The command line first, then the running stack's state file, then the settings `make run` would read."""
    if state is not None:
        api_url, waha_url, api_key, simulator = state.api_url, state.waha_url, state.api_key, state.simulator
        # The settings the stack gave its functions.
        answering = state.function_environment
    else:
        api_url = f"http://{_client_host(config.api_host)}:{config.api_port}"
        # WAHA_HOST means a real WAHA, as it does for `make run`.
        simulator = config.waha_host is None
        waha_url = config.waha_host or f"http://127.0.0.1:{config.waha_sim_port}"
        api_key = config.api_key
        answering = {**os.environ, "KNOWLEDGE_FILE": config.knowledge_file}
    return Target(
        api_url=arguments.api or api_url,
        waha_url=arguments.waha or waha_url,
        api_key=arguments.api_key or api_key,
        # An explicit --waha names a simulator.
        simulator=arguments.waha is not None or simulator,
        ai_answers=answering.get("AI_ANSWERS", "").strip().lower() != "off",
        knowledge_file=answering.get("KNOWLEDGE_FILE", "").strip(),
        ai_model_id=answering.get("AI_MODEL_ID", "").strip(),
    )


def main(argv: Sequence[str] | None = None) -> int:
    load_env_file()
    arguments = _parse_arguments(argv)
    chosen = target(arguments, run_state.read(), StackConfig.from_env())
    simulator = chosen.simulator
    client = Client(chosen.api_url, chosen.waha_url, chosen.api_key)
    try:
        # Both checked before anything is written, so a half-started stack does not leave a stray guest.
        client.request("GET", client.api_url + "/")
        if simulator:
            client.waha("GET", "/api/sim/messages")
        registration = register(client)
        if simulator:
            seen = guest_writes(client, registration, arguments.timeout)
            conversation_story(client, registration, seen, chosen, arguments.timeout)
        else:
            without_simulator(client, registration, arguments.timeout)
    except StackNotRunning as error:
        print(
            f"\nThe local stack is not running: {error}.\n"
            "Start it with `make run` in another terminal (or pass --api / --waha if it listens elsewhere).",
            file=sys.stderr,
        )
        return 1
    except DemoFailed as error:
        print(f"\nDemo failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
