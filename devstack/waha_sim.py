"""A stand-in for WAHA (WhatsApp HTTP API) that keeps to WAHA's own contract, for the dev stack and tests.

It answers `POST /api/sendText`, `GET /api/{session}/chats/{chatId}/messages` and `GET /api/sessions/{session}`
the way WAHA 2026.7 documents them (the `MessageTextRequest` schema, `WAMessage` / `SessionInfo` shapes,
NestJS-style error bodies), and it posts inbound `message` webhooks signed and retried the way WAHA's webhook
sender does. Faults (unreachable, 500, slow, random failures) let tests drive the outbox through WAHA's real
failure modes.

What it accepted it acknowledges as WhatsApp would: a `message.ack` webhook with DEVICE (on the guest's phone)
after `ack_delivered_seconds`, then READ `ack_read_seconds` later, each carrying the id its sendText answered.
Either delay None leaves that ack out; both None (the default) sends no acks, for tests that count webhooks.
It also plays the hotel writing from its own phone: a `message.any` event with `fromMe` (deliver_hotel_message).

Acting like a person: `POST /api/sendSeen`, `/api/startTyping` and `/api/stopTyping` are validated against WAHA's
SendSeenRequest and ChatRequest, and `GET /api/contacts/check-exists` answers WANumberExistResult, `false` for the
numbers of `not_on_whatsapp` (set_not_on_whatsapp, `POST /api/sim/not-on-whatsapp`), or 404 / 500
(set_check_exists). Every call about a chat is logged as it arrives, with its time and answer's status
(`calls()`, and `GET /api/sim/messages`' "calls"), so a test can check the order and spacing of sends.

Guests' photos and files: deliver_inbound (and `POST /api/sim/inbound`) can carry a file, which it serves as WAHA
does at `GET /api/files/<name>` behind the X-Api-Key, and deletes `files_lifetime_seconds` later (WAHA's
WHATSAPP_FILES_LIFETIME, 180 s by default); the webhook names it in `media.url`, or says why there is none
(`media.error`, `url` null). `POST /api/sendImage` and `/api/sendFile` are validated against WAHA's
MessageImageRequest and MessageFileRequest and recorded like sendText (the caption as the text, the file beside it).

A sendText that repeats a pre-generated `id` is sent again by default: nothing in WAHA's documentation promises
to drop it, so the system under test must not rely on that. `repeated_ids="drop"` makes it answer the first
message instead, as WhatsApp keying messages by id would. Its own log masks phone numbers as the functions do.

The reference data it loads lives in `waha_spec/`, copied from WAHA's repositories, so that the
simulator and the real service cannot drift apart silently.
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import hashlib
import heapq
import hmac
import json
import logging
import mimetypes
import random
import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, quote, unquote, urlsplit

import urllib3
from jsonschema import Draft202012Validator

from concierge.phone import chat_id, mask, to_e164

logger = logging.getLogger(__name__)

SPEC_DIR = Path(__file__).parent / "waha_spec"
SEND_TEXT_SCHEMA_FILE = "sendText-request.schema.json"
OPENAPI_FILE = "openapi-excerpt.json"
MEDIA_EXAMPLE_FILE = "webhook-message-media.docs-example.json"
# WAHA's WHATSAPP_FILES_LIFETIME default: it deletes a downloaded file this long after it was received.
DEFAULT_FILES_LIFETIME_SECONDS = 180.0
FILES_PATH = "/api/files/"
# A tiny JPEG (1x1 pixel) for a guest's photo when a test gives no bytes of its own.
SAMPLE_JPEG = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300080606070605080707070909080a0c140d0c0b0b0c1912130f141d1a1f1e"
    "1d1a1c1c20242e2720222c231c1c2837292c30313434341f27393d38323c2e333432ffc0000b080001000101011100ffc4001f0000010501"
    "010101010100000000000000000102030405060708090a0bffc400b5100002010303020403050504040000017d0102030004110512213141"
    "0613516107227114328191a1082342b1c11552d1f02433627282090a161718191a25262728292a3435363738393a434445464748494a5354"
    "55565758595a636465666768696a737475767778797a838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9"
    "bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9faffda0008010100003f00fbfcffd9"
)
ENVELOPE_EXAMPLE_FILE = "webhook-envelope.docs-example.json"
HMAC_TEST_VECTOR_FILE = "webhook-hmac.test-vector.json"

# The OpenAPI excerpt in waha_spec/ describes this release; webhooks and the User-Agent carry it as WAHA does.
WAHA_VERSION = "2026.7.1"
ENGINE = "WEBJS"
TIER = "CORE"
DEFAULT_ME_ID = "6281100000000@c.us"
PUSH_NAME = "Hotel"
HMAC_ALGORITHM = "sha512"
# "sent500": sendText sends, then answers 500, as WAHA can when its engine fails after sending, or a proxy in
# front of it when its gateway timeout runs out.
FAULT_MODES = ("ok", "down", "error500", "slow", "sent500")
REPEATED_ID_MODES = ("accept", "drop")
# How GET /api/contacts/check-exists answers: as WAHA does, 404 as an engine without it, or 500.
CHECK_EXISTS_MODES = ("answer", "missing", "error500")
COURTESY_FAULT_MODES = ("ok", "error500", "slow")
SEND_SEEN_PATH = "/api/sendSeen"
CHECK_EXISTS_PATH = "/api/contacts/check-exists"
# The courtesy calls and their request schemas in WAHA's OpenAPI; and every POST the call log files by chatId.
_COURTESY_SCHEMAS = {
    SEND_SEEN_PATH: "SendSeenRequest",
    "/api/startTyping": "ChatRequest",
    "/api/stopTyping": "ChatRequest",
}
_CALLS_BY_CHAT = ("sendText", "sendImage", "sendFile", "sendSeen", "startTyping", "stopTyping")
# GET /api/{session}/chats/{chatId}/messages: the query parameters WAHA's OpenAPI lists, and their kinds.
_CHAT_MESSAGES_QUERY = {
    "limit": "number",
    "offset": "number",
    "filter.timestamp.lte": "number",
    "filter.timestamp.gte": "number",
    "downloadMedia": "boolean",
    "merge": "boolean",
    "filter.fromMe": "boolean",
    "sortBy": ("timestamp", "messageTimestamp"),
    "sortOrder": ("desc", "asc"),
    "filter.ack": ("ERROR", "PENDING", "SERVER", "DEVICE", "READ", "PLAYED"),
}
_CHAT_MESSAGES_PATH = re.compile(r"^/api/(?P<session>[^/]+)/chats/(?P<chat>[^/]+)/messages$")
# Runs of digits long enough to be a phone number (chat ids, paths); lids and ULIDs are not masked by accident
# because they are either not phone numbers or carry letters.
_PHONE_DIGITS = re.compile(r"\+?\d{7,}")

# WAMessageAck in WAHA: the number is what WhatsApp reports, the name is what WAHA adds next to it.
ACK_SERVER = 1
ACK_SERVER_NAME = "SERVER"
ACK_DEVICE = 2
ACK_READ = 3
ACK_NAMES = {-1: "ERROR", 0: "PENDING", 1: "SERVER", 2: "DEVICE", 3: "READ", 4: "PLAYED"}
ACK_EVENT = "message.ack"
# WAHA sends the account's own messages (fromMe) on this event only.
ALL_MESSAGES_EVENT = "message.any"

_MAX_RETRY_DELAY_SECONDS = 2.0
_SERVE_POLL_SECONDS = 0.05
# ULIDs (WAHA's event ids) are written in Crockford's base32; WAHA lower-cases them.
_CROCKFORD_BASE32 = "0123456789abcdefghjkmnpqrstvwxyz"


class WebhookNotConfiguredError(RuntimeError):
    """deliver_inbound was asked for, but the simulator has no webhook_url to post to."""


@dataclass(order=True)
class _DueAck:
    """An ack waiting for its time (time.monotonic()); the sequence keeps acks due at once in order."""

    due: float
    sequence: int
    message_id: str = field(compare=False)
    chat: str = field(compare=False)
    ack: int = field(compare=False)


@dataclass(frozen=True)
class _Reply:
    status: int
    body: Any  # a JSON object, or an array for list endpoints; bytes for a file (with its content type)
    content_type: str = "application/json; charset=utf-8"


@dataclass(frozen=True)
class _File:
    """A file WAHA downloaded for a guest's message, until it deletes it (time.monotonic())."""

    content: bytes
    mimetype: str
    expires: float


