"""docs/performance.md from the results dictionary `python -m bench` also writes to bench/results.json."""

from __future__ import annotations

from typing import Any

from bench import pacing
from devstack.template import functions

COLD_INIT_BUDGET = 1.3
# Issue 9: a guest's message stays at 3 AWS calls, a delivery tick at most 2.
WEBHOOK_CALL_BUDGET = 3
ACK_CALL_BUDGET = 2
# Was 2 (one transaction and the queue); issue 8's rule that a phone changing hands never hands over a history
# needs the phone's lookup read before the write, so a registration is a read, a send and a transaction.
REGISTER_CALL_BUDGET = 3
LAYER_ID = "CommonLayer"
BASELINE = "Baseline"


def function_order(results: dict[str, Any]) -> list[str]:
    """The functions of template.yaml, in its order, that the cold-start run measured."""
    measured = results["cold_start"]["variants"]
    return [name for name in functions() if name in measured]


def _ms(value: float) -> str:
    return f"{value:,.1f} ms" if value < 100 else f"{value:,.0f} ms"


def _size(value: int) -> str:
    if value >= 1024 * 1024:
        return f"{value / 1024 / 1024:.1f} MiB"
    if value >= 1024:
        return f"{value / 1024:.1f} KiB"
    return f"{value} B"


def _money(value: float) -> str:
    if value == 0:
        return "$0"
    if value < 0.01:
        return f"${value:.5f}"
    return f"${value:,.4f}"


def _quantity(value: float) -> str:
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.3f}" if value < 10 else f"{value:,.1f}"


def _share(value: float) -> str:
    return f"{value * 100:.0f}%" if value >= 0.01 else f"{value * 100:.1f}%"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _status(met: bool) -> str:
    return "reached" if met else "**not reached**"


# --- budgets -------------------------------------------------------------------------------------------------


def evaluate_budgets(results: dict[str, Any]) -> list[dict[str, Any]]:
    calls = results["calls"]
    budgets = []
    inbound = calls["inbound"]
    guest_lines = [calls[key] for key in ("inbound", "burst_1", "burst_2", "burst_3")]
    budgets.append(
        {
            "budget": (
                f"Webhook, a guest's message: at most {WEBHOOK_CALL_BUDGET} AWS calls, no WAHA call on its path"
            ),
            "measured": (
                f"{inbound['aws_calls']} AWS calls answered ({_operations(inbound)}), "
                f"{calls['burst_2']['aws_calls']} within the cooldown ({_operations(calls['burst_2'])}), "
                f"{sum(flow['waha_calls'] for flow in guest_lines)} WAHA calls; first message in a container: "
                f"{calls['inbound_first']['aws_calls']} (+ SSM.GetParameter, then cached 5 min)"
            ),
            "met": max(flow["aws_calls"] for flow in guest_lines) <= WEBHOOK_CALL_BUDGET
            and not any(flow["waha_calls"] for flow in guest_lines),
        }
    )
    ticks = [calls[key] for key in ("ack", "ack_late", "ack_unknown")]
    budgets.append(
        {
            "budget": f"Webhook, a delivery tick (message.ack): at most {ACK_CALL_BUDGET} AWS calls",
            "measured": (
                f"{calls['ack']['aws_calls']} ({_operations(calls['ack'])}); not news "
                f"{calls['ack_late']['aws_calls']}, an id we never sent {calls['ack_unknown']['aws_calls']}"
            ),
            "met": max(flow["aws_calls"] for flow in ticks) <= ACK_CALL_BUDGET,
        }
    )
    register = calls["register_new"]
    budgets.append(
        {
            "budget": f"Register: at most {REGISTER_CALL_BUDGET} AWS calls in the usual case (a new guest)",
            "measured": (
                f"{register['aws_calls']} ({_operations(register)}); returning guest "
                f"{calls['register_returning']['aws_calls']}, repeated stay {calls['register_repeat']['aws_calls']}"
            ),
            "met": register["aws_calls"] <= REGISTER_CALL_BUDGET,
        }
    )
    undocumented = [flow for flow in calls.values() if flow["as_documented"] is False]
    budgets.append(
        {
            "budget": "Every flow makes the AWS calls docs/architecture.md's flow table gives",
            "measured": (
                f"{sum(flow['as_documented'] is True for flow in calls.values())} of {len(calls)} flows as documented"
                + "".join(
                    f"; {flow['title']}: {_operations(flow)}, documented {_operations(flow, 'documented')}"
                    for flow in undocumented
                )
            ),
            "met": not undocumented,
        }
    )
    cold = results["cold_start"]["variants"]
    baseline = cold[BASELINE]
    for function in function_order(results):
        values = cold[function]
        budgets.append(
            {
                "budget": f"Cold init of {function} at most {COLD_INIT_BUDGET}x the boto3 baseline",
                "measured": (
                    f"{values['init_ratio']:.2f}x ({_ms(values['import_ms'])} vs {_ms(baseline['import_ms'])}); "
                    f"init + first invocation {values['cold_total_ratio']:.2f}x"
                ),
                "met": values["init_ratio"] <= COLD_INIT_BUDGET,
            }
        )
    created = {key: series["created"]["total"] for key, series in results["latency"].items()}
    sizes = [series["n"] for series in results["latency"].values()]
    budgets.append(
        {
            "budget": "No AWS client or HTTP pool created per invocation",
            "measured": (
                f"{sum(created.values())} clients, sessions or PoolManagers created in {sum(sizes)} warm "
                f"invocations ({len(created)} series of {min(sizes)} to {max(sizes)})"
            ),
            "met": sum(created.values()) == 0,
        }
    )
    return budgets


