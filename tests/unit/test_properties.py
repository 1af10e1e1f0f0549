"""Properties over arbitrary input: whatever a caller sends, the handlers answer (never 5xx, never raise), a refused
registration leaves no trace, and the request models either validate or raise pydantic.ValidationError.

The function-scoped `concierge` fixture is set up once per test and shared by all of its examples, which is what
these properties need (one table that keeps growing), hence the suppressed health check.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from concierge import config
from concierge.guests.registration import RegistrationRequest
from concierge.webhook import signature
from concierge.webhook.webhook_events import GuestMessage, HotelMessage, Ignored, MessagePayload, WahaEvent, classify
from tests.driver import GUEST, GUEST_CHAT_ID, Concierge, waha_message
from tests.lambda_events import api_event

HMAC_KEY = "property-hmac-key"
FIELDS = ("full_name", "room_number", "checkin_date", "email", "phone_number")

PROPERTY_SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
# The models are cheap to call; more examples for the same time.
MODEL_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --- strategies ---------------------------------------------------------------------------------

# Text as JSON can carry it: any code point, lone surrogates included (JSON's "\ud800" escapes decode to them).
any_text = st.text(st.characters(codec=None, categories=None), max_size=40) | st.text(max_size=40)
ascii_text = st.text(st.characters(max_codepoint=127), max_size=40)
huge_text = st.builds(lambda piece, count: piece * count, st.sampled_from(["x", "é", "🏨", " "]), st.integers(0, 70000))
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | any_text
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4),
    max_leaves=12,
)


def mostly(usual: Any, other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The usual value three times in four, so that examples reach the storing path; else the other strategy's."""
    return st.integers(0, 3).flatmap(lambda draw: st.just(usual) if draw else other)


other_senders = st.one_of(
    st.sampled_from(
        [
            "6281234567890@s.whatsapp.net",
            "6289999999999@c.us",
            "123456789012345@lid",
            "120363025246125486@g.us",
            "status@broadcast",
            "120363025246125486@newsletter",
            "@c.us",
            "+6281234567890@c.us",
            "٦٢٨١٢٣٤٥٦٧٨٩٠@c.us",
            "²@c.us",
        ]
    ),
    any_text.map(lambda text: text + "@c.us"),
    any_text.map(lambda text: text + "@lid"),
    any_text,
)
# The registered guest, or every other kind of sender.
chat_ids = mostly(GUEST_CHAT_ID, other_senders)
message_texts = st.one_of(st.text(max_size=200), any_text, huge_text)
PAYLOAD_FIELDS = ("id", "from", "fromMe", "body", "hasMedia", "participant", "_data", "timestamp")
ENVELOPE_FIELDS = ("id", "event", "session", "payload", "timestamp", "me")


@st.composite
def payloads(draw: st.DrawFn) -> dict[str, Any]:
    """A guest's message payload; up to three of its fields removed or replaced by JSON of any type."""
    payload: dict[str, Any] = {
        "id": f"false_{GUEST_CHAT_ID}_{draw(st.uuids()).hex.upper()}",
        "timestamp": 1700000000,
        "from": draw(chat_ids),
        "fromMe": draw(mostly(False, st.just(True))),
        "body": draw(message_texts),
        "hasMedia": draw(mostly(False, st.just(True))),
    }
    if draw(st.booleans()):
        payload["participant"] = draw(st.none() | chat_ids)
    if draw(st.booleans()):
        payload["_data"] = {
            "key": {draw(st.sampled_from(["senderPn", "remoteJidAlt", "participantPn"])): draw(chat_ids)}
        }
    for name in draw(st.sets(st.sampled_from(PAYLOAD_FIELDS), max_size=3)):
        if draw(st.booleans()):
            payload.pop(name, None)
        else:
            payload[name] = draw(json_values)
    payload.update(draw(st.dictionaries(any_text, json_values, max_size=2)))
    return payload


