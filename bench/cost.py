"""Cost of 1,000 guest stays from the measured figures (results.json's `calls` and `latency`), us-east-1 prices.

A stay is one registration (a welcome) and ten guest messages, each answered (spread over the stay, so no
cooldown holds one back): eleven messages sent. The scheduled job closes it and the retention job stamps its
expiry: the stay pays those runs' writes, while the runs themselves are a fixed monthly cost. DynamoDB units are
each flow's (bench.capacity); Lambda compute is each function's warm p50, rounded up to the ms, at 256 MB arm64.
"""

from __future__ import annotations

import math
from typing import Any

from devstack.template import resource_properties

PRICES = {  # us-east-1, from the lead's notes, checked 2026-11-25: verify before budgeting
    "lambda_gb_second": 0.0000133334,  # arm64
    "lambda_request": 0.20e-6,
    "wru": 0.625e-6,
    "rru": 0.125e-6,
    "sqs_request": 0.40e-6,
    "api_request": 3.50e-6,  # REST API
}
EXTRA_PRICES = {"logs_gb": 0.50, "xray_trace": 5.00e-6}  # list prices known to the benchmark's author: verify
GB = 256 / 1024
PLATFORM_LOG_BYTES = 300  # Lambda's own START, END and REPORT lines per invocation
STAYS, MESSAGES, SENDS = 1000, 10, 11
# (what, flow in `calls`, series in `latency` or None for a share of a scheduled run, per stay, through the API)
USES = {
    "register": ("register", "register_new", "register", 1, True),
    "inbound": ("webhook, a guest's message", "inbound", "inbound", MESSAGES, True),
    "closing": ("its share of a closing run", "close_stays", None, 1, False),
    "retention": ("its share of a retention run", "retention", None, 1, False),
    "batch1": ("sender, batch of 1", "sender_batch1", "sender_batch1", SENDS, False),
    "batch10": ("sender, batch of 10", "sender_batch10", "sender_batch10", SENDS / 10, False),
    "duplicate": ("webhook, message.any duplicate", "inbound_duplicate", "inbound_duplicate", MESSAGES, True),
    "echo": ("webhook, our send echoed", "own_echo", "own_echo", SENDS, True),
    "ack": ("webhook, delivery tick", "ack", "ack", 2 * SENDS, True),  # DEVICE, then READ
}
STAY = ["register", "inbound", "closing", "retention"]
SCENARIOS = {  # title, uses, sender batches per stay (the event source receives and deletes each)
    "quiet": ("Quiet hotel: each message its own sender batch (WAHA events: message)", [*STAY, "batch1"], SENDS),
    "busy": ("Busy hotel: sender batches are full (10 messages)", [*STAY, "batch10"], SENDS / 10),
    "message_any": ("Quiet hotel, WAHA also sending message.any", [*STAY, "batch1", "duplicate", "echo"], SENDS),
    "as_configured": (
        "Quiet hotel, WAHA subscribed as the README says: message, message.any, message.ack",
        [*STAY, "batch1", "duplicate", "echo", "ack"],
        SENDS,
    ),
}


def _line(item: str, quantity: float, unit: str, price: float) -> dict[str, Any]:
    return {"item": item, "quantity": quantity, "unit": unit, "cost": quantity * price}


def scenario(results: dict[str, Any], uses: list[str], batches: float) -> dict[str, Any]:
    calls, latency = results["calls"], results["latency"]
    total = {"wru": 0.0, "rru": 0.0, "index_wru": 0.0, "sqs": 0.0, "requests": 0.0, "api": 0.0, "gbs": 0.0, "log": 0.0}
    described = []
    for name in uses:
        what, flow, series, per_stay, api = USES[name]
        capacity = calls[flow]["capacity"]
        for unit in ("wru", "rru", "index_wru"):
            total[unit] += capacity[unit] * per_stay * STAYS
        total["sqs"] += capacity["sqs_requests"] * per_stay * STAYS
        if series:
            measured = latency[series]
            total["requests"] += per_stay * STAYS
            total["api"] += per_stay * STAYS if api else 0
            total["gbs"] += per_stay * STAYS * GB * math.ceil(measured["p50"]) / 1000
            total["log"] += per_stay * STAYS * (measured["log_bytes_mean"] + PLATFORM_LOG_BYTES)
        described.append({"what": what, "per_stay": per_stay, "p50": latency[series]["p50"] if series else None})
    total["sqs"] += 2 * batches * STAYS  # the SQS event source's ReceiveMessage and DeleteMessageBatch
    lines = [
        _line("API Gateway REST requests", total["api"], "request", PRICES["api_request"]),
        _line("Lambda requests", total["requests"], "request", PRICES["lambda_request"]),
        _line("Lambda compute (256 MB, arm64)", total["gbs"], "GB-second", PRICES["lambda_gb_second"]),
        _line("DynamoDB write request units", total["wru"] + total["index_wru"], "WRU", PRICES["wru"]),
        _line("DynamoDB read request units", total["rru"], "RRU", PRICES["rru"]),
        _line("SQS requests (ours and the event source's)", total["sqs"], "request", PRICES["sqs_request"]),
    ]
    extra = [
        _line("CloudWatch Logs ingestion", total["log"] / 1e9, "GB", EXTRA_PRICES["logs_gb"]),
        _line("X-Ray traces (every request sampled)", total["requests"], "trace", EXTRA_PRICES["xray_trace"]),
    ]
    return {
        "uses": described,
        "lines": lines,
        "total": sum(line["cost"] for line in lines),
        "extra": extra,
        "index_wru": total["index_wru"],
    }


def _runs_per_month(function_id: str) -> int:
    """From the function's `rate(N minutes|hours)` schedule in template.yaml."""
    events = resource_properties(function_id)["Events"].values()
    (rate,) = (event["Properties"]["ScheduleExpression"] for event in events if "Schedule" in event["Type"])
    amount, unit = rate.removeprefix("rate(").removesuffix(")").split()
    return 30 * 24 * 60 // (int(amount) * (60 if unit.startswith("hour") else 1))


def measure(results: dict[str, Any]) -> dict[str, Any]:
    fixed = []
    for what, function_id, key in (
        ("sweeper", "SweepOutboxFunction", "sweeper"),
        ("closing run", "CloseStaysFunction", "close_stays_none"),
        ("retention run", "ExpireClosedStaysFunction", "retention_none"),
    ):
        runs, capacity = _runs_per_month(function_id), results["calls"][key]["capacity"]
        compute = (
            PRICES["lambda_request"]
            + GB * math.ceil(results["latency"][key]["p50"]) / 1000 * PRICES["lambda_gb_second"]
        )
        dynamodb = capacity["rru"] * PRICES["rru"] + (capacity["wru"] + capacity["index_wru"]) * PRICES["wru"]
        fixed.append({"what": what, "runs": runs, "cost": runs * (compute + dynamodb)})
    notes = sorted({note for flow in results["calls"].values() for note in flow["capacity"]["notes"]})
    scenarios = {
        key: {"title": title, **scenario(results, uses, batches)} for key, (title, uses, batches) in SCENARIOS.items()
    }
    return {"stays": STAYS, "prices": PRICES, "scenarios": scenarios, "fixed": fixed, "notes": notes}
