"""The local stack's own parts: the API Gateway emulation, the SQS trigger emulation and the stack around them.

The handlers here are test doubles standing where the Lambda functions plug in; the real handlers are
exercised by the lead's end-to-end tests.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest
import urllib3
from moto.server import ThreadedMotoServer

from devstack import run_state
from devstack.api import LocalApi, api_routes
from devstack.functions import load_handler
from devstack.lambda_context import LambdaContext
from devstack.resources import LocalResources
from devstack.sender import QueuePoller, sqs_event_sources
from devstack.stack import LocalStack, StackConfig, TemplateEnvironment
from devstack.template import REPO_ROOT, functions, load_template
from tests.driver import GUEST

pytestmark = pytest.mark.integration

API_KEY = "test-api-key"
REGION = "us-east-1"


# --- doubles at the Lambda boundary -------------------------------------------------------------


def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Answers with the event and the context it was given, so tests can look at both."""
    seen_context = {
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "aws_request_id": context.aws_request_id,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "remaining_millis": context.get_remaining_time_in_millis(),
    }
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"event": event, "context": seen_context}),
    }


def explode(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise RuntimeError("handler bug")


def created_with_cookies(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {
        "statusCode": 201,
        "headers": {"Content-Type": "application/json", "X-Single": "one"},
        "multiValueHeaders": {"X-Multi": ["a", "b"]},
        "body": json.dumps({"created": True}),
        "isBase64Encoded": False,
    }


def not_a_proxy_response(event: dict[str, Any], context: Any) -> str:
    return "ok"


# --- the API ------------------------------------------------------------------------------------


@pytest.fixture
def http() -> urllib3.PoolManager:
    return urllib3.PoolManager(retries=False, timeout=10.0)


@functools.cache
def _authorizer() -> dict[str, Callable[..., Any]]:
    return {"AuthorizeFunction": load_handler(functions()["AuthorizeFunction"])}


def with_authorizer(handlers: dict[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """The key routes' authorizer is API Gateway's, not a function under test: it runs as deployed."""
    return {**_authorizer(), **handlers}


def start_api(handlers: dict[str, Callable[..., Any]], api_key: str | None = API_KEY) -> LocalApi:
    api = LocalApi(with_authorizer(handlers), host="127.0.0.1", port=0, api_key=api_key)
    api.start()
    return api


@pytest.fixture
def api() -> Iterator[LocalApi]:
    api = start_api(
        {"RegisterGuestFunction": echo, "GuestMessagesFunction": echo, "WahaWebhookFunction": explode},
    )
    yield api
    api.stop()


def echoed(response: urllib3.BaseHTTPResponse) -> dict[str, Any]:
    assert response.status == 200, response.data
    return json.loads(response.data)


def gateway_body(response_type: str) -> dict[str, Any]:
    """The body template.yaml's GatewayResponses give API Gateway's own answer of this type (no variables)."""
    responses = load_template()["Resources"]["ConciergeApi"]["Properties"]["GatewayResponses"]
    return json.loads(responses[response_type]["ResponseTemplates"]["application/json"])


def our_error(response: urllib3.BaseHTTPResponse) -> dict[str, Any]:
    """The body of an error answer, checked to be in our format {"error", "message", "details"}."""
    assert response.headers["Content-Type"] == "application/json"
    body = json.loads(response.data)
    assert set(body) == {"error", "message", "details"}, body
    return body


def test_routes_come_from_the_template_api_events() -> None:
    """Every `Type: Api` event of template.yaml is a route, with its method, key requirement and stage."""
    routes = {(route.function_id, route.path, route.methods, route.api_key_required) for route in api_routes()}

    assert routes >= {
        ("RegisterGuestFunction", "/api/v1/guests/register", ("POST",), True),
        ("GuestMessagesFunction", "/api/v1/guests/{user_id}/messages", ("GET",), True),
        ("WahaWebhookFunction", "/api/v1/waha/webhook", ("POST",), False),
    }
    api_events = [e for spec in functions().values() for e in spec.events.values() if e["Type"] == "Api"]
    assert len(api_routes()) == len(api_events)
    assert {route.stage_name for route in api_routes()} == {"prod"}


def test_event_has_the_api_gateway_rest_proxy_shape(api: LocalApi, http: urllib3.PoolManager) -> None:
    """A request reaches the handler as an API Gateway REST (v1) proxy event, as `sam local start-api` builds it."""
    response = http.request(
        "POST",
        f"{api.url}/api/v1/guests/register?source=pms&tag=a&tag=b",
        body=json.dumps({"full_name": "Test Guest"}),
        headers={"Content-Type": "application/json", "x-api-key": API_KEY},
    )

    event = echoed(response)["event"]
    assert event["resource"] == "/api/v1/guests/register"
    assert event["path"] == "/api/v1/guests/register"
    assert event["httpMethod"] == "POST"
    assert event["headers"]["Content-Type"] == "application/json"
    assert event["headers"]["X-Api-Key"] == API_KEY
    assert event["multiValueHeaders"]["Content-Type"] == ["application/json"]
    assert event["queryStringParameters"] == {"source": "pms", "tag": "b"}
    assert event["multiValueQueryStringParameters"] == {"source": ["pms"], "tag": ["a", "b"]}
    assert event["pathParameters"] is None
    assert event["stageVariables"] is None
    assert json.loads(event["body"]) == {"full_name": "Test Guest"}
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["stage"] == "prod"
    assert context["resourcePath"] == "/api/v1/guests/register"
    assert context["httpMethod"] == "POST"
    assert uuid.UUID(context["requestId"])
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["identity"]["apiKey"] == API_KEY


def test_path_parameters_and_resource_template(api: LocalApi, http: urllib3.PoolManager) -> None:
    """A templated path hands its parameters over in pathParameters and keeps the template as resource."""
    response = http.request("GET", f"{api.url}/api/v1/guests/user-123/messages", headers={"x-api-key": API_KEY})

    event = echoed(response)["event"]
    assert event["pathParameters"] == {"user_id": "user-123"}
    assert event["resource"] == "/api/v1/guests/{user_id}/messages"
    assert event["requestContext"]["resourcePath"] == "/api/v1/guests/{user_id}/messages"
    assert event["path"] == "/api/v1/guests/user-123/messages"
    assert event["body"] is None


def test_every_request_gets_its_own_request_id_and_lambda_context(api: LocalApi, http: urllib3.PoolManager) -> None:
    """Two requests carry different API request ids and Lambda request ids, and the function's context values."""
    url = f"{api.url}/api/v1/guests/u/messages"
    first, second = (echoed(http.request("GET", url, headers={"x-api-key": API_KEY})) for _ in range(2))

    assert first["event"]["requestContext"]["requestId"] != second["event"]["requestContext"]["requestId"]
    assert first["context"]["aws_request_id"] != second["context"]["aws_request_id"]
    context = first["context"]
    assert context["function_name"] == "GuestMessagesFunction"
    assert context["function_version"] == "$LATEST"
    assert context["invoked_function_arn"].endswith(":function:GuestMessagesFunction")
    assert context["memory_limit_in_mb"] == functions()["GuestMessagesFunction"].memory_size
    assert context["log_group_name"] == "/aws/lambda/GuestMessagesFunction"
    assert 0 < context["remaining_millis"] <= functions()["GuestMessagesFunction"].timeout * 1000


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "wrong"}, {"x-api-key": ""}])
def test_key_protected_route_refuses_a_missing_or_wrong_key(
    api: LocalApi, http: urllib3.PoolManager, headers: dict[str, str]
) -> None:
    """ApiKeyRequired routes answer 403, as API Gateway does, without invoking the function, with the template's
    INVALID_API_KEY gateway response."""
    response = http.request("POST", f"{api.url}/api/v1/guests/register", body=b"{}", headers=headers)

    assert response.status == 403
    assert our_error(response) == gateway_body("INVALID_API_KEY")


def test_api_key_header_name_is_case_insensitive(api: LocalApi, http: urllib3.PoolManager) -> None:
    """The key is accepted whatever the header's spelling, as HTTP header names are case-insensitive."""
    response = http.request("POST", f"{api.url}/api/v1/guests/register", body=b"{}", headers={"X-API-KEY": API_KEY})

    assert response.status == 200


def test_without_a_configured_key_protected_routes_always_refuse(http: urllib3.PoolManager) -> None:
    """With no API key configured nothing can match, so every key-protected call is 403."""
    api = start_api({"RegisterGuestFunction": echo}, api_key=None)
    try:
        response = http.request(
            "POST", f"{api.url}/api/v1/guests/register", body=b"{}", headers={"x-api-key": "anything"}
        )
    finally:
        api.stop()

    assert response.status == 403
    assert our_error(response)["error"] == "forbidden"


def test_route_without_key_requirement_needs_no_key(http: urllib3.PoolManager) -> None:
    """The webhook route (no ApiKeyRequired) is invoked without any x-api-key."""
    api = start_api({"WahaWebhookFunction": echo})
    try:
        response = http.request("POST", f"{api.url}/api/v1/waha/webhook", body=b'{"event":"message"}')
    finally:
        api.stop()

    assert echoed(response)["event"]["body"] == '{"event":"message"}'


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/v1/unknown"), ("GET", "/"), ("GET", "/api/v1/guests/register"), ("DELETE", "/api/v1/waha/webhook")],
)
def test_unknown_route_or_method_is_missing_authentication_token(
    api: LocalApi, http: urllib3.PoolManager, method: str, path: str
) -> None:
    """API Gateway REST answers an unknown path, or a known path's unknown method, as MISSING_AUTHENTICATION_TOKEN,
    which the template turns into a 404 in our format."""
    response = http.request(method, f"{api.url}{path}", headers={"x-api-key": API_KEY})

    assert response.status == 404
    assert our_error(response) == gateway_body("MISSING_AUTHENTICATION_TOKEN")


def test_handler_exception_is_a_502(api: LocalApi, http: urllib3.PoolManager, caplog: pytest.LogCaptureFixture) -> None:
    """A raising handler becomes 502 Internal server error, and its traceback is logged."""
    response = http.request("POST", f"{api.url}/api/v1/waha/webhook", body=b"{}")

    assert response.status == 502
    assert our_error(response) == {"error": "internal_error", "message": "Internal server error", "details": []}
    assert "handler bug" in caplog.text


def test_malformed_proxy_response_is_a_502(http: urllib3.PoolManager) -> None:
    """A result that is not a proxy response object is a 502, as API Gateway answers it."""
    api = start_api({"WahaWebhookFunction": not_a_proxy_response})
    try:
        response = http.request("POST", f"{api.url}/api/v1/waha/webhook", body=b"{}")
    finally:
        api.stop()

    assert response.status == 502


def test_function_without_a_handler_is_a_502(http: urllib3.PoolManager) -> None:
    """A route whose function is not loaded answers 502 instead of hanging or crashing the server."""
    api = start_api({})
    try:
        response = http.request("POST", f"{api.url}/api/v1/waha/webhook", body=b"{}")
    finally:
        api.stop()

    assert response.status == 502


def test_proxy_result_becomes_the_http_response(http: urllib3.PoolManager) -> None:
    """statusCode, headers, multiValueHeaders and body of the proxy result are what the client receives."""
    api = start_api({"WahaWebhookFunction": created_with_cookies})
    try:
        response = http.request("POST", f"{api.url}/api/v1/waha/webhook", body=b"{}")
    finally:
        api.stop()

    assert response.status == 201
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["X-Single"] == "one"
    assert response.headers.getlist("X-Multi") == ["a", "b"]
    assert json.loads(response.data) == {"created": True}


