"""Cost of 1,000 guest stays from the measured calls, item sizes and durations, at us-east-1 on-demand prices.

A stay is one registration (one welcome) and ten guest messages, each answered by an auto-reply: 11 messages
sent. DynamoDB capacity is computed per call from what the call wrote or read, by DynamoDB's item-size rules;
Lambda duration is the measured warm p50 of each function at 256 MB on arm64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bench.calls import CallRecord

PRICES_NOTE = "prices as published for us-east-1, checked 2026-11-25 from the lead's notes; verify before budgeting"
PRICES = {
    "lambda_gb_second_arm64": 0.0000133334,
    "lambda_request": 0.20 / 1e6,
    "dynamodb_wru": 0.625 / 1e6,
    "dynamodb_rru": 0.125 / 1e6,
    "sqs_request": 0.40 / 1e6,
    "api_gateway_rest_request": 3.50 / 1e6,
}
# Not in the lead's notes: public list prices for us-east-1 as I know them, for two costs the deployed stack has.
EXTRA_PRICES_NOTE = "not from the lead's notes: us-east-1 list prices as known to the benchmark's author; verify"
EXTRA_PRICES = {
    "cloudwatch_logs_gb_ingested": 0.50,
    "xray_trace_recorded": 5.00 / 1e6,
}
LAMBDA_MEMORY_GB = 256 / 1024
# START, END and REPORT lines Lambda writes for every invocation, roughly.
PLATFORM_LOG_BYTES_PER_INVOCATION = 300

MESSAGES_PER_STAY = 10
SENDS_PER_STAY = 1 + MESSAGES_PER_STAY
STAYS = 1000

# DynamoDB's published sizing rules.
WRITE_UNIT_BYTES = 1024
READ_UNIT_BYTES = 4096
INDEX_ENTRY_OVERHEAD_BYTES = 100
OUTBOX_INDEX_ATTRIBUTES = ("pk", "sk", "outbox_pk", "outbox_sk")


def attribute_value_size(value: dict[str, Any]) -> int:
    """Bytes DynamoDB counts for one attribute value in its JSON form ({"S": ...}, {"N": ...}, ...)."""
    ((kind, content),) = value.items()
    if kind == "S":
        return len(content.encode("utf-8"))
    if kind == "N":
        return _number_size(content)
    if kind == "B":
        return len(content)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(item.encode("utf-8")) for item in content)
    if kind == "NS":
        return sum(_number_size(item) for item in content)
    if kind == "BS":
        return sum(len(item) for item in content)
    if kind == "L":
        return 3 + sum(attribute_value_size(item) + 1 for item in content)
    if kind == "M":
        return 3 + sum(len(name.encode("utf-8")) + attribute_value_size(item) + 1 for name, item in content.items())
    raise ValueError(f"unknown attribute type {kind}")


def _number_size(text: str) -> int:
    digits = str(abs(Decimal(text))).replace(".", "").lstrip("0").rstrip("0") or "0"
    return math.ceil(len(digits) / 2) + 1


def item_size(item: dict[str, dict[str, Any]]) -> int:
    return sum(len(name.encode("utf-8")) + attribute_value_size(value) for name, value in item.items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / WRITE_UNIT_BYTES))


def read_units(size: int, consistent: bool) -> float:
    units = max(1, math.ceil(size / READ_UNIT_BYTES))
    return units * (1.0 if consistent else 0.5)


def _key(values: dict[str, Any]) -> tuple[str, str]:
    return values["pk"]["S"], values["sk"]["S"]


def _in_outbox_index(item: dict[str, Any]) -> bool:
    return "outbox_pk" in item and "outbox_sk" in item


def _removes_outbox(expression: str) -> bool:
    _, _, removed = expression.upper().partition("REMOVE")
    return "OUTBOX_PK" in removed


@dataclass
class Capacity:
    """DynamoDB capacity and other billable requests of some calls."""

    wru: float = 0.0
    rru: float = 0.0
    index_wru: float = 0.0
    sqs_requests: int = 0
    ssm_requests: int = 0
    notes: list[str] = field(default_factory=list)

    def __add__(self, other: Capacity) -> Capacity:
        return Capacity(
            self.wru + other.wru,
            self.rru + other.rru,
            self.index_wru + other.index_wru,
            self.sqs_requests + other.sqs_requests,
            self.ssm_requests + other.ssm_requests,
            self.notes + [note for note in other.notes if note not in self.notes],
        )

    def times(self, factor: float) -> Capacity:
        return Capacity(
            self.wru * factor,
            self.rru * factor,
            self.index_wru * factor,
            round(self.sqs_requests * factor),
            round(self.ssm_requests * factor),
            list(self.notes),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "wru": self.wru,
            "rru": self.rru,
            "index_wru": self.index_wru,
            "sqs_requests": self.sqs_requests,
            "ssm_requests": self.ssm_requests,
            "notes": self.notes,
        }


class CapacityModel:
    """Sizes each recorded call; updated and checked items are looked up in a scan of the table taken after."""

    def __init__(self, table_items: list[dict[str, Any]]) -> None:
        self._items = {_key(item): item for item in table_items}

    def _stored_size(self, key: dict[str, Any]) -> int:
        item = self._items.get(_key(key))
        # A row deleted since: one write unit's worth, the least any write costs.
        return item_size(item) if item else WRITE_UNIT_BYTES

    def _index_write(self, capacity: Capacity, item: dict[str, Any]) -> None:
        entry = {name: item[name] for name in OUTBOX_INDEX_ATTRIBUTES if name in item}
        capacity.index_wru += write_units(item_size(entry) + INDEX_ENTRY_OVERHEAD_BYTES)

    def of_calls(self, records: list[CallRecord]) -> Capacity:
        capacity = Capacity()
        for record in records:
            self._add(capacity, record)
        return capacity

    def _add(self, capacity: Capacity, record: CallRecord) -> None:
        service, operation = record.operation.split(".", 1)
        params = record.params or {}
        if service == "SQS":
            capacity.sqs_requests += 1
        elif service == "SSM":
            capacity.ssm_requests += 1
        elif operation == "TransactWriteItems":
            self._transaction(capacity, params["TransactItems"], cancelled=record.error is not None)
        elif operation == "PutItem":
            capacity.wru += write_units(item_size(params["Item"]))
            if _in_outbox_index(params["Item"]):
                self._index_write(capacity, params["Item"])
        elif operation == "UpdateItem":
            capacity.wru += write_units(self._stored_size(params["Key"]))
            if _removes_outbox(params.get("UpdateExpression", "")):
                capacity.index_wru += 1
        elif operation == "GetItem":
            found = (record.response or {}).get("Item")
            capacity.rru += read_units(item_size(found) if found else 0, bool(params.get("ConsistentRead")))
        elif operation == "BatchGetItem":
            for table, request in params["RequestItems"].items():
                for item in (record.response or {}).get("Responses", {}).get(table, []):
                    capacity.rru += read_units(item_size(item), bool(request.get("ConsistentRead")))
        elif operation in ("Query", "Scan"):
            items = (record.response or {}).get("Items", [])
            capacity.rru += read_units(sum(item_size(item) for item in items), bool(params.get("ConsistentRead")))
        else:
            capacity.notes.append(f"{record.operation} is not priced")

    def _transaction(self, capacity: Capacity, actions: list[dict[str, Any]], cancelled: bool) -> None:
        # Transactions cost twice a standard write per item (prepare and commit).
        for action in actions:
            ((kind, body),) = action.items()
            if kind == "Put":
                capacity.wru += 2 * write_units(item_size(body["Item"]))
                if not cancelled and _in_outbox_index(body["Item"]):
                    self._index_write(capacity, body["Item"])
            else:
                capacity.wru += 2 * write_units(self._stored_size(body["Key"]))
        if cancelled:
            note = "a cancelled transaction is priced as if it had written (upper bound)"
            if note not in capacity.notes:
                capacity.notes.append(note)
        if any("ConditionCheck" in action for action in actions):
            note = "a ConditionCheck item is priced like a transactional write of that item"
            if note not in capacity.notes:
                capacity.notes.append(note)


@dataclass(frozen=True)
class FunctionUse:
    """One kind of invocation in a stay: how many per stay, how long each, what it calls."""

    name: str
    per_stay: float
    duration_ms: float
    capacity: Capacity
    api_request: bool
    log_bytes: float
    traced_root: bool


def _line(item: str, quantity: float, unit: str, price: float) -> dict[str, Any]:
    return {"item": item, "quantity": quantity, "unit": unit, "unit_price": price, "cost": quantity * price}


def _scenario(uses: list[FunctionUse], esm_batches_per_stay: float) -> dict[str, Any]:
    invocations = sum(use.per_stay for use in uses) * STAYS
    gb_seconds = sum(use.per_stay * LAMBDA_MEMORY_GB * math.ceil(use.duration_ms) / 1000 for use in uses) * STAYS
    capacity = Capacity()
    for use in uses:
        capacity = capacity + use.capacity.times(use.per_stay)
    # The SQS event source's ReceiveMessage and DeleteMessageBatch are billed to the account like our own calls.
    sqs = capacity.sqs_requests * STAYS + round(2 * esm_batches_per_stay * STAYS)
    api = sum(use.per_stay for use in uses if use.api_request) * STAYS
    lines = [
        _line("API Gateway REST requests", api, "request", PRICES["api_gateway_rest_request"]),
        _line("Lambda requests", invocations, "request", PRICES["lambda_request"]),
        _line("Lambda compute (256 MB, arm64)", gb_seconds, "GB-second", PRICES["lambda_gb_second_arm64"]),
        _line(
            "DynamoDB write request units", (capacity.wru + capacity.index_wru) * STAYS, "WRU", PRICES["dynamodb_wru"]
        ),
        _line("DynamoDB read request units", capacity.rru * STAYS, "RRU", PRICES["dynamodb_rru"]),
        _line("SQS requests (ours and the event source's)", sqs, "request", PRICES["sqs_request"]),
    ]
    log_bytes = sum(use.per_stay * (use.log_bytes + PLATFORM_LOG_BYTES_PER_INVOCATION) for use in uses) * STAYS
    traces = sum(use.per_stay for use in uses if use.traced_root) * STAYS
    extra_lines = [
        _line("CloudWatch Logs ingestion", log_bytes / 1e9, "GB", EXTRA_PRICES["cloudwatch_logs_gb_ingested"]),
        _line(
            "X-Ray traces (upper bound: every request sampled)", traces, "trace", EXTRA_PRICES["xray_trace_recorded"]
        ),
    ]
    return {
        "lines": lines,
        "total": sum(line["cost"] for line in lines),
        "extra_lines": extra_lines,
        "extra_total": sum(line["cost"] for line in extra_lines),
        "dynamodb": capacity.times(STAYS).as_json(),
        "uses": [{"name": use.name, "per_stay": use.per_stay, "duration_ms": use.duration_ms} for use in uses],
    }


def model(
    flows: dict[str, Any], latency: dict[str, dict[str, Any]], table_items: list[dict[str, Any]]
) -> dict[str, Any]:
    """flows: bench.flows.FlowCalls by key (with records); latency: bench.latency summaries by key."""
    sizing = CapacityModel(table_items)
    capacity = {key: sizing.of_calls(flow.records) for key, flow in flows.items()}

    def use(name: str, flow_key: str, latency_key: str, per_stay: float, api: bool, root: bool) -> FunctionUse:
        measured = latency[latency_key]
        return FunctionUse(
            name=name,
            per_stay=per_stay,
            duration_ms=measured["p50_ms"],
            capacity=capacity[flow_key],
            api_request=api,
            log_bytes=measured["log_bytes_mean"],
            traced_root=root,
        )

    register = use("register", "register_new", "register", 1, api=True, root=True)
    inbound = use("webhook (guest message)", "inbound", "inbound", MESSAGES_PER_STAY, api=True, root=True)
    one_by_one = use("sender, batch of 1", "sender_batch1", "sender_batch1", SENDS_PER_STAY, api=False, root=True)
    batched = use("sender, batch of 10", "sender_batch10", "sender_batch10", SENDS_PER_STAY / 10, api=False, root=True)
    duplicate = use(
        "webhook (message.any duplicate)", "inbound_duplicate", "inbound_duplicate", MESSAGES_PER_STAY, True, True
    )
    echo = use("webhook (own message echoed)", "inbound_own_echo", "inbound_own_echo", SENDS_PER_STAY, True, True)

    scenarios = {
        "quiet": {
            "title": "Quiet hotel: each message is its own sender batch (WAHA webhook events: message)",
            **_scenario([register, inbound, one_by_one], esm_batches_per_stay=SENDS_PER_STAY),
        },
        "busy": {
            "title": "Busy hotel: sender batches are full (10 messages)",
            **_scenario([register, inbound, batched], esm_batches_per_stay=SENDS_PER_STAY / 10),
        },
        "message_any": {
            "title": "Quiet hotel with WAHA also sending message.any (a duplicate per guest message, an echo per send)",
            **_scenario([register, inbound, one_by_one, duplicate, echo], esm_batches_per_stay=SENDS_PER_STAY),
        },
    }
    return {
        "stays": STAYS,
        "stay": f"1 registration (1 welcome) + {MESSAGES_PER_STAY} guest messages + {MESSAGES_PER_STAY} auto-replies",
        "prices": PRICES,
        "prices_note": PRICES_NOTE,
        "extra_prices": EXTRA_PRICES,
        "extra_prices_note": EXTRA_PRICES_NOTE,
        "per_flow_capacity": {key: value.as_json() for key, value in capacity.items()},
        "scenarios": scenarios,
        "fixed_monthly": _fixed_monthly(capacity["sweeper"], latency["sweeper"]["p50_ms"]),
    }


def _fixed_monthly(sweep: Capacity, sweep_ms: float) -> dict[str, Any]:
    """What runs whether or not guests write: the sweeper every five minutes, 30 days."""
    runs = 12 * 24 * 30
    lambda_cost = runs * (
        PRICES["lambda_request"] + LAMBDA_MEMORY_GB * math.ceil(sweep_ms) / 1000 * PRICES["lambda_gb_second_arm64"]
    )
    dynamodb_cost = runs * (sweep.rru * PRICES["dynamodb_rru"] + (sweep.wru + sweep.index_wru) * PRICES["dynamodb_wru"])
    return {
        "sweeper_runs": runs,
        "sweeper_cost": lambda_cost + dynamodb_cost,
        "note": (
            "The SQS event source also long-polls the empty queue around the clock; AWS does not publish the poller "
            "count, so those ReceiveMessage requests are left out (at 5 pollers and 20 s waits: ~0.65 M a month)."
        ),
    }
