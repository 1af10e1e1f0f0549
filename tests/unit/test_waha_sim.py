"""The WAHA simulator keeps to WAHA's contract: sendText checks and answers, faults, signed and retried webhooks,
acks for what it sent, and the hotel's own messages."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import pytest
import urllib3
from jsonschema import Draft202012Validator

from devstack.waha_sim import (
    HMAC_TEST_VECTOR_FILE,
    WahaSimulator,
    WebhookNotConfiguredError,
    load_spec,
    webhook_hmac,
)

# The shared WAHA reference (beyond the three copies the simulator ships) sits next to the repository.
SHARED_WAHA = Path(__file__).resolve().parents[3] / "shared" / "waha"
needs_shared_reference = pytest.mark.skipif(
    not (SHARED_WAHA / "openapi-excerpt.json").is_file(), reason="WAHA reference folder ../shared/waha not present"
)

HMAC_KEY = "test-hmac-key"
VALID = {"chatId": "6281234567890@c.us", "text": "Your room is ready", "session": "default"}
EVENT_ID = re.compile(r"^evt_[0-9a-hjkmnp-tv-z]{26}$")


@pytest.fixture
def http() -> urllib3.PoolManager:
    return urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=1.0, read=2.0))


@pytest.fixture
def sim() -> Iterator[WahaSimulator]:
    with WahaSimulator(slow_seconds=0.3) as simulator:
        yield simulator


def send_text(
    http: urllib3.PoolManager,
    sim: WahaSimulator,
    body: Any,
    *,
    headers: dict[str, str] | None = None,
    timeout: urllib3.Timeout | None = None,
) -> urllib3.BaseHTTPResponse:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return http.request(
        "POST",
        f"{sim.url}/api/sendText",
        body=raw,
        headers={"Content-Type": "application/json", **(headers or {})},
        timeout=timeout or urllib3.Timeout(connect=1.0, read=2.0),
    )


@dataclass
class ReceivedWebhook:
    headers: dict[str, str]
    raw: bytes

    @property
    def envelope(self) -> dict[str, Any]:
        return json.loads(self.raw)


class Receiver:
    """A webhook endpoint: records each POST, answers the scripted statuses in turn, then 200."""

    def __init__(self, statuses: list[int] | None = None, hmac_key: str | None = None) -> None:
        self.statuses = list(statuses or [])
        self.hmac_key = hmac_key
        self.received: list[ReceivedWebhook] = []
        self.hmac_failures = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append(ReceivedWebhook(dict(self.headers.items()), raw))
                status = receiver.answer(self.headers.get("X-Webhook-Hmac"), self.headers, raw)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, template: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def answer(self, signature: str | None, headers: Any, raw: bytes) -> int:
        if self.hmac_key is not None:
            # The check WAHA's docs describe: HMAC-SHA512 of the raw body with the shared key, hex-encoded.
            expected = hmac.new(self.hmac_key.encode(), raw, hashlib.sha512).hexdigest()
            if headers.get("X-Webhook-Hmac-Algorithm") != "sha512" or not hmac.compare_digest(
                signature or "", expected
            ):
                self.hmac_failures += 1
                return 401
        return self.statuses.pop(0) if self.statuses else 200

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/waha"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_json_schema(node: Any) -> Any:
    # The excerpt is written in OpenAPI's dialect: per-property `required: true` and `nullable: true`
    # mean "present" and "may be null"; JSON Schema reads neither, so spell them the JSON Schema way.
    if isinstance(node, list):
        return [_as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _as_json_schema(value) for key, value in node.items()}
    if converted.get("required") is True:
        del converted["required"]
    if converted.pop("nullable", False) is True and isinstance(converted.get("type"), str):
        converted["type"] = [converted["type"], "null"]
    return converted


def openapi_validator(schema_name: str) -> Draft202012Validator:
    components = _as_json_schema(json.loads((SHARED_WAHA / "openapi-excerpt.json").read_text())["components"])
    schemas = components["schemas"]
    # WAHA's generator writes the `event` enum as `type: object`, which no event name could satisfy.
    for webhook in ("WAHAWebhookMessage", "WAHAWebhookMessageAny", "WAHAWebhookMessageAck"):
        schemas[webhook]["properties"]["event"]["type"] = "string"
    # A 1:1 chat's ack has no participant: WAHA's docs example (webhook-message.ack.docs-example.json) sends null.
    schemas["WAMessageAckBody"]["properties"]["participant"]["type"] = ["string", "null"]
    # Every DTO field lands in `required`, but WAHA's engines leave these out of 1:1 text messages
    # (JSON.stringify drops undefined), and the docs' own message example has neither.
    schemas["WAMessage"]["required"] = [
        name for name in schemas["WAMessage"]["required"] if name not in {"participant", "mediaUrl"}
    ]
    return Draft202012Validator({"$ref": f"#/components/schemas/{schema_name}", "components": components})


# --- HMAC -------------------------------------------------------------------------------------------


def test_webhook_hmac_reproduces_the_waha_docs_test_vector() -> None:
    """webhook_hmac gives exactly the X-Webhook-Hmac that WAHA's docs list for their sample body and key."""
    # GIVEN the test vector from WAHA's docs
    vector = load_spec(HMAC_TEST_VECTOR_FILE)
    # WHEN the simulator signs the same raw body with the same key
    signature = webhook_hmac(vector["key"], vector["rawBody"].encode("utf-8"))
    # THEN it is the documented value, with the documented algorithm
    assert signature == vector["headers"]["X-Webhook-Hmac"]
    assert vector["headers"]["X-Webhook-Hmac-Algorithm"] == "sha512"


# --- sendText -----------------------------------------------------------------------------------------


