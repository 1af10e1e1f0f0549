"""Cost of 1,000 guest stays from the measured calls, item sizes and durations, at us-east-1 on-demand prices.

A stay is one registration (one welcome) and ten guest messages, each answered by an auto-reply (spread over
the stay, so no cooldown holds one back): 11 messages sent. It ends when the scheduled job closes it, and the
retention job then stamps its expiry on its items. DynamoDB capacity is computed per call from what the call
wrote or read, by DynamoDB's item-size rules, and per global secondary index from the entries each flow's
changes added, moved or removed; Lambda duration is the measured warm p50 of each function at 256 MB on arm64.
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

Key = tuple[str, str]
Images = dict[Key, dict[str, Any]]


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


def _key(values: dict[str, Any]) -> Key:
    return values["pk"]["S"], values["sk"]["S"]


@dataclass(frozen=True)
class Index:
    """A global secondary index of the table, as template.yaml declares it."""

    name: str
    key_attributes: tuple[str, ...]
    projection: str
    included: tuple[str, ...] = ()

    def holds(self, item: dict[str, Any] | None) -> bool:
        # Sparse: an item is in the index only when it has every key attribute.
        return item is not None and all(name in item for name in self.key_attributes)

    def entry(self, item: dict[str, Any]) -> dict[str, Any]:
        if self.projection == "ALL":
            return item
        names = {*TABLE_KEYS, *self.key_attributes, *(self.included if self.projection == "INCLUDE" else ())}
        return {name: value for name, value in item.items() if name in names}

    def write_units(self, before: dict[str, Any] | None, after: dict[str, Any] | None) -> int:
        """What one item's change costs this index: a put, a delete, both when its index key changed, or an
        update of the entry when a projected attribute changed."""
        held_before, held_after = self.holds(before), self.holds(after)
        units = 0
        if held_before and held_after and before is not None and after is not None:
            if any(before[name] != after[name] for name in self.key_attributes):
                units += _entry_units(self.entry(before)) + _entry_units(self.entry(after))
            elif self.entry(before) != self.entry(after):
                units += _entry_units(self.entry(after))
        elif held_after and after is not None:
            units += _entry_units(self.entry(after))
        elif held_before and before is not None:
            units += _entry_units(self.entry(before))
        return units


TABLE_KEYS = ("pk", "sk")


def _entry_units(entry: dict[str, Any]) -> int:
    return write_units(item_size(entry) + INDEX_ENTRY_OVERHEAD_BYTES)


def template_indexes() -> list[Index]:
    """The table's global secondary indexes from template.yaml."""
    from devstack.template import resources_of_type

    (table,) = resources_of_type("AWS::DynamoDB::Table").values()
    indexes = []
    for index in table["Properties"].get("GlobalSecondaryIndexes", []):
        projection = index["Projection"]
        indexes.append(
            Index(
                name=index["IndexName"],
                key_attributes=tuple(part["AttributeName"] for part in index["KeySchema"]),
                projection=projection["ProjectionType"],
                included=tuple(projection.get("NonKeyAttributes", ())),
            )
        )
    return indexes


def touched_keys(records: list[CallRecord]) -> set[Key]:
    """The table keys the recorded calls wrote, checked or read by key (from their parameters)."""
    found: set[Key] = set()
    for record in records:
        params = record.params or {}
        for action in params.get("TransactItems", []):
            ((_, body),) = action.items()
            found.add(_key(body["Item"] if "Item" in body else body["Key"]))
        for name in ("Item", "Key"):
            if name in params:
                found.add(_key(params[name]))
        for request in params.get("RequestItems", {}).values():
            if isinstance(request, dict):  # BatchGetItem
                found.update(_key(key) for key in request.get("Keys", []))
            else:  # BatchWriteItem
                for entry in request:
                    ((_, body),) = entry.items()
                    found.add(_key(body["Item"] if "Item" in body else body["Key"]))
    return found