@st.composite
def envelopes(draw: st.DrawFn) -> dict[str, Any]:
    """WAHA's envelope around such a payload; up to two of its own fields removed or of any type."""
    envelope = waha_message()
    envelope["event"] = draw(mostly("message", st.sampled_from(["message.any", "session.status", "message.ack", ""])))
    envelope["payload"] = draw(payloads())
    for name in draw(st.sets(st.sampled_from(ENVELOPE_FIELDS), max_size=2)):
        if draw(st.booleans()):
            envelope.pop(name, None)
        else:
            envelope[name] = draw(json_values)
    return envelope


# Raw bodies: mostly envelopes (escaped, or unescaped as WAHA writes them), else JSON of any shape, bytes that may
# not be JSON at all, or nesting below the parser's recursion limit (deeper is a known bug: see the end of the file).
webhook_bodies = mostly(
    None,
    st.one_of(
        json_values.map(json.dumps),
        st.binary(max_size=200),
        st.integers(1, 500).map(lambda depth: "[" * depth + "]" * depth),
    ),
).flatmap(
    lambda other: (
        st.just(other)
        if other is not None
        else st.one_of(
            envelopes().map(json.dumps),
            # A lone surrogate can only arrive unescaped as the (invalid UTF-8) bytes that encode it.
            envelopes().map(lambda envelope: json.dumps(envelope, ensure_ascii=False).encode("utf-8", "surrogatepass")),
        )
    )
)

PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "full_name": st.sampled_from(["Ñoño Ümlaut", " ", "", "x" * 200, "x" * 201]) | st.text(max_size=50),
    "room_number": st.sampled_from(["202", "A-12", "101 B", "", "#1", "1" * 20, "1" * 21]) | st.text(max_size=5),
    "checkin_date": st.sampled_from(["2025-12-01", "2025-02-30", "2025/11/22", "20251122", "2025-11-2", "1700000000"])
    | st.dates().map(str),
    "email": st.sampled_from(["guest@example.com", "not-an-email", "a@b", "ü@例え.jp", "x" * 250 + "@e.com"])
    | st.emails(),
    "phone_number": st.sampled_from(
        ["081234567890", "+6281234567890", "0812-3456-7890", "+447911123456", "0812", "+1", "٠٨١٢٣٤٥٦٧٨٩٠", "1" * 33]
    ),
}


@st.composite
def registration_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """The guide's body with up to five fields changed to a plausible value, any JSON value, or removed; extra keys."""
    body: dict[str, Any] = dict(GUEST)
    for name in draw(st.sets(st.sampled_from(FIELDS), max_size=len(FIELDS))):
        change = draw(st.sampled_from(["plausible", "plausible", "arbitrary", "absent"]))
        if change == "plausible":
            body[name] = draw(PLAUSIBLE[name])
        elif change == "arbitrary":
            body[name] = draw(json_values | huge_text)
        else:
            del body[name]
    if draw(st.integers(0, 4)) == 0:
        body.update(draw(st.dictionaries(any_text.filter(lambda key: key not in FIELDS), json_values, max_size=2)))
    return body


# --- the webhook --------------------------------------------------------------------------------


@pytest.fixture
def guest(concierge: Concierge) -> dict[str, Any]:
    """The guide's guest, so that some deliveries reach the storing path."""
    status, body = concierge.register()
    assert status == 201
    return body


def _answer_is_not_a_server_error(concierge: Concierge, raw: str | bytes, headers: dict[str, str] | None) -> int:
    status, answer = concierge.webhook(raw_body=raw, headers=headers)
    # Shown by --hypothesis-show-statistics: how many examples got past validation into the storing path.
    event(f"{status} {answer.get('outcome', '') if isinstance(answer, dict) else ''}".strip())
    assert 200 <= status < 500, status
    return status


@PROPERTY_SETTINGS
@given(raw=webhook_bodies)
@example(raw=json.dumps(waha_message(text="\ud800 lone surrogate")))
@example(raw=json.dumps(waha_message(chat_id="\ud800@lid")))
def test_webhook_never_answers_5xx(concierge: Concierge, guest: dict[str, Any], raw: str | bytes) -> None:
    """Any body at all, as WAHA or anyone else might post it: 2xx or 4xx, never an exception or a 5xx."""
    _answer_is_not_a_server_error(concierge, raw, None)