@dataclass(frozen=True)
class InboundMedia:
    """A guest's photo or file for deliver_inbound. `content` None: WAHA has no file to give, with `error`
    (its download from WhatsApp failed) or without (media.url null)."""

    mimetype: str = "image/jpeg"
    filename: str | None = None
    content: bytes | None = SAMPLE_JPEG
    error: str | None = None


# The router answers None when the simulated WAHA is unreachable: the handler then drops the connection.
# Its arguments: method, path, query string, X-Api-Key, body.
_Router = Callable[[str, str, str, str | None, bytes], _Reply | None]


def load_spec(name: str) -> Any:
    """One of the WAHA reference files shipped next to this module, parsed."""
    return json.loads((SPEC_DIR / name).read_text(encoding="utf-8"))


def webhook_hmac(key: str, raw_body: bytes) -> str:
    """The X-Webhook-Hmac value WAHA sends: hex HMAC-SHA512 of the exact body bytes."""
    return hmac.new(key.encode("utf-8"), raw_body, hashlib.sha512).hexdigest()


def new_event_id(now_ms: int | None = None) -> str:
    """A WAHA event id: 'evt_' and a lower-case ULID (48-bit ms time, 80 random bits)."""
    millis = int(time.time() * 1000) if now_ms is None else now_ms
    value = (millis & ((1 << 48) - 1)) << 80 | secrets.randbits(80)
    chars = [_CROCKFORD_BASE32[(value >> shift) & 0x1F] for shift in range(125, -1, -5)]
    return "evt_" + "".join(chars)


def masked(text: str) -> str:
    """Text for the simulator's log: every phone-number-like run of digits masked like phone.mask."""
    return _PHONE_DIGITS.sub(lambda match: mask(match.group()), text)


def _is_success(status: int) -> bool:
    # Like WAHA's sender (axios), any 2xx counts as delivered and anything else is retried.
    return 200 <= status < 300


def _error(status: int, error: str, message: str | list[str]) -> _Reply:
    # NestJS (which WAHA runs on) shapes every HTTP exception this way.
    return _Reply(status, {"statusCode": status, "message": message, "error": error})


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError("body must be valid JSON") from exc


def message_event(
    chat: str,
    text: str,
    *,
    message_id: str | None = None,
    event: str = "message",
    from_me: bool = False,
    me_id: str = DEFAULT_ME_ID,
    session: str = "default",
) -> dict[str, Any]:
    """A WAHA `message`/`message.any` webhook body for a text in a chat, as WAHA's docs shape it.

    `from_me` makes it the echo of a message the hotel's own account sent to `chat` (WAHA's message.any).
    The one builder of WAHA deliveries: the simulator posts these, and tests and benchmarks use it too.
    """
    now = time.time()
    sender, receiver = (me_id, chat) if from_me else (chat, me_id)
    payload = {
        "id": message_id or f"{str(from_me).lower()}_{chat}_{secrets.token_hex(16).upper()}",
        "timestamp": int(now),
        "from": sender,
        "fromMe": from_me,
        "source": "app",
        "to": receiver,
        "body": text,
        "hasMedia": False,
        "ack": ACK_SERVER,
        "ackName": ACK_SERVER_NAME,
        "vCards": [],
        "_data": {},
    }
    now_ms = int(now * 1000)
    # Filled from the docs' envelope so the keys and their order stay those WAHA documents.
    envelope = copy.deepcopy(_envelope_example())
    envelope.update(
        id=new_event_id(now_ms),
        timestamp=now_ms,
        event=event,
        session=session,
        metadata={},
        me={"id": me_id, "pushName": PUSH_NAME},
        payload=payload,
        environment=_environment(),
        engine=ENGINE,
    )
    return envelope


def ack_event(
    message_id: str,
    chat: str,
    ack: int,
    *,
    me_id: str = DEFAULT_ME_ID,
    session: str = "default",
) -> dict[str, Any]:
    """A WAHA `message.ack` webhook body for a message the hotel's account sent to `chat`.

    The payload is that of WAHA's docs example (webhook-message.ack.docs-example.json): `id` as the engine
    answered sendText, `from` the chat (WAHA reads a DM's chat from it), `fromMe`, `ack` and `ackName`; with
    `to` and `_data`, which WAHA's schema lists too. The envelope is message_event's.
    """
    now_ms = int(time.time() * 1000)
    envelope = copy.deepcopy(_envelope_example())
    envelope.update(
        id=new_event_id(now_ms),
        timestamp=now_ms,
        event=ACK_EVENT,
        session=session,
        metadata={},
        me={"id": me_id, "pushName": PUSH_NAME},
        payload={
            "id": message_id,
            "from": chat,
            "to": me_id,
            "participant": None,
            "fromMe": True,
            "ack": ack,
            "ackName": ACK_NAMES[ack],
            "_data": {},
        },
        environment=_environment(),
        engine=ENGINE,
    )
    return envelope


def _environment() -> dict[str, Any]:
    return {
        "version": WAHA_VERSION,
        "engine": ENGINE,
        "tier": TIER,
        "browser": "/usr/bin/chromium",
        "platform": "linux/x64",
        "worker": {"id": None},
    }


@functools.cache
def _envelope_example() -> dict[str, Any]:
    return load_spec(ENVELOPE_EXAMPLE_FILE)