# --- the SQS trigger ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """moto's server in a thread on a free port (mock_aws cannot be shared with the poller's thread)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def sqs(moto_endpoint: str) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=moto_endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


class Queues:
    """A fresh source queue (1 s visibility, 2 receives) and its dead-letter queue."""

    def __init__(self, sqs: Any) -> None:
        self.sqs = sqs
        name = f"test-{uuid.uuid4().hex[:12]}"
        self.dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        dlq_arn = self.arn(self.dlq_url)
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})
        attributes = {"VisibilityTimeout": "1", "RedrivePolicy": redrive}
        self.url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        self.queue_arn = self.arn(self.url)

    def arn(self, url: str) -> str:
        return self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    def send(self, *bodies: str) -> None:
        for body in bodies:
            self.sqs.send_message(QueueUrl=self.url, MessageBody=body)

    def bodies(self, url: str, wait_seconds: int = 0) -> list[str]:
        """Every message visible in url now (received with a 0 s visibility, so this does not hide them)."""
        messages = self.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds, VisibilityTimeout=0
        ).get("Messages", [])
        return sorted(message["Body"] for message in messages)

    def depth(self, url: str) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


@pytest.fixture
def queues(sqs: Any) -> Queues:
    return Queues(sqs)


class FailingSender:
    """A double of the sender: records every batch and reports records whose body starts with "fail" as failed."""

    def __init__(self) -> None:
        self.batches: list[dict[str, Any]] = []
        self.handled = threading.Event()

    def __call__(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        self.batches.append(event)
        self.handled.set()
        failures = [
            {"itemIdentifier": record["messageId"]} for record in event["Records"] if record["body"].startswith("fail")
        ]
        return {"batchItemFailures": failures}


def poller_for(handler: Callable[..., Any], queues: Queues, **options: Any) -> QueuePoller:
    return QueuePoller(
        handler,
        queues.url,
        queues.queue_arn,
        batch_size=10,
        timeout_seconds=10,
        function_name="SendWhatsappFunction",
        sqs_client=queues.sqs,
        **options,
    )


def test_sqs_event_source_comes_from_the_template() -> None:
    """The SQS triggers of template.yaml: SendWhatsappFunction on OutboundQueue, batches of 10,
    FetchMediaFunction on MediaQueue, batches of 5, and AnswerGuestFunction on AnswerQueue, batches of 10;
    all with partial failures."""
    sources = {source.function_id: source for source in sqs_event_sources(functions())}

    assert set(sources) == {"SendWhatsappFunction", "FetchMediaFunction", "AnswerGuestFunction"}
    sender, copier = sources["SendWhatsappFunction"], sources["FetchMediaFunction"]
    answerer = sources["AnswerGuestFunction"]
    assert (sender.queue_logical_id, sender.batch_size) == ("OutboundQueue", 10)
    assert (copier.queue_logical_id, copier.batch_size) == ("MediaQueue", 5)
    assert (answerer.queue_logical_id, answerer.batch_size) == ("AnswerQueue", 10)
    assert all(source.report_batch_item_failures is True for source in (sender, copier, answerer))


def test_record_has_the_lambda_sqs_event_shape(queues: Queues) -> None:
    """Each record carries what Lambda's SQS event does (the `sam local generate-event sqs` shape)."""
    sender = FailingSender()
    queues.sqs.send_message(
        QueueUrl=queues.url,
        MessageBody='{"pk":"p","sk":"s"}',
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "welcome"}},
    )

    assert poller_for(sender, queues).poll_once() == 1

    (record,) = sender.batches[0]["Records"]
    assert set(record) == {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    }
    assert record["body"] == '{"pk":"p","sk":"s"}'
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == queues.queue_arn
    assert record["awsRegion"] == REGION
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert {"SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"} <= set(record["attributes"])
    assert record["messageAttributes"] == {
        "kind": {"stringValue": "welcome", "stringListValues": [], "binaryListValues": [], "dataType": "String"}
    }


def test_succeeded_records_are_deleted_and_failed_ones_come_back(queues: Queues) -> None:
    """With ReportBatchItemFailures only the reported records stay, and reappear after the visibility timeout."""
    sender = FailingSender()
    queues.send("ok-1", "ok-2", "fail-1")

    handled = poller_for(sender, queues).poll_once()

    assert handled == 3
    assert queues.bodies(queues.url, wait_seconds=3) == ["fail-1"]
    assert queues.depth(queues.url) == 1


def test_failed_record_moves_to_the_dead_letter_queue_after_max_receives(queues: Queues) -> None:
    """After maxReceiveCount failed receives SQS itself moves the record to the dead-letter queue."""
    sender = FailingSender()
    poller = poller_for(sender, queues)
    queues.send("fail-forever", "ok")

    deadline = time.monotonic() + 10
    while queues.depth(queues.dlq_url) == 0 and time.monotonic() < deadline:
        poller.poll_once()

    assert queues.bodies(queues.dlq_url) == ["fail-forever"]
    assert queues.depth(queues.url) == 0
    received = [record["body"] for batch in sender.batches for record in batch["Records"]]
    assert received.count("fail-forever") == 2
    assert received.count("ok") == 1


def test_handler_exception_deletes_nothing(queues: Queues) -> None:
    """A raising handler fails the whole batch: every record comes back."""
    queues.send("a", "b")

    assert poller_for(explode, queues).poll_once() == 2

    assert queues.bodies(queues.url, wait_seconds=3) == ["a", "b"]


def test_unknown_item_identifier_fails_the_whole_batch(queues: Queues) -> None:
    """A batchItemFailures id that is not in the batch makes Lambda retry every record."""
    queues.send("a", "b")

    def confused(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"batchItemFailures": [{"itemIdentifier": "not-a-message-id"}]}

    poller_for(confused, queues).poll_once()

    assert queues.bodies(queues.url, wait_seconds=3) == ["a", "b"]


