"""The one WAHA client: sendText, sendImage and sendFile, a chat's recent messages, @lid lookups, a guest's
media files, and acting like a person (check-exists, sendSeen, startTyping, stopTyping), over urllib3.

One connection pool per container. WAHA's API key is not part of the cached client: it is read
per request through `secrets`, which keeps a key held in SSM for five minutes, so a rotated key
is in use within five minutes without the pool being rebuilt.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import quote, urlencode

import urllib3

from concierge import init_phase, secrets
from concierge.config import settings

CONNECT_TIMEOUT_SECONDS = 2.0
READ_TIMEOUT_SECONDS = 8.0
# How many of our own messages in a chat a look-up reads, oldest first from the message's creation.
RECENT_MESSAGES_LIMIT = 100
# Where WAHA serves the media files it downloaded (WAHA's `media.url`), and the characters its file names use.
FILES_PATH = "/api/files/"
_FILE_PATH = re.compile(r"^/api/files/(?!.*\.\.)[A-Za-z0-9@._~%+=/-]+$")
SEND_IMAGE_PATH = "/api/sendImage"
SEND_FILE_PATH = "/api/sendFile"
# Acting like a person (concierge.sending.pacing): read ticks, typing, and whether a number is on WhatsApp.
SEND_SEEN_PATH = "/api/sendSeen"
START_TYPING_PATH = "/api/startTyping"
STOP_TYPING_PATH = "/api/stopTyping"
CHECK_EXISTS_PATH = "/api/contacts/check-exists"


class WahaError(Exception):
    """WAHA did not accept the request: unreachable, too slow, or an error status.

    `maybe_delivered` is True when WAHA may have acted on the request although it did not say so: no
    answer came back (a read timeout, a connection dropped after the request left), or a 5xx, which
    WAHA (or a proxy's gateway timeout in front of it) can answer after the engine already sent.
    """

    def __init__(self, reason: str, status: int | None = None, *, maybe_delivered: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.maybe_delivered = maybe_delivered


class WahaFileGone(WahaError):
    """WAHA no longer has the file (404, 410): it deletes its copy after WHATSAPP_FILES_LIFETIME (180 s by default)."""


class WahaFileTooLarge(WahaError):
    """The file is larger than the caller is willing to keep."""


def is_waha_file(path: str) -> bool:
    """Whether a path names a file WAHA serves (`/api/files/...`), with nothing that could leave that folder."""
    return bool(_FILE_PATH.match(path))


@dataclass(frozen=True)
class WahaClient:
    base_url: str
    send_text_path: str
    session: str
    pool: urllib3.PoolManager
    timeout: urllib3.Timeout

    @property
    def worst_case_seconds(self) -> float:
        """The longest one request can take before it fails with a timeout."""
        return CONNECT_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS

    @staticmethod
    def _headers() -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        api_key = secrets.secret("WAHA_API_KEY")
        if api_key:
            headers["X-Api-Key"] = api_key
        return headers

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None, timeout: urllib3.Timeout | None = None
    ) -> tuple[int, Any]:
        try:
            response = self.pool.request(
                method,
                self.base_url + path,
                body=json.dumps(body).encode() if body is not None else None,
                headers=self._headers(),
                timeout=timeout or self.timeout,
                retries=False,  # SQS redelivery is the retry, with backoff and a dead-letter queue
            )
        except urllib3.exceptions.ConnectTimeoutError as error:
            # Also NewConnectionError (refused, unresolvable): the request never left.
            raise WahaError(f"WAHA unreachable ({type(error).__name__})") from error
        except urllib3.exceptions.TimeoutError as error:
            raise WahaError(f"WAHA did not answer in time ({type(error).__name__})", maybe_delivered=True) from error
        except urllib3.exceptions.HTTPError as error:
            # The connection broke after the request was written (or while writing it): WAHA may have acted.
            raise WahaError(f"WAHA unreachable ({type(error).__name__})", maybe_delivered=True) from error
        try:
            payload = json.loads(response.data) if response.data else None
        except ValueError:
            payload = None
        return response.status, payload

    def send_text(self, chat_id: str, text: str, message_id: str | None = None) -> str | None:
        """Sends one text; returns WAHA's message id when it gives one. `message_id` is our pre-generated id."""
        body: dict[str, Any] = {"chatId": chat_id, "text": text, "session": self.session}
        if message_id:
            body["id"] = message_id
        status, payload = self._request("POST", self.send_text_path, body)
        if not 200 <= status < 300:
            # A 4xx refused the request (bad body, key, session): nothing was sent.
            raise WahaError(f"WAHA answered {status}", status, maybe_delivered=status >= 500)
        return sent_message_id(payload)

    def send_media(self, chat_id: str, media: dict[str, Any], caption: str | None) -> str | None:
        """Sends a photo (sendImage, for image/*) or any other file (sendFile) that WAHA fetches from `media["url"]`;
        returns WAHA's message id when it gives one. These requests take no pre-generated id (WAHA's
        MessageImageRequest and MessageFileRequest have none)."""
        file: dict[str, Any] = {"url": media["url"], "mimetype": media["mimetype"]}
        if media.get("filename"):
            file["filename"] = media["filename"]
        body: dict[str, Any] = {"chatId": chat_id, "file": file, "session": self.session}
        if caption:
            body["caption"] = caption
        path = SEND_IMAGE_PATH if str(media["mimetype"]).lower().startswith("image/") else SEND_FILE_PATH
        status, payload = self._request("POST", path, body)
        if not 200 <= status < 300:
            raise WahaError(f"WAHA answered {status}", status, maybe_delivered=status >= 500)
        return sent_message_id(payload)

    def download_file(self, path: str, max_bytes: int) -> tuple[bytes, str | None]:
        """A media file WAHA holds (`path` is `/api/files/...`) and its content type, at most `max_bytes` long.

        Always fetched from WAHA_HOST with WAHA's key, whatever host WAHA wrote in its `media.url` (its own
        WAHA_BASE_URL, `http://localhost:3000` unless set): the key never goes anywhere else. Raises
        WahaFileGone (404, 410), WahaFileTooLarge, or WahaError (unreachable, another status).
        """
        if not is_waha_file(path):
            # The path itself is not repeated: WAHA's file names hold the guest's number.
            raise WahaFileGone("not a path WAHA serves files under")
        headers = self._headers()
        headers["Accept"] = "*/*"
        try:
            response = self.pool.request(
                "GET",
                self.base_url + path,
                headers=headers,
                timeout=self.timeout,
                retries=False,
                preload_content=False,
            )
        except urllib3.exceptions.HTTPError as error:
            raise WahaError(f"WAHA unreachable ({type(error).__name__})") from error
        try:
            if response.status in (404, 410):
                raise WahaFileGone(f"WAHA answered {response.status}", response.status)
            if response.status != 200:
                raise WahaError(f"WAHA answered {response.status} for a media file", response.status)
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise WahaFileTooLarge(f"the file is larger than {max_bytes} bytes")
            try:
                content = response.read(max_bytes + 1)
            except urllib3.exceptions.HTTPError as error:
                raise WahaError(f"WAHA's file download broke off ({type(error).__name__})") from error
            if len(content) > max_bytes:
                raise WahaFileTooLarge(f"the file is larger than {max_bytes} bytes")
            return content, response.headers.get("Content-Type")
        finally:
            response.release_conn()

    def find_sent(
        self, chat_id: str, message_id: str, since_epoch_seconds: int, *, media_caption: str | None = None
    ) -> str | None:
        """WAHA's id of the message we sent to `chat_id` with the pre-generated `message_id`, or None.

        Reads our own messages in the chat from `since_epoch_seconds` on, oldest first, without media
        (GET /api/{session}/chats/{chatId}/messages). Raises WahaError when WAHA cannot tell.
        `media_caption` (a photo or file, "" without a caption): sendImage and sendFile take no pre-generated
        id, so such a send is recognised by what it holds instead: the first of our media messages since
        then with that caption.
        """
        query = urlencode(
            {
                "limit": RECENT_MESSAGES_LIMIT,
                "downloadMedia": "false",
                "filter.fromMe": "true",
                "filter.timestamp.gte": since_epoch_seconds,
                "sortBy": "timestamp",
                "sortOrder": "asc",
            }
        )
        path = f"/api/{quote(self.session, safe='')}/chats/{quote(chat_id, safe='@')}/messages?{query}"
        status, payload = self._request("GET", path)
        if status != 200 or not isinstance(payload, list):
            raise WahaError(f"WAHA answered {status} to a look-up of the chat's messages", status)
        for message in payload:
            waha_id = sent_message_id(message)
            if waha_id is None:
                continue
            if media_caption is None and is_pre_generated(waha_id, message_id):
                return waha_id
            if media_caption is not None and _is_media_with_caption(message, media_caption):
                return waha_id
        return None

    def phone_chat_id_for_lid(self, lid: str) -> str | None:
        """WAHA's mapping of a hidden @lid sender to their phone chat id, if WAHA knows it."""
        status, payload = self._request("GET", f"/api/{quote(self.session)}/lids/{quote(lid)}")
        if status != 200 or not isinstance(payload, dict):
            return None
        chat = payload.get("pn")
        return chat if isinstance(chat, str) else None

    def number_exists(self, chat_id: str, timeout_seconds: float) -> bool | None:
        """Whether the chat's number is on WhatsApp (GET /api/contacts/check-exists); None when WAHA cannot tell
        (unreachable, an error, or an engine without the endpoint)."""
        phone = chat_id.split("@", 1)[0]
        query = urlencode({"phone": phone, "session": self.session})
        try:
            status, payload = self._request("GET", f"{CHECK_EXISTS_PATH}?{query}", timeout=_within(timeout_seconds))
        except WahaError:
            return None
        exists = payload.get("numberExists") if isinstance(payload, dict) else None
        return exists if status == 200 and isinstance(exists, bool) else None

    def send_seen(self, chat_id: str, message_id: str, timeout_seconds: float) -> None:
        """Marks a guest's message read (POST /api/sendSeen, its WAHA id). Raises WahaError when WAHA refuses."""
        body = {"chatId": chat_id, "messageIds": [message_id], "session": self.session}
        self._presence(SEND_SEEN_PATH, body, timeout_seconds)

    def typing(self, chat_id: str, typing: bool, timeout_seconds: float) -> None:
        """Shows or stops the typing indicator in a chat (POST /api/startTyping, /api/stopTyping)."""
        body = {"chatId": chat_id, "session": self.session}
        self._presence(START_TYPING_PATH if typing else STOP_TYPING_PATH, body, timeout_seconds)

    def _presence(self, path: str, body: dict[str, Any], timeout_seconds: float) -> None:
        status, _ = self._request("POST", path, body, timeout=_within(timeout_seconds))
        if not 200 <= status < 300:
            raise WahaError(f"WAHA answered {status}", status)


def _within(seconds: float) -> urllib3.Timeout:
    # One bound on the whole request, connecting included, never longer than an ordinary request may take.
    return urllib3.Timeout(total=max(min(seconds, CONNECT_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS), 0.01))


def _is_media_with_caption(message: dict[str, Any], caption: str) -> bool:
    return message.get("hasMedia") is True and (message.get("body") or "") == caption


def is_pre_generated(waha_id: str, message_id: str) -> bool:
    """WAHA's engines spell one message's id `true_<chat>_<ID>` (WEBJS) or the bare `<ID>` (NOWEB, GOWS)."""
    return waha_id == message_id or waha_id.endswith("_" + message_id)


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
        pool=urllib3.PoolManager(num_pools=2, maxsize=10),
        timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT_SECONDS, read=READ_TIMEOUT_SECONDS),
    )


# A container restored from a SnapStart snapshot opens its own connections to WAHA, not the snapshot's.
init_phase.after_restore(client.cache_clear)
