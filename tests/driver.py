"""Drives the real handlers in-process the way API Gateway and the SQS trigger would."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import boto3

from devstack.resources import LocalResources
from devstack.sender import QueuePoller
from devstack.waha_sim import InboundMedia, WahaSimulator, message_event
from tests.conftest import lambda_context
from tests.lambda_events import api_event, response_json

Handler = Callable[[dict[str, Any], Any], Any]

GUEST = {
    "full_name": "Test Guest",
    "room_number": "101",
    "checkin_date": "2025-11-22",
    "email": "test@example.com",
    "phone_number": "081234567890",
}
GUEST_CHAT_ID = "6281234567890@c.us"
HOTEL_CHAT_ID = "6280000000000@c.us"


def waha_message(chat_id: str = GUEST_CHAT_ID, text: str = "Test message", **payload: Any) -> dict[str, Any]:
    """A WAHA `message` delivery from the guest (the simulator's builder), with payload fields overridden."""
    delivery = message_event(chat_id, text, me_id=HOTEL_CHAT_ID)
    delivery["payload"].update(payload)
    return delivery


class Concierge:
    def __init__(self, handlers: dict[str, Handler], resources: LocalResources, waha: WahaSimulator) -> None:
        self.handlers = handlers
        self.resources = resources
        self.waha = waha
        self.sqs = boto3.client("sqs")
        self.dynamodb = boto3.client("dynamodb")

    def _call(self, function: str, event: dict[str, Any]) -> tuple[int, Any]:
        response = self.handlers[function](event, lambda_context(function))
        return response["statusCode"], response_json(response)

    def register(self, body: Any = None, *, headers: dict[str, str] | None = None, **changes: Any) -> tuple[int, Any]:
        payload = {**GUEST, **changes} if body is None else body
        return self._call("RegisterGuestFunction", api_event("register_guest", payload, headers=headers))

    def register_event(self, event: dict[str, Any]) -> tuple[int, Any]:
        return self._call("RegisterGuestFunction", event)

    def webhook(
        self, delivery: Any = None, *, raw_body: str | bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        event = api_event("waha_webhook", delivery, raw_body=raw_body, headers=headers)
        return self._call("WahaWebhookFunction", event)

    def history(self, user_id: str, /, **query: str) -> tuple[int, Any]:
        event = api_event(
            "guest_messages",
            path=f"/api/v1/guests/{user_id}/messages",
            path_parameters={"user_id": user_id},
            query=query,
        )
        return self._call("GuestMessagesFunction", event)

    def conversation(self, user_id: str) -> list[dict[str, Any]]:
        status, body = self.history(user_id, limit="100")
        assert status == 200, body
        return body["messages"]

    def poller(self) -> QueuePoller:
        return QueuePoller(
            self.handlers["SendWhatsappFunction"],
            self.resources.outbound_queue_url,
            self.resources.queue_arns["OutboundQueue"],
            batch_size=10,
            timeout_seconds=30,
            function_name="SendWhatsappFunction",
            sqs_client=self.sqs,
            wait_time_seconds=0,
        )

    def deliver_queued(self) -> int:
        """Runs the sender over everything visible in the queue; returns how many records it handled."""
        poller = self.poller()
        handled = 0
        while count := poller.poll_once():
            handled += count
        return handled

    def queue_depth(self, logical_id: str = "OutboundQueue") -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.resources.queue_urls[logical_id],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def items(self) -> list[dict[str, Any]]:
        """Every item in the table, for asserting what was (or was not) written."""
        from concierge.store import from_item

        pages = self.dynamodb.get_paginator("scan").paginate(TableName=self.resources.table_name)
        return [from_item(item) for page in pages for item in page["Items"]]

    def items_of_type(self, item_type: str) -> list[dict[str, Any]]:
        return [item for item in self.items() if item.get("type") == item_type]

    def erase(self, user_id: str, *, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """DELETE /api/v1/guests/{user_id}."""
        event = api_event(
            "erase_guest", path=f"/api/v1/guests/{user_id}", path_parameters={"user_id": user_id}, headers=headers
        )
        return self._call("EraseGuestFunction", event)

    def expire_closed_stays(self, timeout_seconds: float = 300) -> dict[str, Any]:
        """One run of the scheduled retention job, as EventBridge Scheduler would start it."""
        from tests.lambda_events import sample

        handler = self.handlers["ExpireClosedStaysFunction"]
        return handler(sample("expire_closed_stays"), lambda_context("ExpireClosedStaysFunction", timeout_seconds))

    def health(self, *, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """GET /api/v1/health."""
        return self._call("HealthFunction", api_event("health", headers=headers))

    def _conversations(
        self, method: str, resource: str, parameters: dict[str, str], body: Any = None, **query: str
    ) -> tuple[int, Any]:
        path = resource.format(**parameters)
        event = api_event("conversations", body, path=path, path_parameters=parameters or None, query=query)
        event["httpMethod"] = event["requestContext"]["httpMethod"] = method
        event["resource"] = event["requestContext"]["resourcePath"] = resource
        return self._call("ConversationsFunction", event)

    def sessions(self, **query: str) -> tuple[int, Any]:
        """GET /api/v1/sessions (status=open|waiting, limit, cursor)."""
        return self._conversations("GET", "/api/v1/sessions", {}, **query)

    def staff_reply(self, session_id: str, text: Any = "We are on it.", author: str | None = None) -> tuple[int, Any]:
        """POST /api/v1/sessions/{session_id}/messages."""
        body = {"text": text} if author is None else {"text": text, "author": author}
        return self.staff_message(session_id, body)

    def resolve(self, session_id: str) -> tuple[int, Any]:
        """POST /api/v1/sessions/{session_id}/resolve."""
        return self._conversations(
            "POST",
            "/api/v1/sessions/{session_id}/resolve",
            {"session_id": session_id},
            {},
        )

    def checkout(self, user_id: str) -> tuple[int, Any]:
        """POST /api/v1/guests/{user_id}/checkout."""
        return self._conversations(
            "POST",
            "/api/v1/guests/{user_id}/checkout",
            {"user_id": user_id},
            {},
        )

    def close_stays(self) -> dict[str, Any]:
        """One run of the scheduled closing of stays past their close_at."""
        from tests.lambda_events import sample

        return self.handlers["CloseStaysFunction"](sample("close_stays"), lambda_context("CloseStaysFunction"))

    def ack(self, waha_id: str, ack: int, **changes: Any) -> tuple[int, Any]:
        """WAHA's `message.ack` for a message id as the engine writes it (see `waha_ack`)."""
        return self.webhook(waha_ack(waha_id, ack, **changes))

    def from_hotel(self, text: str = "Your room is ready.", **changes: Any) -> tuple[int, Any]:
        """The hotel writing to the guest from its own WhatsApp, as message.any delivers it (see `hotel_message`)."""
        return self.webhook(hotel_message(text, **changes))

    def media_message(self, caption: str = "", media: InboundMedia | None = None, **payload: Any) -> dict[str, Any]:
        """A guest's `message` with a photo or file (WAHA's docs' media example): the simulator keeps the file at
        /api/files/... as WAHA would, and the delivery names it in `media.url` (or says why there is none)."""
        delivery = waha_message(text=caption)
        kept = self.waha.keep_file(delivery["payload"]["id"], media or InboundMedia())
        delivery["payload"].update(hasMedia=True, media=kept, **payload)
        return delivery

    def copy_media(self) -> int:
        """Runs FetchMediaFunction over everything visible in the media queue; returns how many records it handled."""
        return self._drain("FetchMediaFunction", "MediaQueue", batch_size=5)

    def answer_queued(self) -> int:
        """Runs AnswerGuestFunction over everything visible in the answer queue; returns how many records it handled."""
        return self._drain("AnswerGuestFunction", "AnswerQueue", batch_size=10)

    def _drain(self, function: str, queue: str, batch_size: int) -> int:
        poller = QueuePoller(
            self.handlers[function],
            self.resources.queue_urls[queue],
            self.resources.queue_arns[queue],
            batch_size=batch_size,
            timeout_seconds=30,
            function_name=function,
            sqs_client=self.sqs,
            wait_time_seconds=0,
        )
        handled = 0
        while count := poller.poll_once():
            handled += count
        return handled

    def staff_message(self, session_id: str, body: Any) -> tuple[int, Any]:
        """POST /api/v1/sessions/{session_id}/messages with any body (text, author, media)."""
        return self._conversations(
            "POST",
            "/api/v1/sessions/{session_id}/messages",
            {"session_id": session_id},
            body,
        )

    def media_object(self, key: str) -> bytes:
        """Our copy of a guest's file in the media bucket."""
        s3 = boto3.client("s3")
        return s3.get_object(Bucket=self.resources.bucket_names["MediaBucket"], Key=key)["Body"].read()

    def waiting_records(self) -> int:
        """Outbound records waiting to become visible: messages queued again for their send slot."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.resources.outbound_queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessagesDelayed"])

    def deliver_all(self, timeout_seconds: float = 60) -> int:
        """Runs the sender until the outbound queue is empty, records waiting for their send slot included, as the
        SQS trigger would; returns how many records it handled."""
        poller = self.poller()
        handled = 0
        deadline = time.monotonic() + timeout_seconds
        while True:
            count = poller.poll_once()
            handled += count
            if count:
                continue
            if self.queue_depth() + self.waiting_records() == 0:
                return handled
            assert time.monotonic() < deadline, "the outbound queue did not empty in time"
            time.sleep(0.05)

    def staff_reply_signed_in(self, session_id: str, body: Any, author: str) -> tuple[int, Any]:
        """POST /api/v1/sessions/{session_id}/messages as a signed-in staff member: the context the authorizer
        (functions/authorize) hands API Gateway for an ID token naming `author`."""
        event = api_event("conversations", body, path=f"/api/v1/sessions/{session_id}/messages")
        event["pathParameters"] = {"session_id": session_id}
        event["httpMethod"] = event["requestContext"]["httpMethod"] = "POST"
        event["resource"] = event["requestContext"]["resourcePath"] = "/api/v1/sessions/{session_id}/messages"
        event["requestContext"]["authorizer"] = {"via": "staff", "author": author, "principalId": "staff-sub"}
        return self._call("ConversationsFunction", event)

    def request(self, function: str, sample: str, method: str, path: str) -> tuple[int, Any]:
        """Any method and path handed to an HTTP function (its sample event otherwise), as API Gateway would if
        its routes and the function's ever disagreed."""
        event = api_event(sample, path=path)
        event["httpMethod"] = event["requestContext"]["httpMethod"] = method
        return self._call(function, event)


def dumps(value: Any) -> str:
    return json.dumps(value)


def waha_session_status(
    status: str = "WORKING", *, session: str = "default", timestamp_ms: int | None = None
) -> dict[str, Any]:
    """A WAHA `session.status` delivery as WAHA's docs shape it; the event time defaults to now (ms)."""
    now_ms = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    return {
        "id": f"evt_{now_ms:026d}",
        "timestamp": now_ms,
        "event": "session.status",
        "session": session,
        "me": {"id": HOTEL_CHAT_ID, "pushName": "Hotel"},
        "payload": {
            "name": session,
            "status": status,
            "statuses": [{"status": status, "timestamp": now_ms}],
            "data": None,
        },
        "engine": "WEBJS",
        "environment": {"version": "2025.1.1", "engine": "WEBJS", "tier": "CORE"},
    }


def our_waha_id(message_id: str, engine: str = "WEBJS", chat_id: str = GUEST_CHAT_ID) -> str:
    """How WAHA names one of our sends (we ask it to use keys.outbound_waha_id): WEBJS `true_<chat>_<ID>`,
    NOWEB and GOWS the bare ID."""
    from concierge import keys

    bare = keys.outbound_waha_id(message_id)
    return f"true_{chat_id}_{bare}" if engine == "WEBJS" else bare


def waha_ack(
    waha_id: str,
    ack: int,
    *,
    chat_id: str = GUEST_CHAT_ID,
    session: str = "default",
    timestamp_ms: int | None = None,
    **payload: Any,
) -> dict[str, Any]:
    """A WAHA `message.ack` delivery: the payload of WAHA's docs example (webhook-message.ack.docs-example.json)
    in WAHA's envelope, for a message the hotel sent; payload fields overridden by `payload`."""
    from concierge.conversations.ticks import ACK_NAMES

    now_ms = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    return {
        "id": f"evt_{now_ms:026d}",
        "timestamp": now_ms,
        "event": "message.ack",
        "session": session,
        "me": {"id": HOTEL_CHAT_ID, "pushName": "Hotel"},
        "payload": {
            "id": waha_id,
            "from": chat_id,
            "participant": None,
            "fromMe": True,
            "ack": ack,
            "ackName": ACK_NAMES.get(ack, "UNKNOWN"),
            **payload,
        },
        "engine": "WEBJS",
        "environment": {"version": "2025.1.1", "engine": "WEBJS", "tier": "CORE"},
    }


def hotel_message(
    text: str = "Your room is ready.",
    *,
    engine: str = "WEBJS",
    message_id: str | None = None,
    chat_id: str = GUEST_CHAT_ID,
    **payload: Any,
) -> dict[str, Any]:
    """A message the hotel's own account wrote in a guest's chat (its phone, WAHA's dashboard), as message.any
    delivers it. WEBJS: id `true_<chat>_<id>`, `from` the hotel's number, `to` the chat. NOWEB: the bare id,
    the chat in `from`. `message_id` is the bare id (random by default); payload fields overridden by `payload`."""
    import secrets

    bare = message_id or secrets.token_hex(16).upper()
    if engine == "WEBJS":
        delivery = message_event(
            chat_id, text, message_id=f"true_{chat_id}_{bare}", event="message.any", from_me=True, me_id=HOTEL_CHAT_ID
        )
    else:
        delivery = message_event(chat_id, text, message_id=bare, event="message.any", from_me=True, me_id=HOTEL_CHAT_ID)
        delivery["payload"].update({"from": chat_id, "to": HOTEL_CHAT_ID})
        delivery["engine"] = engine
    delivery["payload"].update(payload)
    return delivery
