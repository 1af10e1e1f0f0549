"""DELETE /api/v1/guests/{user_id}: erases a guest's data (profile, phone lookup, stays, messages, and their
photos and files in the media bucket).

204 when the guest is erased, now or by an earlier request (a tombstone with counts only remembers it);
404 for an id no guest ever had, or one that is not a user id at all, as the history route answers.
"""

from __future__ import annotations

import uuid
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from concierge import api, aws_clients, init_phase
from concierge.guests import erasure

logger = Logger()
app = api.create_resolver()
# Made during init rather than by the first request (and held by a SnapStart snapshot).
aws_clients.dynamodb()
aws_clients.s3()


def _is_user_id(text: str) -> bool:
    # Only the form this API hands out: a lower-case hyphenated UUID (anything else names no partition).
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


@app.delete("/api/v1/guests/<user_id>")
def erase(user_id: str) -> api.Response:
    unknown = api.ApiError(404, "not_found", "no guest has this user_id")
    if not _is_user_id(user_id):
        raise unknown
    try:
        erasure.erase(user_id)
    except erasure.UnknownGuest as error:
        raise unknown from error
    except erasure.ErasureIncomplete as error:
        # Throttled part-way: what is erased stays erased, and repeating the request finishes the rest.
        logger.warning("erasure incomplete", extra={"user_id": user_id, "reason": str(error)})
        raise api.ApiError(503, "erasure_incomplete", "the erasure is not finished; repeat the request") from error
    return api.Response(status_code=204)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


# The last line of the function's init (concierge.init_phase).
init_phase.end()