@PROPERTY_SETTINGS
@given(
    text=message_texts,
    waha_id=mostly(None, any_text | st.text(min_size=500, max_size=520)),
    event_name=st.sampled_from(["message", "message.any"]),
    has_media=st.booleans(),
)
@example(text="x" * 65536, waha_id=None, event_name="message", has_media=False)
@example(text="🏨" * 65536, waha_id=None, event_name="message", has_media=False)
def test_any_guest_text_is_stored_or_refused(
    concierge: Concierge, guest: dict[str, Any], text: str, waha_id: str | None, event_name: str, has_media: bool
) -> None:
    """The storing path itself: whatever the guest's text and WAHA's message id, stored (or a 400 naming the field)."""
    delivery = waha_message(text=text, hasMedia=has_media)
    delivery["event"] = event_name
    if waha_id is not None:
        delivery["payload"]["id"] = waha_id

    status = _answer_is_not_a_server_error(concierge, json.dumps(delivery), None)

    assert status in (200, 400)


@PROPERTY_SETTINGS
@given(
    raw=webhook_bodies,
    signed=st.booleans(),
    forged=ascii_text | st.text("0123456789abcdef", min_size=128, max_size=128),
)
def test_signed_webhook_never_answers_5xx(
    concierge: Concierge,
    guest: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    raw: str | bytes,
    signed: bool,
    forged: str,
) -> None:
    """With an HMAC key configured: a forged X-Webhook-Hmac is 401 whatever the body; a signed body is processed
    (2xx or 4xx), never 5xx."""
    monkeypatch.setenv("WAHA_WEBHOOK_HMAC_KEY", HMAC_KEY)
    body = raw if isinstance(raw, bytes) else raw.encode()
    valid = signature.sign(body, HMAC_KEY)
    hmac_header = valid if signed else forged

    status = _answer_is_not_a_server_error(concierge, raw, {"X-Webhook-Hmac": hmac_header})

    assert (status == 401) == (hmac_header.strip().lower() != valid)


# --- registration -------------------------------------------------------------------------------


class Footprint:
    """What the table and the queue hold; read again only after a change, as a scan of moto is slow (~1 ms/item)."""

    def __init__(self, concierge: Concierge) -> None:
        self._concierge = concierge
        self._known: tuple[list[dict[str, Any]], int] | None = None

    def now(self) -> tuple[list[dict[str, Any]], int]:
        if self._known is None:
            self._known = (self._concierge.items(), self._concierge.queue_depth())
        return self._known

    def forget(self) -> None:
        self._known = None


@pytest.fixture
def footprint(concierge: Concierge) -> Footprint:
    return Footprint(concierge)


@PROPERTY_SETTINGS
# A few keys reused across examples, so that some come back with another body (409).
@given(
    body=registration_bodies(), idempotency_key=st.none() | st.sampled_from(["key-1", "key-2"]) | st.text(max_size=40)
)
@example(body=GUEST, idempotency_key=None)
@example(body={**GUEST, "full_name": "\ud800"}, idempotency_key=None)
@example(body={**GUEST, "room_number": "301"}, idempotency_key="key-1")
@example(body={**GUEST, "room_number": "302"}, idempotency_key="key-1")
def test_register_answers_201_409_or_4xx_and_a_refusal_leaves_no_trace(
    concierge: Concierge, footprint: Footprint, body: dict[str, Any], idempotency_key: str | None
) -> None:
    """Any body: 201, 409 (a reused Idempotency-Key) or another 4xx; a 4xx writes nothing and queues nothing."""
    before = footprint.now()
    headers = None if idempotency_key is None else {"Idempotency-Key": idempotency_key}

    status, answer = concierge.register(body, headers=headers)
    event(str(status))

    assert status in (201, 409) or 400 <= status < 500, (status, answer)
    footprint.forget()
    if status != 201:
        assert footprint.now() == before