@functools.cache
def _media_example() -> dict[str, Any]:
    # The keys (and their order) of WAHA's `media` in its docs' example.
    return {name: None for name in load_spec(MEDIA_EXAMPLE_FILE)["payload"]["media"]}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops SYNs when many senders connect at once, and each dropped
    # SYN costs the client a one-second retransmit: that would show up as fake WAHA latency in load tests.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], router: _Router) -> None:
        self.router = router
        # Keep-alive connections outlive shutdown(); they are tracked so stop() can really stop answering.
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            live = list(self._connections)
        for connection in live:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # the client closed it first

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (read timeout during "slow") is expected here, not worth a traceback on stderr.
        logger.debug("connection from %s ended with an error", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # Keep-alive, as WAHA behind Node does: throughput benchmarks would otherwise measure TCP handshakes.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without this, Nagle and delayed ACKs add ~40 ms per answer.
    disable_nagle_algorithm = True
    server_version = "WAHA-simulator"
    sys_version = ""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def _serve(self, method: str) -> None:
        # The body is read even when the answer ignores it, so the socket stays in step for the next request.
        raw = self._read_body()
        target = urlsplit(self.path)
        reply = self.server.router(method, target.path, target.query, self.headers.get("X-Api-Key"), raw)
        if reply is None:
            self.close_connection = True
            return
        if isinstance(reply.body, bytes):
            payload = reply.body
        else:
            payload = json.dumps(reply.body, ensure_ascii=False).encode("utf-8")
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            # The client left (timed out, or stop() closed the socket) before the answer was ready.
            self.close_connection = True

    def _read_body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        return self.rfile.read(length) if length > 0 else b""

    def log_message(self, template: str, *args: Any) -> None:
        # Request lines carry chat ids (GET /api/default/chats/<phone>@c.us/messages).
        logger.debug("%s - %s", self.address_string(), masked(template % args))


class WahaSimulator:
    """WAHA on a local port: validates sendText like WAHA, records what it 'sent', and posts inbound webhooks.

    `ack_delivered_seconds` / `ack_read_seconds`: the DEVICE ack of each accepted send that long after it, and
    the READ ack that long after the DEVICE one (after the send when DEVICE is off); None leaves that ack out.
    `own_ids`: give every sent message an id of its own instead of the pre-generated one it was asked to use,
    as WAHA's engines may; its answer, chat list and acks all carry that id.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str | None = None,
        webhook_url: str | None = None,
        webhook_hmac_key: str | None = None,
        session: str = "default",
        slow_seconds: float = 15.0,
        latency_seconds: float = 0.0,
        default_region: str = "ID",
        webhook_attempts: int = 15,
        webhook_retry_delay: float = 0.05,
        webhook_timeout: float = 10.0,
        me_id: str = DEFAULT_ME_ID,
        repeated_ids: str = "accept",
        ack_delivered_seconds: float | None = None,
        ack_read_seconds: float | None = None,
        own_ids: bool = False,
        files_lifetime_seconds: float = DEFAULT_FILES_LIFETIME_SECONDS,
        not_on_whatsapp: Iterable[str] = (),
    ) -> None:
        if webhook_attempts < 1:
            raise ValueError("webhook_attempts must be at least 1")
        if repeated_ids not in REPEATED_ID_MODES:
            raise ValueError(f"repeated_ids must be one of {', '.join(REPEATED_ID_MODES)}")
        _check_ack_delays(ack_delivered_seconds, ack_read_seconds)
        self._host = host
        self._requested_port = port
        self._api_key = api_key
        self._webhook_url = webhook_url
        self._webhook_hmac_key = webhook_hmac_key
        self._session = session
        self._slow_seconds = slow_seconds
        self._latency_seconds = latency_seconds
        self._default_region = default_region
        self._webhook_attempts = webhook_attempts
        self._webhook_retry_delay = webhook_retry_delay
        self._webhook_timeout = urllib3.Timeout(connect=min(webhook_timeout, 5.0), read=webhook_timeout)
        self._me_id = me_id

        self._validator = Draft202012Validator(load_spec(SEND_TEXT_SCHEMA_FILE)["MessageTextRequest"])
        self._media_validators = {path: _request_validator(schema) for path, schema in _MEDIA_SENDS.items()}
        self._courtesy_validators = {path: _request_validator(schema) for path, schema in _COURTESY_SCHEMAS.items()}
        self._files: dict[str, _File] = {}
        if _bad_delay(files_lifetime_seconds):
            raise ValueError("files_lifetime_seconds must be a number of seconds, not negative")
        self._files_lifetime_seconds = files_lifetime_seconds
        self._http = urllib3.PoolManager(headers={"User-Agent": f"WAHA/{WAHA_VERSION}"})

        self._lock = threading.Lock()
        self._sent: list[dict[str, Any]] = []
        self._accepted_by_id: dict[str, dict[str, Any]] = {}
        # Every message of each chat (sent and received), as WAHA's chats API lists them.
        self._chats: dict[str, list[dict[str, Any]]] = {}
        self._repeated_ids = repeated_ids
        self._fault = "ok"
        # Hidden (@lid) senders this simulator has shown, and the phone chat id behind each.
        self._lids: dict[str, str] = {}
        self._fail_ratio = 0.0
        # Numbers WhatsApp does not know (check-exists answers numberExists false), as chat ids; and how the
        # endpoint answers (CHECK_EXISTS_MODES: engines without it answer 404).
        self._not_on_whatsapp = {self._phone_chat(phone) for phone in not_on_whatsapp}
        self._check_exists = "answer"
        # A fault of sendSeen and the typing calls alone (COURTESY_FAULT_MODES), beside the general one.
        self._courtesy_fault = "ok"
        # Every call about a chat (sends, seen, typing, check-exists, look-ups), in the order received.
        self._calls: dict[str, list[dict[str, Any]]] = {}
        self._own_ids = own_ids
        self._ack_delivered_seconds = ack_delivered_seconds
        self._ack_read_seconds = ack_read_seconds
        # Acks not yet sent, soonest first; one thread posts them in turn (so DEVICE goes before READ).
        self._due_acks: list[_DueAck] = []
        self._ack_sequence = 0
        self._acks_changed = threading.Condition(self._lock)
        self._ack_thread: threading.Thread | None = None
        # Failure injection only, not security: a seedable PRNG is what makes load tests repeatable.
        self._rng = random.Random()  # noqa: S311
        # Set by stop(): wakes "slow" answers and webhook retry waits so shutdown never hangs on them.
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> str:
        if self._server is not None:
            return self.url
        self._stopping.clear()
        self._server = _Server((self._host, self._requested_port), self._route_and_log)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": _SERVE_POLL_SECONDS},
            name=f"waha-sim-{self.port}",
            daemon=True,
        )
        self._thread.start()
        self._ack_thread = threading.Thread(target=self._send_due_acks, name=f"waha-sim-acks-{self.port}", daemon=True)
        self._ack_thread.start()
        logger.info("WAHA simulator listening on %s (session %s)", self.url, self._session)
        return self.url

    def stop(self) -> None:
        self._stopping.set()
        server, thread, ack_thread = self._server, self._thread, self._ack_thread
        self._server, self._thread, self._ack_thread = None, None, None
        with self._acks_changed:
            # What was not acknowledged yet never will be: a stopped WhatsApp sends nothing.
            self._due_acks.clear()
            self._acks_changed.notify_all()
        if server is not None:
            server.shutdown()
            server.close_connections()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        if ack_thread is not None:
            ack_thread.join(timeout=5)
        self._http.clear()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the WAHA simulator is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def me_id(self) -> str:
        return self._me_id

    # --- test controls ---------------------------------------------------------------------------

    def sent_messages(self) -> list[dict[str, Any]]:
        """Every accepted sendText in order; copies, so callers cannot change what the simulator saw."""
        with self._lock:
            return copy.deepcopy(self._sent)

    def expire_files(self) -> None:
        """Deletes every file now, as WAHA does once WHATSAPP_FILES_LIFETIME has passed."""
        with self._lock:
            self._files.clear()

    def clear(self) -> None:
        with self._lock:
            self._files.clear()
            self._sent.clear()
            self._accepted_by_id.clear()
            self._chats.clear()
            self._due_acks.clear()
            self._calls.clear()

    def set_acks(self, delivered_seconds: float | None, read_seconds: float | None) -> None:
        """The delays of the DEVICE and READ acks from now on (None: not sent). Acks already due keep their
        time, but one whose kind is switched off is not sent."""
        _check_ack_delays(delivered_seconds, read_seconds)
        with self._acks_changed:
            self._ack_delivered_seconds = delivered_seconds
            self._ack_read_seconds = read_seconds
            self._acks_changed.notify_all()
        logger.info("WAHA simulator acks: DEVICE after %s s, READ %s s later", delivered_seconds, read_seconds)

    @property
    def acks(self) -> dict[str, float | None]:
        with self._lock:
            return {"delivered_seconds": self._ack_delivered_seconds, "read_seconds": self._ack_read_seconds}

    def set_own_ids(self, own_ids: bool) -> None:
        """True: sent messages get ids of the simulator's own, not the pre-generated ones asked for."""
        with self._lock:
            self._own_ids = own_ids

    def set_repeated_ids(self, mode: str) -> None:
        """'accept': a repeated pre-generated id is sent again (WAHA promises nothing else); 'drop': it is not."""
        if mode not in REPEATED_ID_MODES:
            raise ValueError(f"unknown repeated-id mode {mode!r}; expected one of {', '.join(REPEATED_ID_MODES)}")
        with self._lock:
            self._repeated_ids = mode
        logger.info("WAHA simulator repeated pre-generated ids: %s", mode)

    @property
    def repeated_ids(self) -> str:
        with self._lock:
            return self._repeated_ids

    def set_api_key(self, api_key: str | None) -> None:
        """WAHA's X-Api-Key from now on, as when the hotel rotates it."""
        with self._lock:
            self._api_key = api_key

    def set_fault(self, mode: str) -> None:
        if mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {mode!r}; expected one of {', '.join(FAULT_MODES)}")
        with self._lock:
            self._fault = mode
        logger.info("WAHA simulator fault mode: %s", mode)

    def fail_ratio(self, ratio: float, seed: int | None = None) -> None:
        """Makes that share of otherwise valid sendText calls fail with 500; 0 turns it off."""
        if not 0.0 <= ratio <= 1.0:
            raise ValueError("ratio must be between 0 and 1")
        with self._lock:
            self._fail_ratio = ratio
            self._rng = random.Random(seed)  # noqa: S311

    # --- inbound webhooks ------------------------------------------------------------------------

    def deliver_inbound(
        self,
        phone: str,
        text: str,
        *,
        message_id: str | None = None,
        event: str = "message",
        hidden_sender: bool = False,
        media: InboundMedia | None = None,
    ) -> dict[str, Any]:
        """Posts a guest's message to webhook_url as WAHA would, retrying until a 2xx or the attempts run out.

        `media`: a photo or file with the message (`text` is its caption), served at /api/files/<name> until
        files_lifetime_seconds have passed.

        `hidden_sender` shows the guest as a @lid id, as newer WhatsApp engines do; GET /api/{session}/lids/{lid}
        then maps it back to the phone, like WAHA's own lids API.
        Works whether or not the HTTP side is running; once stop() has been called, retries are abandoned.
        """
        if self._webhook_url is None:
            raise WebhookNotConfiguredError("the WAHA simulator has no webhook_url")
        sender = self.hidden_id(phone) if hidden_sender else chat_id(to_e164(phone, self._default_region))
        envelope = self._message_event(sender, text, message_id, event)
        if media is not None:
            envelope["payload"].update(hasMedia=True, media=self.keep_file(envelope["payload"]["id"], media))
        if event == "message":
            # WAHA has the message in the chat whether or not the webhook gets through.
            self._remember(sender, envelope["payload"])
        return self._post_event(envelope, sender)

    def deliver_hotel_message(self, phone: str, text: str, *, message_id: str | None = None) -> dict[str, Any]:
        """Posts a message the hotel wrote to a guest from its own phone (or WAHA's dashboard) to webhook_url:
        WAHA's `message.any` with `fromMe`, the WEBJS way (id `true_<chat>_<id>`, `from` the hotel's number, `to`
        the guest's chat). WAHA sends no `message` event for it. Retried like deliver_inbound."""
        if self._webhook_url is None:
            raise WebhookNotConfiguredError("the WAHA simulator has no webhook_url")
        chat = chat_id(to_e164(phone, self._default_region))
        envelope = message_event(
            chat,
            text,
            message_id=message_id,
            event=ALL_MESSAGES_EVENT,
            from_me=True,
            me_id=self._me_id,
            session=self._session,
        )
        self._remember(chat, envelope["payload"])
        return self._post_event(envelope, chat)

    def _post_event(self, envelope: dict[str, Any], chat: str) -> dict[str, Any]:
        """Posts one event to webhook_url as WAHA's sender does: signed, retried until a 2xx or out of attempts."""
        assert self._webhook_url is not None
        # Compact and not ASCII-escaped, like JSON.stringify: receivers must check the HMAC on the bytes
        # they got, and a receiver that re-serialises the JSON before hashing would fail here as with WAHA.
        raw = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = self._webhook_headers(envelope, raw)

        status = 0
        attempts = 0
        for attempts in range(1, self._webhook_attempts + 1):
            status = self._post_webhook(self._webhook_url, raw, headers, envelope["id"], attempts)
            if _is_success(status) or attempts == self._webhook_attempts:
                break
            if self._stopping.wait(self._retry_delay(attempts)):
                break
        delivered = _is_success(status)
        log = logger.info if delivered else logger.warning
        log(
            "webhook %s %s in %s: delivered=%s status=%s attempts=%d",
            envelope["id"],
            envelope["event"],
            mask(chat),
            delivered,
            status,
            attempts,
        )
        return {
            "delivered": delivered,
            "status": status,
            "attempts": attempts,
            "event_id": envelope["id"],
            "payload_id": envelope["payload"]["id"],
        }

    def keep_file(self, message_id: str, media: InboundMedia) -> dict[str, Any]:
        """WAHA's `media` of a message (WAMedia, as its docs' example): the file it keeps, or why there is none."""
        described = {**_media_example(), "mimetype": media.mimetype, "filename": media.filename}
        if media.content is None:
            return {**described, "url": None, "error": {"message": media.error} if media.error else None}
        name = message_id + _file_extension(media.mimetype)
        with self._lock:
            # 0 keeps files until the simulator stops, as WHATSAPP_FILES_LIFETIME=0 makes WAHA keep them.
            lifetime = self._files_lifetime_seconds or float("inf")
            expires = time.monotonic() + lifetime
            self._files[name] = _File(media.content, media.mimetype, expires)
        return {**described, "url": f"{self.url}{FILES_PATH}{quote(name, safe='@')}", "error": None}

    def _file(self, api_key: str | None, name: str) -> _Reply:
        """GET /api/files/<name>: a file WAHA downloaded, until it deletes it (then 404, as WAHA answers)."""
        if not self._authorised(api_key):
            return _Reply(401, {"message": "Unauthorized", "statusCode": 401})
        with self._lock:
            kept = self._files.get(name)
            if kept is not None and kept.expires <= time.monotonic():
                del self._files[name]
                kept = None
        if kept is None:
            return _error(404, "Not Found", f"Cannot GET {FILES_PATH}{name}")
        if self._current_fault() == "slow":
            self._stopping.wait(self._slow_seconds)
        return _Reply(200, kept.content, kept.mimetype)

    def _message_event(self, sender: str, text: str, message_id: str | None, event: str) -> dict[str, Any]:
        return message_event(sender, text, message_id=message_id, event=event, me_id=self._me_id, session=self._session)

    # --- acks ----------------------------------------------------------------------------------------

    def _schedule_first_ack(self, message_id: str, chat: str) -> None:
        """Called with the lock held, for a message just accepted: its DEVICE ack, or READ when DEVICE is off."""
        if self._webhook_url is None:
            return
        if self._ack_delivered_seconds is not None:
            self._schedule_ack(message_id, chat, ACK_DEVICE, self._ack_delivered_seconds)
        elif self._ack_read_seconds is not None:
            self._schedule_ack(message_id, chat, ACK_READ, self._ack_read_seconds)

    def _schedule_ack(self, message_id: str, chat: str, ack: int, delay: float) -> None:
        # Called with the lock held.
        self._ack_sequence += 1
        heapq.heappush(self._due_acks, _DueAck(time.monotonic() + delay, self._ack_sequence, message_id, chat, ack))
        self._acks_changed.notify_all()

    def _next_due_ack(self) -> _DueAck | None:
        """Waits for the next ack whose time has come; None once the simulator stops."""
        with self._acks_changed:
            while not self._stopping.is_set():
                now = time.monotonic()
                if self._due_acks and self._due_acks[0].due <= now:
                    return heapq.heappop(self._due_acks)
                self._acks_changed.wait(self._due_acks[0].due - now if self._due_acks else None)
        return None

    def _send_due_acks(self) -> None:
        while (due := self._next_due_ack()) is not None:
            with self._lock:
                # Switched off since it was scheduled: not sent.
                wanted = (self._ack_delivered_seconds if due.ack == ACK_DEVICE else self._ack_read_seconds) is not None
                read_after = self._ack_read_seconds
            if not wanted or self._webhook_url is None:
                continue
            envelope = ack_event(due.message_id, due.chat, due.ack, me_id=self._me_id, session=self._session)
            self._post_event(envelope, due.chat)
            if due.ack == ACK_DEVICE and read_after is not None:
                with self._lock:
                    self._schedule_ack(due.message_id, due.chat, ACK_READ, read_after)

    def _webhook_headers(self, envelope: dict[str, Any], raw: bytes) -> dict[str, str]:
        # WAHA builds these once per event and its retries resend them unchanged, request id included.
        headers = {
            "Content-Type": "application/json",
            "X-Webhook-Request-Id": uuid.uuid4().hex,
            "X-Webhook-Timestamp": str(envelope["timestamp"]),
        }
        if self._webhook_hmac_key is not None:
            headers["X-Webhook-Hmac"] = webhook_hmac(self._webhook_hmac_key, raw)
            headers["X-Webhook-Hmac-Algorithm"] = HMAC_ALGORITHM
        return headers

    def _post_webhook(self, url: str, raw: bytes, headers: dict[str, str], event_id: str, attempt: int) -> int:
        """One POST; the HTTP status, or 0 when no answer came back."""
        try:
            response = self._http.request(
                "POST", url, body=raw, headers=headers, retries=False, timeout=self._webhook_timeout
            )
        except urllib3.exceptions.HTTPError as exc:
            logger.debug("webhook %s attempt %d: %s", event_id, attempt, type(exc).__name__)
            return 0
        logger.debug("webhook %s attempt %d: HTTP %d", event_id, attempt, response.status)
        return response.status

    def _retry_delay(self, attempt: int) -> float:
        return min(self._webhook_retry_delay * 2 ** (attempt - 1), _MAX_RETRY_DELAY_SECONDS)

    # --- HTTP routing ----------------------------------------------------------------------------

    def _route(self, method: str, path: str, query: str, api_key: str | None, raw: bytes) -> _Reply | None:
        # /api/sim/* stays up under every fault, otherwise a test could not switch a fault off again.
        if path.startswith("/api/sim/"):
            return self._route_sim(method, path, raw)
        if self._current_fault() == "down":
            return None
        if method == "POST" and path == "/api/sendText":
            return self._send_text(api_key, raw)
        if method == "POST" and path in _MEDIA_SENDS:
            return self._send_text(api_key, raw, self._media_validators[path])
        if method == "GET" and path.startswith(FILES_PATH):
            return self._file(api_key, unquote(path.removeprefix(FILES_PATH)))
        chat_messages = _CHAT_MESSAGES_PATH.match(path)
        if method == "GET" and chat_messages:
            return self._chat_messages(
                api_key, unquote(chat_messages["session"]), unquote(chat_messages["chat"]), query
            )
        if method == "GET" and path.startswith("/api/sessions/"):
            return self._session_info(api_key, unquote(path.removeprefix("/api/sessions/")))
        if method == "GET" and path.startswith(f"/api/{self._session}/lids/"):
            return self._lid_info(api_key, unquote(path.removeprefix(f"/api/{self._session}/lids/")))
        courtesy = self._courtesy(method, path, query, api_key, raw)
        if courtesy is not None:
            return courtesy
        return _error(404, "Not Found", f"Cannot {method} {path}")

    # --- acting like a person: seen, typing, check-exists; and the log of calls per chat ----------------------

    def set_not_on_whatsapp(self, phones: Iterable[str]) -> None:
        """The numbers check-exists says are not on WhatsApp from now on (any written form; replaces the list)."""
        chats = {self._phone_chat(phone) for phone in phones}
        with self._lock:
            self._not_on_whatsapp = chats
        logger.info("WAHA simulator: %d numbers not on WhatsApp", len(chats))

    def set_check_exists(self, mode: str) -> None:
        """'answer': check-exists answers; 'missing': 404, as an engine without the endpoint; 'error500': 500."""
        if mode not in CHECK_EXISTS_MODES:
            raise ValueError(f"check-exists mode must be one of {', '.join(CHECK_EXISTS_MODES)}")
        with self._lock:
            self._check_exists = mode

    def set_courtesy_fault(self, mode: str) -> None:
        """'ok'; 'error500': sendSeen, startTyping and stopTyping answer 500; 'slow': they answer after slow_seconds."""
        if mode not in COURTESY_FAULT_MODES:
            raise ValueError(f"courtesy fault must be one of {', '.join(COURTESY_FAULT_MODES)}")
        with self._lock:
            self._courtesy_fault = mode

    def calls(self, chat: str | None = None) -> dict[str, list[dict[str, Any]]]:
        """Every call received about each chat, oldest first: {"call", "at" (epoch seconds), "status", ...}; copies."""
        with self._lock:
            if chat is not None:
                return {chat: copy.deepcopy(self._calls.get(chat, []))}
            return copy.deepcopy(self._calls)

    def _phone_chat(self, phone: str) -> str:
        return phone if "@" in phone else chat_id(to_e164(phone, self._default_region))

    def _route_and_log(self, method: str, path: str, query: str, api_key: str | None, raw: bytes) -> _Reply | None:
        # Noted on arrival, so that the log keeps the order calls came in even when a slow one answers last; an
        # unreachable WAHA ("down") receives nothing.
        logged = not path.startswith("/api/sim/") and self._current_fault() != "down"
        entry = self._log_call(method, path, query, raw) if logged else None
        reply = self._route(method, path, query, api_key, raw)
        if entry is not None:
            with self._lock:
                entry["status"] = reply.status if reply is not None else None
                if entry["call"] in ("sendText", "sendImage", "sendFile") and reply and isinstance(reply.body, dict):
                    entry["id"] = reply.body.get("id")
                if entry["call"] == "checkExists" and reply and isinstance(reply.body, dict):
                    entry["numberExists"] = reply.body.get("numberExists")
        return reply

    def _log_call(self, method: str, path: str, query: str, raw: bytes) -> dict[str, Any] | None:
        """Notes a call about a chat (its chatId, check-exists' phone, a chat's messages) as it arrives; its entry,
        whose `status` is filled in once answered (None: the connection was dropped)."""
        name = path.rsplit("/", 1)[-1]
        chat: str | None = None
        entry: dict[str, Any] = {}
        if method == "POST" and name in _CALLS_BY_CHAT:
            try:
                body = _parse_json(raw)
            except ValueError:
                return None
            chat = body.get("chatId") if isinstance(body, dict) else None
            if name == "sendSeen" and isinstance(body, dict):
                entry["messageIds"] = body.get("messageIds")
        elif method == "GET" and path == CHECK_EXISTS_PATH:
            phones = parse_qs(query).get("phone", [])
            chat = f"{phones[-1]}@c.us" if phones and phones[-1].isdigit() else None
            name = "checkExists"
        elif method == "GET" and (found := _CHAT_MESSAGES_PATH.match(path)):
            chat, name = unquote(found["chat"]), "chatMessages"
        if not isinstance(chat, str):
            return None
        entry = {"call": name, "at": time.time(), "status": None, **entry}
        with self._lock:
            self._calls.setdefault(chat, []).append(entry)
        return entry

    def _courtesy(self, method: str, path: str, query: str, api_key: str | None, raw: bytes) -> _Reply | None:
        """POST /api/sendSeen, /api/startTyping, /api/stopTyping and GET /api/contacts/check-exists, validated
        against waha_spec/openapi-excerpt.json; None for any other route."""
        if method == "GET" and path == CHECK_EXISTS_PATH:
            return self._check_number(api_key, query)
        validator = self._courtesy_validators.get(path) if method == "POST" else None
        if validator is None:
            return None
        if not self._authorised(api_key):
            return _Reply(401, {"message": "Unauthorized", "statusCode": 401})
        try:
            body = _parse_json(raw)
        except ValueError as exc:
            return _error(400, "Bad Request", [str(exc)])
        problems = self._schema_problems(body, validator)
        if problems:
            return _error(400, "Bad Request", problems)
        if body["session"] != self._session:
            return _error(422, "Unprocessable Entity", f'Session "{body["session"]}" does not exist')
        with self._lock:
            faults = {self._fault, self._courtesy_fault}
        if "error500" in faults:
            return _error(500, "Internal Server Error", "Internal server error")
        if "slow" in faults:
            self._stopping.wait(self._slow_seconds)
        # sendSeen answers an object; the typing calls answer 201 with no body, as WAHA's OpenAPI describes.
        return _Reply(201, {}) if path == SEND_SEEN_PATH else _Reply(201, b"")

    def _check_number(self, api_key: str | None, query: str) -> _Reply:
        """GET /api/contacts/check-exists?phone=<digits>&session=<name>: WANumberExistResult."""
        if not self._authorised(api_key):
            return _Reply(401, {"message": "Unauthorized", "statusCode": 401})
        with self._lock:
            mode, unknown = self._check_exists, set(self._not_on_whatsapp)
        if mode == "missing":
            return _error(404, "Not Found", f"Cannot GET {CHECK_EXISTS_PATH}")
        values = parse_qs(query)
        phone, session = values.get("phone", [""])[-1], values.get("session", [""])[-1]
        problems = [
            f"{name} should not be empty" for name, value in (("phone", phone), ("session", session)) if not value
        ]
        if problems:
            return _error(400, "Bad Request", problems)
        if session != self._session:
            return _error(422, "Unprocessable Entity", f'Session "{session}" does not exist')
        fault = self._current_fault()
        if mode == "error500" or fault == "error500":
            return _error(500, "Internal Server Error", "Internal server error")
        if fault == "slow":
            self._stopping.wait(self._slow_seconds)
        chat = f"{phone.lstrip('+')}@c.us"
        if chat in unknown:
            return _Reply(200, {"numberExists": False})
        return _Reply(200, {"numberExists": True, "chatId": chat})

    def hidden_id(self, phone: str) -> str:
        """The @lid id this simulator shows for a phone number (stable), known to its lids API from now on."""
        phone_chat = chat_id(to_e164(phone, self._default_region))
        lid = f"{int(hashlib.sha256(phone_chat.encode()).hexdigest()[:12], 16):015d}@lid"
        with self._lock:
            self._lids[lid] = phone_chat
        return lid

    def _lid_info(self, api_key: str | None, lid: str) -> _Reply:
        if not self._authorised(api_key):
            return _error(401, "Unauthorized", "Unauthorized")
        with self._lock:
            phone_chat = self._lids.get(lid)
        if phone_chat is None:
            return _error(404, "Not Found", f"lid {lid} is not known")
        return _Reply(200, {"lid": lid, "pn": phone_chat})

    def _current_fault(self) -> str:
        with self._lock:
            return self._fault

    def _authorised(self, api_key: str | None) -> bool:
        with self._lock:
            expected = self._api_key
        if expected is None:
            return True
        return api_key is not None and hmac.compare_digest(api_key.encode(), expected.encode())

    def _send_text(self, api_key: str | None, raw: bytes, validator: Draft202012Validator | None = None) -> _Reply:
        """sendText, or with the validator of MessageImageRequest / MessageFileRequest, sendImage and sendFile
        (WAHA would fetch file.url; the simulator only records it)."""
        if not self._authorised(api_key):
            return _Reply(401, {"message": "Unauthorized", "statusCode": 401})
        try:
            body = _parse_json(raw)
        except ValueError as exc:
            return _error(400, "Bad Request", [str(exc)])
        problems = self._schema_problems(body, validator or self._validator)
        if problems:
            return _error(400, "Bad Request", problems)
        # Stricter than WAHA, which appends '@c.us' to a bare number: Concierge must always send full chat ids.
        if "@" not in body["chatId"]:
            return _error(400, "Bad Request", ["chatId must be a WhatsApp chat id such as 6281234567890@c.us"])
        if body["session"] != self._session:
            return _error(422, "Unprocessable Entity", f'Session "{body["session"]}" does not exist')

        with self._lock:
            fault = self._fault
            random_failure = self._fail_ratio > 0 and self._rng.random() < self._fail_ratio
        if fault == "error500" or random_failure:
            return _error(500, "Internal Server Error", "Internal server error")

        message = self._accept(body)
        # The message has left before the answer does, so a client that times out meets WAHA's real
        # ambiguous case: sent, but never acknowledged.
        delay = self._latency_seconds + (self._slow_seconds if fault == "slow" else 0.0)
        if delay > 0:
            self._stopping.wait(delay)
        if fault == "sent500":
            return _error(500, "Internal Server Error", "Internal server error")
        return _Reply(201, message)

    @staticmethod
    def _schema_problems(body: Any, validator: Draft202012Validator) -> list[str]:
        problems = []
        for error in validator.iter_errors(body):
            where = ".".join(str(part) for part in error.absolute_path)
            problems.append(f"{where}: {error.message}" if where else error.message)
        return sorted(problems)

    def _accept(self, body: dict[str, Any]) -> dict[str, Any]:
        """The WAMessage WAHA answers with; records the send (a repeated pre-generated id too, unless dropping)."""
        chat, pre_generated = body["chatId"], body.get("id")
        # How WAHA names the message when it uses the pre-generated id; repeats are recognised by it.
        keyed = f"true_{chat}_{pre_generated}" if pre_generated else None
        with self._lock:
            own_id = f"true_{chat}_{secrets.token_hex(10).upper()}"
            message_id = keyed if keyed and not self._own_ids else own_id
            earlier = self._accepted_by_id.get(keyed) if keyed else None
            if earlier is not None and self._repeated_ids == "drop":
                logger.info("sendText %s to %s repeated a pre-generated id; not sent again", pre_generated, mask(chat))
                return copy.deepcopy(earlier)
            if earlier is not None:
                logger.warning("sendText %s to %s repeated a pre-generated id; sent again", pre_generated, mask(chat))
            now = time.time()
            message = {
                "id": message_id,
                "timestamp": int(now),
                "from": self._me_id,
                "fromMe": True,
                "source": "api",
                "to": chat,
                # A photo's or file's caption is its body, as WhatsApp shows it.
                "body": body["text"] if "text" in body else body.get("caption", ""),
                "hasMedia": "file" in body,
                "ack": ACK_SERVER,
                "ackName": ACK_SERVER_NAME,
                "vCards": [],
                "_data": {},
            }
            if keyed and earlier is None:
                self._accepted_by_id[keyed] = message
            self._chats.setdefault(chat, []).append(copy.deepcopy(message))
            self._schedule_first_ack(message_id, chat)
            self._sent.append(
                {
                    "id": message_id,
                    "chatId": chat,
                    "text": message["body"],
                    "session": body["session"],
                    "received_at": now,
                    "body": copy.deepcopy(body),
                    **({"file": copy.deepcopy(body["file"])} if "file" in body else {}),
                }
            )
        logger.info("sendText accepted %s to %s", message_id.rsplit("_", 1)[-1], mask(chat))
        return copy.deepcopy(message)

    def _session_info(self, api_key: str | None, name: str) -> _Reply:
        if not self._authorised(api_key):
            return _Reply(401, {"message": "Unauthorized", "statusCode": 401})
        if name != self._session:
            return _error(404, "Not Found", f'Session "{name}" does not exist')
        fault = self._current_fault()
        if fault == "error500":
            return _error(500, "Internal Server Error", "Internal server error")
        if fault == "slow":
            self._stopping.wait(self._slow_seconds)
        return _Reply(
            200,
            {
                "name": self._session,
                "status": "WORKING",
                "me": {"id": self._me_id, "pushName": PUSH_NAME},
                "presence": {},
                "timestamps": {"activity": int(time.time() * 1000)},
                "engine": {"engine": ENGINE},
            },
        )

    def _remember(self, chat: str, message: dict[str, Any]) -> None:
        with self._lock:
            self._chats.setdefault(chat, []).append(copy.deepcopy(message))

    def chat_messages(self, chat: str) -> list[dict[str, Any]]:
        """Every message of a chat, sent and received, oldest first (copies)."""
        with self._lock:
            return copy.deepcopy(self._chats.get(chat, []))

    def _chat_messages(self, api_key: str | None, session: str, chat: str, query: str) -> _Reply:
        """GET /api/{session}/chats/{chatId}/messages: WAMessage[] filtered, sorted and paged as WAHA's query asks."""
        if not self._authorised(api_key):
            return _Reply(401, {"message": "Unauthorized", "statusCode": 401})
        if session != self._session:
            return _error(422, "Unprocessable Entity", f'Session "{session}" does not exist')
        options, problems = _chat_messages_query(query)
        if problems:
            return _error(400, "Bad Request", problems)
        fault = self._current_fault()
        if fault == "error500":
            return _error(500, "Internal Server Error", "Internal server error")
        if fault == "slow":
            self._stopping.wait(self._slow_seconds)
        messages = self.chat_messages(chat)
        if "filter.fromMe" in options:
            messages = [message for message in messages if message["fromMe"] is options["filter.fromMe"]]
        if "filter.timestamp.gte" in options:
            messages = [message for message in messages if message["timestamp"] >= options["filter.timestamp.gte"]]
        if "filter.timestamp.lte" in options:
            messages = [message for message in messages if message["timestamp"] <= options["filter.timestamp.lte"]]
        if "filter.ack" in options:
            messages = [message for message in messages if message["ackName"] == options["filter.ack"]]
        # Newest first unless asked otherwise, as WAHA lists a chat. Timestamps are whole seconds: on a tie the
        # order of arrival decides, so a newest-first list starts from the reversed history.
        if options.get("sortOrder", "desc") == "desc":
            messages = sorted(reversed(messages), key=lambda message: message["timestamp"], reverse=True)
        else:
            messages.sort(key=lambda message: message["timestamp"])
        offset = int(options.get("offset", 0))
        logger.debug("chat messages of %s: %d found", mask(chat), len(messages))
        return _Reply(200, messages[offset : offset + int(options["limit"])])

    def _route_sim(self, method: str, path: str, raw: bytes) -> _Reply:
        if method == "GET" and path == "/api/sim/messages":
            return _Reply(200, {"messages": self.sent_messages(), "calls": self.calls()})
        if method == "POST" and path == "/api/sim/clear":
            with self._lock:
                cleared = len(self._sent)
            self.clear()
            return _Reply(200, {"cleared": cleared})
        if method == "POST" and path == "/api/sim/fault":
            return self._sim_fault(raw)
        if method == "POST" and path == "/api/sim/not-on-whatsapp":
            return self._sim_not_on_whatsapp(raw)
        if method == "POST" and path == "/api/sim/check-exists":
            return self._sim_check_exists(raw)
        if method == "POST" and path == "/api/sim/repeated-ids":
            return self._sim_repeated_ids(raw)
        if method == "POST" and path == "/api/sim/inbound":
            return self._sim_inbound(raw)
        if method == "POST" and path == "/api/sim/hotel-message":
            return self._sim_hotel_message(raw)
        if method == "GET" and path == "/api/sim/acks":
            return _Reply(200, self.acks)
        if method == "POST" and path == "/api/sim/acks":
            return self._sim_acks(raw)
        return _error(404, "Not Found", f"Cannot {method} {path}")

    def _sim_acks(self, raw: bytes) -> _Reply:
        """{"delivered_seconds": s | null, "read_seconds": s | null}: a field left out keeps its value; null turns
        that ack off. Answers the settings now in force."""
        try:
            body = _parse_json(raw)
        except ValueError as exc:
            return _error(400, "Bad Request", [str(exc)])
        if not isinstance(body, dict):
            return _error(400, "Bad Request", ["body must be a JSON object"])
        current = self.acks
        problems = [f"property {name} should not exist" for name in sorted(body) if name not in current]
        for name in current:
            value = body.get(name, current[name])
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or _bad_delay(value)
            ):
                problems.append(f"{name} must be a number of seconds, not negative, or null")
        if problems:
            return _error(400, "Bad Request", problems)
        self.set_acks(
            body.get("delivered_seconds", current["delivered_seconds"]),
            body.get("read_seconds", current["read_seconds"]),
        )
        return _Reply(200, self.acks)

    def _sim_hotel_message(self, raw: bytes) -> _Reply:
        """{"phone", "text", "id"?}: the hotel writes to that guest from its own phone (deliver_hotel_message)."""
        try:
            body = _parse_json(raw)
        except ValueError as exc:
            return _error(400, "Bad Request", [str(exc)])
        if not isinstance(body, dict):
            return _error(400, "Bad Request", ["body must be a JSON object"])
        problems = [
            f"{name} must be a string"
            for name, required in (("phone", True), ("text", True), ("id", False))
            if (name in body or required) and not isinstance(body.get(name), str)
        ]
        if problems:
            return _error(400, "Bad Request", problems)
        if self._webhook_url is None:
            return _error(409, "Conflict", "the WAHA simulator has no webhook_url configured")
        try:
            result = self.deliver_hotel_message(body["phone"], body["text"], message_id=body.get("id"))
        except ValueError as exc:
            return _error(400, "Bad Request", [str(exc)])
        return _Reply(200, result)

    def _sim_not_on_whatsapp(self, raw: bytes) -> _Reply:
        """{"phones": ["0812...", "+44..."]}: the numbers check-exists says are not on WhatsApp (replaces the list)."""
        try:
            body = _parse_json(raw)
        except ValueError as exc:
            return _error(400, "Bad Request", [str(exc)])
        phones = body.get("phones") if isinstance(body, dict) else None
        if not isinstance(phones, list) or not all(isinstance(phone, str) for phone in phones):
            return _error(400, "Bad Request", ["phones must be a list of phone numbers"])
        try:
            self.set_not_on_whatsapp(phones)
        except ValueError as exc:
            return _error(400, "Bad Request", [str(exc)])
        with self._lock:
            listed = sorted(mask(chat) for chat in self._not_on_whatsapp)
        return _Reply(200, {"not_on_whatsapp": listed})

    def _sim_check_exists(self, raw: bytes) -> _Reply:
        try:
            body = _parse_json(raw)
        except ValueError as exc:
            return _error(400, "Bad Request", [str(exc)])
        mode = body.get("mode") if isinstance(body, dict) else None
        if mode not in CHECK_EXISTS_MODES:
            return _error(400, "Bad Request", [f"mode must be one of {', '.join(CHECK_EXISTS_MODES)}"])
        self.set_check_exists(mode)
        return _Reply(200, {"mode": mode})

    def _sim_fault(self, raw: bytes) -> _Reply:
        try:
            body = _parse_json(raw)
        except ValueError as exc:
            return _error(400, "Bad Request", [str(exc)])
        mode = body.get("mode") if isinstance(body, dict) else None
        if mode not in FAULT_MODES:
            return _error(400, "Bad Request", [f"mode must be one of {', '.join(FAULT_MODES)}"])
        self.set_fault(mode)
        return _Reply(200, {"mode": mode})

    def _sim_repeated_ids(self, raw: bytes) -> _Reply:
        try:
            body = _parse_json(raw)
        except ValueError as exc:
            return _error(400, "Bad Request", [str(exc)])
        mode = body.get("mode") if isinstance(body, dict) else None
        if mode not in REPEATED_ID_MODES:
            return _error(400, "Bad Request", [f"mode must be one of {', '.join(REPEATED_ID_MODES)}"])
        self.set_repeated_ids(mode)
        return _Reply(200, {"mode": mode})

    def _sim_inbound(self, raw: bytes) -> _Reply:
        try:
            body = _parse_json(raw)
        except ValueError as exc:
            return _error(400, "Bad Request", [str(exc)])
        if not isinstance(body, dict):
            return _error(400, "Bad Request", ["body must be a JSON object"])
        # With a file, the text is its caption and may be left out.
        text_required = "media" not in body
        problems = [
            f"{field} must be a string"
            for field, required in (("phone", True), ("text", text_required), ("id", False), ("event", False))
            if (field in body or required) and not isinstance(body.get(field), str)
        ]
        if "hidden" in body and not isinstance(body["hidden"], bool):
            problems.append("hidden must be true or false")
        media, media_problems = _inbound_media(body.get("media")) if "media" in body else (None, [])
        problems += media_problems
        if problems:
            return _error(400, "Bad Request", problems)
        if self._webhook_url is None:
            return _error(409, "Conflict", "the WAHA simulator has no webhook_url configured")
        try:
            result = self.deliver_inbound(
                body["phone"],
                body.get("text", ""),
                message_id=body.get("id"),
                event=body.get("event", "message"),
                hidden_sender=body.get("hidden", False),
                media=media,
            )
        except ValueError as exc:
            return _error(400, "Bad Request", [str(exc)])
        return _Reply(200, result)


