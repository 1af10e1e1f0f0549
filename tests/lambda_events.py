"""Lambda events for tests, built from the sample events in events/ (shaped like `sam local generate-event`)."""

from __future__ import annotations

import base64
import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"


@cache
def _sample(name: str) -> dict[str, Any]:
    return json.loads((EVENTS_DIR / f"{name}.json").read_text())


def sample(name: str) -> dict[str, Any]:
    return copy.deepcopy(_sample(name))


def api_event(
    sample_name: str,
    body: Any = None,
    *,
    raw_body: str | bytes | None = None,
    headers: dict[str, str] | None = None,
    path: str | None = None,
    path_parameters: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    base64_body: bool = False,
) -> dict[str, Any]:
    """The sample API Gateway event of a route, with this request's body, headers and parameters."""
    event = sample(sample_name)
    text: str | bytes | None = raw_body if raw_body is not None else (json.dumps(body) if body is not None else None)
    if isinstance(text, bytes):
        event["body"], event["isBase64Encoded"] = base64.b64encode(text).decode(), True
    elif text is not None and base64_body:
        event["body"], event["isBase64Encoded"] = base64.b64encode(text.encode()).decode(), True
    else:
        event["body"], event["isBase64Encoded"] = text, False
    for name, value in (headers or {}).items():
        event["headers"][name] = value
        event["multiValueHeaders"][name] = [value]
    if path is not None:
        event["path"] = path
        event["requestContext"]["path"] = "/prod" + path
    if path_parameters is not None:
        event["pathParameters"] = path_parameters
    if query is not None:
        event["queryStringParameters"] = query or None
        event["multiValueQueryStringParameters"] = {name: [value] for name, value in query.items()} or None
    return event


def drop_header(event: dict[str, Any], name: str) -> dict[str, Any]:
    for collection in ("headers", "multiValueHeaders"):
        for key in [key for key in event[collection] if key.lower() == name.lower()]:
            del event[collection][key]
    return event


def response_json(response: dict[str, Any]) -> Any:
    return json.loads(response["body"]) if response.get("body") else None


def sqs_event(records: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """An SQS event holding messages as ReceiveMessage returned them (body, receipt handle, attributes)."""
    template = sample("send_whatsapp")["Records"][0]
    built = []
    for message in records:
        record = copy.deepcopy(template)
        record["messageId"] = message["MessageId"]
        record["receiptHandle"] = message["ReceiptHandle"]
        record["body"] = message["Body"]
        record["md5OfBody"] = message["MD5OfBody"]
        record["attributes"].update(message.get("Attributes", {}))
        record["eventSourceARN"] = queue_arn
        built.append(record)
    return {"Records": built}