@PROPERTY_SETTINGS
@given(raw=st.one_of(json_values.map(json.dumps), st.binary(max_size=200)))
def test_register_refuses_what_is_not_a_json_object_without_a_trace(concierge: Concierge, raw: str | bytes) -> None:
    """Bodies that are not a JSON object at all: a 4xx (or 201 for the rare valid object), never a 5xx."""
    items_before = len(concierge.items())
    status, _ = concierge.register_event(api_event("register_guest", raw_body=raw))

    assert status == 201 or 400 <= status < 500
    if status != 201:
        assert len(concierge.items()) == items_before


# --- the models ---------------------------------------------------------------------------------


@pytest.fixture
def phone_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The phone validator reads the default region from the function's settings, which need TABLE_NAME.
    monkeypatch.setenv("TABLE_NAME", "properties-unused")
    config.settings.cache_clear()
    yield
    config.settings.cache_clear()


@MODEL_SETTINGS
@given(data=registration_bodies() | json_values)
def test_registration_request_validates_or_raises_validation_error(phone_settings: None, data: Any) -> None:
    try:
        request = RegistrationRequest.model_validate(data)
    except ValidationError:
        return
    # A present but invalid number still registers (the guide's rule): only a valid one is E.164.
    e164 = request.whatsapp_number()
    assert e164 is None or e164.startswith("+")
    assert len(request.fingerprint()) == 64


@MODEL_SETTINGS
@given(data=envelopes() | json_values)
def test_webhook_event_parses_and_classifies_or_raises_validation_error(data: Any) -> None:
    try:
        outcome = classify(WahaEvent.model_validate(data))
    except ValidationError:
        return
    assert isinstance(outcome, GuestMessage | HotelMessage | Ignored)


@MODEL_SETTINGS
@given(data=payloads() | json_values)
def test_message_payload_validates_or_raises_validation_error(data: Any) -> None:
    try:
        MessagePayload.model_validate(data)
    except ValidationError:
        return


# --- inputs the properties above found answering 5xx, kept as examples ---


