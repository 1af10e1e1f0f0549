"""The reception console's files (plain HTML, CSS and JavaScript, under static/) and its settings (config.json), and
the API's OpenAPI document (openapi.json, built from the models by tools/openapi.py)."""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
OPENAPI_ROUTE = "/api/v1/openapi.json"
# The only files served: a fixed list, so no request path ever reaches the file system.
FILES = {
    "": ("index.html", "text/html; charset=utf-8"),
    "index.html": ("index.html", "text/html; charset=utf-8"),
    "console.css": ("console.css", "text/css; charset=utf-8"),
    "console.js": ("console.js", "text/javascript; charset=utf-8"),
}
REFRESH_SECONDS = 5


def _sign_in_url() -> str:
    # Locally, moto's endpoint; deployed, the region's Cognito endpoint.
    return os.environ.get("STAFF_SIGN_IN_URL") or f"https://cognito-idp.{os.environ['AWS_REGION']}.amazonaws.com/"


def _security_headers() -> dict[str, str]:
    # Scripts and styles from this API only; the only other calls go to the pool's sign-in endpoint, and photos
    # come from the media bucket's presigned links.
    return {
        "Content-Security-Policy": (
            f"default-src 'self'; connect-src 'self' {_sign_in_url()}; img-src 'self' https: http: data:; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


@cache
def _file(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


@cache
def _openapi() -> str:
    return (HERE / "openapi.json").read_text(encoding="utf-8")


def _answer(status: int, body: str, content_type: str, **headers: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": content_type, **_security_headers(), **headers},
        "body": body,
        "isBase64Encoded": False,
    }


def _not_found() -> dict[str, Any]:
    body = json.dumps({"error": "not_found", "message": "no such route", "details": []})
    return _answer(404, body, "application/json")


def config() -> dict[str, Any]:
    return {
        "clientId": os.environ["STAFF_CLIENT_ID"],
        "signInUrl": _sign_in_url(),
        "refreshSeconds": REFRESH_SECONDS,
    }


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    path = str(event.get("path") or "")
    proxy = str((event.get("pathParameters") or {}).get("proxy") or "")
    if event.get("resource") == OPENAPI_ROUTE:
        return _answer(200, _openapi(), "application/json")
    if event.get("resource") == "/console" and not path.endswith("/"):
        # Relative, so that the stage prefix (/prod) is kept: the page's links are relative to /console/.
        return _answer(301, "", "text/plain; charset=utf-8", Location="console/")
    if proxy == "config.json":
        return _answer(200, json.dumps(config()), "application/json", **{"Cache-Control": "no-store"})
    if proxy not in FILES:
        return _not_found()
    name, content_type = FILES[proxy]
    return _answer(200, _file(name), content_type, **{"Cache-Control": "no-cache"})
