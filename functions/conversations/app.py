"""The hotel's conversation routes: open conversations, staff replies, handing back to the bot, check-out."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, StringConstraints

from concierge import api, inbox, staff, store

logger = Logger()
app = api.create_resolver()

UNKNOWN_SESSION = "no session has this session_id"


class StaffMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: Annotated[str, StringConstraints(min_length=1, max_length=staff.MAX_STAFF_TEXT_CHARACTERS)]
    author: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] = (
        staff.DEFAULT_AUTHOR
    )


@app.get("/api/v1/sessions")
def sessions() -> Response:
    status = app.current_event.get_query_string_value("status") or "open"
    if status not in inbox.STATUSES:
        raise api.ApiError(400, "bad_request", "status must be open or waiting", [{"field": "status"}])
    limit = api.page_size(app.current_event.get_query_string_value("limit"))
    cursor = app.current_event.get_query_string_value("cursor")
    try:
        page, next_cursor = inbox.page(status, limit, cursor)
    except store.InvalidCursor as error:
        raise api.ApiError(400, "bad_request", str(error), [{"field": "cursor"}]) from error
    return api.json_response(200, {"sessions": page, "next_cursor": next_cursor})


@app.post("/api/v1/sessions/<session_id>/messages")
def staff_message(session_id: str) -> Response:
    request = api.parse(StaffMessage, api.json_object(app))
    if not request.text.strip():
        raise api.ApiError(422, "validation_error", "invalid fields: text", [{"field": "text", "message": "empty"}])
    api.uuid_parameter(session_id, UNKNOWN_SESSION)
    try:
        message = staff.reply(session_id, request.text, request.author)
    except staff.UnknownSession as error:
        raise api.ApiError(404, "not_found", UNKNOWN_SESSION) from error
    except staff.ClosedSession as error:
        raise api.ApiError(409, "session_closed", "this session has ended; staff cannot write in it") from error
    return api.json_response(202, message)


@app.post("/api/v1/sessions/<session_id>/resolve")
def resolve(session_id: str) -> Response:
    api.uuid_parameter(session_id, UNKNOWN_SESSION)
    try:
        return api.json_response(200, staff.resolve(session_id))
    except staff.UnknownSession as error:
        raise api.ApiError(404, "not_found", UNKNOWN_SESSION) from error
    except staff.ClosedSession as error:
        raise api.ApiError(409, "session_closed", "this session has ended") from error


@app.post("/api/v1/guests/<user_id>/checkout")
def checkout(user_id: str) -> Response:
    unknown = "no guest has this user_id"
    api.uuid_parameter(user_id, unknown)
    try:
        return api.json_response(200, staff.checkout(user_id))
    except staff.UnknownGuest as error:
        raise api.ApiError(404, "not_found", unknown) from error
    except staff.ClosedSession as error:
        raise api.ApiError(409, "checkout_conflict", "the stay kept changing during check-out; retry") from error


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
