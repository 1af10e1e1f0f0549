"""POST /api/v1/guests/register: the hotel's system registers a checked-in guest."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from concierge import api, aws_clients, init_phase
from concierge.guests.registration import (
    IdempotencyKeyReused,
    RegistrationConflict,
    RegistrationRequest,
    register_guest,
)

logger = Logger()
app = api.create_resolver()
# Made during init rather than by the first request (and held by a SnapStart snapshot): the lookup read, the
# welcome's queueing and the transaction.
aws_clients.dynamodb()
aws_clients.sqs()

MAX_IDEMPOTENCY_KEY_LENGTH = 128


@app.post("/api/v1/guests/register")
def register() -> api.Response:
    body = api.json_object(app)
    request = api.parse(RegistrationRequest, body)
    warnings = [
        {"field": name, "message": "unknown field; ignored"} for name in RegistrationRequest.unknown_fields(body)
    ]
    idempotency_key = api.header(app, "Idempotency-Key")
    if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
        raise api.ApiError(400, "bad_request", f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters")
    try:
        registration = register_guest(request, idempotency_key)
    except IdempotencyKeyReused as error:
        raise api.ApiError(409, "idempotency_key_reused", str(error)) from error
    except RegistrationConflict as error:
        raise api.ApiError(409, "registration_conflict", str(error)) from error
    return api.json_response(201, {**registration.model_dump(), "warnings": warnings})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


# The last line of the function's init (concierge.init_phase).
init_phase.end()
