"""The webhook trusts only what it serves: its own WAHA sessions, recent events, and identifiers that fit in a key."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from concierge import config, keys
from concierge.webhook import signature
from concierge.webhook.webhook_events import MAX_IDENTIFIER_BYTES, MessagePayload, WahaEvent
from tests.conftest import forget_cached_clients
from tests.driver import Concierge, waha_message

HOUR_MS = 3_600_000
HMAC_KEY = "hardening-hmac-key"
# DynamoDB's limits on a key, in bytes of UTF-8.
MAX_PARTITION_KEY_BYTES = 2048


@pytest.fixture
def guest(concierge: Concierge) -> dict[str, Any]:
    status, body = concierge.register()
    assert status == 201
    concierge.deliver_queued()
    return body


def _stored_nothing(concierge: Concierge, before: int) -> bool:
    return len(concierge.items()) == before and concierge.queue_depth() == 0


def _serve(monkeypatch: pytest.MonkeyPatch, **variables: str) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    forget_cached_clients()


def _now_ms() -> int:
    return int(time.time() * 1000)


# --- sessions this stack does not serve ---------------------------------------------------------


def test_delivery_for_another_waha_session_is_ignored_with_a_reason(concierge: Concierge, guest: dict) -> None:
    """A guest's message arriving through a WAHA session this stack does not serve: 200 ignored, nothing stored,
    no reply from our account."""
    delivery = waha_message(text="Hello from another account")
    delivery["session"] = "other-hotel"
    before = len(concierge.items())

    status, body = concierge.webhook(delivery)

    assert (status, body["outcome"]) == (200, "ignored")
    assert "session" in body["reason"]
    assert _stored_nothing(concierge, before)
    assert len(concierge.conversation(guest["user_id"])) == 1  # the welcome only


def test_every_session_listed_in_waha_session_is_served(
    concierge: Concierge, guest: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WAHA_SESSION="default, lobby": both sessions' deliveries are stored; a third is still ignored."""
    _serve(monkeypatch, WAHA_SESSION="default, lobby")
    answers = []
    for session in ("lobby", "default", "spa"):
        delivery = waha_message()
        delivery["session"] = session
        answers.append(concierge.webhook(delivery)[1]["outcome"])

    assert answers == ["stored", "stored", "ignored"]


def test_a_list_of_sessions_sends_from_the_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first listed session is the account the stack sends from; blanks and repeats are dropped."""
    _serve(monkeypatch, TABLE_NAME="unused", WAHA_SESSION=" default , lobby,,default ")

    assert config.settings().waha_session == "default"
    assert config.settings().waha_sessions == ("default", "lobby")


# --- replays: the envelope's time ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("age_hours", "outcome"),
    [(25, "stale"), (24.5, "stale"), (23.5, "stored"), (0, "stored"), (-0.04, "stored"), (-1, "stale")],
)
def test_only_events_younger_than_the_window_are_stored(
    concierge: Concierge, guest: dict, age_hours: float, outcome: str
) -> None:
    """The envelope `timestamp` (ms) must lie within WEBHOOK_MAX_AGE_HOURS (24) of now, allowing a few minutes of
    clock skew ahead; outside it: 200 `stale` and nothing stored."""
    delivery = waha_message()
    delivery["timestamp"] = _now_ms() - int(age_hours * HOUR_MS)
    before = len(concierge.items())

    status, body = concierge.webhook(delivery)

    assert (status, body["outcome"]) == (200, outcome)
    if outcome == "stale":
        assert _stored_nothing(concierge, before)


def test_window_follows_webhook_max_age_hours(
    concierge: Concierge, guest: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WEBHOOK_MAX_AGE_HOURS=1: a two-hour-old event is stale, a half-hour-old one is stored."""
    _serve(monkeypatch, WEBHOOK_MAX_AGE_HOURS="1")
    old, recent = waha_message(), waha_message()
    old["timestamp"] = _now_ms() - 2 * HOUR_MS
    recent["timestamp"] = _now_ms() - HOUR_MS // 2

    assert concierge.webhook(old)[1]["outcome"] == "stale"
    assert concierge.webhook(recent)[1]["outcome"] == "stored"


def test_event_without_an_envelope_timestamp_is_accepted(concierge: Concierge, guest: dict) -> None:
    """Older WAHA versions send no envelope `timestamp`: accepted, and the dedupe marker still stops a repeat."""
    delivery = waha_message()
    del delivery["timestamp"]

    answers = [concierge.webhook(delivery)[1]["outcome"], concierge.webhook(delivery)[1]["outcome"]]

    assert answers == ["stored", "duplicate"]


