"""What every figure shares: summary statistics of timings, progress lines, and running a child process."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_STARTED = time.monotonic()


def progress(text: str) -> None:
    # stderr: the in-process handlers' stdout (their logs) goes to a counting sink while the stack runs.
    print(f"[bench {time.monotonic() - _STARTED:6.1f} s] {text}", file=sys.stderr, flush=True)


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest rank: always a value that was observed, never one interpolated between two."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(share * len(ordered) + 0.5)))
    return ordered[rank - 1]


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, quartiles and extremes of a series."""
    return {
        "median": statistics.median(values),
        "p25": percentile(values, 0.25),
        "p75": percentile(values, 0.75),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def tail(values: Sequence[float]) -> dict[str, float]:
    """Median and the slow end of a series of latencies."""
    return {"p50": statistics.median(values), "p95": percentile(values, 0.95), "p99": percentile(values, 0.99)}


def run_json_child(
    command: list[str], spec: dict[str, Any], env: dict[str, str], result: Path, timeout: float = 120
) -> dict[str, Any]:
    """Runs a child that reads a JSON spec on stdin and writes its JSON result to `result` (its stdout is the
    function's log, as in Lambda, and is thrown away). Raises with the child's last words when it fails."""
    result.unlink(missing_ok=True)
    completed = subprocess.run(
        command, input=json.dumps(spec), env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if completed.returncode != 0 or not result.exists():
        raise RuntimeError(f"exit {completed.returncode}: {completed.stderr.strip()[-1500:]}")
    return json.loads(result.read_text())
