"""SQS consumer: copies guests' photos and files from WAHA into the media bucket, and hands their replies on."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from concierge import aws_clients, init_phase, secrets
from concierge.sending.media import Batch

logger = Logger()
# A batch that fails whole is still answered record by record, so each record keeps its own retry delay.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
# Made during init rather than by the first batch (and held by a SnapStart snapshot).
aws_clients.dynamodb()
aws_clients.sqs()
aws_clients.s3()
secrets.prepare("WAHA_API_KEY")


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    batch = Batch(event.get("Records", []), context.get_remaining_time_in_millis)

    def copy(record: SQSRecord) -> str:
        return batch.copy(record.raw_event)

    return process_partial_response(event=event, record_handler=copy, processor=processor, context=context)


# The last line of the function's init (concierge.init_phase).
init_phase.end()