def test_valid_send_text_answers_201_with_a_waha_message_and_records_it(
    sim: WahaSimulator, http: urllib3.PoolManager
) -> None:
    """A schema-valid sendText gets 201 and a WAMessage for the chat, and shows up in sent_messages()."""
    # GIVEN a running simulator
    # WHEN a valid sendText arrives
    response = send_text(http, sim, VALID)
    # THEN WAHA's message object comes back and the send is recorded with the full request
    assert response.status == 201
    message = response.json()
    assert re.fullmatch(r"true_6281234567890@c\.us_[0-9A-F]{20}", message["id"])
    assert message["to"] == VALID["chatId"] and message["from"] == sim.me_id
    assert message["fromMe"] is True and message["body"] == VALID["text"] and message["hasMedia"] is False
    assert (message["ack"], message["ackName"]) == (1, "SERVER")
    assert abs(message["timestamp"] - time.time()) < 5
    [sent] = sim.sent_messages()
    assert sent["id"] == message["id"]
    assert (sent["chatId"], sent["text"], sent["session"], sent["body"]) == (
        VALID["chatId"],
        VALID["text"],
        "default",
        VALID,
    )
    assert isinstance(sent["received_at"], float)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"text": "hi", "session": "default"}, "chatId"),
        ({"chatId": "6281234567890@c.us", "session": "default"}, "text"),
        ({"chatId": "6281234567890@c.us", "text": "hi"}, "session"),
        ({**VALID, "chatId": 6281234567890}, "chatId"),
        ({**VALID, "text": None}, "text"),
        ({**VALID, "session": ["default"]}, "session"),
        # The schema says `"default": null` for id, but its type is string: null is not a string.
        ({**VALID, "id": None}, "id"),
        ({**VALID, "linkPreview": "yes"}, "linkPreview"),
        ({**VALID, "chatId": "6281234567890"}, "chatId"),
        ([VALID], "object"),
        (b"{not json", "JSON"),
    ],
    ids=[
        "missing-chatId",
        "missing-text",
        "missing-session",
        "chatId-int",
        "text-null",
        "session-list",
        "id-null",
        "linkPreview-str",
        "chatId-without-at",
        "array-body",
        "not-json",
    ],
)
def test_invalid_send_text_answers_400_naming_the_problem_and_records_nothing(
    sim: WahaSimulator, http: urllib3.PoolManager, body: Any, named: str
) -> None:
    """A body that breaks the MessageTextRequest schema (or lacks '@' in chatId) gets a NestJS 400, nothing sent."""
    # GIVEN a running simulator
    # WHEN an invalid sendText arrives
    response = send_text(http, sim, body)
    # THEN it is refused the way WAHA's validation pipe refuses it, and nothing counts as sent
    assert response.status == 400
    error = response.json()
    assert error["statusCode"] == 400 and error["error"] == "Bad Request"
    assert any(named in line for line in error["message"]), error["message"]
    assert sim.sent_messages() == []


def test_api_key_is_required_when_configured() -> None:
    """With api_key set, sendText and sessions answer 401 without the right X-Api-Key and work with it."""
    # GIVEN a simulator guarded by an API key
    http = urllib3.PoolManager(retries=False)
    with WahaSimulator(api_key="secret-key") as sim:
        # WHEN requests come without, with a wrong, and with the right key
        missing = send_text(http, sim, VALID)
        wrong = send_text(http, sim, VALID, headers={"X-Api-Key": "nope"})
        session_wrong = http.request("GET", f"{sim.url}/api/sessions/default", headers={"X-Api-Key": "nope"})
        right = send_text(http, sim, VALID, headers={"X-Api-Key": "secret-key"})
        session_right = http.request("GET", f"{sim.url}/api/sessions/default", headers={"X-Api-Key": "secret-key"})
        sent = sim.sent_messages()
    # THEN only the right key gets through, and only that send is recorded
    assert (missing.status, wrong.status, session_wrong.status) == (401, 401, 401)
    assert missing.json()["statusCode"] == 401
    assert (right.status, session_right.status) == (201, 200)
    assert len(sent) == 1


def test_unknown_session_answers_422_and_records_nothing(sim: WahaSimulator, http: urllib3.PoolManager) -> None:
    """A sendText for a session other than the configured one gets 422 'Session ... does not exist'."""
    # GIVEN a simulator serving the "default" session
    # WHEN a sendText names another session
    response = send_text(http, sim, {**VALID, "session": "hotel-b"})
    # THEN it is refused as WAHA refuses it, and nothing is sent
    assert response.status == 422
    assert "does not exist" in response.json()["message"]
    assert sim.sent_messages() == []


def test_pre_generated_id_sent_twice_is_sent_twice_by_default(sim: WahaSimulator, http: urllib3.PoolManager) -> None:
    """WAHA does not promise to drop a repeated pre-generated id, so by default the simulator sends it again."""
    # GIVEN a sendText carrying a pre-generated id
    body = {**VALID, "id": "AAAAAAAAAAAAAAAAAAAA"}
    # WHEN it is sent twice (a retry after a lost answer)
    first, second = send_text(http, sim, body), send_text(http, sim, body)
    # THEN both are accepted under the same id, and WhatsApp got the message twice
    assert first.status == second.status == 201
    assert first.json()["id"] == second.json()["id"] == "true_6281234567890@c.us_AAAAAAAAAAAAAAAAAAAA"
    assert [sent["id"] for sent in sim.sent_messages()] == [first.json()["id"]] * 2
    assert sim.repeated_ids == "accept"


