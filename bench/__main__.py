"""`python -m bench`: runs every measurement and writes docs/performance.md and bench/results.json.

python -m bench            # the full run (about six minutes on two cores shared with other work)
python -m bench --quick    # small series, to check the harness end to end; writes nothing unless --write
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import cold_start, cost, flows, latency, pacing, report, sizes, throughput
from bench.harness import BenchStack

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_PATH = REPO_ROOT / "bench" / "results.json"
REPORT_PATH = REPO_ROOT / "docs" / "performance.md"


def _progress(started: float, text: str) -> None:
    # stderr: the handlers' stdout (their logs) goes to the counting sink while the stack runs.
    print(f"[bench {time.monotonic() - started:6.1f} s] {text}", file=sys.stderr, flush=True)


def _environment() -> dict[str, Any]:
    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "cpus": os.cpu_count(),
        "boto3": version("boto3"),
        "botocore": version("botocore"),
        "moto": version("moto"),
        "powertools": version("aws-lambda-powertools"),
    }


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="invocations per API flow for latency")
    parser.add_argument("--sender-batches", type=int, default=100, help="sender batches per latency series")
    parser.add_argument("--cold-runs", type=int, default=10, help="fresh processes per function for cold init")
    parser.add_argument("--throughput-messages", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="small series; implies not writing unless --write")
    parser.add_argument("--write", action="store_true", help="write the outputs even with --quick")
    arguments = parser.parse_args(argv)
    if arguments.quick:
        arguments.calls, arguments.sender_batches, arguments.cold_runs = 30, 10, 2
        arguments.throughput_messages = 50
    return arguments


def run(arguments: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    results: dict[str, Any] = {
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "environment": _environment(),
        "settings": {
            "calls": arguments.calls,
            "sender_batches": arguments.sender_batches,
            "cold_runs": arguments.cold_runs,
            "throughput_messages": arguments.throughput_messages,
            "warm_up": latency.WARM_UP,
        },
        # Other jobs on the machine show up as outliers (p99) and noisier cold starts; the report says how busy it was.
        "load_average_before": os.getloadavg()[0],
    }
    with BenchStack() as stack:
        _progress(started, f"moto at {stack.endpoint}, WAHA simulators at {stack.waha.url} and {stack.slow_waha.url}")
        results["harness"] = {"moto_partitions_dropped": stack.moto_partitions_dropped}
        flow_calls, known = flows.run(stack)
        _progress(started, "AWS calls per flow counted")
        results["latency"] = latency.measure(stack, known, arguments.calls, arguments.sender_batches)
        _progress(started, "latency measured")
        results["throughput"] = throughput.measure(stack, arguments.throughput_messages)
        _progress(started, "throughput measured")
        results["cold_start"] = cold_start.measure(stack, known, arguments.cold_runs)
        _progress(started, "cold starts measured")
        # Last: it makes moto's DynamoDB take one request at a time, as several senders need.
        results["pacing"] = pacing.measure(stack, guests=10 if arguments.quick else 50)
        _progress(started, "a burst of replies sent at the deployed pacing")
    results["sizes"] = sizes.measure()
    _progress(started, "package sizes measured")
    results["cost"] = cost.model(flow_calls, results["latency"])
    results["calls"] = {
        key: {**flow_calls[key].as_json(), "capacity": results["cost"]["per_flow_capacity"][key]}
        for key in flows.in_document_order(flow_calls)
    }
    results["budgets"] = report.evaluate_budgets(results)
    results["duration_s"] = time.monotonic() - started
    results["load_average_after"] = os.getloadavg()[0]
    return results


def main(argv: list[str] | None = None) -> int:
    arguments = _arguments(sys.argv[1:] if argv is None else argv)
    results = run(arguments)
    markdown = report.render(results)
    if arguments.quick and not arguments.write:
        print(markdown)
    else:
        RESULTS_PATH.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
        REPORT_PATH.parent.mkdir(parents=True, exist_ok=True)
        REPORT_PATH.write_text(markdown)
        print(f"wrote {REPORT_PATH.relative_to(REPO_ROOT)} and {RESULTS_PATH.relative_to(REPO_ROOT)}")
    for budget in results["budgets"]:
        print(f"{'reached    ' if budget['met'] else 'NOT REACHED'}  {budget['budget']}: {budget['measured']}")
    return 0


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is written and every server stopped; tearing down the interpreter would only spend seconds
    # freeing moto's in-memory AWS and botocore's loaded models, object by object.
    os._exit(status)
