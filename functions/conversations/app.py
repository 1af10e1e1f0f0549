"""The hotel's conversation routes: open conversations, staff replies, handing back to the bot, check-out."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

from concierge import api, aws_clients, init_phase, store
from concierge.conversations import inbox, staff

logger = Logger()
app = api.create_resolver()
# Made during init rather than by the first request (and held by a SnapStart snapshot).
aws_clients.dynamodb()
aws_clients.sqs()

UNKNOWN_SESSION = "no session has this session_id"


def _web_address(url: str) -> str:
    # WAHA fetches the file itself: only an absolute http(s) address with a host means anything to it.
    try:
        parts = urlsplit(url)
    except ValueError as error:
        raise ValueError("not a URL") from error
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http or https URL")
    if any(character.isspace() or ord(character) < 32 for character in url):
        raise ValueError("must not contain spaces or control characters")
    return url


class StaffMedia(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, StringConstraints(min_length=1, max_length=2048), AfterValidator(_web_address)]
    # type/subtype, as WAHA's RemoteFile.mimetype: sendImage for image/*, sendFile for anything else.
    mimetype: Annotated[
        str, StringConstraints(strip_whitespace=True, max_length=255, pattern=r"^[A-Za-z0-9!#$&^_.+-]+/[^\s/]+$")
    ]
    filename: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)] | None = None


class StaffMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The message, or a photo's or file's caption (then optional; WhatsApp shows at most 1,024 characters).
    text: Annotated[str, StringConstraints(min_length=1, max_length=staff.MAX_STAFF_TEXT_CHARACTERS)] | None = None
    author: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] = (
        staff.DEFAULT_AUTHOR
    )
    media: StaffMedia | None = None


def _text_error(message: str) -> api.ApiError:
    return api.ApiError(422, "validation_error", "invalid fields: text", [{"field": "text", "message": message}])


def _text(request: StaffMessage) -> str:
    """The message's text, or the photo's or file's caption ("" for none)."""
    text = request.text or ""
    if request.media is None:
        if not text.strip():
            raise _text_error("empty" if request.text is not None else "required unless media is given")
        return text
    if len(text) > staff.MAX_CAPTION_CHARACTERS:
        raise _text_error(f"a caption has at most {staff.MAX_CAPTION_CHARACTERS} characters")
    return text if text.strip() else ""


@app.get("/api/v1/sessions")
def sessions() -> api.Response:
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
def staff_message(session_id: str) -> api.Response:
    request = api.parse(StaffMessage, api.json_object(app))
    text = _text(request)
    api.uuid_parameter(session_id, UNKNOWN_SESSION)
    media = request.media.model_dump(exclude_none=True) if request.media else None
    # A signed-in staff member writes under their own name, whatever the body says; the API key's caller names one.
    author = api.staff_author(app) or request.author
    try:
        message = staff.reply(session_id, text, author, media)
    except staff.UnknownSession as error:
        raise api.ApiError(404, "not_found", UNKNOWN_SESSION) from error
    except staff.ClosedSession as error:
        raise api.ApiError(409, "session_closed", "this session has ended; staff cannot write in it") from error
    return api.json_response(202, message)


@app.post("/api/v1/sessions/<session_id>/resolve")
def resolve(session_id: str) -> api.Response:
    api.uuid_parameter(session_id, UNKNOWN_SESSION)
    try:
        return api.json_response(200, staff.resolve(session_id))
    except staff.UnknownSession as error:
        raise api.ApiError(404, "not_found", UNKNOWN_SESSION) from error
    except staff.ClosedSession as error:
        raise api.ApiError(409, "session_closed", "this session has ended") from error


@app.post("/api/v1/guests/<user_id>/checkout")
def checkout(user_id: str) -> api.Response:
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


# The last line of the function's init (concierge.init_phase).
init_phase.end()
