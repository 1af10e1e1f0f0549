"""Cold start of every function in template.yaml on python3.13, against a bare boto3 function.

Each sample is a fresh python3.13 process (bench/lambda_child.py) with Lambda's layout (bench.lambda_layout: the
function's folder, the layer at /opt/python compiled ahead, boto3 from the runtime's own folder) and the
function's environment from the template. It imports the handler's module (init) and serves two events (the
first, cold, and a second, warm) against moto's server and the WAHA simulator in this process, so every AWS
call is really serialised, signed, sent and parsed. The baseline (bench/baseline_app.py) creates a DynamoDB client
during init and makes one GetItem per invocation.

Processes are interleaved (function A, baseline, function B, baseline, ..., in a new order each round) and each
function's sample is paired with the baseline run right after it: ratios are the median of those pairs' ratios,
so a machine that slows down for a while slows both sides of a pair.
"""

from __future__ import annotations

import hashlib
import random
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import lambda_layout
from bench.process import progress, run_json_child, spread
from bench.stack import (
    BenchStack,
    chat_id_of,
    erase_event,
    history_event,
    register_event,
    sample_event,
    sessions_event,
    webhook_delivery,
    webhook_event,
)
from devstack.sender import sqs_event_sources

BASELINE = "Baseline"
CHILD = Path(__file__).with_name("lambda_child.py")
# What a guest waits for in the first request of a new instance: the import, then the first invocation.
BUDGET = {"RegisterGuestFunction": 1.3, "WahaWebhookFunction": 1.3}


class Events:
    """A realistic first (and second) event for each function, by its CodeUri folder; the sample in events/
    for a function this table does not know, such as one just added to the template."""

    def __init__(self, stack: BenchStack) -> None:
        self.stack = stack
        self.guest = stack.register()
        self.chat_id = chat_id_of(self.guest["phone_number"])
        self.makers: dict[str, Callable[[], dict[str, Any]]] = {
            "register_guest": lambda: register_event(stack.new_guest()),
            "waha_webhook": lambda: webhook_event(webhook_delivery(self.chat_id, "Is breakfast included?")),
            "guest_messages": lambda: history_event(self.guest["user_id"]),
            "send_whatsapp": self._sender,
            "fetch_media": self._copy_job,
            "conversations": sessions_event,  # the console's list, refreshed every 5 s
            "erase_guest": lambda: erase_event(stack.register()["user_id"]),
            "answer_guest": lambda: self._job("AnswerGuestFunction", "Is breakfast included?"),
        }
        self.queues = {source.function_id: source.queue_logical_id for source in sqs_event_sources(stack.specs)}

    def __call__(self, folder: str) -> dict[str, Any]:
        return self.makers[folder]() if folder in self.makers else sample_event(folder)

    def _sender(self) -> dict[str, Any]:
        """A batch of one pending auto-reply, as the SQS event source hands it over."""
        from concierge.sending import outbox

        (key,) = self.stack.write_messages(self.guest["user_id"], self.chat_id, 1, pending=True)
        body = outbox.body(key)
        message = {
            "MessageId": str(uuid.uuid4()),
            "ReceiptHandle": uuid.uuid4().hex,
            "Body": body,
            "MD5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
            "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(int(time.time() * 1000))},
        }
        return self.stack.sqs_event([message])

    def _copy_job(self) -> dict[str, Any]:
        """A guest's photo, stored by the webhook here: its copy job."""
        from devstack.waha_sim import InboundMedia

        delivery = webhook_delivery(self.chat_id, "The tap in my bathroom")
        media = self.stack.waha.keep_file(delivery["payload"]["id"], InboundMedia(filename="tap.jpg"))
        delivery["payload"].update(hasMedia=True, media=media)
        return self._job("FetchMediaFunction", delivery)

    def _job(self, function_id: str, message: str | dict[str, Any]) -> dict[str, Any]:
        """What the webhook queues for `function_id` when the known guest writes `message`, taken off its queue."""
        queue = self.queues[function_id]
        self.stack.purge_queue(queue)  # earlier messages' jobs: the function may skip a question answered since
        self.stack.inbound(message if isinstance(message, dict) else webhook_delivery(self.chat_id, message))
        jobs = self.stack.receive(1, queue)
        self.stack.delete(jobs, queue)
        if not jobs:
            raise RuntimeError(f"the webhook queued nothing on {queue} for {function_id}")
        return self.stack.sqs_event(jobs, queue)


