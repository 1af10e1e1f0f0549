"""Cold init of each function in fresh interpreters, against a baseline that only imports boto3 and makes a client.

Each function's code and the layer's content (the template's ContentUri) are copied, without any __pycache__,
into a task directory laid out like Lambda's (/var/task and /opt/python), and the children run with bytecode
writing off: SAM ships our sources without .pyc and Lambda's file system is read-only, so every cold start
compiles them. Third-party packages come from the virtualenv with their .pyc, as pip-installed layer packages
have them, but only those the layer's requirements.txt pulls in: the children run without site-packages (`-S`)
and see a directory of links to exactly those distributions. The dev virtualenv also holds moto, SAM CLI,
awscrt, cryptography and pyOpenSSL, which botocore and urllib3 import when present and Lambda does not have.
Runs are interleaved (function A, B, ..., baseline, then again) so that drift in the machine's speed spreads
over all of them alike.
"""

from __future__ import annotations

import compileall
import hashlib
import json
import os
import py_compile
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bench import cold_child
from bench.flows import KnownGuest
from bench.harness import (
    CLOSE_STAYS,
    CONVERSATIONS,
    ERASE,
    EXPIRE,
    HEALTH,
    HISTORY,
    REGISTER,
    SENDER,
    SWEEPER,
    WEBHOOK,
    BenchStack,
    erase_event,
    guest,
    health_event,
    history_event,
    register_event,
    schedule_event,
    sessions_event,
    webhook_delivery,
    webhook_event,
)
from devstack.template import REPO_ROOT, resources_of_type

BASELINE = "Baseline"
# The functions `ColdStarts._events` has a first and a second event for.
MEASURED_FUNCTIONS = frozenset(
    {REGISTER, WEBHOOK, HISTORY, SENDER, SWEEPER, CLOSE_STAYS, EXPIRE, CONVERSATIONS, HEALTH, ERASE}
)
CHILD_SCRIPT = Path(cold_child.__file__).resolve()
BASELINE_APP = Path(__file__).resolve().parent / "baseline_app.py"
CHILD_TIMEOUT_SECONDS = 120
TOP_IMPORTS = 10
IMPORTTIME_RUNS = 3


@dataclass(frozen=True)
class ImportLine:
    name: str
    self_us: int
    cumulative_us: int
    depth: int


def parse_importtime(stderr: str, begin: str, end: str) -> list[ImportLine]:
    """`-X importtime` lines between two markers; depth 0 is what the handler module imported itself."""
    lines: list[ImportLine] = []
    inside = False
    for line in stderr.splitlines():
        if line == begin:
            inside = True
            continue
        if line == end:
            break
        if not inside or not line.startswith("import time:") or "imported package" in line:
            continue
        self_part, cumulative_part, name_part = line.removeprefix("import time:").split("|", 2)
        name = name_part[1:]  # one space separates the column from the name's indentation
        lines.append(
            ImportLine(
                name=name.strip(),
                self_us=int(self_part),
                cumulative_us=int(cumulative_part),
                depth=(len(name) - len(name.lstrip(" "))) // 2,
            )
        )
    if lines:
        top = min(line.depth for line in lines)
        lines = [ImportLine(line.name, line.self_us, line.cumulative_us, line.depth - top) for line in lines]
    return lines


def layer_content_dir() -> Path:
    """The template's layer ContentUri: what `sam build` puts under python/, so what Lambda mounts at /opt/python."""
    (layer,) = resources_of_type("AWS::Serverless::LayerVersion").values()
    return REPO_ROOT / layer["Properties"]["ContentUri"]


# What the python3.13 Lambda runtime itself provides on sys.path, beside the layer.
RUNTIME_PROVIDED = ("boto3",)


