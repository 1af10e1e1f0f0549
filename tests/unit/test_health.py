"""WAHA's session.status events kept per session, a metric when one stops working, and GET /api/v1/health."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest

from bench.calls import count_calls
from devstack.api import api_routes
from devstack.resources import LocalResources
from tests.conftest import forget_cached_clients
from tests.driver import Concierge, waha_session_status

MINUTE_MS = 60_000


@pytest.fixture
def concierge_health(concierge: Concierge, aws: LocalResources, monkeypatch: pytest.MonkeyPatch) -> Concierge:
    """The system with the health function's own variables set, as the template sets them."""
    monkeypatch.setenv("OUTBOUND_DEAD_LETTER_QUEUE_URL", aws.dead_letter_queue_url)
    monkeypatch.setenv("MEDIA_DEAD_LETTER_QUEUE_URL", aws.queue_urls["MediaDeadLetterQueue"])
    monkeypatch.setenv("ANSWER_QUEUE_URL", aws.queue_urls["AnswerQueue"])
    monkeypatch.setenv("ANSWER_DEAD_LETTER_QUEUE_URL", aws.queue_urls["AnswerDeadLetterQueue"])
    forget_cached_clients()
    return concierge


def _metrics(output: str, name: str) -> list[float]:
    """Values of one metric in the Embedded Metric Format lines a function printed."""
    values = []
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            blob = json.loads(line)
            names = {metric["Name"] for group in blob["_aws"]["CloudWatchMetrics"] for metric in group["Metrics"]}
            if name in names:
                assert blob["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]
                values.extend(blob[name] if isinstance(blob[name], list) else [blob[name]])
    return values


# --- session.status events ----------------------------------------------------------------------


def test_session_status_is_stored_with_its_time(concierge_health: Concierge) -> None:
    """A served session's status is stored (one item per session) with WAHA's event time, and health shows it."""
    event = waha_session_status("WORKING")

    status, body = concierge_health.webhook(event)

    assert (status, body["outcome"]) == (200, "stored")
    (item,) = concierge_health.items_of_type("WahaSessionStatus")
    assert (item["pk"], item["sk"], item["status"]) == ("WAHA_SESSION#default", "STATUS", "WORKING")
    expected_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(event["timestamp"] // 1000))
    assert item["status_at"].startswith(expected_at)
    (session,) = concierge_health.health()[1]["waha_sessions"]
    assert session == {
        "session": "default",
        "status": "WORKING",
        "status_at": item["status_at"],
        "received_at": item["received_at"],
    }


def test_status_of_another_session_is_ignored(concierge_health: Concierge) -> None:
    """A session this stack does not serve: 200 ignored, nothing stored, health unchanged."""
    status, body = concierge_health.webhook(waha_session_status("STOPPED", session="someone-else"))

    assert (status, body["outcome"]) == (200, "ignored")
    assert concierge_health.items_of_type("WahaSessionStatus") == []
    assert concierge_health.health()[1]["waha_sessions"][0]["status"] is None


def test_latest_status_wins_whatever_the_order_of_delivery(concierge_health: Concierge) -> None:
    """WAHA may deliver an older status after a newer one: the older one is answered `outdated`, not stored."""
    now = int(time.time() * 1000)
    newer, older = (
        waha_session_status("SCAN_QR_CODE", timestamp_ms=now),
        waha_session_status("WORKING", timestamp_ms=now - MINUTE_MS),
    )

    outcomes = [concierge_health.webhook(event)[1]["outcome"] for event in (newer, older, newer)]

    assert outcomes == ["stored", "outdated", "outdated"]
    assert concierge_health.health()[1]["waha_sessions"][0]["status"] == "SCAN_QR_CODE"


def test_status_from_older_waha_without_an_event_time_is_stored(concierge_health: Concierge) -> None:
    """No envelope timestamp (older WAHA, or the docs' minimal example): stored as of its arrival."""
    event = {"event": "session.status", "session": "default", "payload": {"status": "STARTING"}}

    assert concierge_health.webhook(event)[1]["outcome"] == "stored"
    assert concierge_health.health()[1]["waha_sessions"][0]["status"] == "STARTING"


@pytest.mark.parametrize("payload", [{}, {"status": ""}, {"status": 7}, {"status": "x" * 65}])
def test_malformed_session_status_is_400(concierge_health: Concierge, payload: dict[str, Any]) -> None:
    """A session.status without a usable status is a 400 naming it; nothing is stored."""
    event = {**waha_session_status(), "payload": payload}

    status, body = concierge_health.webhook(event)

    assert status == 400 and [detail["field"] for detail in body["details"]] == ["status"]
    assert concierge_health.items_of_type("WahaSessionStatus") == []


def test_a_status_other_than_working_publishes_the_alarms_metric(
    concierge_health: Concierge, capsys: pytest.CaptureFixture[str]
) -> None:
    """WahaSessionNotWorking: 1 for STOPPED, 0 once WORKING again (the template's alarm reads it)."""
    now = int(time.time() * 1000)
    capsys.readouterr()

    concierge_health.webhook(waha_session_status("STOPPED", timestamp_ms=now - MINUTE_MS))
    stopped = _metrics(capsys.readouterr().out, "WahaSessionNotWorking")
    concierge_health.webhook(waha_session_status("WORKING", timestamp_ms=now))
    working = _metrics(capsys.readouterr().out, "WahaSessionNotWorking")

    assert (stopped, working) == ([1.0], [0.0])


def test_session_status_costs_one_write(concierge_health: Concierge) -> None:
    """The webhook's budget for a status: one conditional UpdateItem, nothing else."""
    calls = count_calls(lambda: concierge_health.webhook(waha_session_status("STOPPED")))

    assert calls == Counter({"DynamoDB.UpdateItem": 1})


def test_stale_session_status_is_not_stored(concierge_health: Concierge) -> None:
    """A status event older than WEBHOOK_MAX_AGE_HOURS is `stale` like any other event."""
    old = waha_session_status("STOPPED", timestamp_ms=int(time.time() * 1000) - 25 * 60 * MINUTE_MS)

    assert concierge_health.webhook(old)[1]["outcome"] == "stale"
    assert concierge_health.items_of_type("WahaSessionStatus") == []


# --- GET /api/v1/health -------------------------------------------------------------------------


def test_health_shows_queue_depths_and_is_degraded_until_every_session_works(concierge_health: Concierge) -> None:
    """A queued welcome shows in the outbound queue; with no status yet the answer is `degraded`; WORKING is `ok`."""
    concierge_health.register()

    status, before = concierge_health.health()
    concierge_health.webhook(waha_session_status("WORKING"))
    _, after = concierge_health.health()

    assert status == 200
    assert before["status"] == "degraded" and before["waha_sessions"][0]["status"] is None
    assert before["queues"] == {
        "outbound": {"waiting": 1, "in_flight": 0, "delayed": 0},
        "dead_letter": {"waiting": 0, "in_flight": 0, "delayed": 0},
        "media": {"waiting": 0, "in_flight": 0, "delayed": 0},
        "media_dead_letter": {"waiting": 0, "in_flight": 0, "delayed": 0},
        "answers": {"waiting": 0, "in_flight": 0, "delayed": 0},
        "answers_dead_letter": {"waiting": 0, "in_flight": 0, "delayed": 0},
    }
    assert after["status"] == "ok"


def test_dead_lettered_messages_make_health_degraded(concierge_health: Concierge, aws: LocalResources) -> None:
    """A record in the dead-letter queue is counted there, and the answer says `degraded`."""
    concierge_health.webhook(waha_session_status("WORKING"))
    concierge_health.sqs.send_message(QueueUrl=aws.dead_letter_queue_url, MessageBody='{"pk": "x", "sk": "y"}')

    _, body = concierge_health.health()

    assert body["queues"]["dead_letter"]["waiting"] == 1
    assert body["status"] == "degraded"


def test_a_guests_photo_waiting_for_its_copy_shows_in_the_media_queue(concierge_health: Concierge) -> None:
    """The webhook queues a copy job for a guest's photo: health counts it in `media` (still `ok`); once the copy
    job has run, the queue is empty again."""
    concierge_health.register()
    concierge_health.deliver_queued()
    concierge_health.webhook(waha_session_status("WORKING"))
    concierge_health.webhook(concierge_health.media_message("The broken tap"))

    _, queued = concierge_health.health()
    concierge_health.copy_media()
    _, copied = concierge_health.health()

    assert queued["queues"]["media"]["waiting"] == 1 and queued["status"] == "ok"
    assert copied["queues"]["media"] == {"waiting": 0, "in_flight": 0, "delayed": 0}


def test_dead_lettered_copy_jobs_make_health_degraded(concierge_health: Concierge, aws: LocalResources) -> None:
    """A copy job in the media dead-letter queue (it may hold the bot's reply) is counted, and the answer says
    `degraded` though every session works and the outbound dead-letter queue is empty."""
    concierge_health.webhook(waha_session_status("WORKING"))
    concierge_health.sqs.send_message(
        QueueUrl=aws.queue_urls["MediaDeadLetterQueue"], MessageBody='{"media": {"pk": "x", "sk": "y"}}'
    )

    _, body = concierge_health.health()

    assert body["queues"]["media_dead_letter"]["waiting"] == 1
    assert body["queues"]["dead_letter"]["waiting"] == 0
    assert body["status"] == "degraded"


def test_health_reads_the_queues_the_template_gives_it() -> None:
    """The deployed function gets the media and answer queues' URLs and may read those six queues' attributes, no
    more."""
    from devstack.template import functions, load_template

    environment = functions()["HealthFunction"].environment
    statements = load_template()["Resources"]["HealthFunction"]["Properties"]["Policies"][0]["Statement"]
    (sqs,) = [statement for statement in statements if statement["Action"] == ["sqs:GetQueueAttributes"]]

    assert environment["MEDIA_QUEUE_URL"] == {"Ref": "MediaQueue"}
    assert environment["MEDIA_DEAD_LETTER_QUEUE_URL"] == {"Ref": "MediaDeadLetterQueue"}
    assert environment["ANSWER_DEAD_LETTER_QUEUE_URL"] == {"Ref": "AnswerDeadLetterQueue"}
    assert sorted(arn["Fn::GetAtt"][0] for arn in sqs["Resource"]) == [
        "AnswerDeadLetterQueue",
        "AnswerQueue",
        "MediaDeadLetterQueue",
        "MediaQueue",
        "OutboundDeadLetterQueue",
        "OutboundQueue",
    ]


def test_health_lists_every_served_session(concierge_health: Concierge, monkeypatch: pytest.MonkeyPatch) -> None:
    """WAHA_SESSION="default,lobby": both appear, each with its own last status."""
    monkeypatch.setenv("WAHA_SESSION", "default,lobby")
    forget_cached_clients()
    concierge_health.webhook(waha_session_status("WORKING", session="lobby"))

    sessions = concierge_health.health()[1]["waha_sessions"]

    assert [(s["session"], s["status"]) for s in sessions] == [("default", None), ("lobby", "WORKING")]


def test_health_costs_one_read_and_six_queue_lookups(concierge_health: Concierge) -> None:
    """One BatchGetItem for the sessions' statuses, one GetQueueAttributes per queue (outbound, media, answers,
    their DLQs)."""
    calls = count_calls(concierge_health.health)

    assert calls == Counter({"DynamoDB.BatchGetItem": 1, "SQS.GetQueueAttributes": 6})


def test_an_unanswered_guest_message_makes_health_degraded(concierge_health: Concierge, aws: LocalResources) -> None:
    """A job in the answer dead-letter queue is a guest's message nobody was told about: `degraded`."""
    concierge_health.webhook(waha_session_status("WORKING"))
    concierge_health.sqs.send_message(
        QueueUrl=aws.queue_urls["AnswerDeadLetterQueue"], MessageBody='{"pk": "x", "sk": "y"}'
    )

    _, body = concierge_health.health()

    assert body["queues"]["answers_dead_letter"]["waiting"] == 1
    assert body["status"] == "degraded"


def test_health_is_a_route_that_needs_the_api_key() -> None:
    """The local stack takes its routes from the template: GET /api/v1/health, behind the API key."""
    routes = {(route.function_id, route.path, route.methods, route.api_key_required) for route in api_routes()}

    assert ("HealthFunction", "/api/v1/health", ("GET",), True) in routes
