"""Deployment package sizes from `sam build`: each function and the layer, unzipped and zipped (DEFLATED).

Uses .aws-sam/build when it is newer than every file it is built from. Otherwise it runs the same `sam build`
as `make build`, once, into a directory of its own in the system temp dir (kept for the next run while it
stays fresh), so that a stale or missing .aws-sam/build never shows in the numbers and the developer's own
build directory is never touched.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.template import REPO_ROOT, functions

DEFAULT_BUILD_DIR = REPO_ROOT / ".aws-sam" / "build"
BENCH_BUILD_ROOT = Path(tempfile.gettempdir()) / "concierge-bench-sam"
LAYER_ID = "CommonLayer"
BUILD_TIMEOUT_SECONDS = 600
# Lambda's quotas for a .zip deployment.
UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024
ZIPPED_UPLOAD_LIMIT_BYTES = 50 * 1024 * 1024
LARGEST_PARTS = 8


@dataclass(frozen=True)
class PackageSize:
    files: int
    unzipped: int
    zipped: int


def _source_files() -> list[Path]:
    roots = [REPO_ROOT / "template.yaml", REPO_ROOT / "layers", REPO_ROOT / "functions"]
    found = []
    for root in roots:
        candidates = [root] if root.is_file() else root.rglob("*")
        found += [
            path for path in candidates if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
        ]
    return found


def _is_fresh(build_dir: Path) -> bool:
    marker = build_dir / "template.yaml"
    if not marker.is_file() or not (build_dir / LAYER_ID).is_dir():
        return False
    built = marker.stat().st_mtime
    return all(path.stat().st_mtime <= built for path in _source_files())


def _run_sam_build(build_dir: Path) -> str | None:
    """Runs `sam build` into build_dir; None when it worked, else why it did not."""
    sam = Path(sys.executable).with_name("sam")
    if not sam.exists():
        return f"{sam} not found"
    environment = {**os.environ, "SAM_CLI_TELEMETRY": "0", "PYENV_VERSION": os.environ.get("PYENV_VERSION", "3.13.0")}
    # --no-cached: the cached build keeps dependencies in .aws-sam/deps, which belongs to the developer.
    command = [
        str(sam),
        "build",
        "--build-dir",
        str(build_dir),
        "--cache-dir",
        str(build_dir.parent / "cache"),
        "--no-cached",
    ]
    try:
        completed = subprocess.run(
            command,
            cwd=REPO_ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"sam build could not run: {error}"
    if completed.returncode != 0:
        return f"sam build failed ({completed.returncode}): {(completed.stderr or completed.stdout)[-600:]}"
    return None


def locate_build() -> tuple[Path | None, str]:
    """A fresh build directory and how it was found, or None and why there is none."""
    if _is_fresh(DEFAULT_BUILD_DIR):
        return DEFAULT_BUILD_DIR, "`.aws-sam/build` (fresh: newer than every source file)"
    bench_build = BENCH_BUILD_ROOT / "build"
    reason = "missing" if not DEFAULT_BUILD_DIR.exists() else "older than its sources"
    if _is_fresh(bench_build):
        return bench_build, (
            f"`.aws-sam/build` is {reason}, so the benchmark's own `sam build` in {bench_build} "
            "(still newer than every source file)"
        )
    started = time.monotonic()
    failure = _run_sam_build(bench_build)
    if failure is not None:
        return None, f"`.aws-sam/build` is {reason} and {failure}"
    return bench_build, (
        f"`.aws-sam/build` was {reason}, so `sam build` ran into {bench_build} ({time.monotonic() - started:.0f} s)"
    )


def measure_directory(directory: Path) -> PackageSize:
    """Sum of file sizes, and the size of the .zip Lambda would get (DEFLATED, built in memory)."""
    files = sorted(path for path in directory.rglob("*") if path.is_file())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, path.relative_to(directory).as_posix())
    return PackageSize(
        files=len(files), unzipped=sum(path.stat().st_size for path in files), zipped=len(buffer.getvalue())
    )


def _largest_parts(layer_python: Path) -> list[dict[str, Any]]:
    """The layer's biggest top-level packages (with their .dist-info folded in), to show where the bytes are."""
    sizes: dict[str, int] = {}
    for entry in layer_python.iterdir():
        name = entry.name.split("-", 1)[0] if entry.name.endswith(".dist-info") else entry.name.removesuffix(".py")
        paths = [entry] if entry.is_file() else [path for path in entry.rglob("*") if path.is_file()]
        sizes[name] = sizes.get(name, 0) + sum(path.stat().st_size for path in paths)
    ordered = sorted(sizes.items(), key=lambda item: item[1], reverse=True)[:LARGEST_PARTS]
    return [{"name": name, "bytes": size} for name, size in ordered]


def _layer_layout(layer_root: Path) -> dict[str, Any]:
    """Where `concierge` sits in the built layer: Lambda only puts /opt/python on sys.path."""
    python_dir = layer_root / "python"
    importable = (python_dir / "concierge" / "__init__.py").is_file()
    nested = sorted(str(path.parent.relative_to(layer_root)) for path in layer_root.rglob("concierge/__init__.py"))
    return {"concierge_importable": importable, "concierge_found_at": nested}


def measure() -> dict[str, Any]:
    build_dir, how = locate_build()
    if build_dir is None:
        return {"available": False, "source": how}
    packages: dict[str, Any] = {}
    for logical_id in [*functions(), LAYER_ID]:
        directory = build_dir / logical_id
        if not directory.is_dir():
            packages[logical_id] = None
            continue
        size = measure_directory(directory)
        packages[logical_id] = {"files": size.files, "unzipped": size.unzipped, "zipped": size.zipped}
    layer = build_dir / LAYER_ID
    return {
        "available": True,
        "source": how,
        "packages": packages,
        "layer_largest": _largest_parts(layer / "python") if (layer / "python").is_dir() else [],
        "layer_layout": _layer_layout(layer),
        "limits": {"unzipped": UNZIPPED_LIMIT_BYTES, "zipped_upload": ZIPPED_UPLOAD_LIMIT_BYTES},
    }
