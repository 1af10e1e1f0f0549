"""Builds the API's OpenAPI document (functions/console/openapi.json) from the request models the functions
validate with and the answer models below, so that no function builds it on a cold start.

    .venv/bin/python -m tools.openapi           # writes the file
    .venv/bin/python -m tools.openapi --check   # fails when the file is not what the models give (make test runs it)

The routes come from template.yaml (every Api event), so a route added there and not described here fails.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = REPO_ROOT / "functions" / "console" / "openapi.json"
sys.path.insert(0, str(REPO_ROOT / "layers" / "common" / "python"))

from concierge.guests.registration import Registration, RegistrationRequest  # noqa: E402


def _staff_models() -> tuple[type[BaseModel], ...]:
    # The conversations function's own request model, loaded from its file as Lambda would.
    path = REPO_ROOT / "functions" / "conversations" / "app.py"
    spec = importlib.util.spec_from_file_location("openapi_conversations_app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered first, as an import would: its models' annotations are resolved through the module.
    sys.modules[spec.name] = module
    # Its init creates its AWS clients (nothing is called); they only need a region to be made, Lambda's always set.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    spec.loader.exec_module(module)
    return (module.StaffMessage,)


class Error(BaseModel):
    """Every error answer: ours and API Gateway's own (GatewayResponses)."""

    error: str = Field(examples=["validation_error"])
    message: str
    details: list[dict[str, Any]]


class RegistrationAnswer(Registration):
    warnings: list[str] = Field(default_factory=list, description="unknown fields, ignored")


class Media(BaseModel):
    model_config = ConfigDict(extra="allow")

    mimetype: str
    filename: str | None = None
    size: int | None = None
    url: str | None = Field(None, description="a presigned link to our copy, valid 15 minutes")
    error: str | None = None
    pending: bool | None = None


class Routed(BaseModel):
    to: Literal["answer", "request", "staff"]
    engine: str = Field(description="builtin or bedrock")
    faqs: list[str] | None = Field(None, description="the FAQ ids answered, from the hotel's knowledge file")
    department: str | None = None


class Message(BaseModel):
    id: str
    session_id: str
    role: Literal["User", "System", "Staff"]
    text: str
    created_at: str
    status: Literal["RECEIVED", "PENDING", "SENDING", "SENT", "DELIVERED", "READ", "FAILED"]
    language: str | None = None
    author: str | None = None
    error: str | None = None
    delivered_at: str | None = None
    read_at: str | None = None
    media: Media | None = None
    kind: str | None = Field(
        None, description="a bot reply's kind: welcome, auto_reply, out_of_hours, answer, request, farewell, ..."
    )
    faq_id: str | None = Field(None, description="an answer's FAQ in the hotel's knowledge file")
    department: str | None = Field(None, description="a request reply's department")
    routed: Routed | None = Field(None, description="a guest's message: where the answering function sent it")


class MessagesPage(BaseModel):
    user_id: str
    messages: list[Message]
    next_cursor: str | None


class LastMessage(BaseModel):
    text: str
    role: str
    created_at: str


class DepartmentRequest(BaseModel):
    department: str
    text: str = Field(description="the guest's message, its first 100 characters")
    at: str


class OpenSession(BaseModel):
    session_id: str
    user_id: str
    guest_name: str | None
    room_number: str | None
    phone: str | None = Field(description="the last four digits")
    last_message: LastMessage | None
    waiting_since: str | None
    handoff_until: str | None
    request: DepartmentRequest | None = Field(
        None, description="a request the bot routed to a department, until staff reply or resolve"
    )


class SessionsPage(BaseModel):
    sessions: list[OpenSession]
    next_cursor: str | None


class Resolved(BaseModel):
    session_id: str
    user_id: str
    handoff: bool


class SessionSummary(BaseModel):
    session_id: str
    user_id: str
    checkin_id: str | None
    is_active: bool
    start: str | None
    end: str | None
    duration: int | None


class WahaSessionState(BaseModel):
    session: str
    status: str | None
    status_at: str | None
    received_at: str | None


class QueueDepth(BaseModel):
    waiting: int
    in_flight: int
    delayed: int


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    waha_sessions: list[WahaSessionState]
    queues: dict[str, QueueDepth]


class WebhookAnswer(BaseModel):
    model_config = ConfigDict(extra="allow")

    outcome: Literal[
        "stored",
        "duplicate",
        "unknown_guest",
        "no_active_session",
        "updated",
        "unchanged",
        "ignored",
        "stale",
        "outdated",
    ]


class ConsoleConfig(BaseModel):
    clientId: str
    signInUrl: str
    refreshSeconds: int


KEY_OR_TOKEN: list[dict[str, list[str]]] = [{"ApiKey": []}, {"StaffToken": []}]
KEY_ONLY: list[dict[str, list[str]]] = [{"ApiKey": []}]
USER_ID = {"name": "user_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
SESSION_ID = {"name": "session_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
PAGE = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 50}},
    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
]


def _ref(model: type[BaseModel] | str) -> dict[str, str]:
    name = model if isinstance(model, str) else model.__name__
    return {"$ref": f"#/components/schemas/{name}"}


def _json(model: type[BaseModel] | str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(status): _json(Error, "error") for status in statuses}


