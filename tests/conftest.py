"""Fixtures shared by every test: moto's AWS built from template.yaml, the WAHA simulator, the handlers."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

# Set before any handler module is imported, as Lambda sets its environment before a cold start.
for name, value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_SERVICE_NAME": "concierge",
    "POWERTOOLS_METRICS_NAMESPACE": "Concierge",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_DEV": "false",
    "DEFAULT_PHONE_REGION": "ID",
    "WAHA_SESSION": "default",
    "WAHA_API_PATH": "/api/sendText",
    "OUTBOUND_MAX_RECEIVE_COUNT": "5",
    # No typing pauses or send slots unless a test opts in (tests/unit/test_pacing.py): the suite stays fast, and
    # the local stacks that tests start take these through to the sender too.
    "TYPING_SECONDS_MAX": "0",
    "MIN_SECONDS_BETWEEN_MESSAGES_PER_CHAT": "0",
    "MAX_MESSAGES_PER_MINUTE": "0",
}.items():
    os.environ[name] = value
os.environ.pop("AWS_ENDPOINT_URL", None)
for secret in ("WAHA_API_KEY", "WAHA_WEBHOOK_HMAC_KEY", "WAHA_API_KEY_PARAM", "WAHA_WEBHOOK_HMAC_KEY_PARAM"):
    os.environ.pop(secret, None)

from moto import mock_aws  # noqa: E402

from concierge import aws_clients, config  # noqa: E402
from concierge.sending import waha  # noqa: E402
from devstack.functions import load_handler  # noqa: E402
from devstack.lambda_context import LambdaContext  # noqa: E402
from devstack.resources import LocalResources, create_resources  # noqa: E402
from devstack.template import functions  # noqa: E402
from devstack.waha_sim import WahaSimulator  # noqa: E402

Handler = Callable[[dict[str, Any], Any], Any]


def forget_cached_clients() -> None:
    """Clients and settings are cached per container; each test is a fresh container."""
    aws_clients.reset()
    config.settings.cache_clear()
    config.conversation_settings.cache_clear()
    config.pacing_settings.cache_clear()
    waha.client.cache_clear()


@pytest.fixture(scope="session")
def waha_server() -> Iterator[WahaSimulator]:
    with WahaSimulator(slow_seconds=1.0) as simulator:
        yield simulator


@pytest.fixture
def waha_sim(waha_server: WahaSimulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[WahaSimulator]:
    """The WAHA simulator, healthy and empty, as the functions' WAHA_HOST."""
    waha_server.clear()
    waha_server.set_fault("ok")
    waha_server.fail_ratio(0)
    waha_server.set_not_on_whatsapp(())
    waha_server.set_check_exists("answer")
    waha_server.set_courtesy_fault("ok")
    monkeypatch.setenv("WAHA_HOST", waha_server.url)
    yield waha_server
    waha_server.set_fault("ok")
    waha_server.fail_ratio(0)


@pytest.fixture
def aws(waha_sim: WahaSimulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalResources]:
    """A fresh moto backend holding the table and queues of template.yaml."""
    with mock_aws():
        resources = create_resources()
        monkeypatch.setenv("TABLE_NAME", resources.table_name)
        monkeypatch.setenv("OUTBOUND_QUEUE_URL", resources.outbound_queue_url)
        monkeypatch.setenv("OUTBOUND_DEAD_LETTER_QUEUE_URL", resources.dead_letter_queue_url)
        monkeypatch.setenv("MEDIA_QUEUE_URL", resources.queue_urls["MediaQueue"])
        monkeypatch.setenv("MEDIA_BUCKET", resources.bucket_names["MediaBucket"])
        forget_cached_clients()
        yield resources
    forget_cached_clients()


@pytest.fixture(scope="session")
def handlers() -> dict[str, Handler]:
    return {logical_id: load_handler(spec) for logical_id, spec in functions().items()}


def lambda_context(function_name: str = "test-function", timeout_seconds: float = 10) -> LambdaContext:
    return LambdaContext(function_name=function_name, memory_limit_in_mb=256, timeout_seconds=timeout_seconds)


@pytest.fixture
def concierge(
    aws: LocalResources, handlers: dict[str, Handler], waha_sim: WahaSimulator, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """The system as the functions see it: handlers, moto's table and queues, WAHA simulator."""
    from tests.driver import Concierge

    # Failed sends come back at once instead of after the production back-off.
    monkeypatch.setenv("OUTBOUND_RETRY_BASE_SECONDS", "0")
    forget_cached_clients()
    return Concierge(handlers, aws, waha_sim)


@pytest.fixture
def shared_table(waha_sim: WahaSimulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalResources]:
    """One table for many threads: moto's server in a thread, with DynamoDB's atomicity (devstack.moto_dynamodb)."""
    import uuid

    from moto.server import ThreadedMotoServer

    from devstack import moto_dynamodb

    moto_dynamodb.install()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
    forget_cached_clients()
    resources = create_resources(prefix=f"race-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("TABLE_NAME", resources.table_name)
    monkeypatch.setenv("OUTBOUND_QUEUE_URL", resources.outbound_queue_url)
    forget_cached_clients()
    yield resources
    forget_cached_clients()
    server.stop()
