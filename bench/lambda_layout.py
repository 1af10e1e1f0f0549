"""Lambda's python3.13 file layout on this machine, for cold starts: built once into .bench/ and reused.

- `opt/python`: the layer as Lambda mounts it: its requirements.txt installed by python3.13's pip (for this
  machine's platform) and the layer's own code (`concierge/`) beside them, all compiled ahead to .pyc with
  unchecked hashes as `make build` ships them (Lambda's file system is read-only: nothing is compiled there);
- `runtime`: boto3 and botocore, which the python3.13 runtime provides outside the layer (versions as pinned);
- `task/<LogicalId>`: each function's CodeUri folder (and the baseline's), compiled ahead too, as /var/task.

A folder is named after a hash of what it is built from, so a change to the requirements, the layer's code or a
function makes a new one, and a run in progress keeps its own.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from devstack.functions import LAYER_PYTHON_DIR
from devstack.template import REPO_ROOT, functions

CACHE = REPO_ROOT / ".bench"
PYTHON_VERSION = os.environ.get("PYENV_VERSION", "3.13.0")
BASELINE_APP = Path(__file__).with_name("baseline_app.py")
CONSTRAINTS = REPO_ROOT / "constraints.txt"
RUNTIME_PACKAGES = ("boto3",)
KEEP_BUILDS = 3


@dataclass(frozen=True)
class Layout:
    python: str
    version: str
    layer: Path
    runtime: Path
    tasks: dict[str, Path]

    def sys_path(self, logical_id: str) -> list[str]:
        # Lambda's order: the function's folder, the layer, then the runtime's own packages.
        return [str(self.tasks[logical_id]), str(self.layer), str(self.runtime)]


@cache
def python313() -> tuple[str, str]:
    """The interpreter itself (not pyenv's shim, which would add a shell to every process) and its version."""
    environment = {**os.environ, "PYENV_VERSION": PYTHON_VERSION}
    command = ["python3.13", "-c", "import sys; print(sys.executable); print(sys.version.split()[0])"]
    executable, version = subprocess.check_output(command, env=environment, text=True).split()
    return executable, version


def _digest(*paths: Path) -> str:
    digest = hashlib.sha256()
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            if "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _compile(*directories: Path) -> None:
    python, _ = python313()
    options = ["-q", "-f", "-j", "0", "--invalidation-mode", "unchecked-hash"]
    subprocess.run([python, "-m", "compileall", *options, *map(str, directories)], check=True)


def _pip(target: Path, *requirements: str) -> None:
    python, _ = python313()
    if target.exists():
        return
    partial = target.with_name(target.name + f".partial-{os.getpid()}")
    command = [python, "-m", "pip", "install", "--quiet", "--no-compile", "--root-user-action", "ignore"]
    command += ["--target", str(partial), "-c", str(CONSTRAINTS), *requirements]
    installed = subprocess.run(command, capture_output=True, text=True, check=False)
    if installed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{installed.stderr[-2000:]}")
    _compile(partial)
    partial.rename(target)


def build() -> Layout:
    """The layout for the current requirements and code, built if missing."""
    python, version = python313()
    requirements = LAYER_PYTHON_DIR / "requirements.txt"
    specs = functions()
    CACHE.mkdir(exist_ok=True)
    with (CACHE / "lock").open("w") as lock:
        # Helpers measuring at the same time share .bench/: one builds, the others wait for it.
        fcntl.flock(lock, fcntl.LOCK_EX)
        deps = CACHE / f"deps-{version}-{_digest(requirements, CONSTRAINTS)}"
        _pip(deps, "-r", str(requirements))
        runtime = CACHE / f"runtime-{version}-{_digest(CONSTRAINTS)}"
        _pip(runtime, *RUNTIME_PACKAGES)
        code = _digest(LAYER_PYTHON_DIR, BASELINE_APP, *(spec.code_dir for spec in specs.values()))
        root = CACHE / f"lambda-{version}-{deps.name[-16:]}-{code}"
        if not root.exists():
            partial = root.with_name(root.name + f".partial-{os.getpid()}")
            layer = partial / "opt" / "python"
            # Hard links: the installed packages (compiled once) are shared by every build and never written to.
            shutil.copytree(deps, layer, copy_function=os.link)
            ignore = shutil.ignore_patterns("__pycache__", "requirements.txt")
            shutil.copytree(LAYER_PYTHON_DIR, layer, ignore=ignore, dirs_exist_ok=True)
            for logical_id, spec in specs.items():
                shutil.copytree(spec.code_dir, partial / "task" / logical_id, ignore=ignore)
            (partial / "task" / "Baseline").mkdir(parents=True)
            shutil.copy(BASELINE_APP, partial / "task" / "Baseline" / "app.py")
            own_code = [
                layer / path.name
                for path in LAYER_PYTHON_DIR.iterdir()
                if path.name not in ("requirements.txt", "__pycache__")
            ]
            _compile(*own_code, partial / "task")
            partial.rename(root)
        builds = sorted(CACHE.glob("lambda-*"), key=lambda path: path.stat().st_mtime)
        for old in builds[:-KEEP_BUILDS]:
            if old != root:
                shutil.rmtree(old, ignore_errors=True)
        os.utime(root)
    tasks = {logical_id: root / "task" / logical_id for logical_id in [*specs, "Baseline"]}
    return Layout(python, version, root / "opt" / "python", runtime, tasks)