def _operations(flow: dict[str, Any], field: str = "by_operation") -> str:
    operations = flow[field] or {}
    return ", ".join(f"{name} x{count}" if count > 1 else name for name, count in operations.items()) or "none"


# --- sections ------------------------------------------------------------------------------------------------


def _header(results: dict[str, Any]) -> list[str]:
    environment = results["environment"]
    settings = results["settings"]
    return [
        "# Performance",
        "",
        "Generated by `make bench` (`python -m bench`) on "
        f"{results['generated_at']}; the run took {results['duration_s']:.0f} s. Raw numbers: `bench/results.json`.",
        "",
        f"Machine: {environment['cpus']} CPUs, {environment['platform']}, load average "
        f"{results['load_average_before']:.1f} at the start and {results['load_average_after']:.1f} at the end"
        + (
            " (other jobs were running: they show as p99 outliers and noisier cold starts), "
            # The benchmark keeps one core busy itself; more than every core busy means other jobs.
            if max(results["load_average_before"], results["load_average_after"]) > (environment["cpus"] or 1)
            else ", "
        )
        + f"Python {environment['python']} "
        f"(Lambda runs 3.13 on arm64). boto3 {environment['boto3']}, Powertools {environment['powertools']}, "
        f"moto {environment['moto']}. Series sizes: {settings['calls']} calls per API flow, "
        f"{settings['sender_batches']} sender batches, {settings['cold_runs']} fresh processes per cold start, "
        f"{settings['throughput_messages']} messages for throughput.",
        "",
    ]


def _budget_section(results: dict[str, Any]) -> list[str]:
    rows = [[item["budget"], item["measured"], _status(item["met"])] for item in results["budgets"]]
    return ["## Budgets", "", *_table(["Budget", "Measured", "Status"], rows), *_budget_prose(results)]


def _budget_prose(results: dict[str, Any]) -> list[str]:
    missed = [item for item in results["budgets"] if not item["met"]]
    if not missed:
        return ["Every budget is reached.", ""]
    slow = _slow_cold_starts(results)
    return [_cold_start_causes(results["cold_start"], slow), ""] if slow else []


def _slow_cold_starts(results: dict[str, Any]) -> list[str]:
    variants = results["cold_start"]["variants"]
    return [name for name in function_order(results) if variants[name]["init_ratio"] > COLD_INIT_BUDGET]