@pytest.mark.parametrize("switch", ["constructor", "method", "endpoint"])
def test_repeated_ids_can_be_dropped_as_whatsapp_keying_by_id_would(http: urllib3.PoolManager, switch: str) -> None:
    """In "drop" mode a repeated pre-generated id gets the first message back and is recorded once per chat."""
    # GIVEN a simulator dropping repeats, set by constructor, by method, or through /api/sim/repeated-ids
    with WahaSimulator(repeated_ids="drop" if switch == "constructor" else "accept") as sim:
        if switch == "method":
            sim.set_repeated_ids("drop")
        if switch == "endpoint":
            answer = http.request("POST", f"{sim.url}/api/sim/repeated-ids", json={"mode": "drop"})
            assert (answer.status, answer.json()) == (200, {"mode": "drop"})
        body = {**VALID, "id": "AAAAAAAAAAAAAAAAAAAA"}
        # WHEN it is sent twice, and once more to another chat
        first = send_text(http, sim, body)
        second = send_text(http, sim, body)
        other_chat = send_text(http, sim, {**body, "chatId": "6289876543210@c.us"})
        sent = sim.sent_messages()
    # THEN both answers are the same message, and only distinct messages are recorded
    assert first.status == second.status == other_chat.status == 201
    assert first.json() == second.json()
    assert [message["id"] for message in sent] == [
        "true_6281234567890@c.us_AAAAAAAAAAAAAAAAAAAA",
        "true_6289876543210@c.us_AAAAAAAAAAAAAAAAAAAA",
    ]


def test_bad_repeated_id_settings_are_refused(sim: WahaSimulator, http: urllib3.PoolManager) -> None:
    """Unknown repeated-id modes raise (constructor, method) or answer 400 (endpoint)."""
    with pytest.raises(ValueError, match="repeated_ids"):
        WahaSimulator(repeated_ids="sometimes")
    with pytest.raises(ValueError, match="unknown repeated-id mode"):
        sim.set_repeated_ids("sometimes")
    assert http.request("POST", f"{sim.url}/api/sim/repeated-ids", json={"mode": "sometimes"}).status == 400


def test_sends_without_id_are_never_merged(sim: WahaSimulator, http: urllib3.PoolManager) -> None:
    """Identical sendText bodies without an id are two messages with two ids (WAHA sends both)."""
    # GIVEN / WHEN the same body is sent twice without a pre-generated id
    first, second = send_text(http, sim, VALID), send_text(http, sim, VALID)
    # THEN both are recorded under different ids
    assert first.json()["id"] != second.json()["id"]
    assert len(sim.sent_messages()) == 2


def test_concurrent_sends_are_all_recorded(sim: WahaSimulator) -> None:
    """Many clients sending at once lose no record and get unique ids (the record list is thread-safe)."""
    # GIVEN a pool shared by 16 threads
    http = urllib3.PoolManager(retries=False, maxsize=16)
    # WHEN 80 sends arrive concurrently
    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(lambda n: send_text(http, sim, {**VALID, "text": f"n{n}"}).status, range(80)))
    # THEN every one is answered 201 and recorded once
    sent = sim.sent_messages()
    assert statuses == [201] * 80
    assert len(sent) == 80 and len({message["id"] for message in sent}) == 80
    assert sorted(message["text"] for message in sent) == sorted(f"n{n}" for n in range(80))


def test_sent_messages_returns_copies(sim: WahaSimulator, http: urllib3.PoolManager) -> None:
    """Changing what sent_messages() returned does not change what the simulator recorded."""
    # GIVEN one recorded send
    send_text(http, sim, VALID)
    # WHEN a caller edits the returned list and record
    returned = sim.sent_messages()
    returned[0]["body"]["text"] = "edited"
    returned.clear()
    # THEN the simulator's own record is unchanged
    assert sim.sent_messages()[0]["body"]["text"] == VALID["text"]


# --- faults -------------------------------------------------------------------------------------------


def test_fault_down_drops_the_connection_until_ok_again(sim: WahaSimulator, http: urllib3.PoolManager) -> None:
    """In "down" mode WAHA's API closes connections without an answer; "ok" brings it back."""
    # GIVEN a simulator set to "down"
    sim.set_fault("down")
    # WHEN a client sends, and sends again after the fault is lifted
    with pytest.raises(urllib3.exceptions.ProtocolError):
        send_text(http, sim, VALID)
    with pytest.raises(urllib3.exceptions.ProtocolError):
        http.request("GET", f"{sim.url}/api/sessions/default")
    sim.set_fault("ok")
    response = send_text(http, sim, VALID)
    # THEN the first got a connection error and nothing was sent; the second went through
    assert response.status == 201
    assert len(sim.sent_messages()) == 1


def test_fault_error500_answers_500_and_sends_nothing(sim: WahaSimulator, http: urllib3.PoolManager) -> None:
    """In "error500" mode valid sendText and session calls get a 500 JSON body and nothing is sent."""
    # GIVEN a simulator set to "error500"
    sim.set_fault("error500")
    # WHEN a valid sendText and a session lookup arrive
    response = send_text(http, sim, VALID)
    session = http.request("GET", f"{sim.url}/api/sessions/default")
    # THEN both fail with WAHA's 500 and no message is recorded
    assert response.status == session.status == 500
    assert response.json()["statusCode"] == 500
    assert sim.sent_messages() == []


def test_fault_slow_times_the_client_out_after_the_message_left(sim: WahaSimulator, http: urllib3.PoolManager) -> None:
    """In "slow" mode the answer outlasts a short read timeout, yet the message was sent (ambiguous send)."""
    # GIVEN a simulator set to "slow" (0.3 s in this fixture)
    sim.set_fault("slow")
    # WHEN a client with a 0.1 s read timeout sends
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        send_text(http, sim, VALID, timeout=urllib3.Timeout(connect=1.0, read=0.1))
    # THEN WhatsApp got the message all the same
    assert [sent["text"] for sent in sim.sent_messages()] == [VALID["text"]]


