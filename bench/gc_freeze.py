"""What disabling the garbage collector during init, and `gc.freeze()` after it, does to a cold start.

The same processes as bench.cold_start, for the baseline, register and the webhook, each run as the code is
and with the child doing `gc.disable()` before the handler's import and `gc.freeze(); gc.enable()` after it (so
init's objects are never scanned again). Interleaved: in each round every function runs both ways, in a new
order. If a handler already does this itself, the two ways measure the same.
"""

from __future__ import annotations

import random
from typing import Any

from bench.cold_start import BASELINE, Runner, summarise
from bench.process import progress
from bench.stack import BenchStack

FUNCTIONS = (BASELINE, "RegisterGuestFunction", "WahaWebhookFunction")


def measure(stack: BenchStack, runs: int = 20) -> dict[str, Any]:
    runner = Runner(stack)
    samples: dict[tuple[str, bool], list[dict[str, Any]]] = {(n, g): [] for n in FUNCTIONS for g in (False, True)}
    for round_number in range(runs):
        order = list(samples)
        random.Random(round_number).shuffle(order)
        for name, frozen in order:
            samples[name, frozen].append(runner.run(name, gc_freeze=frozen))
    progress(f"gc: {runs} rounds of {len(samples)} processes")
    figure: dict[str, Any] = {"runs": runs, "python": runner.layout.version, "functions": {}}
    for name in FUNCTIONS:
        plain, frozen = summarise(samples[name, False]), summarise(samples[name, True])
        figure["functions"][name] = {
            "as_is": plain,
            "gc_frozen": frozen,
            "saved": {key: plain[key]["median"] - frozen[key]["median"] for key in ("init", "cold")},
        }
    for name in FUNCTIONS[1:]:
        row, base = figure["functions"][name], figure["functions"][BASELINE]
        # Ratios of medians: each side is the same kind of process, run in the same rounds.
        row["ratio"] = {
            way: {key: row[way][key]["median"] / base[way][key]["median"] for key in ("init", "cold")}
            for way in ("as_is", "gc_frozen")
        }
        row["ratio"]["frozen_to_plain_baseline"] = {
            key: row["gc_frozen"][key]["median"] / base["as_is"][key]["median"] for key in ("init", "cold")
        }
    return figure