def _extra_imports(trees: dict[str, Any], name: str, count: int = 5) -> list[tuple[str, float]]:
    """The packages whose import (self time) the function pays beyond what the baseline pays, largest first."""
    baseline = trees[BASELINE]["by_package_ms"]
    extra = {package: ms - baseline.get(package, 0.0) for package, ms in trees[name]["by_package_ms"].items()}
    return sorted(((package, ms) for package, ms in extra.items() if ms >= 1.0), key=lambda item: -item[1])[:count]


def _cold_start_causes(cold: dict[str, Any], slow: list[str]) -> str:
    trees = cold["import_trees"]
    per_function = "; ".join(
        f"{name}: " + ", ".join(f"{package} {_ms(ms)}" for package, ms in _extra_imports(trees, name)) for name in slow
    )
    xray = [name for name in slow if trees[name]["by_package_ms"].get("aws_xray_sdk", 0.0) > 0]
    parts = [
        "Why cold init misses. Import time beyond the baseline's, by package (self time, from the import trees of "
        f"section 3): {per_function}. ",
        (
            f"`aws_xray_sdk` ({', '.join(xray)}) comes with a Powertools `Tracer`: its recorder is built at "
            "import time and builds two botocore X-Ray clients, and Powertools imports it even with tracing "
            "disabled. "
            if xray
            else ""
        ),
        "The first invocation then creates the AWS clients the function uses, which `concierge.aws_clients` "
        "caches lazily (and, in the webhook, Powertools' SSM client for the HMAC key), where the baseline made its "
        "client at init: the init + first invocation ratio compares the two fairly.",
    ]
    return "".join(parts)


def _findings_section(results: dict[str, Any]) -> list[str]:
    """What a reader must not miss, each with its number; more detail in the sections below."""
    findings = []
    layout = results["sizes"].get("layer_layout") if results["sizes"].get("available") else None
    if layout and not layout["concierge_importable"]:
        findings.append(
            "**Deploy blocker**: the layer `sam build` produces has `concierge` at "
            + ", ".join(f"`{path}`" for path in layout["concierge_found_at"] or ["no path"])
            + ", not `python/concierge`, so no function could import it in Lambda (section 4)."
        )
    variants = results["cold_start"]["variants"]
    slow = _slow_cold_starts(results)
    if slow:
        findings.append(
            f"Cold init misses the {COLD_INIT_BUDGET}x budget for "
            + ", ".join(f"{name} ({variants[name]['init_ratio']:.2f}x)" for name in slow)
            + "; the import trees say where the time goes (Budgets, section 3)."
        )
    else:
        findings.append(f"Cold init is within {COLD_INIT_BUDGET}x of the boto3 baseline for every function measured.")
    if results["cold_start"].get("not_measured"):
        findings.append(
            "Not in the cold-init comparison yet (no events for it in the benchmark): "
            + ", ".join(results["cold_start"]["not_measured"])
            + "."
        )
    latency = results["latency"]
    calls = results["calls"]
    burst = [calls[f"burst_{index}"]["aws_calls"] for index in (1, 2, 3)]
    findings.append(
        f"Warm, our own code is {_ms(latency['register']['ours_p50_ms'])} (register) and "
        f"{_ms(latency['inbound']['ours_p50_ms'])} (inbound message) at the median; the rest is AWS round trips "
        f"(section 2). A new registration makes {calls['register_new']['aws_calls']} AWS calls, a guest's message "
        f"{calls['inbound']['aws_calls']} and {calls['inbound']['waha_calls']} to WAHA, three quick lines "
        f"{sum(burst) / 3:.1f} a line ({' + '.join(map(str, burst))}: one answer), a delivery tick "
        f"{calls['ack']['aws_calls']}, a staff reply {calls['staff_reply']['aws_calls']}, a check-out "
        f"{calls['checkout']['aws_calls']} (section 1)."
    )
    scenarios = results["cost"]["scenarios"]
    findings.append(
        f"1,000 stays cost about {_money(scenarios['quiet']['total'])} in Lambda, API Gateway, DynamoDB and SQS "
        f"({_money(scenarios['busy']['total'])} when sender batches are full); subscribing WAHA to `message.any` "
        f"as well as `message` raises that to {_money(scenarios['message_any']['total'])}, and adding "
        f"`message.ack`, as the README configures it, to {_money(scenarios['as_configured']['total'])}. X-Ray, if "
        f"every request were traced, would add {_money(scenarios['quiet']['extra_lines'][1]['cost'])} "
        f"({scenarios['quiet']['extra_lines'][1]['cost'] / scenarios['quiet']['total'] * 100:.0f}% on top; "
        "section 6)."
    )
    tput = results["throughput"]
    findings.append(
        f"One sender delivers {tput['messages_per_second']:.1f} messages/s to a 50 ms WAHA: it sends a batch "
        "one message after another (section 5)."
    )
    return ["## Findings", "", *[f"- {finding}" for finding in findings], ""]