def test_non_ascii_signature_is_401(
    concierge: Concierge, guest: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signature header holding non-ASCII text is refused (401), not a crash."""
    monkeypatch.setenv("WAHA_WEBHOOK_HMAC_KEY", HMAC_KEY)

    status, _ = concierge.webhook(waha_message(), headers={"X-Webhook-Hmac": "é"})

    assert status == 401


def test_deeply_nested_webhook_body_is_400(concierge: Concierge) -> None:
    """JSON nested deeper than the parser recurses is a 400, not a crash."""
    status, _ = concierge.webhook(raw_body="[" * 100_000 + "]" * 100_000)

    assert status == 400


def test_deeply_nested_registration_body_is_400(concierge: Concierge) -> None:
    """The same for a registration body."""
    status, _ = concierge.register_event(api_event("register_guest", raw_body="[" * 100_000 + "]" * 100_000))

    assert status == 400


# --- the history API: its path, query string and cursor -----------------------------------------


def _as_cursor_bytes(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _as_cursor(value: Any) -> str:
    """A value encoded the way this API's cursors are (JSON, URL-safe base64, no padding)."""
    return _as_cursor_bytes(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"))


digit_texts = st.sampled_from(["1", "50", "100", "101", "0", "²", "٣", "¹⁰", "5.0", "-1", " 7", "1" * 5000]) | st.text(
    st.characters(categories=["Nd", "No"]), max_size=6
)
limits = digit_texts | any_text
URL_SAFE_BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_="


@st.composite
def cursors(draw: st.DrawFn, partition: str) -> str:
    """Cursors a client could forge: any text, base64 of any JSON, of nesting, or of our key shape with odd values."""
    sort_keys = st.one_of(
        st.just("MSG#"),
        any_text.map(lambda text: "MSG#" + text),
        any_text,
        json_values,
        st.integers(0, 3000).map(lambda size: "MSG#" + "x" * size),
    )
    return draw(
        st.one_of(
            any_text,
            st.text(URL_SAFE_BASE64, max_size=700),
            json_values.map(_as_cursor),
            st.integers(1, 3000).map(lambda depth: _as_cursor_bytes(b"[" * depth + b"]" * depth)),
            st.fixed_dictionaries({"pk": mostly(partition, any_text), "sk": sort_keys}).map(_as_cursor),
            st.fixed_dictionaries({"pk": st.just(partition), "sk": sort_keys}, optional={"x": json_values}).map(
                _as_cursor
            ),
        )
    )


@pytest.fixture
def conversation(concierge: Concierge, guest: dict[str, Any]) -> list[dict[str, Any]]:
    """The guest's conversation after three messages of theirs: welcome, then three messages and three replies."""
    for text in ("one", "two", "three"):
        status, _ = concierge.webhook(waha_message(text=text))
        assert status == 200
    return concierge.conversation(guest["user_id"])


@PROPERTY_SETTINGS
@given(
    data=st.data(),
    query=st.dictionaries(st.sampled_from(["limit", "cursor"]) | any_text, any_text, max_size=3),
    user_id=mostly(None, any_text | st.uuids().map(str)),
)
@example(data=None, query={"limit": "²"}, user_id=None)
@example(data=None, query={"cursor": _as_cursor_bytes(b"[" * 1000 + b"]" * 1000)}, user_id=None)
def test_history_answers_a_page_or_4xx_for_any_path_and_query_string(
    concierge: Concierge,
    guest: dict[str, Any],
    conversation: list[dict[str, Any]],
    data: st.DataObject | None,
    query: dict[str, str],
    user_id: str | None,
) -> None:
    """Whatever the user id and query string: 200 with a page of this guest's own messages, 404, or 400 naming
    `limit` or `cursor`; never a 5xx."""
    if data is not None and data.draw(st.booleans()):
        query["limit"] = data.draw(limits)
    partition = f"USER#{guest['user_id']}"
    if data is not None and data.draw(st.booleans()):
        query["cursor"] = data.draw(cursors(partition))
    target = guest["user_id"] if user_id is None else user_id

    status, body = concierge.history(target, **query)
    event(str(status))

    assert status in (200, 400, 404), (status, body)
    if status == 200:
        assert all(message in conversation for message in body["messages"])
    else:
        assert set(body) >= {"error", "message"}
    if status == 400:
        assert body["details"][0]["field"] in ("limit", "cursor")


@PROPERTY_SETTINGS
@given(data=st.data())
@example(data=None)
def test_any_forged_cursor_is_a_page_of_the_same_guest_or_400(
    concierge: Concierge, guest: dict[str, Any], conversation: list[dict[str, Any]], data: st.DataObject | None
) -> None:
    """A cursor is either one this guest's pages could have handed out (200, their messages only) or a 400."""
    partition = f"USER#{guest['user_id']}"
    cursor = _as_cursor([[[]]]) if data is None else data.draw(cursors(partition))

    status, body = concierge.history(guest["user_id"], cursor=cursor)
    event(str(status))

    assert status in (200, 400), (status, body)
    if status == 400:
        assert body["error"] == "bad_request" and body["details"] == [{"field": "cursor"}]
    else:
        assert all(message in conversation for message in body["messages"])


@PROPERTY_SETTINGS
@given(limit=st.integers(1, 9))
def test_the_cursors_handed_out_read_the_whole_conversation_once(
    concierge: Concierge, guest: dict[str, Any], conversation: list[dict[str, Any]], limit: int
) -> None:
    """Following next_cursor at any page size reads every message exactly once, oldest first."""
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        status, page = concierge.history(guest["user_id"], limit=str(limit), **({"cursor": cursor} if cursor else {}))
        assert status == 200 and len(page["messages"]) <= limit
        seen += page["messages"]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == conversation