def _inbound_media(raw: Any) -> tuple[InboundMedia | None, list[str]]:
    """`POST /api/sim/inbound`'s "media": {"mimetype", "filename"?, "data"? (base64; a sample JPEG when left out)},
    or {"mimetype", "error": "..."} (WAHA's download from WhatsApp failed), or {"mimetype", "url": null}."""
    if not isinstance(raw, dict):
        return None, ["media must be a JSON object"]
    problems = [f"media.{name} should not exist" for name in sorted(raw) if name not in _INBOUND_MEDIA_FIELDS]
    mimetype = raw.get("mimetype", "image/jpeg")
    if not isinstance(mimetype, str) or "/" not in mimetype:
        problems.append("media.mimetype must be a MIME type such as image/jpeg")
    for name in ("filename", "data", "error"):
        if raw.get(name) is not None and not isinstance(raw[name], str):
            problems.append(f"media.{name} must be a string")
    if "url" in raw and raw["url"] is not None:
        problems.append("media.url can only be null (WAHA had no file)")
    content: bytes | None = SAMPLE_JPEG
    if isinstance(raw.get("data"), str):
        try:
            content = base64.b64decode(raw["data"], validate=True)
        except binascii.Error:
            problems.append("media.data must be base64")
    if "error" in raw or "url" in raw:
        content = None
    if problems:
        return None, problems
    return InboundMedia(mimetype, raw.get("filename"), content, raw.get("error")), []