def test_fault_slow_answers_201_to_a_patient_client(sim: WahaSimulator, http: urllib3.PoolManager) -> None:
    """A client that waits longer than slow_seconds gets the usual 201."""
    # GIVEN a simulator set to "slow" (0.3 s)
    sim.set_fault("slow")
    # WHEN a client waits up to 2 s
    started = time.monotonic()
    response = send_text(http, sim, VALID)
    # THEN the answer is a normal 201 that came late
    assert response.status == 201
    assert time.monotonic() - started >= 0.3


def test_latency_delays_every_send_text_answer(http: urllib3.PoolManager) -> None:
    """latency_seconds is added to each sendText answer (throughput benchmarks)."""
    # GIVEN a simulator with 0.2 s latency
    with WahaSimulator(latency_seconds=0.2) as sim:
        # WHEN a valid sendText is timed
        started = time.monotonic()
        response = send_text(http, sim, VALID)
        elapsed = time.monotonic() - started
    # THEN the answer is 201, no sooner than the latency
    assert response.status == 201
    assert elapsed >= 0.2


def test_fail_ratio_fails_that_share_reproducibly(sim: WahaSimulator, http: urllib3.PoolManager) -> None:
    """fail_ratio makes sends fail with 500 at that rate, the same way for the same seed, and 0 turns it off."""
    # GIVEN failure ratios of 1, then 0.5 with a seed (twice), then 0
    sim.fail_ratio(1.0)
    always = [send_text(http, sim, VALID).status for _ in range(5)]
    recorded_while_failing = len(sim.sent_messages())
    runs = []
    for _ in range(2):
        sim.fail_ratio(0.5, seed=7)
        runs.append([send_text(http, sim, VALID).status for _ in range(20)])
    sim.fail_ratio(0)
    never = [send_text(http, sim, VALID).status for _ in range(5)]
    # THEN ratio 1 always fails and records nothing, a seed repeats its pattern, ratio 0 never fails
    assert always == [500] * 5 and recorded_while_failing == 0
    assert runs[0] == runs[1] and set(runs[0]) == {201, 500}
    assert never == [201] * 5


def test_bad_fault_settings_are_refused(sim: WahaSimulator) -> None:
    """set_fault and fail_ratio refuse values they do not know instead of silently ignoring them."""
    # GIVEN / WHEN / THEN unknown modes and out-of-range ratios raise ValueError
    with pytest.raises(ValueError, match="unknown fault mode"):
        sim.set_fault("flaky")
    with pytest.raises(ValueError, match="between 0 and 1"):
        sim.fail_ratio(1.5)


# --- sessions and other routes -------------------------------------------------------------------------


def test_session_info_for_the_configured_session_and_404_otherwise(
    sim: WahaSimulator, http: urllib3.PoolManager
) -> None:
    """GET /api/sessions/{session} answers WORKING with `me` for the configured session, 404 for others."""
    # GIVEN a simulator serving "default"
    # WHEN both sessions are asked for
    known = http.request("GET", f"{sim.url}/api/sessions/default")
    unknown = http.request("GET", f"{sim.url}/api/sessions/other")
    # THEN the known one is WORKING with the account's id, the other is not found
    assert known.status == 200
    info = known.json()
    assert (info["name"], info["status"], info["me"]["id"]) == ("default", "WORKING", sim.me_id)
    assert info["engine"]["engine"] == "WEBJS"
    assert unknown.status == 404


def test_unknown_routes_answer_404_json(sim: WahaSimulator, http: urllib3.PoolManager) -> None:
    """Paths and methods WAHA does not have here get NestJS's 404 JSON."""
    # GIVEN / WHEN unknown routes are called
    responses = [
        http.request("GET", f"{sim.url}/api/sendText"),
        http.request("POST", f"{sim.url}/api/sendVoice", body=b"{}"),
        http.request("GET", f"{sim.url}/api/sim/nothing"),
    ]
    # THEN each is a JSON 404
    assert [response.status for response in responses] == [404, 404, 404]
    assert responses[0].json()["message"] == "Cannot GET /api/sendText"


def test_sim_messages_fault_and_clear_endpoints(sim: WahaSimulator, http: urllib3.PoolManager) -> None:
    """/api/sim/* lists sends, switches faults (even while down) and clears, without an API key."""
    # GIVEN one recorded send
    send_text(http, sim, VALID)
    # WHEN the control endpoints are used
    listed = http.request("GET", f"{sim.url}/api/sim/messages").json()
    down = http.request("POST", f"{sim.url}/api/sim/fault", json={"mode": "down"})
    with pytest.raises(urllib3.exceptions.ProtocolError):
        send_text(http, sim, VALID)
    back = http.request("POST", f"{sim.url}/api/sim/fault", json={"mode": "ok"})
    bad = http.request("POST", f"{sim.url}/api/sim/fault", json={"mode": "sideways"})
    cleared = http.request("POST", f"{sim.url}/api/sim/clear")
    # THEN they report, switch and clear as asked
    assert [message["text"] for message in listed["messages"]] == [VALID["text"]]
    assert (down.status, down.json()) == (200, {"mode": "down"})
    assert (back.status, back.json()) == (200, {"mode": "ok"})
    assert bad.status == 400
    assert cleared.status == 200
    assert sim.sent_messages() == []


def test_context_manager_stops_serving_on_exit(http: urllib3.PoolManager) -> None:
    """Leaving the `with` block stops the server, so its port refuses connections."""
    # GIVEN a simulator used as a context manager
    with WahaSimulator() as sim:
        url = sim.url
        assert http.request("GET", f"{url}/api/sessions/default").status == 200
    # WHEN / THEN after the block, nothing answers there
    with pytest.raises(urllib3.exceptions.NewConnectionError):
        http.request("GET", f"{url}/api/sessions/default")


