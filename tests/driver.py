"""Drives the real handlers in-process the way API Gateway and the SQS trigger would."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3

from devstack.resources import LocalResources
from devstack.sender import QueuePoller
from devstack.waha_sim import WahaSimulator, message_event
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

    def history(self, user_id: str, **query: str) -> tuple[int, Any]:
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


def dumps(value: Any) -> str:
    return json.dumps(value)
