"""Emulates Lambda's SQS event source mapping: polls a queue, invokes the handler, deletes what succeeded.

Failed records are simply not deleted. SQS makes them visible again after the queue's visibility timeout and,
after the RedrivePolicy's maxReceiveCount receives, moves them to the dead-letter queue itself (moto's server
does this on receive, as SQS does), so retries and dead-lettering behave as deployed without code here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import boto3

from devstack.functions import Handler, invoke
from devstack.lambda_context import LambdaContext
from devstack.template import FunctionSpec

LOG = logging.getLogger(__name__)

# ReceiveMessage's own ceiling; Lambda gathers bigger batches over its batching window, which is not emulated.
_MAX_MESSAGES_PER_RECEIVE = 10
# Short long-polls keep stop() prompt while not spinning on an empty queue.
_WAIT_TIME_SECONDS = 1
_PAUSE_SECONDS = 1.0
_DEFAULT_MEMORY_MB = 128


@dataclass(frozen=True)
class SqsEventSource:
    """One `Type: SQS` event of a function, as the template declares it."""

    function_id: str
    queue_logical_id: str
    batch_size: int
    report_batch_item_failures: bool


def _queue_logical_id(queue: Any) -> str:
    if isinstance(queue, Mapping) and "Fn::GetAtt" in queue:
        logical_id, attribute = queue["Fn::GetAtt"]
        if attribute == "Arn":
            return logical_id
    raise ValueError(f"SQS event Queue must be !GetAtt <Queue>.Arn, got {queue!r}")


def sqs_event_sources(function_specs: Mapping[str, FunctionSpec] | Iterable[FunctionSpec]) -> list[SqsEventSource]:
    """Every `Type: SQS` event of the given functions."""
    specs = function_specs.values() if isinstance(function_specs, Mapping) else function_specs
    sources = []
    for spec in specs:
        for event in spec.events.values():
            if event.get("Type") != "SQS":
                continue
            properties = event["Properties"]
            sources.append(
                SqsEventSource(
                    function_id=spec.logical_id,
                    queue_logical_id=_queue_logical_id(properties["Queue"]),
                    # Lambda's default batch size for SQS.
                    batch_size=int(properties.get("BatchSize", 10)),
                    report_batch_item_failures="ReportBatchItemFailures" in properties.get("FunctionResponseTypes", []),
                )
            )
    return sources


def _region_of(queue_arn: str) -> str:
    # arn:aws:sqs:<region>:<account>:<name>
    return queue_arn.split(":")[3]


def _lambda_message_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    # Lambda re-spells ReceiveMessage's attribute shape in camel case and always lists both list fields.
    converted = {}
    for name, attribute in attributes.items():
        value: dict[str, Any] = {
            "stringListValues": attribute.get("StringListValues", []),
            "binaryListValues": attribute.get("BinaryListValues", []),
            "dataType": attribute["DataType"],
        }
        if "StringValue" in attribute:
            value["stringValue"] = attribute["StringValue"]
        if "BinaryValue" in attribute:
            value["binaryValue"] = attribute["BinaryValue"]
        converted[name] = value
    return converted


def sqs_record(message: Mapping[str, Any], queue_arn: str) -> dict[str, Any]:
    """One record of Lambda's SQS event (the shape of `sam local generate-event sqs receive-message`)."""
    attributes = message.get("Attributes", {})
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {
            key: attributes[key]
            for key in (
                "ApproximateReceiveCount",
                "SentTimestamp",
                "SenderId",
                "ApproximateFirstReceiveTimestamp",
                "SequenceNumber",
                "MessageGroupId",
                "MessageDeduplicationId",
                "AWSTraceHeader",
            )
            if key in attributes
        },
        "messageAttributes": _lambda_message_attributes(message.get("MessageAttributes", {})),
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": _region_of(queue_arn),
    }


