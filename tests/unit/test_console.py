"""The reception console's function: its fixed set of files, its settings, and nothing else."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from devstack.functions import load_handler
from devstack.template import REPO_ROOT, functions
from tests.conftest import lambda_context

STATIC = REPO_ROOT / "functions" / "console" / "static"


@pytest.fixture
def console(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("STAFF_CLIENT_ID", "client-123")
    monkeypatch.setenv("AWS_REGION", "ap-southeast-3")
    monkeypatch.delenv("STAFF_SIGN_IN_URL", raising=False)
    handler = load_handler(functions()["ConsoleFunction"])

    def get(path: str) -> dict[str, Any]:
        resource = "/console" if path in ("/console", "/console/") else "/console/{proxy+}"
        proxy = path.removeprefix("/console/") if resource != "/console" else None
        event = {
            "resource": resource,
            "path": path,
            "httpMethod": "GET",
            "headers": {},
            "pathParameters": {"proxy": proxy} if proxy is not None else None,
        }
        return dict(handler(event, lambda_context("ConsoleFunction")))

    return get


def test_the_page_its_styles_and_script_are_served_with_their_types(console: Any) -> None:
    page = console("/console/")

    assert page["statusCode"] == 200
    assert page["headers"]["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in page["headers"]["Content-Security-Policy"]
    assert page["body"] == (STATIC / "index.html").read_text()
    assert console("/console/console.js")["headers"]["Content-Type"].startswith("text/javascript")
    assert console("/console/console.css")["headers"]["Content-Type"].startswith("text/css")


def test_console_without_its_slash_goes_to_the_page_relative_to_the_stage(console: Any) -> None:
    answer = console("/console")

    assert (answer["statusCode"], answer["headers"]["Location"]) == (301, "console/")


def test_the_settings_name_the_app_client_and_the_regions_sign_in_endpoint(console: Any) -> None:
    answer = console("/console/config.json")

    assert json.loads(answer["body"]) == {
        "clientId": "client-123",
        "signInUrl": "https://cognito-idp.ap-southeast-3.amazonaws.com/",
        "refreshSeconds": 5,
    }
    assert "https://cognito-idp.ap-southeast-3.amazonaws.com/" in answer["headers"]["Content-Security-Policy"]


@pytest.mark.parametrize("path", ["/console/app.py", "/console/../app.py", "/console/static/index.html", "/console/x"])
def test_nothing_else_is_served(console: Any, path: str) -> None:
    answer = console(path)

    assert answer["statusCode"] == 404
    assert json.loads(answer["body"])["error"] == "not_found"


def test_the_page_loads_nothing_from_elsewhere() -> None:
    """No CDN: every script, style and image the page names is its own (relative)."""
    page = (STATIC / "index.html").read_text()
    references = re.findall(r'(?:src|href)="([^"]+)"', page)

    assert references and all("//" not in reference and not reference.startswith("/") for reference in references)
