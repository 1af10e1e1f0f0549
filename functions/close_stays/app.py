"""Scheduled: closes the stays whose close_at has passed (checkout date + grace, or the longest stay), no farewell."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from concierge import aws_clients, init_phase
from concierge.conversations import staff

logger = Logger()
# Made during init rather than by the first run (and held by a SnapStart snapshot).
aws_clients.dynamodb()


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    return {"closed": staff.close_due_sessions()}


# The last line of the function's init (concierge.init_phase).
init_phase.end()
