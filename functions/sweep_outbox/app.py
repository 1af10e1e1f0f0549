"""Scheduled: queues again the messages that were stored but never reached the outbound queue."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from concierge import aws_clients, init_phase
from concierge.sending import outbox

logger = Logger()
# Made during init rather than by the first run (and held by a SnapStart snapshot).
aws_clients.dynamodb()
aws_clients.sqs()


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    return {"requeued": outbox.sweep()}


# The last line of the function's init (concierge.init_phase).
init_phase.end()
