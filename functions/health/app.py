"""GET /api/v1/health: each WAHA session's last status and the depths of the outbound and media queues and of
their dead-letter queues."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from concierge import api, aws_clients, health, init_phase

logger = Logger()
app = api.create_resolver()
# Made during init rather than by the first request (and held by a SnapStart snapshot).
aws_clients.dynamodb()
aws_clients.sqs()


@app.get("/api/v1/health")
def status() -> api.Response:
    return api.json_response(200, health.report())


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


# The last line of the function's init (concierge.init_phase).
init_phase.end()
