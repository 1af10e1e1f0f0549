"""What every HTTP function shares: routing API Gateway's events to a handler, reading a JSON body, and one mapping
of errors to answers.

The router is ours, on the event dict, rather than Powertools' APIGatewayRestResolver: importing that resolver loads
every resolver Powertools has (AppSync's with asyncio, Bedrock's, the OpenAPI machinery), about 26 ms of each cold
start, for path matching and a JSON answer. The OpenAPI document is built from the models by tools/openapi.py.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools import Logger

if TYPE_CHECKING:
    # Imported where used: a function without a request model (the history) then never loads pydantic.
    from pydantic import BaseModel, ValidationError

logger = Logger(child=True)

Model = TypeVar("Model", bound="BaseModel")
JSON = "application/json"


class ApiError(Exception):
    """A client error, answered as JSON: {"error": code, "message": ..., "details": [...]}."""

    def __init__(self, status: int, code: str, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []


@dataclass
class Response:
    """A route's answer; `proxy_result` is what API Gateway's Lambda proxy integration reads."""

    status_code: int
    body: str | None = None
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def proxy_result(self) -> dict[str, Any]:
        headers = {**self.headers, **({"Content-Type": self.content_type} if self.content_type else {})}
        return {"statusCode": self.status_code, "headers": headers, "body": self.body, "isBase64Encoded": False}


def json_response(status: int, body: dict[str, Any]) -> Response:
    return Response(status_code=status, content_type=JSON, body=json.dumps(body, ensure_ascii=False))


def error_response(error: ApiError) -> Response:
    return json_response(error.status, {"error": error.code, "message": error.message, "details": error.details})


def field_errors(error: ValidationError) -> list[dict[str, Any]]:
    details = []
    for problem in error.errors(include_url=False, include_input=False):
        location = ".".join(str(part) for part in problem["loc"]) or "body"
        details.append({"field": location, "message": problem["msg"], "type": problem["type"]})
    return details


class Request:
    """The API Gateway (REST API, proxy integration) event being answered."""

    def __init__(self, event: dict[str, Any]) -> None:
        self.raw_event = event

    @property
    def headers(self) -> dict[str, str]:
        return self.raw_event.get("headers") or {}

    @property
    def body(self) -> str | None:
        return self.raw_event.get("body")

    @property
    def is_base64_encoded(self) -> bool:
        return bool(self.raw_event.get("isBase64Encoded"))

    def get_query_string_value(self, name: str) -> str | None:
        return (self.raw_event.get("queryStringParameters") or {}).get(name)


Handler = Callable[..., Response]
# A path parameter: one segment, as API Gateway's {name} matches it.
_PARAMETER = re.compile(r"<(\w+)>")


class Router:
    """Routes by method and path (`<name>` a path segment handed to the handler by name, trailing slashes allowed);
    an ApiError becomes its JSON answer, an unknown route or method a 404. Other exceptions propagate: Lambda
    reports the invocation failed and API Gateway answers 502."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._request = Request({})

    @property
    def current_event(self) -> Request:
        return self._request

    def route(self, method: str, rule: str) -> Callable[[Handler], Handler]:
        pattern = re.compile("^" + _PARAMETER.sub(r"(?P<\1>[^/]+)", rule) + "/*$")

        def register(handler: Handler) -> Handler:
            self._routes.append((method, pattern, handler))
            return handler

        return register

    def get(self, rule: str) -> Callable[[Handler], Handler]:
        return self.route("GET", rule)

    def post(self, rule: str) -> Callable[[Handler], Handler]:
        return self.route("POST", rule)

    def delete(self, rule: str) -> Callable[[Handler], Handler]:
        return self.route("DELETE", rule)

    def resolve(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self._request = Request(event)
        method = str(event.get("httpMethod") or "").upper()
        path = str(event.get("path") or "")
        try:
            for route_method, pattern, handler in self._routes:
                match = pattern.match(path) if route_method == method else None
                if match:
                    return handler(**match.groupdict()).proxy_result()
            raise ApiError(404, "not_found", "no such route")
        except ApiError as error:
            return error_response(error).proxy_result()


def create_resolver() -> Router:
    return Router()


def raw_body(app: Router) -> bytes:
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


def header(app: Router, name: str) -> str | None:
    lowered = name.lower()
    for key, value in (app.current_event.headers or {}).items():
        if key.lower() == lowered:
            return value
    return None


def staff_author(app: Router) -> str | None:
    """The signed-in staff member's name as the authorizer (concierge.staff_auth) passed it on; None for a caller
    with the API key. Here rather than there: reading it must not load the token library."""
    context = (app.current_event.raw_event.get("requestContext") or {}).get("authorizer") or {}
    if context.get("via") != "staff":
        return None
    author = context.get("author")
    return str(author) if author else None


def json_object(app: Router, body: bytes | None = None) -> dict[str, Any]:
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
