"""The API's OpenAPI document: built from the models (tools/openapi.py), checked in, up to date, covering every
route of the template and every call the console makes, and served without a key."""

from __future__ import annotations

import json
import re

from devstack.api import api_routes
from devstack.functions import load_handler
from devstack.template import REPO_ROOT, functions
from tests.conftest import lambda_context
from tools import openapi

CONSOLE_JS = REPO_ROOT / "functions" / "console" / "static" / "console.js"


def document() -> dict:
    return json.loads(openapi.DOCUMENT.read_text(encoding="utf-8"))


def test_the_checked_in_document_is_what_the_models_give() -> None:
    """Change a model or a route and forget `python -m tools.openapi`: this fails."""
    assert openapi.DOCUMENT.read_text(encoding="utf-8") == openapi.rendered()
    assert openapi.main(["--check"]) == 0


def test_every_route_of_the_template_and_only_those_are_described_with_models() -> None:
    described = {(path, method.upper()) for path, operations in document()["paths"].items() for method in operations}
    routes = {(route.path, method) for route in api_routes() for method in route.methods}

    assert described == routes
    paths = document()["paths"]
    assert paths["/api/v1/guests/register"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RegistrationRequest"
    }
    schemas = document()["components"]["schemas"]
    assert {"full_name", "room_number", "checkin_date", "phone_number"} <= set(
        schemas["RegistrationRequest"]["required"]
    )
    assert set(schemas["StaffMessage"]["properties"]) == {"text", "author", "media"}


def _page_calls() -> set[tuple[str, str]]:
    """(method, path template) of every api(...) call in console.js, `${...}` segments read as {parameters}."""
    calls = set()
    for method, quoted in re.findall(
        r'api\("(GET|POST|DELETE|PUT|PATCH)",\s*(`[^`]*`|"[^"]*")', CONSOLE_JS.read_text()
    ):
        path = re.sub(r"\$\{[^}]*(user_id|session_id)[^}]*\}", r"{\1}", quoted[1:-1].split("?")[0])
        calls.add((method, "/" + path))
    return calls


def test_every_call_the_console_makes_is_in_the_document() -> None:
    calls = _page_calls()
    paths = document()["paths"]

    # Every call was read (none written in a shape the pattern misses).
    assert len(calls) == len(set(re.findall(r"\bapi\(\s*\"[A-Z]+\",[^;]*", CONSOLE_JS.read_text())))
    assert {path for _, path in calls} >= {"/api/v1/sessions", "/api/v1/sessions/{session_id}/messages"}
    for method, path in calls:
        assert method.lower() in paths.get(path, {}), (method, path)


def test_the_document_is_served_without_a_key(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("STAFF_CLIENT_ID", "client")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    handler = load_handler(functions()["ConsoleFunction"])
    event = {"resource": "/api/v1/openapi.json", "path": "/api/v1/openapi.json", "httpMethod": "GET", "headers": {}}

    answer = handler(event, lambda_context("ConsoleFunction"))

    assert answer["statusCode"] == 200
    assert json.loads(answer["body"]) == document()