def _failed_message_ids(result: Any, message_ids: set[str]) -> set[str] | None:
    """The ids to keep per a ReportBatchItemFailures response, or None when Lambda treats the whole batch as failed.

    Lambda reads an empty or null response, or an empty or null batchItemFailures, as complete success; and a
    response it cannot read, or an itemIdentifier that is empty, null or not in the batch, as complete failure."""
    if result is None or result == {}:
        return set()
    if not isinstance(result, dict):
        return None
    failures = result.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return None
    failed = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in message_ids:
            return None
        failed.add(identifier)
    return failed


class QueuePoller:
    """Polls one queue in a background thread and hands batches to one handler, as Lambda's SQS trigger does."""

    def __init__(
        self,
        handler: Handler,
        queue_url: str,
        queue_arn: str,
        batch_size: int,
        timeout_seconds: int,
        function_name: str,
        sqs_client: Any = None,
        *,
        report_batch_item_failures: bool = True,
        memory_size: int = _DEFAULT_MEMORY_MB,
        wait_time_seconds: int = _WAIT_TIME_SECONDS,
    ) -> None:
        self._wait_time_seconds = wait_time_seconds
        self._handler = handler
        self._queue_url = queue_url
        self._queue_arn = queue_arn
        self._batch_size = max(1, min(batch_size, _MAX_MESSAGES_PER_RECEIVE))
        self._timeout_seconds = timeout_seconds
        self._function_name = function_name
        self._sqs = sqs_client or boto3.client("sqs", region_name=_region_of(queue_arn))
        self._report_batch_item_failures = report_batch_item_failures
        self._memory_size = memory_size
        # 0 suits mock_aws in one thread, where a long poll would only wait out its full time.
        self._wait_time_seconds = wait_time_seconds
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self) -> int:
        """One receive and, if anything came, one invoke plus deletes; returns how many records were handed over."""
        messages = self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=self._batch_size,
            WaitTimeSeconds=self._wait_time_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        records = [sqs_record(message, self._queue_arn) for message in messages]
        context = LambdaContext(
            function_name=self._function_name,
            memory_limit_in_mb=self._memory_size,
            timeout_seconds=self._timeout_seconds,
            region=_region_of(self._queue_arn),
        )
        try:
            result = invoke(self._handler, {"Records": records}, context)
        except Exception:
            # A failed invoke deletes nothing: the whole batch comes back after the visibility timeout.
            LOG.exception("%s failed on a batch of %d; it will be redelivered", self._function_name, len(records))
            return len(records)
        self._delete_succeeded(records, result)
        return len(records)

    def _delete_succeeded(self, records: list[dict[str, Any]], result: Any) -> None:
        failed: set[str] | None = set()
        if self._report_batch_item_failures:
            failed = _failed_message_ids(result, {record["messageId"] for record in records})
            if failed is None:
                LOG.error("%s returned an unusable batch response %r; retrying the batch", self._function_name, result)
                return
        succeeded = [record for record in records if record["messageId"] not in failed]
        if failed:
            LOG.info("%s reported %d of %d records failed", self._function_name, len(failed), len(records))
        if not succeeded:
            return
        response = self._sqs.delete_message_batch(
            QueueUrl=self._queue_url,
            Entries=[
                {"Id": str(index), "ReceiptHandle": record["receiptHandle"]} for index, record in enumerate(succeeded)
            ],
        )
        for failure in response.get("Failed", []):
            LOG.warning("Could not delete a processed message (it will be redelivered): %s", failure)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                if not self.poll_once() and self._wait_time_seconds == 0:
                    # Without a long poll an empty queue would be polled in a tight loop.
                    self._stopping.wait(_PAUSE_SECONDS)
            except Exception:
                # The queue may be briefly unreachable (e.g. moto stopping first); keep polling until stopped.
                LOG.exception("Polling %s failed", self._queue_url)
                self._stopping.wait(_PAUSE_SECONDS)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("QueuePoller is already started")
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=f"sqs-poller-{self._function_name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Returns once the current receive (at most ~1 s) and any running invoke have finished."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> QueuePoller:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
