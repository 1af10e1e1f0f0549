"""GET /api/v1/guests/{user_id}/messages: a guest's conversation, oldest first, a page at a time."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from concierge import api, aws_clients, init_phase, store
from concierge.conversations import history

logger = Logger()
app = api.create_resolver()
# Made during init rather than by the first request (and held by a SnapStart snapshot); the S3 client only by a
# page that holds a stored file.
aws_clients.dynamodb()


@app.get("/api/v1/guests/<user_id>/messages")
def messages(user_id: str) -> api.Response:
    limit = api.page_size(app.current_event.get_query_string_value("limit"))
    cursor = app.current_event.get_query_string_value("cursor")
    unknown = "no guest has this user_id"
    api.uuid_parameter(user_id, unknown)
    try:
        page, next_cursor = history.page(user_id, limit, cursor)
    except history.UnknownUser as error:
        raise api.ApiError(404, "not_found", unknown) from error
    except store.InvalidCursor as error:
        raise api.ApiError(400, "bad_request", str(error), [{"field": "cursor"}]) from error
    return api.json_response(200, {"user_id": user_id, "messages": page, "next_cursor": next_cursor})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


# The last line of the function's init (concierge.init_phase).
init_phase.end()
