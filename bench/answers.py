"""The built-in answering engine's own cost, on python3.13 with the layer as Lambda mounts it (bench.lambda_layout):
what importing it and building the index from the hotel file add to the answering function's cold start, the
time per message once warm (every message of the sample hotel's labelled set, classified again and again), and
the layer space its parts take. The answering function's whole cold start, next to the sender's, is in
bench.cold_start's table.
"""

from __future__ import annotations

import statistics
import subprocess
from pathlib import Path
from typing import Any

from bench import lambda_layout
from devstack.template import REPO_ROOT

SAMPLE_HOTEL = REPO_ROOT / "hotels" / "sample-hotel.toml"
EVAL_SET = REPO_ROOT / "tests" / "ai" / "eval" / "sample-hotel.toml"
RUNS = 15
PASSES = 20

# Run in a fresh python3.13 per sample: times the engine's imports, the index build, then warm classification.
CHILD = """
import json, sys, time, tomllib
started = time.perf_counter()
from concierge.answers import knowledge, retrieval
imported = time.perf_counter()
hotel = knowledge.parse(open(sys.argv[1], encoding="utf-8").read())
engine = retrieval.Retriever(hotel)
engine.classify("warm the stemmers up")
built = time.perf_counter()
texts = [case["text"] for case in tomllib.load(open(sys.argv[2], "rb"))["case"]]
passes = int(sys.argv[3])
begun = time.perf_counter()
for _ in range(passes):
    for text in texts:
        engine.classify(text)
per_message = (time.perf_counter() - begun) / (passes * len(texts))
print(json.dumps({"import_ms": (imported - started) * 1000, "build_ms": (built - imported) * 1000,
                  "per_message_us": per_message * 1e6, "messages": len(texts)}))
"""


def _tree_bytes(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def measure() -> dict[str, Any]:
    layout = lambda_layout.build()
    path = [str(layout.layer), str(layout.runtime)]
    samples = []
    for _ in range(RUNS):
        command = [layout.python, "-c", CHILD, str(SAMPLE_HOTEL), str(EVAL_SET), str(PASSES)]
        env = {"PYTHONPATH": ":".join(path), "PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin"}
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True, timeout=120)
        samples.append(__import__("json").loads(done.stdout.strip().splitlines()[-1]))
    median = {key: statistics.median(sample[key] for sample in samples) for key in samples[0]}
    layer = Path(layout.layer)
    parts = {
        "concierge/answers": layer / "concierge" / "answers",
        "snowballstemmer": layer / "snowballstemmer",
    }
    return {
        "python": layout.version,
        "runs": RUNS,
        "passes": PASSES,
        "import_ms": median["import_ms"],
        "build_ms": median["build_ms"],
        "per_message_us": median["per_message_us"],
        "messages": int(median["messages"]),
        "layer_bytes": {name: _tree_bytes(part) for name, part in parts.items() if part.exists()},
    }