def _method_section(results: dict[str, Any]) -> list[str]:
    return [
        "## Method",
        "",
        "Everything runs in one process against moto's server (`ThreadedMotoServer` on 127.0.0.1) with the table "
        "and queues `devstack.resources` builds from template.yaml, and the WAHA simulator. The handlers of the "
        f"template's {len(function_order(results))} functions are loaded from `functions/*/app.py` with "
        "`devstack.functions.load_handler` and called directly with a fresh copy of their event and a Lambda "
        "context (the function's memory and timeout); the webhook reads its HMAC key from SSM (moto) as deployed, "
        "and Powertools logs at INFO into a sink that counts the bytes. The bot's settings are the template's "
        "defaults except `AUTO_REPLY_COOLDOWN_MINUTES`, 0 so that every guest message of a series is answered (as "
        "in the cost model's stay, whose messages are spread over days); the three quick lines run with the "
        "deployed 10 minutes.",
        "",
        "- **AWS calls** are counted with botocore's event system: hooks on `provide-client-params`, `before-call` "
        "and `after-call` of every session and client (`bench.calls`), so retries are not double-counted and the "
        "same code counts under `mock_aws`. HTTP calls to WAHA are counted on urllib3's connection pool for the "
        "simulator's host and port.",
        f"- **Latency** is the handler's wall time, warm ({results['settings']['warm_up']} calls of warm-up first, "
        "after every function has already served the flows of section 1). *AWS* is the time inside "
        "botocore calls (from `provide-client-params` to `after-call`: serialising, signing, the round trip to "
        "moto, parsing); *WAHA* is the time in urllib3 requests to the simulator; *ours* is the rest (moto and "
        "the simulator share the process, so a little of their work after answering can land in it). Every ten "
        "calls the rows they wrote are deleted and what they queued is purged (not timed): moto deep-copies the "
        "table on every TransactWriteItems and its SendMessage slows as the queue grows, so otherwise each call "
        "would be slower than the last. "
        + (
            "For the same reason moto is made to drop a partition once its last item is deleted (it keeps empty "
            "ones, and copies them too)."
            if results["harness"]["moto_partitions_dropped"]
            else "This moto could not be made to drop emptied partitions, so transactions slow down a little "
            "over a series."
        ),
        "- **Cold init** runs a fresh interpreter per sample (`bench/cold_child.py`) that imports the handler "
        "module from a copy of the function's folder, with a copy of the layer's content (its ContentUri, as "
        "Lambda mounts it at /opt/python) on `sys.path`, compiled ahead to .pyc as `make build` ships it, and "
        "bytecode writing off (Lambda's file system is read-only), then serves a first and a second event "
        "against the same moto server. "
        "The interpreter runs with `-S` and sees only the distributions "
        f"`{results['cold_start']['layer_requirements']}` pulls in (the dev virtualenv's awscrt, cryptography and "
        "pyOpenSSL, which botocore and urllib3 would import, are not in Lambda). The baseline module imports boto3 "
        "and creates one DynamoDB client at import; each of its invocations makes one GetItem.",
        "",
    ]