def layer_distributions(requirements: Path) -> dict[str, metadata.Distribution]:
    """The installed distributions the layer's requirements and the runtime's own boto3 need, transitively."""
    pending: list[tuple[str, frozenset[str]]] = [(name, frozenset()) for name in RUNTIME_PROVIDED]
    for line in requirements.read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if text:
            requirement = Requirement(text)
            pending.append((requirement.name, frozenset(requirement.extras)))
    found: dict[str, metadata.Distribution] = {}
    extras_seen: dict[str, frozenset[str]] = {}
    while pending:
        name, extras = pending.pop()
        key = canonicalize_name(name)
        if key in extras_seen and extras <= extras_seen[key]:
            continue
        extras_seen[key] = extras_seen.get(key, frozenset()) | extras
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found[key] = distribution
        for raw in distribution.requires or []:
            requirement = Requirement(raw)
            environments = [{"extra": extra} for extra in extras] or [{"extra": ""}]
            if requirement.marker is None or any(requirement.marker.evaluate(env) for env in environments):
                pending.append((requirement.name, frozenset(requirement.extras)))
    return found


def build_runtime_site(requirements: Path, target: Path) -> list[str]:
    """Links the top-level modules (and metadata) of the layer's distributions into target; returns their names."""
    target.mkdir(parents=True)
    distributions = layer_distributions(requirements)
    for distribution in distributions.values():
        base = Path(str(distribution.locate_file("")))
        for file in distribution.files or []:
            parts = Path(str(file)).parts
            if not parts or parts[0] == ".." or parts[0].endswith(".pth"):
                continue
            link = target / parts[0]
            if not link.exists():
                link.symlink_to(base / parts[0])
    return sorted(f"{distribution.metadata['Name']}=={distribution.version}" for distribution in distributions.values())


def _compile_ahead(directory: Path) -> None:
    """Bytecode as `make build` ships it (compileall, unchecked hashes), for this interpreter's version."""
    compileall.compile_dir(
        directory, quiet=1, workers=0, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH
    )


def _package_of(module: str) -> str:
    return module.split(".", 1)[0]


