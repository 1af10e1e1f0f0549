"""The one WAHA client: sendText and @lid lookups over urllib3, one connection pool per container."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import quote

import urllib3

from concierge import secrets
from concierge.config import settings

CONNECT_TIMEOUT_SECONDS = 2.0
READ_TIMEOUT_SECONDS = 8.0


class WahaError(Exception):
    """WAHA did not accept the request: unreachable, too slow, or an error status."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class WahaClient:
    base_url: str
    send_text_path: str
    session: str
    api_key: str | None
    pool: urllib3.PoolManager
    timeout: urllib3.Timeout

    @property
    def worst_case_seconds(self) -> float:
        return CONNECT_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["X-Api-Key"] = self.api_key
        return headers

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        try:
            response = self.pool.request(
                method,
                self.base_url + path,
                body=json.dumps(body).encode() if body is not None else None,
                headers=self._headers(),
                timeout=self.timeout,
                retries=False,  # SQS redelivery is the retry, with backoff and a dead-letter queue
            )
        except urllib3.exceptions.TimeoutError as error:
            raise WahaError(f"WAHA did not answer in time ({type(error).__name__})") from error
        except urllib3.exceptions.HTTPError as error:
            raise WahaError(f"WAHA unreachable ({type(error).__name__})") from error
        try:
            payload = json.loads(response.data) if response.data else None
        except ValueError:
            payload = None
        return response.status, payload

    def send_text(self, chat_id: str, text: str, message_id: str | None = None) -> str | None:
        """Sends one text; returns WAHA's message id when it gives one. `message_id` makes retries idempotent."""
        body: dict[str, Any] = {"chatId": chat_id, "text": text, "session": self.session}
        if message_id:
            body["id"] = message_id
        status, payload = self._request("POST", self.send_text_path, body)
        if not 200 <= status < 300:
            raise WahaError(f"WAHA answered {status}", status)
        return sent_message_id(payload)

    def phone_chat_id_for_lid(self, lid: str) -> str | None:
        """WAHA's mapping of a hidden @lid sender to their phone chat id, if WAHA knows it."""
        status, payload = self._request("GET", f"/api/{quote(self.session)}/lids/{quote(lid)}")
        if status != 200 or not isinstance(payload, dict):
            return None
        chat = payload.get("pn")
        return chat if isinstance(chat, str) else None


def sent_message_id(payload: Any) -> str | None:
    """WAHA's engines answer in different shapes: WEBJS a WAMessage, NOWEB Baileys' WebMessageInfo."""
    if not isinstance(payload, dict):
        return None
    candidate = payload.get("id")
    if isinstance(candidate, dict):
        candidate = candidate.get("_serialized") or candidate.get("id")
    if candidate is None and isinstance(payload.get("key"), dict):
        candidate = payload["key"].get("id")
    return candidate if isinstance(candidate, str) else None


@cache
def client() -> WahaClient:
    config = settings()
    return WahaClient(
        base_url=config.waha_host,
        send_text_path=config.waha_api_path,
        session=config.waha_session,
        api_key=secrets.secret("WAHA_API_KEY"),
        pool=urllib3.PoolManager(num_pools=2, maxsize=10),
        timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT_SECONDS, read=READ_TIMEOUT_SECONDS),
    )