@dataclass
class Capacity:
    """DynamoDB capacity and other billable requests of some calls."""

    wru: float = 0.0
    rru: float = 0.0
    index_wru: float = 0.0
    sqs_requests: float = 0
    ssm_requests: float = 0
    notes: list[str] = field(default_factory=list)
    index_wru_by_index: dict[str, float] = field(default_factory=dict)

    def __add__(self, other: Capacity) -> Capacity:
        by_index = dict(self.index_wru_by_index)
        for name, units in other.index_wru_by_index.items():
            by_index[name] = by_index.get(name, 0.0) + units
        return Capacity(
            self.wru + other.wru,
            self.rru + other.rru,
            self.index_wru + other.index_wru,
            self.sqs_requests + other.sqs_requests,
            self.ssm_requests + other.ssm_requests,
            self.notes + [note for note in other.notes if note not in self.notes],
            by_index,
        )

    def times(self, factor: float) -> Capacity:
        return Capacity(
            self.wru * factor,
            self.rru * factor,
            self.index_wru * factor,
            self.sqs_requests * factor,
            self.ssm_requests * factor,
            list(self.notes),
            {name: units * factor for name, units in self.index_wru_by_index.items()},
        )

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def as_json(self) -> dict[str, Any]:
        return {
            "wru": self.wru,
            "rru": self.rru,
            "index_wru": self.index_wru,
            "index_wru_by_index": self.index_wru_by_index,
            "sqs_requests": self.sqs_requests,
            "ssm_requests": self.ssm_requests,
            "notes": self.notes,
        }


class CapacityModel:
    """Sizes each recorded call of a flow by the items it wrote or read, as they were before and after the flow;
    the table's indexes are charged for every entry the flow's changes added, moved, changed or removed."""

    def __init__(self, indexes: list[Index]) -> None:
        self._indexes = indexes

    def of_flow(self, records: list[CallRecord], before: Images, after: Images) -> Capacity:
        capacity = Capacity()
        for record in records:
            self._add(capacity, record, before, after)
        for key in before.keys() | after.keys():
            old, new = before.get(key), after.get(key)
            if old == new:
                continue
            for index in self._indexes:
                units = index.write_units(old, new)
                if units:
                    capacity.index_wru += units
                    capacity.index_wru_by_index[index.name] = capacity.index_wru_by_index.get(index.name, 0) + units
        return capacity

    @staticmethod
    def _size(key: Key, before: Images, after: Images, written: dict[str, Any] | None = None) -> int:
        # DynamoDB bills a write by the larger of the item before and after it; an item the flow neither found
        # nor left (a failed condition on a missing item) costs the least a write costs.
        sizes = [item_size(item) for item in (before.get(key), after.get(key), written) if item is not None]
        return max(sizes, default=WRITE_UNIT_BYTES)

    def _add(self, capacity: Capacity, record: CallRecord, before: Images, after: Images) -> None:
        service, operation = record.operation.split(".", 1)
        params = record.params or {}
        if service == "SQS":
            capacity.sqs_requests += 1
        elif service == "SSM":
            capacity.ssm_requests += 1
        elif operation == "TransactWriteItems":
            self._transaction(capacity, params["TransactItems"], record.error is not None, before, after)
        elif operation == "PutItem":
            capacity.wru += write_units(self._size(_key(params["Item"]), before, after, params["Item"]))
        elif operation in ("UpdateItem", "DeleteItem"):
            capacity.wru += write_units(self._size(_key(params["Key"]), before, after))
        elif operation == "BatchWriteItem":
            for requests in params["RequestItems"].values():
                for entry in requests:
                    ((_, body),) = entry.items()
                    written = body.get("Item")
                    capacity.wru += write_units(self._size(_key(written or body["Key"]), before, after, written))
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
            if "FilterExpression" in params or "ProjectionExpression" in params:
                # DynamoDB bills the whole items a Query reads, before its filter and projection.
                capacity.note(
                    "a Query with a filter or a projection is priced by what it returned (a lower bound: DynamoDB "
                    "bills the items it read)"
                )
        else:
            capacity.note(f"{record.operation} is not priced")

    def _transaction(
        self, capacity: Capacity, actions: list[dict[str, Any]], cancelled: bool, before: Images, after: Images
    ) -> None:
        # Transactions cost twice a standard write per item (prepare and commit).
        for action in actions:
            ((kind, body),) = action.items()
            written = body.get("Item")
            capacity.wru += 2 * write_units(self._size(_key(written or body["Key"]), before, after, written))
            if kind == "ConditionCheck":
                capacity.note("a ConditionCheck item is priced like a transactional write of that item")
        if cancelled:
            capacity.note("a cancelled transaction is priced as if it had written (upper bound)")


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
    # False for a stay's share of a scheduled run (its writes), whose invocations are fixed costs.
    invoked: bool = True


