"""SQS consumer: answers guests' messages from the hotel's knowledge, routes requests, hands the rest to staff."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from concierge import aws_clients, init_phase
from concierge.answers.answering import Batch, prepare

logger = Logger()
metrics = Metrics()
# A batch that fails whole is still answered record by record, so each record keeps its own retry delay.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
OUTCOME_METRICS = {"answered": "QuestionsAnswered", "request": "RequestsRouted", "to_staff": "MessagesToStaff"}
# Made during init rather than by the first batch (and held by a SnapStart snapshot): the clients, the hotel's
# knowledge and the built-in engine's index.
aws_clients.dynamodb()
aws_clients.sqs()
prepare()


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    batch = Batch(event.get("Records", []))

    def answer(record: SQSRecord) -> str:
        outcome = batch.answer(record.raw_event)
        if outcome in OUTCOME_METRICS:
            metrics.add_metric(name=OUTCOME_METRICS[outcome], unit=MetricUnit.Count, value=1)
        return outcome

    return process_partial_response(event=event, record_handler=answer, processor=processor, context=context)


# The last line of the function's init (concierge.init_phase).
init_phase.end()