class Runner:
    """Runs one cold start of a function (or of the baseline) in a fresh python3.13 process."""

    def __init__(self, stack: BenchStack) -> None:
        self.stack = stack
        self.layout = lambda_layout.build()
        self.events = Events(stack)
        self.environment = stack.function_environment()
        self.result = lambda_layout.CACHE / f"result-{uuid.uuid4().hex}.json"

    def run(self, name: str, gc_freeze: bool = False) -> dict[str, Any]:
        spec = self.stack.specs.get(name)
        events = [self.events(spec.code_dir.name) for _ in range(2)] if spec else [{}, {}]
        child = {
            "path": self.layout.sys_path(name),
            "handler": spec.handler if spec else "app.lambda_handler",
            "name": name,
            "memory_mb": spec.memory_size if spec else 256,
            "timeout_s": spec.timeout if spec else 10,
            "gc_freeze": gc_freeze,
            "events": events,
            "result": str(self.result),
        }
        environment = {
            **self.environment,
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(child["memory_mb"]),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "LAMBDA_TASK_ROOT": child["path"][0],
        }
        # -S: no site-packages but the layout's; -B: Lambda cannot write bytecode; -E: no PYTHON* variables.
        command = [self.layout.python, "-S", "-B", "-E", str(CHILD)]
        result = run_json_child(command, child, environment, self.result)
        first, second = result["invocations"]
        return {
            "init": result["init_seconds"] * 1000,
            "first": first["seconds"] * 1000,
            "wait": first["wait_seconds"] * 1000,
            "second": second["seconds"] * 1000,
            "requests": first["requests"],
            "modules_init": result["modules_at_init"],
            "modules_first": first["modules"],
            "answer": first["answer"],
        }


def summarise(samples: list[dict[str, Any]], baselines: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Medians and quartiles of init, init + first invocation (`cold`) and of that less the time spent waiting
    on moto and WAHA (`own`); with the paired baselines, the ratios."""

    def figures(sample: dict[str, Any]) -> dict[str, float]:
        cold = sample["init"] + sample["first"]
        return {"init": sample["init"], "cold": cold, "own": cold - sample["wait"]}

    values = [figures(sample) for sample in samples]
    summary: dict[str, Any] = {name: spread([value[name] for value in values]) for name in ("init", "cold", "own")}
    for name in ("first", "wait", "second", "requests", "modules_init", "modules_first"):
        summary[name] = spread([sample[name] for sample in samples])["median"]
    summary["answer"] = samples[0]["answer"]
    if baselines is not None:
        paired = list(zip(values, map(figures, baselines), strict=True))
        summary["ratio"] = {name: spread([f[name] / b[name] for f, b in paired]) for name in ("init", "cold", "own")}
    return summary


def measure(stack: BenchStack, runs: int = 20, only: list[str] | None = None) -> dict[str, Any]:
    unknown = set(only or ()) - set(stack.specs)
    if unknown:
        raise ValueError(f"not functions of template.yaml: {sorted(unknown)}")
    runner = Runner(stack)
    names = [name for name in stack.specs if not only or name in only]
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in [*names, BASELINE]}
    pairs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    failed: dict[str, str] = {}
    progress(f"cold starts: {runs} rounds of {len(names)} functions, each followed by the baseline")
    for round_number in range(runs):
        order = [name for name in names if name not in failed]
        random.Random(round_number).shuffle(order)
        for name in order:
            try:
                sample = runner.run(name)
            except Exception as error:  # reported, and the other functions are still measured
                failed[name] = str(error)
                progress(f"cold start of {name} failed: {str(error)[-300:]}")
                continue
            baseline = runner.run(BASELINE)
            samples[name].append(sample)
            samples[BASELINE].append(baseline)
            pairs[name].append(baseline)
        progress(f"cold starts: round {round_number + 1} of {runs}")
    measured = {name: summarise(samples[name], pairs[name]) for name in names if name not in failed}
    return {
        "python": runner.layout.version,
        "runs": runs,
        "layer": str(runner.layout.layer.relative_to(lambda_layout.REPO_ROOT)),
        "functions": measured,
        "baseline": summarise(samples[BASELINE]),
        "failed": failed,
        "budget": BUDGET,
    }
