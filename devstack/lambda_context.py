"""The context object Lambda hands to a handler, for handlers invoked in-process by the local stack."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

LOCAL_REGION = "us-east-1"
LOCAL_ACCOUNT_ID = "123456789012"


def _log_stream_name() -> str:
    # Same layout as Lambda's own streams, so log tooling that parses them keeps working.
    return f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"


@dataclass
class LambdaContext:
    """One invocation's context: a fresh request id and a deadline of start + the function's timeout."""

    function_name: str
    memory_limit_in_mb: int
    timeout_seconds: float
    region: str = LOCAL_REGION
    account_id: str = LOCAL_ACCOUNT_ID
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_stream_name: str = field(default_factory=_log_stream_name)
    # Present on the real object; nothing in this project sets them, but code may read them.
    identity: Any = None
    client_context: Any = None
    tenant_id: str | None = None
    # monotonic, so that a wall-clock change during a run cannot move the deadline.
    _deadline: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))

    def timed_out(self) -> bool:
        """True once the deadline has passed: real Lambda would have stopped the invocation by now."""
        return time.monotonic() >= self._deadline