class ColdStarts:
    """Prepares task directories and events, runs the children, and reduces their timings."""

    def __init__(self, stack: BenchStack, known: KnownGuest, workdir: Path) -> None:
        self._stack = stack
        self._known = known
        self._workdir = workdir
        self._layer_dir = workdir / "opt" / "python"
        self._site_dir = workdir / "runtime-site-packages"
        layer_source = layer_content_dir()
        self.layer_requirements = layer_source / "requirements.txt"
        self.site_distributions = build_runtime_site(self.layer_requirements, self._site_dir)
        shutil.copytree(layer_source, self._layer_dir, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        _compile_ahead(self._layer_dir)
        self._tasks: dict[str, tuple[Path, str]] = {}
        # A function this module has no events for yet (one just added to the template) is reported as not
        # measured rather than stopping the run.
        self.unmeasured = [logical_id for logical_id in stack.specs if logical_id not in MEASURED_FUNCTIONS]
        for logical_id, spec in stack.specs.items():
            if logical_id in self.unmeasured:
                continue
            task = workdir / "task" / logical_id
            shutil.copytree(spec.code_dir, task, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            _compile_ahead(task)
            self._tasks[logical_id] = (task, spec.handler)
        baseline_task = workdir / "task" / BASELINE
        baseline_task.mkdir(parents=True)
        shutil.copy(BASELINE_APP, baseline_task / "app.py")
        self._tasks[BASELINE] = (baseline_task, "app.lambda_handler")

    @property
    def variants(self) -> list[str]:
        return list(self._tasks)

    def _events(self, variant: str) -> list[dict[str, Any]]:
        """Two events, the first (cold) and a second (warm), each finding the data it needs."""
        stack, known = self._stack, self._known
        if variant == REGISTER:
            return [register_event(guest(stack.phones.next())) for _ in range(2)]
        if variant == WEBHOOK:
            return [webhook_event(webhook_delivery(known.chat_id, "Cold start hello")) for _ in range(2)]
        if variant == HISTORY:
            return [history_event(known.user_id) for _ in range(2)]
        if variant == SENDER:
            keys = stack.write_messages(known.user_id, known.chat_id, 2, pending=True)
            return [self._sqs_event(key) for key in keys]
        if variant in (SWEEPER, CLOSE_STAYS, EXPIRE):
            return [schedule_event(variant) for _ in range(2)]
        if variant == CONVERSATIONS:
            # The list of conversations: read-only, so every run finds the same table.
            return [sessions_event() for _ in range(2)]
        if variant == HEALTH:
            return [health_event() for _ in range(2)]
        if variant == ERASE:
            # A guest each, registered (not timed) by the parent's own handler.
            return [erase_event(stack.register()[0]["user_id"]) for _ in range(2)]
        if variant == BASELINE:
            return [{} for _ in range(2)]
        raise ValueError(f"no cold-start events for {variant}: add them here and to MEASURED_FUNCTIONS")

    def _sqs_event(self, key: dict[str, str]) -> dict[str, Any]:
        from concierge import outbox

        body = outbox.body(key)
        message = {
            "MessageId": str(uuid.uuid4()),
            "ReceiptHandle": f"bench-{uuid.uuid4().hex}",
            "Body": body,
            # Not a security use: SQS itself reports this MD5 of the body.
            "MD5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
            "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(int(time.time() * 1000))},
        }
        return self._stack.sqs_event([message])

    def _environment(self, variant: str) -> dict[str, str]:
        spec = self._stack.specs.get(variant)
        environment = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "TMPDIR") if name in os.environ}
        environment.update(self._stack.function_environment())
        environment.update(
            {
                "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONHASHSEED": "0",
                "AWS_LAMBDA_FUNCTION_NAME": variant,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size if spec else 256),
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            }
        )
        return environment

    def run_once(self, variant: str, importtime: bool = False) -> tuple[dict[str, Any], str]:
        task, handler = self._tasks[variant]
        spec = self._stack.specs.get(variant)
        run_id = uuid.uuid4().hex
        result_path = self._workdir / f"result-{run_id}.json"
        spec_path = self._workdir / f"spec-{run_id}.json"
        spec_path.write_text(
            json.dumps(
                {
                    "task_dir": str(task),
                    "layer_dir": str(self._layer_dir),
                    "site_dir": str(self._site_dir),
                    "handler": handler,
                    "function_name": variant,
                    "memory_mb": spec.memory_size if spec else 256,
                    "timeout_seconds": spec.timeout if spec else 10,
                    "events": self._events(variant),
                    "result": str(result_path),
                }
            )
        )
        options = ["-S", *(["-X", "importtime"] if importtime else [])]
        command = [sys.executable, *options, str(CHILD_SCRIPT), str(spec_path)]
        completed = subprocess.run(
            command,
            env=self._environment(variant),
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT_SECONDS,
            check=False,
        )
        if completed.returncode != 0 or not result_path.exists():
            raise RuntimeError(f"cold start of {variant} failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
        result = json.loads(result_path.read_text())
        _check_responses(variant, result["responses"])
        spec_path.unlink()
        result_path.unlink()
        return result, completed.stderr

    def measure(self, runs: int) -> dict[str, Any]:
        timings: dict[str, list[dict[str, float]]] = defaultdict(list)
        for _ in range(runs):
            for variant in self.variants:
                result, _ = self.run_once(variant)
                first, second = result["invocations"][:2]
                timings[variant].append({"import": result["import_seconds"], "first": first, "second": second})
        summary = {variant: _summary(samples) for variant, samples in timings.items()}
        baseline = summary[BASELINE]
        for values in summary.values():
            values["init_ratio"] = values["import_ms"] / baseline["import_ms"]
            values["cold_total_ratio"] = values["cold_total_ms"] / baseline["cold_total_ms"]
        return {"runs": runs, "variants": summary}

    def import_trees(self, runs: int) -> dict[str, Any]:
        """`-X importtime` for each variant, `runs` processes each (interleaved): one run is too noisy to say
        which package costs what, so package times are medians and the tree shown is the median run's."""
        traces: dict[str, list[str]] = defaultdict(list)
        for _ in range(runs):
            for variant in self.variants:
                traces[variant].append(self.run_once(variant, importtime=True)[1])
        return {variant: _import_tree(stderrs) for variant, stderrs in traces.items()}


def _import_tree(stderrs: list[str]) -> dict[str, Any]:
    parsed = []
    for stderr in stderrs:
        at_import = parse_importtime(stderr, cold_child.IMPORT_BEGINS, cold_child.IMPORT_ENDS)
        at_first_call = parse_importtime(stderr, cold_child.IMPORT_ENDS, cold_child.FIRST_INVOCATION_ENDS)
        by_package: dict[str, int] = defaultdict(int)
        for line in at_import:
            by_package[_package_of(line.name)] += line.self_us
        parsed.append((sum(line.self_us for line in at_import), at_import, at_first_call, by_package))
    parsed.sort(key=lambda run: run[0])
    _, at_import, at_first_call, _ = parsed[len(parsed) // 2]
    packages = {package for run in parsed for package in run[3]}
    by_package_ms = {
        package: statistics.median(run[3].get(package, 0) for run in parsed) / 1000 for package in packages
    }
    top = sorted(at_import, key=lambda line: line.cumulative_us, reverse=True)[:TOP_IMPORTS]
    return {
        "runs": len(parsed),
        "top": [
            {
                "module": line.name,
                "depth": line.depth,
                "cumulative_ms": line.cumulative_us / 1000,
                "self_ms": line.self_us / 1000,
            }
            for line in top
        ],
        "by_package_ms": dict(sorted(by_package_ms.items(), key=lambda item: item[1], reverse=True)),
        "modules_at_import": len(at_import),
        "import_total_ms": statistics.median(run[0] for run in parsed) / 1000,
        "modules_at_first_call": len(at_first_call),
        "first_call_import_ms": sum(line.self_us for line in at_first_call) / 1000,
    }


def _summary(samples: list[dict[str, float]]) -> dict[str, float]:
    def median_ms(values: list[float]) -> float:
        return statistics.median(values) * 1000

    return {
        "n": len(samples),
        "import_ms": median_ms([sample["import"] for sample in samples]),
        "import_min_ms": min(sample["import"] for sample in samples) * 1000,
        "import_max_ms": max(sample["import"] for sample in samples) * 1000,
        "first_invocation_ms": median_ms([sample["first"] for sample in samples]),
        "second_invocation_ms": median_ms([sample["second"] for sample in samples]),
        "cold_total_ms": median_ms([sample["import"] + sample["first"] for sample in samples]),
    }


def _check_responses(variant: str, responses: list[Any]) -> None:
    """A cold start that answered an error measured the wrong thing; fail loudly instead of reporting it."""
    for response in responses:
        if isinstance(response, dict) and "statusCode" in response and response["statusCode"] >= 300:
            raise RuntimeError(f"{variant} answered {response['statusCode']} during its cold start: {response}")
        if isinstance(response, dict) and response.get("batchItemFailures"):
            raise RuntimeError(f"{variant} reported failed records during its cold start: {response}")


def measure(stack: BenchStack, known: KnownGuest, runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="concierge-bench-cold-") as directory:
        cold = ColdStarts(stack, known, Path(directory))
        timings = cold.measure(runs)
        timings["import_trees"] = cold.import_trees(IMPORTTIME_RUNS)
        timings["site_distributions"] = cold.site_distributions
        timings["not_measured"] = cold.unmeasured
        timings["layer_requirements"] = str(cold.layer_requirements.relative_to(REPO_ROOT))
        timings["python"] = sys.version.split()[0]
        return timings
