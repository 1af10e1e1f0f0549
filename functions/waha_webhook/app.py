"""POST /api/v1/waha/webhook: WAHA's events; a guest's message is stored and answered, the hotel's own
messages stored as staff's, delivery ticks recorded, a session's status kept."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from concierge import api, aws_clients, init_phase, secrets
from concierge.config import settings
from concierge.conversations import conversation, ticks
from concierge.sending import waha_sessions
from concierge.webhook import signature
from concierge.webhook.webhook_events import (
    ACK_EVENT,
    SESSION_STATUS_EVENT,
    HotelMessage,
    Ignored,
    Stale,
    WahaEvent,
    classify,
    classify_ack,
    screen,
    session_status,
)

logger = Logger()
app = api.create_resolver()
HMAC_KEY = "WAHA_WEBHOOK_HMAC_KEY"
# Made during init rather than by the first delivery (and held by a SnapStart snapshot): the HMAC key's read, the
# delivery's reads and transaction, the reply's queueing.
secrets.prepare(HMAC_KEY)
aws_clients.dynamodb()
aws_clients.sqs()
PROCESSED = {"status": "success", "message": "Webhook received and processed successfully"}


def _verify_signature(body: bytes) -> None:
    if not secrets.is_configured(HMAC_KEY):
        return
    key = secrets.secret(HMAC_KEY)
    if not key or not signature.is_valid(body, app.current_event.headers or {}, key):
        raise api.ApiError(401, "unauthorized", "missing or invalid X-Webhook-Hmac signature")


def _malformed(error: ValidationError) -> api.ApiError:
    return api.ApiError(400, "validation_error", "malformed event payload", api.field_errors(error))


def _answer(outcome: str, reason: str | None = None, status: str | None = None) -> api.Response:
    body: dict[str, Any] = {**PROCESSED, "outcome": outcome}
    if reason:
        body["reason"] = reason
    if status:
        body["status"] = status
    return api.json_response(200, body)


@app.post("/api/v1/waha/webhook")
def webhook() -> api.Response:
    body = api.raw_body(app)
    _verify_signature(body)
    event = api.parse(WahaEvent, api.json_object(app, body), status=400)
    config = settings()
    now_ms = time.time_ns() // 1_000_000
    refused = screen(event, config.waha_sessions, config.webhook_max_age_hours, now_ms)
    if refused is not None:
        outcome = "stale" if isinstance(refused, Stale) else "ignored"
        logger.warning(
            "webhook event refused", extra={"event": event.event, "outcome": outcome, "reason": refused.reason}
        )
        return _answer(outcome, refused.reason)
    if event.event == SESSION_STATUS_EVENT:
        try:
            status = session_status(event, now_ms)
        except ValidationError as error:
            raise _malformed(error) from error
        return _answer(waha_sessions.record(status).value)
    if event.event == ACK_EVENT:
        return _ack(event, now_ms)
    try:
        message = classify(event)
    except ValidationError as error:
        raise _malformed(error) from error
    if isinstance(message, Ignored):
        logger.info("webhook event ignored", extra={"event": event.event, "reason": message.reason})
        return _answer("ignored", message.reason)
    if isinstance(message, HotelMessage):
        hotel = conversation.record_from_hotel(message)
        return _answer(hotel.value, hotel.reason)
    outcome = conversation.receive(message)
    return _answer(outcome.value)


def _ack(event: WahaEvent, now_ms: int) -> api.Response:
    try:
        ack = classify_ack(event, now_ms)
    except ValidationError as error:
        raise _malformed(error) from error
    if isinstance(ack, Ignored):
        logger.info("webhook event ignored", extra={"event": event.event, "reason": ack.reason})
        return _answer("ignored", ack.reason)
    tick = ticks.record(ack)
    return _answer(tick.outcome.value, tick.reason, tick.status)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


# The last line of the function's init (concierge.init_phase).
init_phase.end()