# --- a chat's messages ------------------------------------------------------------------------------


def chat_messages(http: urllib3.PoolManager, sim: WahaSimulator, query: str, chat: str = VALID["chatId"], **kw: Any):
    return http.request("GET", f"{sim.url}/api/default/chats/{chat.replace('@', '%40')}/messages?{query}", **kw)


def test_chat_messages_lists_what_was_sent_and_received_newest_first(http: urllib3.PoolManager) -> None:
    """GET /api/{session}/chats/{chatId}/messages lists the chat's WAMessages, newest first, limited."""
    # GIVEN a chat with a guest's message and two sends, and a send to another chat
    with Receiver() as receiver, WahaSimulator(webhook_url=receiver.url) as sim:
        sim.deliver_inbound("081234567890", "Hello")
        first = send_text(http, sim, {**VALID, "id": "A" * 20}).json()
        second = send_text(http, sim, {**VALID, "text": "Second", "id": "B" * 20}).json()
        send_text(http, sim, {**VALID, "chatId": "6289876543210@c.us"})
        # WHEN the chat is listed in several ways
        everything = chat_messages(http, sim, "limit=10&downloadMedia=false").json()
        ours = chat_messages(http, sim, "limit=10&filter.fromMe=true&sortOrder=asc").json()
        newest = chat_messages(http, sim, "limit=1").json()
        paged = chat_messages(http, sim, "limit=1&offset=1&filter.fromMe=true").json()
        future = chat_messages(http, sim, f"limit=10&filter.timestamp.gte={int(time.time()) + 60}").json()
    # THEN they are the chat's messages only, filtered, sorted and paged as asked
    assert len(everything) == 3 and [message["fromMe"] for message in everything].count(False) == 1
    assert [message["id"] for message in ours] == [first["id"], second["id"]]
    assert len(newest) == 1 and paged == [first] and future == []


def test_chat_messages_checks_its_query_key_and_session(sim: WahaSimulator, http: urllib3.PoolManager) -> None:
    """A missing limit, a bad boolean or enum, or an unknown parameter is a 400; another session is a 422."""
    # GIVEN / WHEN bad queries and an unknown session
    no_limit = chat_messages(http, sim, "downloadMedia=false")
    bad = chat_messages(http, sim, "limit=ten&filter.fromMe=yes&sortOrder=up&colour=blue")
    other_session = http.request("GET", f"{sim.url}/api/other/chats/{VALID['chatId']}/messages?limit=1")
    # THEN each is refused, naming the problems
    assert no_limit.status == 400 and no_limit.json()["message"] == ["limit must be a number"]
    assert bad.status == 400 and len(bad.json()["message"]) == 4
    assert other_session.status == 422


def test_chat_messages_needs_the_api_key_and_follows_faults(http: urllib3.PoolManager) -> None:
    """With an API key configured the list needs it; under "error500" it fails like sendText."""
    with WahaSimulator(api_key="secret") as sim:
        without_key = chat_messages(http, sim, "limit=1")
        with_key = chat_messages(http, sim, "limit=1", headers={"X-Api-Key": "secret"})
        sim.set_fault("error500")
        failing = chat_messages(http, sim, "limit=1", headers={"X-Api-Key": "secret"})
    assert (without_key.status, with_key.status, failing.status) == (401, 200, 500)
    assert with_key.json() == []


def test_logs_mask_phone_numbers(http: urllib3.PoolManager, caplog: pytest.LogCaptureFixture) -> None:
    """The simulator's own log holds no full phone number: sends, repeats, chat lists, request lines, webhooks."""
    # GIVEN the simulator logging everything
    caplog.set_level(logging.DEBUG, logger="devstack.waha_sim")
    with Receiver() as receiver, WahaSimulator(webhook_url=receiver.url, repeated_ids="drop") as sim:
        # WHEN it sends (twice with one id), lists the chat and posts a guest's message
        send_text(http, sim, {**VALID, "id": "A" * 20})
        send_text(http, sim, {**VALID, "id": "A" * 20})
        chat_messages(http, sim, "limit=5")
        sim.deliver_inbound("081234567890", "Hello")
    # THEN no log line holds the number, and the masked form shows
    lines = [record.getMessage() for record in caplog.records]
    assert lines and not [line for line in lines if "81234567890" in line]
    assert any("*******7890" in line for line in lines)


# --- inbound webhooks ----------------------------------------------------------------------------------


def test_deliver_inbound_posts_a_signed_waha_message_event() -> None:
    """deliver_inbound posts WAHA's `message` envelope for the guest's chat id, signed over the raw bytes."""
    # GIVEN a receiver that checks the HMAC as WAHA's docs describe
    with Receiver(hmac_key=HMAC_KEY) as receiver:
        sim = WahaSimulator(webhook_url=receiver.url, webhook_hmac_key=HMAC_KEY)
        # WHEN a guest writes from a local Indonesian number, with non-ASCII text
        result = sim.deliver_inbound("081234567890", "Halo 👋 kamar 12?")
    # THEN one signed delivery carried the documented envelope and the guest's message
    assert result["delivered"] is True and result["status"] == 200 and result["attempts"] == 1
    assert receiver.hmac_failures == 0
    [webhook] = receiver.received
    envelope = webhook.envelope
    assert list(envelope) == list(load_spec("webhook-envelope.docs-example.json"))
    assert EVENT_ID.fullmatch(envelope["id"]) and envelope["id"] == result["event_id"]
    assert (envelope["event"], envelope["session"], envelope["engine"]) == ("message", "default", "WEBJS")
    assert envelope["me"] == {"id": sim.me_id, "pushName": "Hotel"}
    payload = envelope["payload"]
    assert payload["id"] == result["payload_id"]
    assert re.fullmatch(r"false_6281234567890@c\.us_[0-9A-F]{32}", payload["id"])
    assert (payload["from"], payload["to"], payload["fromMe"]) == ("6281234567890@c.us", sim.me_id, False)
    assert payload["body"] == "Halo 👋 kamar 12?" and payload["hasMedia"] is False
    assert "Halo 👋".encode() in webhook.raw  # raw UTF-8, as JSON.stringify writes it
    assert webhook.headers["X-Webhook-Timestamp"] == str(envelope["timestamp"])
    assert webhook.headers["X-Webhook-Request-Id"]
    assert webhook.headers["Content-Type"] == "application/json"


