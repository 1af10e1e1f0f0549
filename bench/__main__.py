"""`python -m bench`: measures, writes bench/results.json, and renders docs/performance.md from it.

python -m bench                                   # every figure (about ten minutes on two busy cores)
python -m bench --only cold_start                 # one figure (or several, comma-separated), printed;
python -m bench --only cold_start --functions RegisterGuestFunction,WahaWebhookFunction --runs 20
python -m bench --only cold_start --write         # ... and merged into results.json, the report rendered again
python -m bench --render                          # docs/performance.md from results.json, nothing measured
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from bench import answers, cold_start, cost, flows, gc_freeze, latency, pacing, report, sizes, throughput
from bench.process import progress
from bench.stack import BenchStack

Figure = Callable[[BenchStack, argparse.Namespace, dict[str, Any]], Any]
# In the order they run: the pacing burst last, as it makes moto's DynamoDB take one request at a time.
FIGURES: dict[str, Figure] = {
    "calls": lambda stack, options, results: flows.measure(stack),
    "latency": lambda stack, options, results: latency.measure(stack, options.calls, options.calls // 5),
    "throughput": lambda stack, options, results: throughput.measure(stack),
    "cold_start": lambda stack, options, results: cold_start.measure(stack, options.runs, options.functions),
    "gc_freeze": lambda stack, options, results: gc_freeze.measure(stack, options.runs),
    "sizes": lambda stack, options, results: sizes.measure(),
    "answers": lambda stack, options, results: answers.measure(),
    "cost": lambda stack, options, results: cost.measure(results),  # from `calls` and `latency`
    "pacing": lambda stack, options, results: pacing.measure(stack),
}


def _environment() -> dict[str, Any]:
    versions = {name: metadata.version(name) for name in ("boto3", "aws-lambda-powertools", "moto")}
    return {"python": platform.python_version(), "machine": f"{platform.system()} {platform.machine()}", **versions}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", type=lambda text: text.split(","), default=list(FIGURES), help=",".join(FIGURES))
    parser.add_argument("--functions", type=lambda text: text.split(","), help="cold start: these functions only")
    parser.add_argument("--runs", type=int, default=20, help="cold start: processes per function")
    parser.add_argument("--calls", type=int, default=500, help="latency: calls per API flow (other flows: a fifth)")
    parser.add_argument("--write", action="store_true", help="with --only: merge into results.json and render")
    parser.add_argument("--render", action="store_true", help="render docs/performance.md from results.json only")
    options = parser.parse_args(argv)
    unknown = set(options.only) - set(FIGURES)
    if unknown:
        parser.error(f"unknown figures {sorted(unknown)}; there are {', '.join(FIGURES)}")
    everything = set(options.only) == set(FIGURES)
    keep = report.RESULTS.exists() and (options.render or not everything)  # a full run starts from nothing
    results = json.loads(report.RESULTS.read_text()) if keep else {}
    if not options.render:
        started = time.monotonic()
        load = os.getloadavg()[0]
        with BenchStack() as stack:
            for name in [name for name in FIGURES if name in options.only]:
                progress(f"measuring {name}")
                results[name] = FIGURES[name](stack, options, results)
        run = {"at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "seconds": round(time.monotonic() - started)}
        run |= {"cpus": os.cpu_count(), "load_before": load, "load_after": os.getloadavg()[0], **_environment()}
        results.setdefault("runs", {}).update(dict.fromkeys(options.only, run))
    if everything or options.write or options.render:
        report.write(results)
        progress(f"wrote {report.RESULTS.name} and {report.REPORT.name}")
    else:  # the measured figures' sections of the report
        print(report.render({name: results[name] for name in [*options.only, "runs"]}, partial=True))
    return 0


if __name__ == "__main__":
    status = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is written and every server stopped; tearing the interpreter down would only spend seconds
    # freeing moto's in-memory AWS object by object.
    os._exit(status)