def test_payload_timestamp_is_not_the_events_age(concierge: Concierge, guest: dict) -> None:
    """A message the guest wrote three days ago (payload.timestamp, seconds) delivered late but in a fresh event
    is stored: only the envelope's time counts."""
    delivery = waha_message(timestamp=int(time.time()) - 3 * 86400)

    assert concierge.webhook(delivery)[1]["outcome"] == "stored"


@pytest.mark.parametrize("timestamp", ["1741249702485", True, None, [1], {"ms": 1}])
def test_an_envelope_timestamp_that_is_not_a_number_is_400(
    concierge: Concierge, guest: dict, timestamp: object
) -> None:
    """A timestamp that is present but not a number (a string, a boolean...) is a 400 naming it; null is absent."""
    delivery = waha_message()
    delivery["timestamp"] = timestamp

    status, body = concierge.webhook(delivery)

    if timestamp is None:
        assert (status, body["outcome"]) == (200, "stored")
    else:
        assert status == 400 and any(detail["field"].startswith("timestamp") for detail in body["details"])


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_envelope_timestamp_is_400(concierge: Concierge, guest: dict, literal: str) -> None:
    """Python's JSON parser reads NaN and Infinity; as an event time they are refused, not compared."""
    raw = json.dumps(waha_message()).replace('"timestamp": ', f'"timestamp": {literal}, "was": ', 1)

    status, _ = concierge.webhook(raw_body=raw)

    assert status == 400