def test_deliver_inbound_retries_until_2xx_with_the_same_event() -> None:
    """A receiver failing twice gets the same body, event id and request id three times; attempts == 3."""
    # GIVEN a receiver that answers 500 then 503 before accepting
    with Receiver(statuses=[500, 503], hmac_key=HMAC_KEY) as receiver:
        sim = WahaSimulator(webhook_url=receiver.url, webhook_hmac_key=HMAC_KEY, webhook_retry_delay=0.01)
        # WHEN a message is delivered with a known WhatsApp id
        result = sim.deliver_inbound("+6281234567890", "Hello", message_id="false_6281234567890@c.us_ABC")
    # THEN the third attempt lands, and every attempt was byte-for-byte the same event
    assert (result["delivered"], result["status"], result["attempts"]) == (True, 200, 3)
    assert result["payload_id"] == "false_6281234567890@c.us_ABC"
    assert len(receiver.received) == 3 and receiver.hmac_failures == 0
    assert len({webhook.raw for webhook in receiver.received}) == 1
    assert {webhook.envelope["id"] for webhook in receiver.received} == {result["event_id"]}
    assert len({webhook.headers["X-Webhook-Request-Id"] for webhook in receiver.received}) == 1


def test_deliver_inbound_gives_up_after_the_configured_attempts() -> None:
    """A receiver that never accepts sees exactly webhook_attempts POSTs, and the result says not delivered."""
    # GIVEN a receiver that always answers 500
    with Receiver(statuses=[500] * 10) as receiver:
        sim = WahaSimulator(webhook_url=receiver.url, webhook_attempts=3, webhook_retry_delay=0.01)
        # WHEN a message is delivered
        result = sim.deliver_inbound("081234567890", "Hello")
    # THEN three attempts were made and the last status is reported
    assert (result["delivered"], result["status"], result["attempts"]) == (False, 500, 3)
    assert len(receiver.received) == 3


def test_deliver_inbound_counts_connection_errors_as_failed_attempts() -> None:
    """When nothing listens at webhook_url every attempt fails with status 0, and retries still happen."""
    # GIVEN a webhook URL where nothing listens
    sim = WahaSimulator(
        webhook_url=f"http://127.0.0.1:{closed_port()}/webhooks/waha", webhook_attempts=2, webhook_retry_delay=0.01
    )
    # WHEN a message is delivered
    result = sim.deliver_inbound("081234567890", "Hello")
    # THEN both attempts failed without an HTTP status
    assert (result["delivered"], result["status"], result["attempts"]) == (False, 0, 2)


def test_deliver_inbound_without_hmac_key_sends_no_hmac_headers() -> None:
    """Without webhook_hmac_key the webhook carries no X-Webhook-Hmac headers, as with WAHA."""
    # GIVEN a simulator without an HMAC key
    with Receiver() as receiver:
        sim = WahaSimulator(webhook_url=receiver.url)
        # WHEN a message is delivered
        sim.deliver_inbound("081234567890", "Hello")
    # THEN no signature headers were sent
    [webhook] = receiver.received
    assert "X-Webhook-Hmac" not in webhook.headers and "X-Webhook-Hmac-Algorithm" not in webhook.headers


def test_deliver_inbound_needs_a_webhook_url() -> None:
    """deliver_inbound without a webhook_url raises instead of pretending to deliver."""
    # GIVEN / WHEN / THEN
    with pytest.raises(WebhookNotConfiguredError):
        WahaSimulator().deliver_inbound("081234567890", "Hello")


def test_sim_inbound_endpoint_delivers_and_validates(http: urllib3.PoolManager) -> None:
    """POST /api/sim/inbound delivers like deliver_inbound, 400s a bad body or phone, 409s without a webhook."""
    # GIVEN a simulator with a webhook receiver, and one without
    with Receiver() as receiver, WahaSimulator(webhook_url=receiver.url) as sim, WahaSimulator() as bare:
        # WHEN the endpoint is called with good and bad bodies
        good = http.request("POST", f"{sim.url}/api/sim/inbound", json={"phone": "081234567890", "text": "Hi"})
        no_text = http.request("POST", f"{sim.url}/api/sim/inbound", json={"phone": "081234567890"})
        bad_phone = http.request("POST", f"{sim.url}/api/sim/inbound", json={"phone": "12", "text": "Hi"})
        no_webhook = http.request("POST", f"{bare.url}/api/sim/inbound", json={"phone": "081234567890", "text": "Hi"})
    # THEN only the good one was delivered
    assert good.status == 200 and good.json()["delivered"] is True
    assert [webhook.envelope["payload"]["body"] for webhook in receiver.received] == ["Hi"]
    assert (no_text.status, bad_phone.status, no_webhook.status) == (400, 400, 409)


# --- conformance with WAHA's OpenAPI (needs the shared reference folder) ------------------------------