def test_without_report_batch_item_failures_a_returned_batch_is_all_deleted(queues: Queues) -> None:
    """Without ReportBatchItemFailures Lambda ignores the response: a batch that returns is deleted whole."""
    queues.send("ok", "fail-ignored")

    poller_for(FailingSender(), queues, report_batch_item_failures=False).poll_once()

    assert queues.depth(queues.url) == 0


def test_background_poller_delivers_and_stops_promptly(queues: Queues) -> None:
    """start() polls in a thread until stop(), which returns within about a long poll (1 s)."""
    sender = FailingSender()
    poller = poller_for(sender, queues)
    poller.start()
    try:
        queues.send("ok")
        assert sender.handled.wait(5)
    finally:
        started = time.monotonic()
        poller.stop()
        stopped_after = time.monotonic() - started

    assert stopped_after < 2.5
    assert queues.depth(queues.url) == 0


# --- the stack ----------------------------------------------------------------------------------


def fake_resources() -> LocalResources:
    base = "http://127.0.0.1:5000/123456789012"
    return LocalResources(
        table_name="concierge-ConciergeTable",
        queue_urls={
            "OutboundQueue": f"{base}/concierge-OutboundQueue",
            "OutboundDeadLetterQueue": f"{base}/concierge-OutboundDeadLetterQueue",
            "MediaQueue": f"{base}/concierge-MediaQueue",
            "MediaDeadLetterQueue": f"{base}/concierge-MediaDeadLetterQueue",
            "AnswerQueue": f"{base}/concierge-AnswerQueue",
            "AnswerDeadLetterQueue": f"{base}/concierge-AnswerDeadLetterQueue",
        },
        queue_arns={
            "OutboundQueue": "arn:aws:sqs:us-east-1:123456789012:concierge-OutboundQueue",
            "OutboundDeadLetterQueue": "arn:aws:sqs:us-east-1:123456789012:concierge-OutboundDeadLetterQueue",
            "MediaQueue": "arn:aws:sqs:us-east-1:123456789012:concierge-MediaQueue",
            "MediaDeadLetterQueue": "arn:aws:sqs:us-east-1:123456789012:concierge-MediaDeadLetterQueue",
            "AnswerQueue": "arn:aws:sqs:us-east-1:123456789012:concierge-AnswerQueue",
            "AnswerDeadLetterQueue": "arn:aws:sqs:us-east-1:123456789012:concierge-AnswerDeadLetterQueue",
        },
        bucket_names={"MediaBucket": "concierge-mediabucket"},
    )


def test_template_environment_resolves_against_local_resources_and_config() -> None:
    """Refs become local names and URLs or config values; SSM names and NoValue are left out."""
    resolver = TemplateEnvironment(
        template=load_template(),
        resources=fake_resources(),
        parameters={
            "WahaHost": "http://127.0.0.1:3000",
            "WahaSession": None,
            "DefaultPhoneRegion": "SG",
            "KnowledgeFile": "/hotels/ours.toml",
        },
        region=REGION,
        stack_name="concierge",
    )
    specs = functions()

    sender = resolver.variables(specs["SendWhatsappFunction"])
    webhook = resolver.variables(specs["WahaWebhookFunction"])
    answerer = resolver.variables(specs["AnswerGuestFunction"])

    assert sender["TABLE_NAME"] == "concierge-ConciergeTable"
    assert sender["OUTBOUND_QUEUE_URL"] == "http://127.0.0.1:5000/123456789012/concierge-OutboundQueue"
    assert sender["WAHA_HOST"] == "http://127.0.0.1:3000"
    assert sender["WAHA_SESSION"] == "default"
    assert sender["WAHA_API_PATH"] == "/api/sendText"
    assert sender["DEFAULT_PHONE_REGION"] == "SG"
    assert sender["POWERTOOLS_LOG_LEVEL"] == "INFO"
    assert sender["AWS_MAX_ATTEMPTS"] == "5"
    assert sender["OUTBOUND_MAX_RECEIVE_COUNT"] == "5"
    assert "WAHA_API_KEY_PARAM" not in sender
    assert "WAHA_WEBHOOK_HMAC_KEY_PARAM" not in webhook
    answer_queue = "http://127.0.0.1:5000/123456789012/concierge-AnswerQueue"
    assert webhook["ANSWER_QUEUE_URL"] == answerer["ANSWER_QUEUE_URL"] == answer_queue
    assert answerer["KNOWLEDGE_FILE"] == "/hotels/ours.toml"


