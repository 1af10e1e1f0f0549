"""The local stack's own parts: the API Gateway emulation, the SQS trigger emulation and the stack around them.

The handlers here are test doubles standing where the Lambda functions plug in; the real handlers are
exercised by the lead's end-to-end tests.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
import urllib3
from moto.server import ThreadedMotoServer

from devstack.api import LocalApi, api_routes
from devstack.lambda_context import LambdaContext
from devstack.resources import LocalResources
from devstack.sender import QueuePoller, sqs_event_sources
from devstack.stack import LocalStack, StackConfig, TemplateEnvironment
from devstack.template import functions, load_template

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


def start_api(handlers: dict[str, Callable[..., Any]], api_key: str | None = API_KEY) -> LocalApi:
    api = LocalApi(handlers, host="127.0.0.1", port=0, api_key=api_key)
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


def test_routes_come_from_the_template_api_events() -> None:
    """Every `Type: Api` event of template.yaml is a route, with its method, key requirement and stage."""
    routes = {(route.function_id, route.path, route.methods, route.api_key_required) for route in api_routes()}

    assert routes == {
        ("RegisterGuestFunction", "/api/v1/guests/register", ("POST",), True),
        ("GuestMessagesFunction", "/api/v1/guests/{user_id}/messages", ("GET",), True),
        ("WahaWebhookFunction", "/api/v1/waha/webhook", ("POST",), False),
    }
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
    """ApiKeyRequired routes answer 403 Forbidden, as API Gateway does, without invoking the function."""
    response = http.request("POST", f"{api.url}/api/v1/guests/register", body=b"{}", headers=headers)

    assert response.status == 403
    assert json.loads(response.data) == {"message": "Forbidden"}


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
    assert json.loads(response.data) == {"message": "Forbidden"}


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
    """API Gateway REST answers an unknown path, or a known path's unknown method, with 403."""
    response = http.request(method, f"{api.url}{path}", headers={"x-api-key": API_KEY})

    assert response.status == 403
    assert json.loads(response.data) == {"message": "Missing Authentication Token"}


def test_handler_exception_is_a_502(api: LocalApi, http: urllib3.PoolManager, caplog: pytest.LogCaptureFixture) -> None:
    """A raising handler becomes 502 Internal server error, and its traceback is logged."""
    response = http.request("POST", f"{api.url}/api/v1/waha/webhook", body=b"{}")

    assert response.status == 502
    assert json.loads(response.data) == {"message": "Internal server error"}
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
    """The SQS trigger of template.yaml: SendWhatsappFunction on OutboundQueue, batches of 10, partial failures."""
    (source,) = sqs_event_sources(functions())

    assert source.function_id == "SendWhatsappFunction"
    assert source.queue_logical_id == "OutboundQueue"
    assert source.batch_size == 10
    assert source.report_batch_item_failures is True


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
        },
        queue_arns={
            "OutboundQueue": "arn:aws:sqs:us-east-1:123456789012:concierge-OutboundQueue",
            "OutboundDeadLetterQueue": "arn:aws:sqs:us-east-1:123456789012:concierge-OutboundDeadLetterQueue",
        },
    )


def test_template_environment_resolves_against_local_resources_and_config() -> None:
    """Refs become local names and URLs or config values; SSM names and NoValue are left out."""
    resolver = TemplateEnvironment(
        template=load_template(),
        resources=fake_resources(),
        parameters={"WahaHost": "http://127.0.0.1:3000", "WahaSession": None, "DefaultPhoneRegion": "SG"},
        region=REGION,
        stack_name="concierge",
    )
    specs = functions()

    sender = resolver.variables(specs["SendWhatsappFunction"])
    webhook = resolver.variables(specs["WahaWebhookFunction"])

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