@needs_shared_reference
def test_every_docs_send_text_example_is_accepted(sim: WahaSimulator, http: urllib3.PoolManager) -> None:
    """Each sendText request body from WAHA's docs (basic, linkPreview, reply, mention) gets 201."""
    # GIVEN the request examples from WAHA's docs
    examples = json.loads((SHARED_WAHA / "sendText-request.docs-examples.json").read_text())
    # WHEN each is sent
    statuses = {name: send_text(http, sim, body).status for name, body in examples.items()}
    # THEN all are accepted
    assert statuses == dict.fromkeys(examples, 201)


@needs_shared_reference
def test_answers_and_webhooks_validate_against_waha_openapi(sim: WahaSimulator, http: urllib3.PoolManager) -> None:
    """sendText's answer and a chat's list hold WAMessages; sessions are SessionInfo, webhooks WAHAWebhookMessage."""
    # GIVEN the simulator's documents
    message = send_text(http, sim, VALID).json()
    session = http.request("GET", f"{sim.url}/api/sessions/default").json()
    (listed,) = chat_messages(http, sim, "limit=10").json()
    with Receiver() as receiver:
        WahaSimulator(webhook_url=receiver.url).deliver_inbound("081234567890", "Hello")
    envelope = receiver.received[0].envelope
    # WHEN / THEN each validates against WAHA's own schema
    documents = (("WAMessage", message), ("WAMessage", listed), ("SessionInfo", session))
    for name, document in (*documents, ("WAHAWebhookMessage", envelope)):
        errors = [error.message for error in openapi_validator(name).iter_errors(document)]
        assert errors == [], f"{name}: {errors}"


# --- acks of what was sent ------------------------------------------------------------------------------


