"""Settings read once per container from the function's environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache


class MissingSetting(RuntimeError):
    """A required environment variable is not set: a deployment or local-stack mistake."""


def _required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise MissingSetting(f"environment variable {name} is not set")
    return value


@dataclass(frozen=True)
class Settings:
    table_name: str
    outbound_queue_url: str
    default_phone_region: str
    waha_host: str
    waha_api_path: str
    waha_session: str
    outbound_max_receive_count: int
    retry_base_seconds: int
    webhook_event_ttl_days: int = 7


@cache
def settings() -> Settings:
    return Settings(
        table_name=_required("TABLE_NAME"),
        outbound_queue_url=os.environ.get("OUTBOUND_QUEUE_URL", ""),
        default_phone_region=os.environ.get("DEFAULT_PHONE_REGION", "ID"),
        waha_host=os.environ.get("WAHA_HOST", "http://localhost:3000").rstrip("/"),
        waha_api_path=os.environ.get("WAHA_API_PATH", "/api/sendText"),
        waha_session=os.environ.get("WAHA_SESSION", "default"),
        outbound_max_receive_count=int(os.environ.get("OUTBOUND_MAX_RECEIVE_COUNT", "5")),
        retry_base_seconds=int(os.environ.get("OUTBOUND_RETRY_BASE_SECONDS", "10")),
    )