def _documented(flow: dict[str, Any]) -> str:
    if flow["as_documented"] is None:
        return "not in the table"
    return "yes" if flow["as_documented"] else f"**no**: {_operations(flow, 'documented')}"


def _calls_section(results: dict[str, Any]) -> list[str]:
    rows = []
    for flow in results["calls"].values():
        capacity = flow["capacity"]
        rows.append(
            [
                flow["title"],
                str(flow["aws_calls"]),
                _operations(flow),
                _documented(flow),
                str(flow["waha_calls"]),
                _quantity(capacity["wru"])
                + (f" + {_quantity(capacity['index_wru'])}" if capacity["index_wru"] else ""),
                _quantity(capacity["rru"]),
                flow["note"],
            ]
        )
    return [
        "## 1. AWS calls per flow",
        "",
        'One run of each flow, in the order of docs/architecture.md\'s table "Flows and what each costs"; '
        "*As documented* compares the calls with that table. A sender batch is counted inside the handler (the "
        "event source's ReceiveMessage and DeleteMessageBatch are Lambda's, and appear in the cost model). WRU is "
        "the table's write request units + the global secondary indexes', RRU the read request units, from the "
        "items' sizes (section 6). Three lines at the same moment on three instances (the table's race: each "
        "loser reads and writes again) are not measured: the handlers run one at a time here, so the three quick "
        "lines are delivered one after another, as WAHA posts a chat's messages.",
        "",
        *_table(["Flow", "AWS calls", "By operation", "As documented", "WAHA calls", "WRU", "RRU", "Note"], rows),
    ]


def _latency_section(results: dict[str, Any]) -> list[str]:
    rows = []
    for series in results["latency"].values():
        rows.append(
            [
                series["title"],
                str(series["n"]),
                _ms(series["p50_ms"]),
                _ms(series["p95_ms"]),
                _ms(series["p99_ms"]),
                _ms(series["aws_p50_ms"]),
                _ms(series["waha_p50_ms"]),
                _ms(series["ours_p50_ms"]),
                _ms(series["ours_p99_ms"]),
                _share(series["ours_share"]),
            ]
        )
    latency = results["latency"]
    register, inbound, history = latency["register"], latency["inbound"], latency["history"]
    return [
        "## 2. Handler latency (warm)",
        "",
        *_table(
            ["Flow", "n", "p50", "p95", "p99", "AWS p50", "WAHA p50", "ours p50", "ours p99", "ours, share of time"],
            rows,
        ),
        "Our own code (validation, Powertools' resolver and logging, building items) takes "
        f"{_ms(register['ours_p50_ms'])} of a registration, {_ms(inbound['ours_p50_ms'])} of an inbound message and "
        f"{_ms(history['ours_p50_ms'])} of a history page at the median on this machine; everything else is waiting "
        "on AWS, and the p99 outliers are too (our code's own p99 is in the table). The totals are moto's, not "
        "DynamoDB's: moto answers a GetItem in a few milliseconds but a "
        "TransactWriteItems in 15 or more (it copies the table to be able to roll back), and its Query walks the whole "
        "partition (a Query on an index, the whole table). In Lambda, expect our share to grow by the CPU a 256 MB "
        "function gets (about a seventh of a vCPU) and the AWS share to be DynamoDB's and SQS's round trips, "
        "typically single-digit milliseconds each, made in sequence: three for a registration or a guest's "
        "message, four for a check-out, two per message plus one for a sender batch (section 1).",
        "",
    ]


def _creations_section(results: dict[str, Any]) -> list[str]:
    rows = []
    for series in results["latency"].values():
        created = series["created"]
        clients = ", ".join(f"{service} x{count}" for service, count in created["clients"].items()) or "0"
        rows.append(
            [series["title"], str(series["n"]), clients, str(created["sessions"]), str(created["pool_managers"])]
        )
    return [
        "### Clients and pools created by warm invocations",
        "",
        "Over the measured calls above, `botocore.client.BaseClient.__init__`, `boto3.session.Session.__init__` and "
        "`urllib3.PoolManager.__init__` were counted on the invoking thread (moto's and the simulator's threads "
        "are left out; the benchmark's own clients are made once, before).",
        "",
        *_table(["Flow", "Invocations", "AWS clients", "boto3 sessions", "urllib3 PoolManagers"], rows),
    ]


