"""POST /api/v1/waha/webhook: WAHA's events; a guest's message is stored and answered."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from concierge import api, conversation, secrets, signature
from concierge.webhook_events import Ignored, WahaEvent, classify

logger = Logger()
app = api.create_resolver()

HMAC_KEY = "WAHA_WEBHOOK_HMAC_KEY"
PROCESSED = {"status": "success", "message": "Webhook received and processed successfully"}


def _verify_signature(body: bytes) -> None:
    if not secrets.is_configured(HMAC_KEY):
        return
    key = secrets.secret(HMAC_KEY)
    if not key or not signature.is_valid(body, app.current_event.headers or {}, key):
        raise api.ApiError(401, "unauthorized", "missing or invalid X-Webhook-Hmac signature")


@app.post("/api/v1/waha/webhook")
def webhook() -> Response:
    body = api.raw_body(app)
    _verify_signature(body)
    event = api.parse(WahaEvent, api.json_object(app, body), status=400)
    try:
        message = classify(event)
    except ValidationError as error:
        details = api.field_errors(error)
        raise api.ApiError(400, "validation_error", "malformed message payload", details) from error
    if isinstance(message, Ignored):
        logger.info("webhook event ignored", extra={"event": event.event, "reason": message.reason})
        return api.json_response(200, {**PROCESSED, "outcome": "ignored"})
    outcome = conversation.receive(message)
    return api.json_response(200, {**PROCESSED, "outcome": outcome.value})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
