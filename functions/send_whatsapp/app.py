"""SQS consumer: sends queued messages through WAHA, reporting failed records for retry."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from concierge import aws_clients, init_phase, secrets
from concierge.sending import pacing
from concierge.sending.delivery import Batch

logger = Logger()
metrics = Metrics()
# A batch that fails whole is still answered record by record, so each record keeps its own retry delay.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
# Made during init rather than by the first batch (and held by a SnapStart snapshot).
aws_clients.dynamodb()
aws_clients.sqs()
secrets.prepare("WAHA_API_KEY")
# Outcomes that neither sent a message nor skipped one that needed no sending, by their own metric
# ("dead_lettered": the last attempt failed and the message was moved to the dead-letter queue by the sender).
OUTCOME_METRICS = {
    "deferred": "MessagesDeferred",
    "not_on_whatsapp": "MessagesNotOnWhatsApp",
    "dead_lettered": "MessagesNotSent",
}


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Send slots are taken oldest message first; then the records go in the order of their slots.
    batch = Batch(pacing.ordered(event.get("Records", [])), context.get_remaining_time_in_millis)
    records = batch.send_order(event.get("Records", []))

    def deliver(record: SQSRecord) -> str:
        try:
            outcome = batch.deliver(record.raw_event)
        except Exception:
            metrics.add_metric(name="MessagesNotSent", unit=MetricUnit.Count, value=1)
            raise
        # "confirmed": an earlier send whose answer was lost, found in WAHA; it became SENT now as well.
        became_sent = outcome in ("sent", "confirmed")
        name = "MessagesSent" if became_sent else OUTCOME_METRICS.get(outcome, "MessagesSkipped")
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
        return outcome

    return process_partial_response(
        event={**event, "Records": records}, record_handler=deliver, processor=processor, context=context
    )


# The last line of the function's init (concierge.init_phase).
init_phase.end()
