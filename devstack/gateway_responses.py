"""API Gateway's own answers (a missing API key, an unknown route, throttling, a failed integration), shaped by
the API's `GatewayResponses` in template.yaml, so that the local API answers with the very bodies the deployed
one does.

API Gateway picks a response by type: the type's own gateway response if the API defines one, else DEFAULT_4XX or
DEFAULT_5XX by status, else its built-in `{"message": ...}`. Templates may use `$context.error.message`,
`$context.error.messageString` (the message as a quoted JSON string) and `$context.error.responseType`; headers may
be static values ('quoted'). Anything else is refused when the template is read, so the two cannot drift apart.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

JSON = "application/json"

# Each type the local API produces, with API Gateway's default status and message for it.
INVALID_API_KEY = "INVALID_API_KEY"
MISSING_AUTHENTICATION_TOKEN = "MISSING_AUTHENTICATION_TOKEN"  # noqa: S105 (a response type, not a secret)
THROTTLED = "THROTTLED"
REQUEST_TOO_LARGE = "REQUEST_TOO_LARGE"
# A Lambda authorizer that raised "Unauthorized", one whose policy does not allow the method, one that failed.
UNAUTHORIZED = "UNAUTHORIZED"
ACCESS_DENIED = "ACCESS_DENIED"
AUTHORIZER_FAILURE = "AUTHORIZER_FAILURE"
# A function that raised, timed out, returned a malformed proxy response or is not loaded: no type of its own.
INTEGRATION_ERROR = "DEFAULT_5XX"
BAD_REQUEST = "DEFAULT_4XX"

BUILT_IN: dict[str, tuple[int, str]] = {
    INVALID_API_KEY: (403, "Forbidden"),
    MISSING_AUTHENTICATION_TOKEN: (403, "Missing Authentication Token"),
    THROTTLED: (429, "Too Many Requests"),
    REQUEST_TOO_LARGE: (413, "Request Too Long"),
    UNAUTHORIZED: (401, "Unauthorized"),
    ACCESS_DENIED: (403, "User is not authorized to access this resource"),
    AUTHORIZER_FAILURE: (500, "AuthorizerConfigurationException"),
    INTEGRATION_ERROR: (502, "Internal server error"),
    BAD_REQUEST: (400, "Bad Request"),
}

_VARIABLE = re.compile(r"\$(?:context\.error\.(messageString|message|responseType)\b)?")
_STATIC_HEADER = re.compile(r"^'(.*)'$", re.DOTALL)


class UnsupportedGatewayResponse(ValueError):
    """A gateway response in the template uses something the local API cannot reproduce."""


@dataclass(frozen=True)
class GatewayAnswer:
    status: int
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class _Configured:
    status: int | None
    template: str | None
    headers: dict[str, str]


def _render(template: str, response_type: str, message: str) -> str:
    def substitute(match: re.Match[str]) -> str:
        variable = match.group(1)
        if variable == "messageString":
            return json.dumps(message)
        if variable == "message":
            return message
        if variable == "responseType":
            return response_type
        raise UnsupportedGatewayResponse(
            f"template {template!r} uses a variable the local API does not know (at {match.group(0)!r}…)"
        )

    return _VARIABLE.sub(substitute, template)


def _configured(response_type: str, response: Mapping[str, Any]) -> _Configured:
    status = response.get("StatusCode")
    templates = response.get("ResponseTemplates") or {}
    if templates and JSON not in templates:
        raise UnsupportedGatewayResponse(f"{response_type}: the local API answers with the {JSON} template only")
    headers = {}
    for name, value in (response.get("ResponseParameters") or {}).get("Headers", {}).items():
        static = _STATIC_HEADER.match(str(value))
        if static is None:
            raise UnsupportedGatewayResponse(f"{response_type}: header {name} is not a static 'value'")
        headers[name] = static.group(1)
    configured = _Configured(int(status) if status is not None else None, templates.get(JSON), headers)
    if configured.template is not None:
        # Checked once, here: a template the local API cannot render fails the stack's start, not a request.
        _render(configured.template, response_type, "message")
    return configured


class GatewayResponses:
    """The gateway responses of one API (its `GatewayResponses` property), ready to answer with."""

    def __init__(self, responses: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self._responses = {name: _configured(name, response) for name, response in (responses or {}).items()}

    @classmethod
    def of_api(cls, api_properties: Mapping[str, Any]) -> GatewayResponses:
        return cls(api_properties.get("GatewayResponses"))

    def answer(self, response_type: str, message: str | None = None, status: int | None = None) -> GatewayAnswer:
        """What API Gateway sends for a response of this type; message and status default to API Gateway's own."""
        default_status, default_message = BUILT_IN.get(response_type, (status or 500, "Internal server error"))
        status = status or default_status
        message = message or default_message
        fallback = "DEFAULT_4XX" if status < 500 else "DEFAULT_5XX"
        configured = self._responses.get(response_type) or self._responses.get(fallback)
        if configured is None:
            return GatewayAnswer(status, json.dumps({"message": message}).encode(), {"Content-Type": JSON})
        body = (
            _render(configured.template, response_type, message)
            if configured.template is not None
            else json.dumps({"message": message})
        )
        headers = {"Content-Type": JSON, **configured.headers}
        return GatewayAnswer(configured.status or status, body.encode(), headers)