def test_stack_wires_api_queue_and_environment_around_the_handlers(http: urllib3.PoolManager) -> None:
    """LocalStack serves the API, polls the outbound queue with the overrides applied, and restores the env."""
    seen_env: dict[str, str] = {}
    sent = FailingSender()

    def register(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen_env.update(os.environ)
        return echo(event, context)

    config = StackConfig(
        api_port=0,
        moto_port=0,
        waha_sim_port=0,
        api_key=API_KEY,
        visibility_timeout_override=1,
        redrive_max_receive_override=2,
    )
    endpoint_before = os.environ.get("AWS_ENDPOINT_URL")
    with LocalStack(config, handlers={"RegisterGuestFunction": register, "SendWhatsappFunction": sent}) as stack:
        assert stack.resources is not None and stack.simulator is not None
        response = http.request(
            "POST", f"{stack.api_url}/api/v1/guests/register", body=b"{}", headers={"x-api-key": API_KEY}
        )
        assert response.status == 200
        sqs = boto3.client("sqs", endpoint_url=stack.aws_endpoint, region_name=REGION)
        sqs.send_message(QueueUrl=stack.resources.outbound_queue_url, MessageBody="ok")
        assert sent.handled.wait(5)
        attributes = sqs.get_queue_attributes(
            QueueUrl=stack.resources.outbound_queue_url, AttributeNames=["VisibilityTimeout", "RedrivePolicy"]
        )["Attributes"]
        assert stack.webhook_url == f"{stack.api_url}/api/v1/waha/webhook"

    assert attributes["VisibilityTimeout"] == "1"
    assert json.loads(attributes["RedrivePolicy"])["maxReceiveCount"] == 2
    assert seen_env["TABLE_NAME"] == stack.resources.table_name
    assert seen_env["OUTBOUND_QUEUE_URL"] == stack.resources.outbound_queue_url
    assert seen_env["WAHA_HOST"] == stack.waha_url
    assert seen_env["AWS_ENDPOINT_URL"] == stack.aws_endpoint
    assert seen_env["OUTBOUND_MAX_RECEIVE_COUNT"] == "2"
    assert "WAHA_WEBHOOK_HMAC_KEY_PARAM" not in seen_env
    assert os.environ.get("AWS_ENDPOINT_URL") == endpoint_before


def test_a_taken_port_is_a_clear_error_not_a_hang() -> None:
    """Starting on a port another program listens on fails at once, naming the setting to change."""
    import socket

    from devstack.stack import PortInUse, ensure_port_free

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        with pytest.raises(PortInUse, match="MOTO_PORT"):
            ensure_port_free("127.0.0.1", port, "MOTO_PORT")
    ensure_port_free("127.0.0.1", port, "MOTO_PORT")


# --- API Gateway's own answers, throttling and bodies that are not text -------------------------


def test_a_body_that_is_not_utf8_reaches_the_handler_base64_encoded(api: LocalApi, http: urllib3.PoolManager) -> None:
    """A Lambda event is JSON and cannot carry bytes that are not text: they arrive base64-encoded with
    isBase64Encoded, as API Gateway hands over binary, instead of the 500 sam local's event builder answers."""
    raw = b'{"full_name": "\xff\xfe"}'

    response = http.request(
        "POST",
        f"{api.url}/api/v1/guests/register",
        body=raw,
        headers={"Content-Type": "application/json", "x-api-key": API_KEY},
    )

    event = echoed(response)["event"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == raw


def test_a_text_body_stays_text(api: LocalApi, http: urllib3.PoolManager) -> None:
    """UTF-8 text (any script) is handed over as is, not base64-encoded."""
    response = http.request(
        "POST", f"{api.url}/api/v1/guests/register", body='{"name": "Ñoño 🏨"}'.encode(), headers={"x-api-key": API_KEY}
    )

    event = echoed(response)["event"]
    assert event["isBase64Encoded"] is False
    assert json.loads(event["body"]) == {"name": "Ñoño 🏨"}


def test_a_body_over_api_gateways_limit_is_413_in_our_format(api: LocalApi, http: urllib3.PoolManager) -> None:
    """API Gateway refuses bodies over 10 MB before any function runs."""
    from devstack.api import MAX_PAYLOAD_BYTES

    response = http.request(
        "POST", f"{api.url}/api/v1/waha/webhook", body=b"x" * (MAX_PAYLOAD_BYTES + 1), headers={"x-api-key": API_KEY}
    )

    assert response.status == 413
    assert our_error(response)["error"] == "bad_request"


def template_with(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """A copy of template.yaml with one change to the ConciergeApi's properties."""
    template = copy.deepcopy(load_template())
    change(template["Resources"]["ConciergeApi"]["Properties"])
    return template


def test_the_local_api_reads_its_gateway_responses_from_the_template(http: urllib3.PoolManager) -> None:
    """Change a gateway response in the template and the local API answers with the change: they cannot drift."""

    def reword(properties: dict[str, Any]) -> None:
        properties["GatewayResponses"]["INVALID_API_KEY"] = {
            "StatusCode": 401,
            "ResponseTemplates": {
                "application/json": '{"error": "no_key", "message": $context.error.messageString, "details": []}'
            },
            "ResponseParameters": {"Headers": {"WWW-Authenticate": "'ApiKey'"}},
        }

    api = LocalApi(with_authorizer({"RegisterGuestFunction": echo}), api_key=API_KEY, template=template_with(reword))
    api.start()
    try:
        response = http.request("POST", f"{api.url}/api/v1/guests/register", body=b"{}")
    finally:
        api.stop()

    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == "ApiKey"
    assert our_error(response) == {"error": "no_key", "message": "Forbidden", "details": []}


def test_a_gateway_response_the_local_api_cannot_render_fails_at_start() -> None:
    """A template variable the local API does not reproduce is refused when the API is built, not per request."""
    from devstack.gateway_responses import UnsupportedGatewayResponse

    def unknown_variable(properties: dict[str, Any]) -> None:
        properties["GatewayResponses"]["THROTTLED"]["ResponseTemplates"]["application/json"] = (
            '{"error": "throttled", "message": "$context.requestId", "details": []}'
        )

    with pytest.raises(UnsupportedGatewayResponse, match="requestId"):
        LocalApi({}, template=template_with(unknown_variable))


def test_the_webhooks_stage_throttle_answers_429_in_our_format(http: urllib3.PoolManager) -> None:
    """Past the webhook's MethodSettings burst (here 2, refilled once in 1,000 s) the local API answers 429
    THROTTLED without invoking the function; other routes keep their own limits."""

    def tiny_burst(properties: dict[str, Any]) -> None:
        for setting in properties["MethodSettings"]:
            setting.update(ThrottlingBurstLimit=2, ThrottlingRateLimit=0.001)

    calls: list[dict[str, Any]] = []

    def counted(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append(event)
        return echo(event, context)

    handlers = {"WahaWebhookFunction": counted, "RegisterGuestFunction": echo}
    api = LocalApi(with_authorizer(handlers), api_key=API_KEY, template=template_with(tiny_burst), throttling=True)
    api.start()
    try:
        statuses = [http.request("POST", f"{api.url}/api/v1/waha/webhook", body=b"{}").status for _ in range(4)]
        throttled = http.request("POST", f"{api.url}/api/v1/waha/webhook", body=b"{}")
        register = http.request("POST", f"{api.url}/api/v1/guests/register", body=b"{}", headers={"x-api-key": API_KEY})
    finally:
        api.stop()

    assert statuses == [200, 200, 429, 429]
    assert len(calls) == 2
    assert our_error(throttled) == gateway_body("THROTTLED")
    assert register.status == 200


def test_the_usage_plan_throttles_each_api_key(http: urllib3.PoolManager) -> None:
    """Key-protected routes share the key's usage-plan bucket (here a burst of 1)."""

    def one_request_per_key(properties: dict[str, Any]) -> None:
        properties["Auth"]["UsagePlan"]["Throttle"] = {"BurstLimit": 1, "RateLimit": 0.001}

    api = LocalApi(
        with_authorizer({"RegisterGuestFunction": echo, "GuestMessagesFunction": echo}),
        api_key=API_KEY,
        template=template_with(one_request_per_key),
        throttling=True,
    )
    api.start()
    try:
        first = http.request("POST", f"{api.url}/api/v1/guests/register", body=b"{}", headers={"x-api-key": API_KEY})
        second = http.request("GET", f"{api.url}/api/v1/guests/u/messages", headers={"x-api-key": API_KEY})
    finally:
        api.stop()

    assert (first.status, second.status) == (200, 429)
    assert our_error(second)["error"] == "throttled"


def test_without_throttling_nothing_is_throttled(http: urllib3.PoolManager) -> None:
    """Tests that push load through the local API on purpose (and StackConfig's default) leave throttling off."""

    def tiny_burst(properties: dict[str, Any]) -> None:
        for setting in properties["MethodSettings"]:
            setting.update(ThrottlingBurstLimit=1, ThrottlingRateLimit=0.001)

    api = LocalApi({"WahaWebhookFunction": echo}, template=template_with(tiny_burst))
    api.start()
    try:
        statuses = {http.request("POST", f"{api.url}/api/v1/waha/webhook", body=b"{}").status for _ in range(3)}
    finally:
        api.stop()

    assert statuses == {200}
    assert StackConfig().api_throttling is False
    assert StackConfig.from_env({}).api_throttling is True
    assert StackConfig.from_env({"API_THROTTLING": "off"}).api_throttling is False


def test_make_run_has_the_simulator_acknowledge_sends_unless_told_otherwise() -> None:
    """`make run` acks sends (DEVICE after 1 s, READ 2 s later); WAHA_SIM_ACK_*_SECONDS change or stop them
    (`off`), anything else is a clear error; StackConfig's default (tests) sends none."""
    config = StackConfig.from_env({})
    changed = StackConfig.from_env({"WAHA_SIM_ACK_DELIVERED_SECONDS": "0.5", "WAHA_SIM_ACK_READ_SECONDS": "OFF"})

    assert (config.waha_sim_ack_delivered_seconds, config.waha_sim_ack_read_seconds) == (1.0, 2.0)
    assert (changed.waha_sim_ack_delivered_seconds, changed.waha_sim_ack_read_seconds) == (0.5, None)
    assert (StackConfig().waha_sim_ack_delivered_seconds, StackConfig().waha_sim_ack_read_seconds) == (None, None)
    for wrong in ("soon", "-1", "inf", "nan"):
        with pytest.raises(ValueError, match="WAHA_SIM_ACK_READ_SECONDS"):
            StackConfig.from_env({"WAHA_SIM_ACK_READ_SECONDS": wrong})


def test_a_bound_api_refuses_connections_until_it_starts(http: urllib3.PoolManager) -> None:
    """bind() fixes the port and URL without accepting connections; start() opens the port."""
    api = LocalApi({"WahaWebhookFunction": echo})
    url = api.bind()
    try:
        with pytest.raises(urllib3.exceptions.HTTPError):
            http.request("POST", f"{url}/api/v1/waha/webhook", body=b"{}", retries=False, timeout=2.0)
        assert api.start() == url
        assert http.request("POST", f"{url}/api/v1/waha/webhook", body=b"{}").status == 200
    finally:
        api.stop()


# --- make run as a developer starts it: its first second, make demo and devstack.invoke ----------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def first_answer_once_the_port_opens(
    port: int, request: Callable[[], urllib3.BaseHTTPResponse], deadline: float
) -> Any:
    """Connects every few milliseconds until the port accepts, then sends request() at once."""
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return request()
        time.sleep(0.005)
    raise AssertionError(f"port {port} never opened")


STARTUP_SECONDS = 60.0
# Settings that would point the stack elsewhere (an outside AWS or WAHA) or change what these tests expect.
UNSET_LOCALLY = (
    "AWS_ENDPOINT_URL",
    "WAHA_HOST",
    "WAHA_WEBHOOK_HMAC_KEY",
    "WAHA_API_KEY",
    "API_THROTTLING",
    # `make demo` counts on one reply to three lines, a handoff after staff write, and the simulator's READ acks.
    "AUTO_REPLY_COOLDOWN_MINUTES",
    "HANDOFF_MINUTES",
    "BUSINESS_HOURS",
    "WAHA_SIM_ACK_DELIVERED_SECONDS",
    "WAHA_SIM_ACK_READ_SECONDS",
    # The built-in engine answers the demo unless a developer's .env turns Bedrock on.
    "AI_MODEL_ID",
    "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
    # `make demo`'s AI step asks the sample hotel's questions, with answering on.
    "AI_ANSWERS",
    "KNOWLEDGE_FILE",
)


class MakeRun:
    """`python -m devstack` in a process of its own, on free ports, its state file in a temporary folder."""

    def __init__(self, state_file: Path) -> None:
        self.api_port = free_port()
        self.state_file = state_file
        self.environment = {
            **os.environ,
            "API_PORT": str(self.api_port),
            "MOTO_PORT": "0",
            "WAHA_SIM_PORT": "0",
            "CONVERSE_SIM_PORT": "0",
            "API_KEY": "make-run-test-key",
            run_state.STATE_FILE_VARIABLE: str(state_file),
            # Set empty rather than removed: an empty variable means "unset" and still wins over a developer's .env.
            **dict.fromkeys(UNSET_LOCALLY, ""),
        }
        self.http = urllib3.PoolManager(retries=False, timeout=20.0)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devstack"],
            cwd=REPO_ROOT,
            env=self.environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.api_port}"
        self.first_registration = first_answer_once_the_port_opens(
            self.api_port, self.register, time.monotonic() + STARTUP_SECONDS
        )

    def register(self) -> urllib3.BaseHTTPResponse:
        """The guide's register curl."""
        return self.http.request(
            "POST",
            f"{self.url}/api/v1/guests/register",
            body=json.dumps(GUEST).encode(),
            headers={"Content-Type": "application/json", "x-api-key": "make-run-test-key"},
        )

    def state(self) -> run_state.RunState:
        deadline = time.monotonic() + STARTUP_SECONDS
        while (state := run_state.read(self.state_file)) is None:
            assert time.monotonic() < deadline, "make run wrote no state file"
            time.sleep(0.05)
        return state

    def run(self, *command: str, **environment: str) -> subprocess.CompletedProcess[str]:
        """Another command of the repository, as a developer runs it in a second terminal."""
        # The command is one of this repository's modules, named by the test itself.
        return subprocess.run(  # noqa: S603
            [sys.executable, "-m", *command],
            cwd=REPO_ROOT,
            env={**self.environment, **environment},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def make_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeRun]:
    running = MakeRun(tmp_path_factory.mktemp("make-run") / "state.json")
    yield running
    running.stop()


def test_make_run_opens_its_api_port_only_when_the_functions_answer(make_run: MakeRun) -> None:
    """The guide's register curl, sent the moment the port accepts a connection, is a 201: the port opens last
    (it used to open before the functions were loaded, and such a curl got 502)."""
    response = make_run.first_registration

    assert response.status == 201, response.data
    assert json.loads(response.data)["full_name"] == GUEST["full_name"]


def test_make_run_writes_where_it_runs_for_the_other_commands(make_run: MakeRun) -> None:
    """The state file names this process, its URLs, key, AWS endpoint and the functions' environment."""
    state = make_run.state()

    assert state.pid == make_run.process.pid
    assert state.api_url == make_run.url
    assert state.webhook_url == f"{make_run.url}/api/v1/waha/webhook"
    assert state.api_key == "make-run-test-key"
    assert state.simulator is True
    assert state.function_environment["TABLE_NAME"].startswith("concierge-")
    assert stat.S_IMODE(make_run.state_file.stat().st_mode) == 0o600


def test_make_demo_finds_the_ports_make_run_was_started_with(make_run: MakeRun) -> None:
    """`make demo` without any port settings (here: wrong ones) reaches the running stack through its state file,
    and tells the guide's tests and a whole stay: three lines and one reply; the AI concierge answering a question
    from the sample hotel's file, routing a towel request to housekeeping and leaving a question the file cannot
    answer to staff; a staff reply READ that closes the request, a check-out; then a guest with a UK number
    answered in English, and her photo copied, linked in the history and served."""
    make_run.state()

    demo = make_run.run("devstack.demo", API_PORT="1", WAHA_SIM_PORT="1", API_KEY="wrong-key")

    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "Both manual tests passed" in demo.stdout
    assert "The guest wrote 3 lines; the bot replied once." in demo.stdout
    # The AI concierge: the file's answer, housekeeping's request on the waiting list, the rest left to staff.
    assert 'routed {"to": "answer", "engine": "builtin", "faqs": ["wifi"]}' in demo.stdout
    assert "Guest Wi-Fi: CENDANA-GUEST, password: cendana2026." in demo.stdout
    assert "The file's answer to 'wifi', word for word, went out on WhatsApp." in demo.stdout
    assert 'request: {"department": "housekeeping", "text": "Could I get two more towels please?"' in demo.stdout
    halal = demo.stdout.partition("'Is there a halal restaurant nearby?' -> HTTP 200")[2]
    assert halal.startswith('\n     the history\'s line: routed {"to": "staff"'), demo.stdout
    assert "the bot's reply: none\n" in halal and "The conversation waits for staff." in halal
    assert "The staff reply answered the request for housekeeping too (request: null)." in demo.stdout
    assert "history: READ (read_at " in demo.stdout
    assert '"is_active": false' in demo.stdout
    assert "-> HTTP 201, language 'en'" in demo.stdout
    # Her welcome and her auto-reply, each stored and sent in English.
    assert len(re.findall(r"System (?:SENT|DELIVERED|READ), language 'en':", demo.stdout)) == 2, demo.stdout
    size = re.search(r"media: mimetype image/jpeg, filename shower.jpg, size (\d+) bytes", demo.stdout)
    assert size is not None, demo.stdout
    assert "(presigned, valid 900 s)" in demo.stdout
    assert f"GET <url> -> HTTP 200, {size[1]} bytes (image/jpeg)" in demo.stdout
    assert "her farewell went out in English" in demo.stdout
    assert "a towel request sent to housekeeping, a question the file\ncannot answer left to staff" in demo.stdout
    assert "an English-speaking guest answered in English, and her photo kept and linked" in demo.stdout


def test_invoke_feeds_a_sample_event_to_the_running_stack(make_run: MakeRun) -> None:
    """`python -m devstack.invoke RegisterGuestFunction events/register_guest.json` runs the function against the
    running stack's table: the guide's guest, registered through the API already, is found again (same user)."""
    registered = json.loads(make_run.first_registration.data)
    make_run.state()

    invoked = make_run.run("devstack.invoke", "RegisterGuestFunction", "events/register_guest.json")

    assert invoked.returncode == 0, invoked.stderr
    result = json.loads(invoked.stdout)
    assert result["statusCode"] in (200, 201)
    assert json.loads(result["body"])["user_id"] == registered["user_id"]


@pytest.mark.parametrize(
    ("method", "path", "body", "key"),
    [
        ("POST", "/api/v1/guests/register", b"\xff\xfe\x00{", True),
        ("POST", "/api/v1/waha/webhook", b'{"event": "message", "payload": {"body": "\xc3\x28"}}', False),
        ("GET", "/api/v1/guests/%ff%fe/messages", None, True),
        ("GET", "/api/v1/guests/00000000-0000-4000-8000-000000000000/messages?limit=%C2%B2&cursor=%ff", None, True),
        ("GET", "/api/v1/guests/00000000-0000-4000-8000-000000000000/messages?limit=%C2%B2", None, True),
        ("POST", "/api/v1/guests/register", b"{}", False),
        ("PATCH", "/api/v1/guests/register", b"{}", True),
    ],
    ids=[
        "register-not-utf8",
        "webhook-not-utf8",
        "path-not-utf8",
        "query-not-utf8",
        "superscript-limit",
        "no-key",
        "unknown-method",
    ],
)
def test_what_a_client_sends_gets_a_4xx_in_our_format_never_a_5xx(
    make_run: MakeRun, method: str, path: str, body: bytes | None, key: bool
) -> None:
    """Through the whole local stack, with the real functions: bytes that are not UTF-8, odd paths and query
    strings, a missing key or an unknown method are answered 4xx with {"error", "message", "details"}."""
    headers = {"Content-Type": "application/json", **({"x-api-key": "make-run-test-key"} if key else {})}

    response = make_run.http.request(method, f"{make_run.url}{path}", body=body, headers=headers)

    assert 400 <= response.status < 500, (response.status, response.data)
    assert our_error(response)["error"]


def test_stopping_make_run_removes_its_state_file(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) or SIGTERM stops the stack and removes the state file, so no command finds a stale one."""
    running = MakeRun(tmp_path / "state.json")
    try:
        running.state()
    finally:
        returncode = running.stop()

    assert returncode == 0
    assert not running.state_file.exists()


def test_a_state_file_left_by_a_killed_run_is_ignored(tmp_path: Path) -> None:
    """A run killed with SIGKILL leaves its file behind; its process is gone, so the file means no stack."""
    path = tmp_path / "state.json"
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = int(finished.stdout)
    state = run_state.RunState(
        pid=gone,
        api_url="http://127.0.0.1:1",
        webhook_url="",
        waha_url="",
        simulator=True,
        aws_endpoint="",
        aws_region="us-east-1",
        api_key="k",
    )
    run_state.write(state, path)
    assert run_state.read(path) is None

    run_state.write(replace(state, pid=os.getpid()), path)
    assert run_state.read(path) == replace(state, pid=os.getpid())
    run_state.remove(gone, path)
    assert path.exists()
    run_state.remove(os.getpid(), path)
    assert not path.exists()


def test_invoke_without_make_run_uses_a_stack_of_its_own(tmp_path: Path) -> None:
    """Without a running `make run`, devstack.invoke starts a stack for the call: the sample registration is a 201,
    the sample history of an unknown guest a 404, and the result alone is on standard output."""
    environment = {
        **os.environ,
        run_state.STATE_FILE_VARIABLE: str(tmp_path / "none.json"),
        **dict.fromkeys(UNSET_LOCALLY, ""),
    }

    invoked = subprocess.run(
        [sys.executable, "-m", "devstack.invoke", "RegisterGuestFunction", "-"],
        input=(REPO_ROOT / "events" / "register_guest.json").read_text(),
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert invoked.returncode == 0, invoked.stderr
    assert json.loads(invoked.stdout)["statusCode"] == 201
    assert "stack of its own" in invoked.stderr


def test_invoke_names_the_template_functions_when_given_another(tmp_path: Path) -> None:
    """A name that is not a logical id of the template is a usage error listing the ones there are."""
    from devstack import invoke

    assert invoke.main(["NoSuchFunction", "events/register_guest.json"]) == 2
    assert invoke.main(["RegisterGuestFunction", str(tmp_path / "missing.json")]) == 2


def test_every_function_has_a_sample_event_that_runs_in_the_local_stack() -> None:
    """events/<folder>.json exists for every function of the template, and each runs through its function in the
    local stack as devstack.invoke runs it: no exception, no 5xx; the guide's registration is a 201 and the
    sample webhook (sent after it, from the guide's guest) is stored."""
    specs = functions()
    samples = {logical_id: REPO_ROOT / "events" / f"{spec.code_dir.name}.json" for logical_id, spec in specs.items()}
    assert all(path.is_file() for path in samples.values()), samples
    # Registration first, so that the webhook's guest exists.
    order = sorted(specs, key=lambda logical_id: logical_id != "RegisterGuestFunction")

    results = {}
    with LocalStack(StackConfig(api_port=0, moto_port=0, waha_sim_port=0)) as stack:
        for logical_id in order:
            results[logical_id] = stack.invoke(logical_id, json.loads(samples[logical_id].read_text()))

    for logical_id, result in results.items():
        if isinstance(result, dict) and "statusCode" in result:
            assert result["statusCode"] < 500, (logical_id, result)
    assert results["RegisterGuestFunction"]["statusCode"] == 201
    assert json.loads(results["WahaWebhookFunction"]["body"])["outcome"] == "stored"