def _line(item: str, quantity: float, unit: str, price: float) -> dict[str, Any]:
    return {"item": item, "quantity": quantity, "unit": unit, "unit_price": price, "cost": quantity * price}


def _scenario(uses: list[FunctionUse], esm_batches_per_stay: float) -> dict[str, Any]:
    capacity = Capacity()
    for use in uses:
        capacity = capacity + use.capacity.times(use.per_stay)
    invoked = [use for use in uses if use.invoked]
    invocations = sum(use.per_stay for use in invoked) * STAYS
    gb_seconds = sum(use.per_stay * LAMBDA_MEMORY_GB * math.ceil(use.duration_ms) / 1000 for use in invoked) * STAYS
    # The SQS event source's ReceiveMessage and DeleteMessageBatch are billed to the account like our own calls.
    sqs = round(capacity.sqs_requests * STAYS) + round(2 * esm_batches_per_stay * STAYS)
    api = sum(use.per_stay for use in invoked if use.api_request) * STAYS
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
    log_bytes = sum(use.per_stay * (use.log_bytes + PLATFORM_LOG_BYTES_PER_INVOCATION) for use in invoked) * STAYS
    traces = sum(use.per_stay for use in invoked if use.traced_root) * STAYS
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
        "uses": [
            {"name": use.name, "per_stay": use.per_stay, "duration_ms": use.duration_ms, "invoked": use.invoked}
            for use in uses
        ],
    }