def _cold_section(results: dict[str, Any]) -> list[str]:
    cold = results["cold_start"]
    variants = cold["variants"]
    rows = []
    for name in [*function_order(results), BASELINE]:
        values = variants[name]
        rows.append(
            [
                name,
                _ms(values["import_ms"]),
                f"{_ms(values['import_min_ms'])} - {_ms(values['import_max_ms'])}",
                _ms(values["first_invocation_ms"]),
                _ms(values["second_invocation_ms"]),
                _ms(values["cold_total_ms"]),
                f"{values['init_ratio']:.2f}x",
                f"{values['cold_total_ratio']:.2f}x",
            ]
        )
    lines = [
        "## 3. Cold init",
        "",
        f"Medians over {cold['runs']} fresh processes each (Python {cold['python']}), interleaved. *Init* is the "
        "handler module's import (Lambda's Init phase); *first* and *second* are the first two invocations.",
        "",
        *_table(
            [
                "Function",
                "Init",
                "Init range",
                "First invocation",
                "Second",
                "Init + first",
                "Init ratio",
                "Total ratio",
            ],
            rows,
        ),
        *(
            [
                "Not measured (no cold-start events for them in `bench/cold_start.py` yet): "
                + ", ".join(cold["not_measured"])
                + ".",
                "",
            ]
            if cold.get("not_measured")
            else []
        ),
        "Absolute times here are on a desktop-class CPU; a 256 MB Lambda gets a fraction of a vCPU, so expect them "
        "several times longer there. The ratios to the baseline are what carries over. Tracing is off here "
        "(POWERTOOLS_TRACE_DISABLED, as outside Lambda); deployed with `Tracing: Active`, Powertools' Tracer also "
        "patches botocore and the other libraries X-Ray supports during init, which is not in these numbers.",
        "",
        "### Import-time tree (`python -X importtime`), top ten by cumulative time",
        "",
        f"{cold['import_trees'][BASELINE]['runs']} extra processes per function; the tree is the run with the "
        "median total, depth 0 is imported by the handler module itself. *Self by package* is the median over "
        "the runs of the self time of every module imported during init, by top-level package; differences of "
        "10 ms or so between functions are run-to-run noise.",
        "",
    ]
    for name in [*function_order(results), BASELINE]:
        tree = cold["import_trees"][name]
        rows = [
            [
                "&nbsp;&nbsp;" * min(line["depth"], 8) + f"`{line['module']}`",
                str(line["depth"]),
                _ms(line["cumulative_ms"]),
                _ms(line["self_ms"]),
            ]
            for line in tree["top"]
        ]
        packages = ", ".join(f"{package} {_ms(ms)}" for package, ms in list(tree["by_package_ms"].items())[:6])
        lines += [
            f"**{name}**: {tree['modules_at_import']} modules, {_ms(tree['import_total_ms'])} at init; "
            f"{tree['modules_at_first_call']} more during the first invocation ({_ms(tree['first_call_import_ms'])}). "
            f"Self by package: {packages}.",
            "",
            *_table(["Module", "Depth", "Cumulative", "Self"], rows),
        ]
    lines += [
        "Distributions the cold-start processes could import: " + ", ".join(cold["site_distributions"]) + ".",
        "",
    ]
    return lines


