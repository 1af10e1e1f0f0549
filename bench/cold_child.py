"""One Lambda cold start in a fresh interpreter, for bench.cold_start: import the handler, then serve events.

Run as `python cold_child.py <spec.json>`. Only the standard library is imported before the handler module, so
the import measured is the function's own, as in Lambda's Init phase. The spec names the task directory (the
function's code, as /var/task), the layer's python/ directory (as /opt/python), the handler, the events and
where to write the timings. It runs with `-S`: site-packages come only from the spec's site_dir. Markers on
stderr delimit the phases for `python -X importtime` runs.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

IMPORT_BEGINS = "bench-cold-start: import begins"
IMPORT_ENDS = "bench-cold-start: import ends"
FIRST_INVOCATION_ENDS = "bench-cold-start: first invocation ends"


@dataclass
class Context:
    """The parts of Lambda's context object that Powertools and the handlers read."""

    function_name: str
    memory_limit_in_mb: int
    timeout_seconds: float
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "bench"
    identity: Any = None
    client_context: Any = None
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.started + self.timeout_seconds - time.monotonic()) * 1000))


def _mark(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    # Lambda's order: the function's folder first, then the layer's python/, then the installed packages.
    sys.path[:0] = [spec["task_dir"], spec["layer_dir"]]
    sys.path.append(spec["site_dir"])
    module_name, _, attribute = spec["handler"].rpartition(".")

    _mark(IMPORT_BEGINS)
    started = time.perf_counter()
    module = importlib.import_module(module_name)
    handler = getattr(module, attribute)
    imported = time.perf_counter()
    _mark(IMPORT_ENDS)

    invocations = []
    responses = []
    for index, event in enumerate(spec["events"]):
        context = Context(spec["function_name"], spec["memory_mb"], spec["timeout_seconds"])
        began = time.perf_counter()
        response = handler(event, context)
        invocations.append(time.perf_counter() - began)
        responses.append(response)
        if index == 0:
            _mark(FIRST_INVOCATION_ENDS)

    Path(spec["result"]).write_text(
        json.dumps({"import_seconds": imported - started, "invocations": invocations, "responses": responses})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