_INBOUND_MEDIA_FIELDS = ("mimetype", "filename", "data", "error", "url")


def _bad_delay(delay: float) -> bool:
    # NaN compares false with everything, so "not >= 0" catches it as well as negatives.
    return not delay >= 0 or delay == float("inf")


# The media sends and their request schemas in WAHA's OpenAPI (waha_spec/openapi-excerpt.json).
_MEDIA_SENDS = {"/api/sendImage": "MessageImageRequest", "/api/sendFile": "MessageFileRequest"}


def _request_validator(schema_name: str) -> Draft202012Validator:
    """A validator of one of WAHA's request schemas, its $refs (#/components/schemas/...) resolved in the excerpt."""
    components = load_spec(OPENAPI_FILE)["components"]
    return Draft202012Validator({"$ref": f"#/components/schemas/{schema_name}", "components": components})


def _file_extension(mimetype: str) -> str:
    # WAHA names a file after its message id with the type's usual extension.
    return mimetypes.guess_extension(mimetype.split(";")[0].strip()) or ".bin"


def _check_ack_delays(*delays: float | None) -> None:
    if any(delay is not None and _bad_delay(delay) for delay in delays):
        raise ValueError("an ack delay must be a number of seconds, not negative, or None")


def _chat_messages_query(query: str) -> tuple[dict[str, Any], list[str]]:
    """The chats API's query string read as WAHA's DTO does: numbers, booleans and enums; problems listed."""
    values = parse_qs(query, keep_blank_values=True)
    options: dict[str, Any] = {}
    problems = [f"property {name} should not exist" for name in sorted(values) if name not in _CHAT_MESSAGES_QUERY]
    for name, kind in _CHAT_MESSAGES_QUERY.items():
        if name not in values:
            continue
        raw = values[name][-1]
        if kind == "number":
            try:
                number = float(raw)
            except ValueError:
                number = float("nan")
            if number != number or number in (float("inf"), float("-inf")):
                problems.append(f"{name} must be a number")
                continue
            options[name] = number
        elif kind == "boolean":
            if raw not in ("true", "false"):
                problems.append(f"{name} must be a boolean value")
                continue
            options[name] = raw == "true"
        elif raw not in kind:
            problems.append(f"{name} must be one of the following values: {', '.join(kind)}")
        else:
            options[name] = raw
    if "limit" not in values:
        problems.append("limit must be a number")
    for name in ("limit", "offset"):
        if name in options and (options[name] < 0 or options[name] != int(options[name])):
            problems.append(f"{name} must be a whole number, not negative")
    return options, sorted(set(problems))
