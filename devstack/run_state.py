"""What a running `make run` tells the other local commands (`make demo`, `python -m devstack.invoke`): its URLs,
API key, AWS endpoint and the functions' environment, in a small JSON file that exists while it runs.

The file lives in .venv (ignored by git, and removed with it); DEVSTACK_STATE_FILE points elsewhere (tests do).
It holds the local API key, so only its owner may read it. A file left behind by a run that was killed names a
process that is gone, and is ignored.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from devstack.template import REPO_ROOT

STATE_FILE = REPO_ROOT / ".venv" / "devstack-run.json"
STATE_FILE_VARIABLE = "DEVSTACK_STATE_FILE"


def state_path() -> Path:
    configured = os.environ.get(STATE_FILE_VARIABLE, "").strip()
    return Path(configured) if configured else STATE_FILE


@dataclass(frozen=True)
class RunState:
    pid: int
    api_url: str
    webhook_url: str
    waha_url: str
    simulator: bool
    aws_endpoint: str
    aws_region: str
    api_key: str | None
    # The variables the stack gave its functions (table, queues, WAHA, ...); secrets are not among them.
    function_environment: dict[str, str] = field(default_factory=dict)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        # Another user's process has this pid: alive, but not a run of ours.
        return False
    return True


def write(state: RunState, path: Path | None = None) -> Path:
    """Writes the state atomically (a reader never sees half a file), readable by the owner only."""
    path = path or state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(asdict(state), file, indent=2)
    partial.replace(path)
    return path


def read(path: Path | None = None) -> RunState | None:
    """The state of the running `make run`, or None when none is running (no file, or its process is gone)."""
    path = path or state_path()
    try:
        raw: dict[str, Any] = json.loads(path.read_text())
        state = RunState(**raw)
    except (OSError, ValueError, TypeError):
        return None
    return state if _process_alive(state.pid) else None


def remove(pid: int, path: Path | None = None) -> None:
    """Removes the file if it is this process's (a later run may have replaced it)."""
    path = path or state_path()
    try:
        if json.loads(path.read_text()).get("pid") == pid:
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass
