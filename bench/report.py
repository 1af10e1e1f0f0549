"""docs/performance.md, rendered from bench/results.json by the template bench/performance.md.j2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2

from devstack.template import REPO_ROOT

RESULTS = REPO_ROOT / "bench" / "results.json"
REPORT = REPO_ROOT / "docs" / "performance.md"
TEMPLATE = Path(__file__).with_name("performance.md.j2")
CALL_BUDGETS = {"inbound": 3, "ack": 2, "register_new": 3}  # a guest's message, a delivery tick, a registration


def budgets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each budget with what was measured against it; only those whose figure is in the results."""
    found: list[dict[str, Any]] = []

    def add(budget: str, measured: str, met: bool) -> None:
        found.append({"budget": budget, "measured": measured, "met": met})

    calls = results.get("calls", {})
    for key, most in CALL_BUDGETS.items():
        flow = calls.get(key)
        if flow:
            waha = flow["waha_calls"] if key == "inbound" else 0  # a guest's message waits for no WAHA call
            measured = f"{flow['aws_calls']} ({', '.join(flow['by_operation'])}), {flow['waha_calls']} to WAHA"
            add(f"{flow['title']}: at most {most} AWS calls", measured, flow["aws_calls"] <= most and not waha)
    if calls:
        differ = [flow["title"] for flow in calls.values() if not flow["as_documented"]]
        measured = f"{len(calls) - len(differ)} of {len(calls)}" + (f"; not: {', '.join(differ)}" if differ else "")
        add("Every flow makes the calls docs/architecture.md's table gives", measured, not differ)
    cold = results.get("cold_start", {})
    for name, most in cold.get("budget", {}).items():
        if name in cold["functions"]:
            ratio = cold["functions"][name]["ratio"]["cold"]
            measured = f"{ratio['median']:.2f}x (pairs' p25-p75 {ratio['p25']:.2f}-{ratio['p75']:.2f})"
            add(f"{name}: init + first invocation at most {most}x the baseline's", measured, ratio["median"] <= most)
    if "latency" in results:
        created = sum(series["clients_created"] for series in results["latency"].values())
        add("No AWS client created by a warm invocation", f"{created} created", created == 0)
    return found


def _number(value: float, unit: str = "") -> str:
    if value == int(value):
        text = f"{int(value):,}"
    else:
        text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.1f}" if abs(value) >= 1 else f"{value:.2g}"
    return f"{text} {unit}".strip()


def _size(value: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if value < 1024 or unit == "MiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return ""


def _money(value: float) -> str:
    return f"${value:.5f}" if value < 0.01 else f"${value:,.4f}"


def render(results: dict[str, Any], partial: bool = False) -> str:
    loader = jinja2.FileSystemLoader(TEMPLATE.parent)
    # Markdown, not HTML: nothing to escape, and the results are our own.
    environment = jinja2.Environment(loader=loader, trim_blocks=True, lstrip_blocks=True, autoescape=False)  # noqa: S701
    environment.filters.update(ms=lambda v: _number(v, "ms"), n=_number, size=_size, money=_money)
    environment.filters["pct"] = lambda share: f"{share * 100:.0f}%"
    environment.filters["x"] = lambda ratio: f"{ratio:.2f}x"
    environment.filters["ops"] = lambda ops: (
        ", ".join(f"{k.split('.')[1]} x{n}" if n > 1 else k.split(".")[1] for k, n in ops.items()) or "none"
    )
    text = environment.get_template(TEMPLATE.name).render(r=results, budgets=budgets(results), partial=partial)
    return text.strip() + "\n"


def write(results: dict[str, Any]) -> None:
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    REPORT.write_text(render(results))