def _operation(
    summary: str,
    answers: dict[str, Any],
    *,
    security: list[dict[str, list[str]]] | None = None,
    parameters: list[dict[str, Any]] | None = None,
    body: type[BaseModel] | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": answers}
    operation["security"] = security if security is not None else []
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    return operation


def paths(staff_message: type[BaseModel]) -> dict[str, dict[str, Any]]:
    key_errors = _errors(401, 403, 429)
    return {
        "/api/v1/guests/register": {
            "post": _operation(
                "Register a checked-in guest and queue the WhatsApp welcome",
                {"201": _json(RegistrationAnswer, "registered"), **_errors(400, 403, 409, 415, 422, 429)},
                security=KEY_ONLY,
                body=RegistrationRequest,
                parameters=[{"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}],
            )
        },
        "/api/v1/waha/webhook": {
            "post": _operation(
                "WAHA's events (signed with X-Webhook-Hmac)",
                {"200": _json(WebhookAnswer, "handled"), **_errors(400, 401, 415, 429)},
                body=None,
            )
        },
        "/api/v1/guests/{user_id}/messages": {
            "get": _operation(
                "A guest's conversation, oldest first",
                {"200": _json(MessagesPage, "a page"), **_errors(400, 404), **key_errors},
                security=KEY_OR_TOKEN,
                parameters=[USER_ID, *PAGE],
            )
        },
        "/api/v1/sessions": {
            "get": _operation(
                "Open conversations, most recent activity first",
                {"200": _json(SessionsPage, "a page"), **_errors(400), **key_errors},
                security=KEY_OR_TOKEN,
                parameters=[
                    {"name": "status", "in": "query", "schema": {"enum": ["open", "waiting"], "default": "open"}},
                    *PAGE,
                ],
            )
        },
        "/api/v1/sessions/{session_id}/messages": {
            "post": _operation(
                "A staff reply (text, or a photo or file); with a staff token the author is the signed-in person",
                {"202": _json(Message, "stored and queued"), **_errors(400, 404, 409, 415, 422), **key_errors},
                security=KEY_OR_TOKEN,
                parameters=[SESSION_ID],
                body=staff_message,
            )
        },
        "/api/v1/sessions/{session_id}/resolve": {
            "post": _operation(
                "Hand the conversation back to the bot",
                {"200": _json(Resolved, "resolved"), **_errors(404, 409), **key_errors},
                security=KEY_OR_TOKEN,
                parameters=[SESSION_ID],
            )
        },
        "/api/v1/guests/{user_id}/checkout": {
            "post": _operation(
                "Check the guest out: end the stay and queue the farewell",
                {"200": _json(SessionSummary, "the closed session"), **_errors(404, 409), **key_errors},
                security=KEY_OR_TOKEN,
                parameters=[USER_ID],
            )
        },
        "/api/v1/guests/{user_id}": {
            "delete": _operation(
                "Erase the guest and everything stored about them",
                {"204": {"description": "erased"}, **_errors(404, 503), **key_errors},
                security=KEY_OR_TOKEN,
                parameters=[USER_ID],
            )
        },
        "/api/v1/health": {
            "get": _operation(
                "WAHA sessions' last statuses and the queues' depths",
                {"200": _json(Health, "the report"), **key_errors},
                security=KEY_OR_TOKEN,
            )
        },
        "/api/v1/openapi.json": {
            "get": _operation("This document", {"200": {"description": "the OpenAPI document"}}),
        },
        "/console": {
            "get": _operation("The reception console (redirects to /console/)", {"301": {"description": "to the page"}})
        },
        "/console/{proxy+}": {
            "get": _operation(
                "The console's page, styles, script, and settings (config.json)",
                {"200": _json(ConsoleConfig, "a file, or for config.json the settings"), **_errors(404)},
                parameters=[{"name": "proxy+", "in": "path", "required": True, "schema": {"type": "string"}}],
            )
        },
    }


def build() -> dict[str, Any]:
    (staff_message,) = _staff_models()
    models: list[type[BaseModel]] = [
        Error,
        RegistrationRequest,
        RegistrationAnswer,
        staff_message,
        Media,
        Message,
        MessagesPage,
        LastMessage,
        OpenSession,
        SessionsPage,
        Resolved,
        SessionSummary,
        WahaSessionState,
        QueueDepth,
        Health,
        WebhookAnswer,
        ConsoleConfig,
    ]
    schemas: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Concierge API",
            "version": "1",
            "description": "A WhatsApp concierge for hotels. Errors are {error, message, details}.",
        },
        "paths": paths(staff_message),
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "ApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
                "StaffToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "a staff member's Cognito ID token (the console's sign-in)",
                },
            },
        },
    }


def rendered() -> str:
    return json.dumps(build(), indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = rendered()
    if "--check" in argv:
        if not DOCUMENT.is_file() or DOCUMENT.read_text(encoding="utf-8") != text:
            print(f"{DOCUMENT.relative_to(REPO_ROOT)} is out of date: run .venv/bin/python -m tools.openapi")
            return 1
        return 0
    DOCUMENT.write_text(text, encoding="utf-8")
    print(f"wrote {DOCUMENT.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