def _sizes_section(results: dict[str, Any]) -> list[str]:
    sizes = results["sizes"]
    lines = ["## 4. Package size", ""]
    if not sizes.get("available"):
        return [*lines, f"Unavailable: {sizes['source']}.", ""]
    rows = []
    for name, values in sizes["packages"].items():
        if values is None:
            rows.append([name, "missing from the build", "", ""])
            continue
        rows.append([name, str(values["files"]), _size(values["unzipped"]), _size(values["zipped"])])
    limits = sizes["limits"]
    layer = sizes["packages"].get(LAYER_ID) or {}
    largest = ", ".join(f"{part['name']} {_size(part['bytes'])}" for part in sizes["layer_largest"])
    lines += [
        f"Build used: {sizes['source']}. Zipped with zipfile DEFLATED (level 6), close to what `sam deploy` uploads.",
        "",
        *_table(["Package", "Files", "Unzipped", "Zipped"], rows),
        f"Each function deploys as its own code plus the layer: {_size(layer.get('unzipped', 0))} unzipped of "
        f"Lambda's {_size(limits['unzipped'])} limit. Largest parts of the layer: {largest}."
        + (
            f" botocore and boto3 are in the layer because `{results['cold_start']['layer_requirements']}` pins "
            "boto3; the Lambda runtime already ships both, so the pin costs their size in every deployment in "
            "exchange for a fixed SDK version."
            if any(part["name"] in ("boto3", "botocore") for part in sizes["layer_largest"])
            else ""
        ),
        "",
    ]
    layout = sizes["layer_layout"]
    if not layout["concierge_importable"]:
        lines += [
            "**The built layer does not make `concierge` importable.** Lambda puts the layer's `python/` on "
            "`sys.path`, but the build has the package at "
            + ", ".join(f"`{path}`" for path in layout["concierge_found_at"] or ["nowhere"])
            + ": `sam build` (BuildMethod python3.13) copies the layer's ContentUri into `python/`, so the "
            "ContentUri must be the folder that holds `concierge/` itself. Every function would fail with "
            "`No module named 'concierge'` once deployed.",
            "",
        ]
    return lines


def _throughput_section(results: dict[str, Any]) -> list[str]:
    tput = results["throughput"]
    return [
        "## 5. Sender throughput",
        "",
        f"{tput['messages']} queued messages drained by one sender (devstack's QueuePoller: receive up to "
        f"{tput['batch_size']}, invoke, delete, as the SQS event source does) to a WAHA simulator that answers each "
        f"sendText in {tput['waha_latency_ms']:.0f} ms. The welcomes (row and queue record each, as registration "
        "leaves them) are written directly rather than through the register function, whose transaction would "
        "only add moto time before the clock starts.",
        "",
        *_table(
            ["Messages", "Batches", "Elapsed", "Messages/s (end to end)", "Messages/s (in the handler)", "Mean batch"],
            [
                [
                    str(tput["messages"]),
                    str(tput["batches"]),
                    f"{tput['elapsed_s']:.2f} s",
                    f"{tput['messages_per_second']:.1f}",
                    f"{tput['handler_messages_per_second']:.1f}",
                    _ms(tput["mean_batch_ms"]),
                ]
            ],
        ),
        "The sender sends a batch's messages one after another (a BatchGetItem, then per message an UpdateItem that "
        "claims it, a sendText and an UpdateItem with the outcome), "
        f"so a batch of {tput['batch_size']} takes at least {_ms(tput['waha_floor_batch_ms'])} of WAHA "
        f"time alone: one sender cannot pass {tput['ceiling_per_sender']:.0f} messages/s whatever AWS does, and "
        f"the measured {tput['messages_per_second']:.1f} is that ceiling less the DynamoDB and queue round trips. "
        "The template caps the event source at 5 concurrent senders (MaximumConcurrency): if WAHA (one WhatsApp "
        f"account) kept answering in 50 ms under that load, about {5 * tput['messages_per_second']:.0f} messages/s "
        "in all. Sending a batch's messages concurrently would lift the per-sender ceiling; the limit then is "
        "what WhatsApp tolerates from one account.",
        "",
    ]