def test_a_signed_replay_is_stale_or_a_duplicate_never_stored_twice(
    concierge: Concierge, guest: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A captured, correctly signed body replayed: a duplicate while young, stale once older than the window."""
    _serve(monkeypatch, WAHA_WEBHOOK_HMAC_KEY=HMAC_KEY)
    fresh = waha_message()
    aged = {**fresh, "timestamp": fresh["timestamp"] - 25 * HOUR_MS}
    answers = []
    for delivery in (fresh, fresh, aged):
        raw = json.dumps(delivery).encode()
        status, body = concierge.webhook(raw_body=raw, headers={"X-Webhook-Hmac": signature.sign(raw, HMAC_KEY)})
        answers.append((status, body["outcome"]))

    assert answers == [(200, "stored"), (200, "duplicate"), (200, "stale")]
    assert [message["role"] for message in concierge.conversation(guest["user_id"])] == ["System", "User", "System"]


def test_dedupe_marker_outlives_a_long_window(
    concierge: Concierge, guest: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With WEBHOOK_MAX_AGE_HOURS=240 (ten days, longer than the default 7-day marker), the stored marker still
    lives past the last moment its event could be accepted again."""
    _serve(monkeypatch, WEBHOOK_MAX_AGE_HOURS="240")
    delivery = waha_message()

    assert concierge.webhook(delivery)[1]["outcome"] == "stored"

    (marker,) = concierge.items_of_type("WahaDelivery")
    last_acceptance_s = delivery["timestamp"] / 1000 + 240 * 3600 + config.WEBHOOK_CLOCK_SKEW_SECONDS
    assert int(marker["expires_at"]) > last_acceptance_s


@given(hours=st.integers(1, config.MAX_WEBHOOK_MAX_AGE_HOURS))
def test_derived_marker_lifetime_always_exceeds_the_window(hours: int) -> None:
    """For every allowed window, the dedupe marker's lifetime (days) is longer than the window plus clock skew."""
    days = config.webhook_event_ttl_days(hours)

    assert days * 86400 > hours * 3600 + config.WEBHOOK_CLOCK_SKEW_SECONDS
    assert days >= config.DEFAULT_WEBHOOK_EVENT_TTL_DAYS


def test_settings_refuse_a_marker_shorter_than_the_window() -> None:
    """A configuration in which a replay could outlive its dedupe marker is refused outright."""
    base = {
        "table_name": "t",
        "outbound_queue_url": "",
        "default_phone_region": "ID",
        "waha_host": "http://waha",
        "waha_api_path": "/api/sendText",
        "waha_session": "default",
        "outbound_max_receive_count": 5,
        "retry_base_seconds": 10,
    }

    with pytest.raises(config.InvalidSetting):
        config.Settings(**base, webhook_event_ttl_days=1, webhook_max_age_hours=24)
    assert config.Settings(**base, webhook_event_ttl_days=2, webhook_max_age_hours=24).webhook_event_ttl_days == 2


@pytest.mark.parametrize("value", ["0", "-3", "abc", "1.5", "²", "8761"])
def test_an_unusable_webhook_max_age_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """WEBHOOK_MAX_AGE_HOURS must be a whole number of hours from 1 to a year."""
    _serve(monkeypatch, TABLE_NAME="unused", WEBHOOK_MAX_AGE_HOURS=value)

    with pytest.raises(config.InvalidSetting):
        config.settings()


# --- identifiers measured in bytes --------------------------------------------------------------


@pytest.mark.parametrize(
    ("message_id", "status"),
    [
        ("🏨" * 512, 400),  # 2,048 bytes: DynamoDB refused the key (502 before)
        ("🏨" * 129, 400),  # 516 bytes
        ("🏨" * 128, 200),  # 512 bytes
        ("é" * 256, 200),  # 512 bytes
        ("x" * 513, 400),
        ("\ud800", 400),  # a lone surrogate has no UTF-8 form
    ],
)
def test_payload_id_is_limited_in_utf8_bytes(concierge: Concierge, guest: dict, message_id: str, status: int) -> None:
    """WAHA's message id goes into the dedupe key: at most 512 bytes of UTF-8, else a 400 naming it."""
    before = len(concierge.items())

    answer_status, body = concierge.webhook(waha_message(id=message_id))

    assert answer_status == status, body
    if status == 400:
        assert body["error"] == "validation_error"
        assert [detail["field"] for detail in body["details"]] == ["id"]
        assert _stored_nothing(concierge, before)
    else:
        assert body["outcome"] == "stored"


def test_session_is_limited_in_utf8_bytes(concierge: Concierge, guest: dict) -> None:
    """The envelope's session goes into keys too: 26 emoji (104 bytes) is a 400 naming it."""
    delivery = waha_message()
    delivery["session"] = "🏨" * 26

    status, body = concierge.webhook(delivery)

    assert status == 400 and [detail["field"] for detail in body["details"]] == ["session"]


PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Any code point (lone surrogates included), weighted towards the multi-byte ones that broke the key.
identifiers = st.one_of(
    st.text(st.characters(codec=None, categories=None), min_size=0, max_size=40),
    st.builds(
        lambda piece, count: piece * count,
        st.sampled_from(["x", "é", "€", "🏨", "\U0010ffff"]),
        st.integers(100, 600),
    ),
)


def _utf8_size(text: str) -> int | None:
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return None


@PROPERTY_SETTINGS
@given(identifier=identifiers, field=st.sampled_from(["id", "from", "session"]))
@example(identifier="🏨" * 512, field="id")
@example(identifier="🏨" * 128, field="id")
@example(identifier="🏨" * 26, field="session")
def test_identifiers_measured_in_bytes_are_stored_or_a_400(
    concierge: Concierge, guest: dict, identifier: str, field: str
) -> None:
    """Whatever the identifier (WAHA's message id, sender, session): never a 5xx; over its byte limit a 400 that
    names the field and writes nothing; within it, an answer that is not a refusal of the identifier."""
    delivery = waha_message()
    if field == "session":
        delivery["session"] = identifier
        limit = config.MAX_SESSION_NAME_BYTES
    else:
        delivery["payload"][field] = identifier
        limit = MAX_IDENTIFIER_BYTES
    before = len(concierge.items())

    status, body = concierge.webhook(raw_body=json.dumps(delivery))

    size = _utf8_size(identifier)
    assert status in (200, 400), (status, body)
    if size is None or size > limit or size == 0:
        assert status == 400 and field in {detail["field"] for detail in body["details"]}
        assert len(concierge.items()) == before
    else:
        assert status == 200, body


@settings(max_examples=300, deadline=None)
@given(session=identifiers, message_id=identifiers)
def test_every_accepted_identifier_builds_a_key_dynamodb_takes(session: str, message_id: str) -> None:
    """Any session and message id the models accept build a dedupe key within DynamoDB's 2,048-byte limit."""
    try:
        event = WahaEvent.model_validate({"event": "message", "session": session})
        payload = MessagePayload.model_validate({"id": message_id, "from": "6281234567890@c.us"})
    except ValidationError:
        return

    key = keys.waha_event(event.session, payload.id)
    assert len(key["pk"].encode("utf-8")) <= MAX_PARTITION_KEY_BYTES
    assert len(keys.waha_session_status(event.session)["pk"].encode("utf-8")) <= MAX_PARTITION_KEY_BYTES
