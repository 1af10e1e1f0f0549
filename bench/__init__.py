"""Concierge benchmarks: AWS calls per flow, handler latency, cold init, package size, sender throughput, cost.

`python -m bench` (or `make bench`) runs everything against moto's server and the WAHA simulator and
writes docs/performance.md and bench/results.json. `bench.calls.count_calls` is reusable from tests.
"""