def _cost_section(results: dict[str, Any]) -> list[str]:
    cost = results["cost"]
    lines = [
        "## 6. Cost model",
        "",
        f"{cost['stays']:,} guest stays, each {cost['stay']}; {cost['prices_note']}. DynamoDB units come from the "
        "calls counted in section 1 and the sizes of the items they wrote or read, before and after each flow "
        "(DynamoDB's rules: 1 WRU per KB of the larger of the item before and after a write, twice that inside a "
        "transaction; 0.5 RRU per 4 KB read eventually consistent, 1 RRU strongly consistent). Each global "
        "secondary index of the template is charged for what a flow's changes did to its entries: 1 WRU per KB "
        "of the projected entry (plus 100 bytes) to add, change or remove one, twice when its index key moved "
        "(a delete and a put: the `open_sessions` entry of a session on every message, whole items projected). "
        "Lambda compute uses the measured p50 of each function, rounded up to the millisecond, at 256 MB. A stay's "
        "share of the scheduled runs is its writes only (the closing run's transaction, the retention run's "
        "updates, measured on a stay of the same size with its farewell): the runs themselves are fixed costs.",
        "",
        "Prices: Lambda arm64 $0.0000133334 per GB-second and $0.20 per million requests; DynamoDB on-demand $0.625 "
        "per million WRU and $0.125 per million RRU; SQS standard $0.40 per million requests (free tier ignored); "
        "API Gateway REST $3.50 per million requests.",
        "",
    ]
    lines += [
        f"Also billed, but outside the lead's price list ({cost['extra_prices_note']}): CloudWatch Logs at $0.50 "
        "per GB ingested, for the handlers' measured log output plus about 300 bytes of Lambda's own "
        "START/END/REPORT lines per invocation; and X-Ray at $5.00 per million traces recorded, counted as if "
        "every API request and sender invocation were sampled (the default rule records the first request each "
        "second and 5% of the rest, so a quiet hotel is traced almost entirely). They are listed under each "
        "total, not in it.",
        "",
    ]
    for scenario in cost["scenarios"].values():
        rows = [
            [line["item"], _quantity(line["quantity"]), line["unit"], _money(line["cost"])]
            for line in scenario["lines"]
        ]
        rows.append(["**Total**", "", "", f"**{_money(scenario['total'])}**"])
        rows += [
            [f"*{line['item']}*", _quantity(line["quantity"]), line["unit"], f"*{_money(line['cost'])}*"]
            for line in scenario["extra_lines"]
        ]
        uses = ", ".join(
            f"{use['name']} x{_quantity(use['per_stay'])} at {_ms(use['duration_ms'])}"
            if use["invoked"]
            else use["name"]
            for use in scenario["uses"]
        )
        dynamodb = scenario["dynamodb"]
        indexes = ", ".join(
            f"`{name}` {_quantity(units)}" for name, units in sorted(dynamodb["index_wru_by_index"].items())
        )
        lines += [
            f"### {scenario['title']}",
            "",
            f"Per stay: {uses}. Of the {cost['stays']:,} stays' write units, {_quantity(dynamodb['wru'])} are the "
            f"table's and {_quantity(dynamodb['index_wru'])} the indexes' ({indexes or 'none'}).",
            "",
            *_table(["Item", f"Quantity per {cost['stays']:,} stays", "Unit", "Cost"], rows),
        ]
    fixed = cost["fixed_monthly"]
    notes = sorted({note for values in cost["per_flow_capacity"].values() for note in values["notes"]})
    jobs = ", ".join(f"the {job['name']} {job['runs']:,} times ({_money(job['cost'])})" for job in fixed["jobs"])
    lines += [
        f"Fixed, whatever the number of stays, a month of scheduled runs with nothing to do: {jobs}, "
        f"{_money(fixed['total'])} in all. {fixed['note']} Pricing assumptions: " + "; ".join(notes) + ".",
        "",
    ]
    return lines


def render(results: dict[str, Any]) -> str:
    sections = [
        _header(results),
        _budget_section(results),
        _findings_section(results),
        _method_section(results),
        _calls_section(results),
        _latency_section(results),
        _creations_section(results),
        _cold_section(results),
        _sizes_section(results),
        _throughput_section(results),
        pacing.section(results),
        _cost_section(results),
    ]
    return "\n".join(line for section in sections for line in section).rstrip() + "\n"
