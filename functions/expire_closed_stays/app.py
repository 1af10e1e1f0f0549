"""Scheduled: stamps the retention expiry on the messages, check-in and session of every stay that closed."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from concierge import aws_clients, init_phase
from concierge.guests import retention

logger = Logger()
# Made during init rather than by the first run (and held by a SnapStart snapshot).
aws_clients.dynamodb()


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return retention.stamp_closed_sessions(context.get_remaining_time_in_millis).as_dict()


# The last line of the function's init (concierge.init_phase).
init_phase.end()