def received_acks(receiver: Receiver, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The receiver's first `count` deliveries (waiting for them to arrive), as envelopes."""
    deadline = time.monotonic() + timeout
    while len(receiver.received) < count:
        assert time.monotonic() < deadline, f"{len(receiver.received)} of {count} webhooks arrived"
        time.sleep(0.01)
    return [webhook.envelope for webhook in receiver.received]


def test_accepted_send_is_acknowledged_device_then_read_with_the_id_sendtext_answered(
    http: urllib3.PoolManager,
) -> None:
    """A send is followed by two signed `message.ack` webhooks, DEVICE then READ, carrying the answered id."""
    # GIVEN a simulator acknowledging sends at once, posting to a receiver that checks WAHA's HMAC
    with (
        Receiver(hmac_key=HMAC_KEY) as receiver,
        WahaSimulator(
            webhook_url=receiver.url, webhook_hmac_key=HMAC_KEY, ack_delivered_seconds=0, ack_read_seconds=0
        ) as sim,
    ):
        # WHEN a message is sent with a pre-generated id
        answer = send_text(http, sim, {**VALID, "id": "C" * 20}).json()
        device, read = received_acks(receiver, 2)
    # THEN both acks name the sent message as sendText did, in WAHA's envelope, in order, signed
    assert receiver.hmac_failures == 0 and len(receiver.received) == 2
    assert list(device) == list(load_spec("webhook-envelope.docs-example.json"))
    for envelope, (ack, name) in ((device, (2, "DEVICE")), (read, (3, "READ"))):
        assert (envelope["event"], envelope["session"], envelope["engine"]) == ("message.ack", "default", "WEBJS")
        assert EVENT_ID.fullmatch(envelope["id"])
        payload = envelope["payload"]
        assert payload["id"] == answer["id"] == "true_6281234567890@c.us_" + "C" * 20
        assert (payload["ack"], payload["ackName"], payload["fromMe"]) == (ack, name, True)
        assert payload["from"] == VALID["chatId"] and payload["participant"] is None
        assert abs(envelope["timestamp"] - time.time() * 1000) < 5000
    assert device["timestamp"] <= read["timestamp"] and device["id"] != read["id"]
    assert [webhook.headers["X-Webhook-Timestamp"] for webhook in receiver.received] == [
        str(device["timestamp"]),
        str(read["timestamp"]),
    ]


def test_acks_are_off_unless_asked_for_and_a_kind_switched_off_is_not_sent(http: urllib3.PoolManager) -> None:
    """No acks by default; set_acks turns them on, and an ack already scheduled is dropped when its kind goes off."""
    # GIVEN a simulator with a receiver and the default settings
    with Receiver() as receiver, WahaSimulator(webhook_url=receiver.url) as sim:
        assert sim.acks == {"delivered_seconds": None, "read_seconds": None}
        # WHEN a message goes out with acks off, one with a DEVICE ack due later, then DEVICE is switched off
        # and READ on, and two more go out (their READ acks due after the dropped DEVICE was)
        unacknowledged = send_text(http, sim, {**VALID, "text": "off"}).json()
        sim.set_acks(0.2, None)
        dropped = send_text(http, sim, {**VALID, "text": "device dropped"}).json()
        sim.set_acks(None, 0)
        first_read = send_text(http, sim, {**VALID, "text": "read at once"}).json()
        sim.set_acks(None, 0.4)
        last_read = send_text(http, sim, {**VALID, "text": "read later"}).json()
        acks = received_acks(receiver, 2)
        # One thread posts acks in the order they fall due: the dropped DEVICE was due before the last READ.
    # THEN only the two READ acks arrived
    assert [(ack["payload"]["id"], ack["payload"]["ackName"]) for ack in acks] == [
        (first_read["id"], "READ"),
        (last_read["id"], "READ"),
    ]
    assert len(receiver.received) == 2
    assert unacknowledged["id"] not in {ack["payload"]["id"] for ack in acks} and dropped["id"] != first_read["id"]


def test_sim_acks_endpoint_reads_changes_and_validates_the_delays(http: urllib3.PoolManager) -> None:
    """GET/POST /api/sim/acks: a field left out keeps its value, null switches that ack off, bad values are 400."""
    # GIVEN a simulator created with both acks on
    with WahaSimulator(ack_delivered_seconds=1, ack_read_seconds=2.5) as sim:
        url = f"{sim.url}/api/sim/acks"
        # WHEN the settings are read, changed in part, switched off, and sent wrong
        initial = http.request("GET", url).json()
        faster = http.request("POST", url, json={"delivered_seconds": 0.5})
        off = http.request("POST", url, json={"delivered_seconds": None, "read_seconds": None})
        bad = [
            http.request("POST", url, json=body)
            for body in ({"read_seconds": -1}, {"read_seconds": "soon"}, {"read_seconds": True}, {"colour": 1}, [1])
        ]
        after = sim.acks
    # THEN each answer shows the settings in force, and the bad ones changed nothing
    assert initial == {"delivered_seconds": 1, "read_seconds": 2.5}
    assert (faster.status, faster.json()) == (200, {"delivered_seconds": 0.5, "read_seconds": 2.5})
    assert (off.status, off.json()) == (200, {"delivered_seconds": None, "read_seconds": None})
    assert [response.status for response in bad] == [400] * 5
    assert after == {"delivered_seconds": None, "read_seconds": None}
    with pytest.raises(ValueError, match="ack delay"):
        WahaSimulator(ack_read_seconds=-0.5)
    with pytest.raises(ValueError, match="ack delay"):
        sim.set_acks(float("nan"), None)


def test_own_ids_answers_and_acknowledges_an_id_other_than_the_pre_generated_one(http: urllib3.PoolManager) -> None:
    """With own_ids WAHA names the message itself: the answer, the chat's list and the ack carry that id."""
    # GIVEN a simulator that gives sends ids of its own, acknowledging READ at once
    with Receiver() as receiver, WahaSimulator(webhook_url=receiver.url, own_ids=True, ack_read_seconds=0) as sim:
        # WHEN a message asks for a pre-generated id
        answer = send_text(http, sim, {**VALID, "id": "D" * 20}).json()
        (ack,) = received_acks(receiver, 1)
        (listed,) = chat_messages(http, sim, "limit=5").json()
    # THEN WAHA's id is another one, and everything WAHA says afterwards uses it
    assert re.fullmatch(r"true_6281234567890@c\.us_[0-9A-F]{20}", answer["id"]) and "D" * 20 not in answer["id"]
    assert ack["payload"]["id"] == listed["id"] == sim.sent_messages()[0]["id"] == answer["id"]


# --- the hotel writing from its own phone ----------------------------------------------------------------


def test_hotel_message_posts_a_signed_message_any_from_me_as_webjs_shapes_it(http: urllib3.PoolManager) -> None:
    """POST /api/sim/hotel-message posts WAHA's `message.any` with fromMe for the guest's chat, signed; the chat
    lists it; a bad body is 400, and a simulator without a webhook answers 409."""
    # GIVEN a simulator posting to a receiver that checks the HMAC, and one with no webhook
    with (
        Receiver(hmac_key=HMAC_KEY) as receiver,
        WahaSimulator(webhook_url=receiver.url, webhook_hmac_key=HMAC_KEY) as sim,
        WahaSimulator() as bare,
    ):
        # WHEN the hotel writes to a guest from its phone, and the endpoint is called wrongly
        good = http.request(
            "POST", f"{sim.url}/api/sim/hotel-message", json={"phone": "081234567890", "text": "Your taxi is here"}
        )
        no_text = http.request("POST", f"{sim.url}/api/sim/hotel-message", json={"phone": "081234567890"})
        bad_phone = http.request("POST", f"{sim.url}/api/sim/hotel-message", json={"phone": "12", "text": "Hi"})
        no_webhook = http.request(
            "POST", f"{bare.url}/api/sim/hotel-message", json={"phone": "0812345678", "text": "x"}
        )
        (listed,) = chat_messages(http, sim, "limit=5").json()
    # THEN one signed delivery, the WEBJS way: the id names the chat, `from` is the hotel and `to` the guest
    assert good.status == 200 and good.json()["delivered"] is True
    assert (no_text.status, bad_phone.status, no_webhook.status) == (400, 400, 409)
    assert receiver.hmac_failures == 0
    (webhook,) = receiver.received
    envelope = webhook.envelope
    payload = envelope["payload"]
    assert (envelope["event"], envelope["session"]) == ("message.any", "default")
    assert (
        re.fullmatch(r"true_6281234567890@c\.us_[0-9A-F]{32}", payload["id"])
        and payload["id"] == good.json()["payload_id"]
    )
    assert (payload["fromMe"], payload["from"], payload["to"]) == (True, sim.me_id, "6281234567890@c.us")
    assert payload["body"] == "Your taxi is here"
    assert listed["id"] == payload["id"] and listed["fromMe"] is True


@needs_shared_reference
def test_acks_and_hotel_messages_validate_against_waha_openapi(http: urllib3.PoolManager) -> None:
    """The simulator's `message.ack` is a WAHAWebhookMessageAck and its hotel message a WAHAWebhookMessageAny."""
    # GIVEN a simulator acknowledging at once
    with Receiver() as receiver, WahaSimulator(webhook_url=receiver.url, ack_delivered_seconds=0) as sim:
        send_text(http, sim, VALID)
        (ack,) = received_acks(receiver, 1)
        sim.deliver_hotel_message("081234567890", "Your taxi is here")
        hotel = receiver.received[1].envelope
    # WHEN / THEN each validates against WAHA's own schema
    for name, document in (("WAHAWebhookMessageAck", ack), ("WAHAWebhookMessageAny", hotel)):
        errors = [error.message for error in openapi_validator(name).iter_errors(document)]
        assert errors == [], f"{name}: {errors}"
