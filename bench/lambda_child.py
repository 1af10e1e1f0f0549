"""One Lambda cold start in a fresh python3.13 process, for bench.cold_start (standard library only).

Reads a JSON spec on stdin: `path` (the function's folder as /var/task, the layer as /opt/python, the runtime's
boto3), `handler`, `gc_freeze`, `events` and `result` (where to write the timings). Before the handler's module is
imported, only what Lambda's runtime client (awslambdaric's bootstrap) has itself imported by then is loaded:
json, logging, os, time, traceback, decimal, math, concurrent.futures and importlib. Init is that import; each
event is then one invocation. During invocations, time spent waiting for an HTTP answer (from moto or the WAHA
simulator) is added up, so that it can be told apart from the function's own work.
"""

import concurrent.futures  # noqa: F401  (awslambdaric imports it before the handler)
import decimal  # noqa: F401
import gc
import importlib
import json
import logging  # noqa: F401
import math  # noqa: F401
import os
import sys
import time
import traceback  # noqa: F401


class Context:
    """What the handlers and Powertools read of Lambda's context object."""

    def __init__(self, name: str, memory_mb: int, timeout_s: float) -> None:
        self.function_name = name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory_mb
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
        self.aws_request_id = os.urandom(16).hex()
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "bench"
        self.identity = self.client_context = self.tenant_id = None
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def time_http_waits(waits: list) -> None:
    """Appends the duration of every HTTPConnection.getresponse (urllib3's included) to `waits`: from now on if
    http.client is loaded, else from when something imports it (a function may import boto3 on its first call)."""

    def patch(module) -> None:
        original = module.HTTPConnection.getresponse

        def getresponse(self, *args, **kwargs):
            started = time.perf_counter()
            try:
                return original(self, *args, **kwargs)
            finally:
                waits.append(time.perf_counter() - started)

        module.HTTPConnection.getresponse = getresponse

    if "http.client" in sys.modules:
        patch(sys.modules["http.client"])
        return

    class Finder:
        def find_spec(self, name, path=None, target=None):
            if name != "http.client":
                return None
            from importlib.machinery import PathFinder

            sys.meta_path.remove(self)
            spec = PathFinder.find_spec(name, path)
            execute = spec.loader.exec_module

            def exec_module(module) -> None:
                execute(module)
                patch(module)

            spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, Finder())


def answer(response) -> str:
    """A few words on what the invocation answered, to show which path it took."""
    if isinstance(response, dict) and "statusCode" in response:
        try:
            outcome = json.loads(response.get("body") or "{}").get("outcome")
        except (ValueError, AttributeError):
            outcome = None
        return f"{response['statusCode']} {outcome or ''}".strip()
    if isinstance(response, dict) and "policyDocument" in response:
        return response["policyDocument"]["Statement"][0]["Effect"]
    return json.dumps(response, separators=(",", ":"))[:60]


def main() -> None:
    spec = json.loads(sys.stdin.read())
    sys.path[:0] = spec["path"]
    module_name, _, attribute = spec["handler"].rpartition(".")
    modules_before = len(sys.modules)

    started = time.perf_counter()
    if spec["gc_freeze"]:
        gc.disable()
    handler = getattr(importlib.import_module(module_name), attribute)
    if spec["gc_freeze"]:
        gc.freeze()
        gc.enable()
    init = time.perf_counter() - started
    modules_at_init = len(sys.modules) - modules_before

    invocations = []
    waits: list = []
    time_http_waits(waits)
    for event in spec["events"]:
        modules, waited = len(sys.modules), len(waits)
        began = time.perf_counter()
        response = handler(event, Context(spec["name"], spec["memory_mb"], spec["timeout_s"]))
        took = time.perf_counter() - began
        invocations.append(
            {
                "seconds": took,
                "wait_seconds": sum(waits[waited:]),
                "requests": len(waits) - waited,
                "modules": len(sys.modules) - modules,
                "answer": answer(response),
            }
        )
    result = {"init_seconds": init, "modules_at_init": modules_at_init, "invocations": invocations}
    with open(spec["result"], "w") as out:
        json.dump(result, out)


if __name__ == "__main__":
    main()