def model(flows: dict[str, Any], latency: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """flows: bench.flows.FlowCalls by key (with records and item images); latency: bench.latency summaries."""
    sizing = CapacityModel(template_indexes())
    capacity = {key: sizing.of_flow(flow.records, flow.before, flow.after) for key, flow in flows.items()}

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

    def share(name: str, flow_key: str) -> FunctionUse:
        return FunctionUse(
            name, 1, 0.0, capacity[flow_key], api_request=False, log_bytes=0.0, traced_root=False, invoked=False
        )

    register = use("register", "register_new", "register", 1, api=True, root=True)
    inbound = use("webhook (guest message)", "inbound", "inbound", MESSAGES_PER_STAY, api=True, root=True)
    one_by_one = use("sender, batch of 1", "sender_batch1", "sender_batch1", SENDS_PER_STAY, api=False, root=True)
    batched = use("sender, batch of 10", "sender_batch10", "sender_batch10", SENDS_PER_STAY / 10, api=False, root=True)
    # A stay's share of the scheduled runs: the transaction that closes it, the updates that stamp its expiry.
    closing = share("its share of a closing run", "close_stays")
    retention = share("its share of a retention run", "retention")
    duplicate = use(
        "webhook (message.any duplicate)", "inbound_duplicate", "inbound_duplicate", MESSAGES_PER_STAY, True, True
    )
    echo = use("webhook (own message echoed)", "inbound_own_echo", "inbound_own_echo", SENDS_PER_STAY, True, True)
    # DEVICE, then READ, for every message sent.
    acks = use("webhook (delivery tick)", "ack", "ack", 2 * SENDS_PER_STAY, True, True)

    stay = [register, inbound, closing, retention]
    scenarios = {
        "quiet": {
            "title": "Quiet hotel: each message is its own sender batch (WAHA webhook events: message)",
            **_scenario([*stay, one_by_one], esm_batches_per_stay=SENDS_PER_STAY),
        },
        "busy": {
            "title": "Busy hotel: sender batches are full (10 messages)",
            **_scenario([*stay, batched], esm_batches_per_stay=SENDS_PER_STAY / 10),
        },
        "message_any": {
            "title": "Quiet hotel with WAHA also sending message.any (a duplicate per guest message, an echo per send)",
            **_scenario([*stay, one_by_one, duplicate, echo], esm_batches_per_stay=SENDS_PER_STAY),
        },
        "as_configured": {
            "title": (
                "Quiet hotel, WAHA subscribed as the README configures it: message, message.any and message.ack "
                "(a DEVICE and a READ tick per send)"
            ),
            **_scenario([*stay, one_by_one, duplicate, echo, acks], esm_batches_per_stay=SENDS_PER_STAY),
        },
    }
    return {
        "stays": STAYS,
        "stay": (
            f"1 registration (1 welcome) + {MESSAGES_PER_STAY} guest messages + {MESSAGES_PER_STAY} auto-replies, "
            "closed by the scheduled job and its expiry stamped by the retention job"
        ),
        "prices": PRICES,
        "prices_note": PRICES_NOTE,
        "extra_prices": EXTRA_PRICES,
        "extra_prices_note": EXTRA_PRICES_NOTE,
        "per_flow_capacity": {key: value.as_json() for key, value in capacity.items()},
        "scenarios": scenarios,
        "fixed_monthly": _fixed_monthly(
            [
                ("sweeper", "SweepOutboxFunction", capacity["sweeper"], latency["sweeper"]["p50_ms"]),
                (
                    "closing run",
                    "CloseStaysFunction",
                    capacity["close_stays_none"],
                    latency["close_stays_none"]["p50_ms"],
                ),
                (
                    "retention run",
                    "ExpireClosedStaysFunction",
                    capacity["retention_none"],
                    latency["retention_none"]["p50_ms"],
                ),
            ]
        ),
    }


MINUTES_PER_MONTH = 30 * 24 * 60


def _runs_per_month(function_id: str) -> int:
    """From the function's schedule in template.yaml, `rate(N minutes|hours)`."""
    from devstack.template import resource_properties

    (schedule,) = (
        event["Properties"]["ScheduleExpression"]
        for event in resource_properties(function_id)["Events"].values()
        if event["Type"] in ("Schedule", "ScheduleV2")
    )
    amount, unit = schedule.removeprefix("rate(").removesuffix(")").split()
    minutes = int(amount) * {"minute": 1, "minutes": 1, "hour": 60, "hours": 60, "day": 1440, "days": 1440}[unit]
    return MINUTES_PER_MONTH // minutes


def _fixed_monthly(jobs: list[tuple[str, str, Capacity, float]]) -> dict[str, Any]:
    """What runs whether or not guests write: each scheduled function with nothing to do, for 30 days."""
    lines = []
    for name, function_id, capacity, duration_ms in jobs:
        runs = _runs_per_month(function_id)
        lambda_cost = runs * (
            PRICES["lambda_request"]
            + LAMBDA_MEMORY_GB * math.ceil(duration_ms) / 1000 * PRICES["lambda_gb_second_arm64"]
        )
        dynamodb_cost = runs * (
            capacity.rru * PRICES["dynamodb_rru"] + (capacity.wru + capacity.index_wru) * PRICES["dynamodb_wru"]
        )
        lines.append({"name": name, "function": function_id, "runs": runs, "cost": lambda_cost + dynamodb_cost})
    return {
        "jobs": lines,
        "total": sum(line["cost"] for line in lines),
        "note": (
            "The SQS event source also long-polls the empty queue around the clock; AWS does not publish the poller "
            "count, so those ReceiveMessage requests are left out (at 5 pollers and 20 s waits: ~0.65 M a month)."
        ),
    }
