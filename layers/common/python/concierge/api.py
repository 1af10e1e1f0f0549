"""What every HTTP function shares: the resolver, reading a JSON body, and one mapping of errors to answers."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types

if TYPE_CHECKING:
    # Imported where used: a function without a request model (the history) then never loads pydantic.
    from pydantic import BaseModel, ValidationError

logger = Logger(child=True)

Model = TypeVar("Model", bound="BaseModel")


class ApiError(Exception):
    """A client error, answered as JSON: {"error": code, "message": ..., "details": [...]}."""

    def __init__(self, status: int, code: str, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []


def json_response(status: int, body: dict[str, Any]) -> Response:
    return Response(
        status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps(body, ensure_ascii=False)
    )


def field_errors(error: ValidationError) -> list[dict[str, Any]]:
    details = []
    for problem in error.errors(include_url=False, include_input=False):
        location = ".".join(str(part) for part in problem["loc"]) or "body"
        details.append({"field": location, "message": problem["msg"], "type": problem["type"]})
    return details


def create_resolver() -> APIGatewayRestResolver:
    app = APIGatewayRestResolver()

    @app.exception_handler(ApiError)
    def _client_error(error: ApiError) -> Response:
        return json_response(error.status, {"error": error.code, "message": error.message, "details": error.details})

    @app.not_found
    def _not_found(_: Exception) -> Response:
        return json_response(404, {"error": "not_found", "message": "no such route", "details": []})

    return app


def raw_body(app: APIGatewayRestResolver) -> bytes:
    """The request body exactly as sent (API Gateway may hand it over base64-encoded)."""
    event = app.current_event
    if event.body is None:
        return b""
    if event.is_base64_encoded:
        try:
            return base64.b64decode(event.body, validate=True)
        except binascii.Error as error:
            raise ApiError(400, "bad_request", "body is not valid base64") from error
    return event.body.encode()


def header(app: APIGatewayRestResolver, name: str) -> str | None:
    lowered = name.lower()
    for key, value in (app.current_event.headers or {}).items():
        if key.lower() == lowered:
            return value
    return None


def staff_author(app: APIGatewayRestResolver) -> str | None:
    """The signed-in staff member's name as the authorizer (concierge.staff_auth) passed it on; None for a caller
    with the API key. Here rather than there: reading it must not load the token library."""
    context = (app.current_event.raw_event.get("requestContext") or {}).get("authorizer") or {}
    if context.get("via") != "staff":
        return None
    author = context.get("author")
    return str(author) if author else None


def json_object(app: APIGatewayRestResolver, body: bytes | None = None) -> dict[str, Any]:
    """The body as a JSON object; 415 for another content type, 400 for anything that is not a JSON object."""
    content_type = (header(app, "content-type") or "").split(";")[0].strip().lower()
    if content_type and content_type != "application/json" and not content_type.endswith("+json"):
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    data = raw_body(app) if body is None else body
    if not data.strip():
        raise ApiError(400, "bad_request", "request body is empty; send a JSON object")
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise ApiError(400, "bad_request", "request body is not valid JSON") from error
    except RecursionError as error:
        raise ApiError(400, "bad_request", "request body is nested too deeply") from error
    if not isinstance(value, dict):
        raise ApiError(400, "bad_request", "request body must be a JSON object")
    return value


def parse(model: type[Model], data: dict[str, Any], status: int = 422) -> Model:
    """Validates a JSON object against a model; what is wrong becomes a `status` answer naming each field."""
    from pydantic import ValidationError

    try:
        return model.model_validate(data)
    except ValidationError as error:
        details = field_errors(error)
        fields = ", ".join(sorted({detail["field"] for detail in details}))
        raise ApiError(status, "validation_error", f"invalid fields: {fields}", details) from error


DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100


def page_size(raw: str | None) -> int:
    """A `limit` query parameter: 1 to 100, 50 when absent; anything else is a 400."""
    if raw is None:
        return DEFAULT_PAGE_SIZE
    # ASCII digits only: str.isdigit() also passes "²" and other digits that int() refuses or reads
    # differently. The length bound keeps int() away from its limit on very long digit strings.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 10) or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise ApiError(
            400, "bad_request", f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}", [{"field": "limit"}]
        )
    return int(raw)


def uuid_parameter(value: str, not_found: str) -> str:
    """A path id that must be one of our UUIDs; anything else cannot name a stored item, so it is a 404."""
    try:
        uuid.UUID(value)
    except ValueError as error:
        raise ApiError(404, "not_found", not_found) from error
    return value
