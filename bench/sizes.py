"""Deployment package sizes from `sam build` (as `make build` runs it): each function and the layer, unzipped
and zipped (DEFLATED, as `sam deploy` uploads them).

Uses .aws-sam/build when it is newer than every file it is built from; otherwise runs `sam build` once into a
folder of its own under .bench/ (kept while it stays fresh), never touching the developer's build.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

from bench.lambda_layout import CACHE, PYTHON_VERSION
from devstack.template import REPO_ROOT, functions

LAYER = "CommonLayer"
UNZIPPED_LIMIT = 250 * 1024 * 1024


def _fresh(build: Path) -> bool:
    if not (build / "template.yaml").is_file() or not (build / LAYER).is_dir():
        return False
    built = (build / "template.yaml").stat().st_mtime
    sources = [REPO_ROOT / "template.yaml", *(REPO_ROOT / "layers").rglob("*"), *(REPO_ROOT / "functions").rglob("*")]
    return all(path.stat().st_mtime <= built for path in sources if path.is_file() and "__pycache__" not in path.parts)


def _build() -> tuple[Path, str]:
    if _fresh(REPO_ROOT / ".aws-sam" / "build"):
        return REPO_ROOT / ".aws-sam" / "build", "`.aws-sam/build` (newer than every source file)"
    build = CACHE / "sam" / "build"
    if not _fresh(build):
        sam = Path(sys.executable).with_name("sam")
        command = [
            str(sam),
            "build",
            "--build-dir",
            str(build),
            "--cache-dir",
            str(build.parent / "cache"),
            "--no-cached",
        ]
        environment = {**os.environ, "SAM_CLI_TELEMETRY": "0", "PYENV_VERSION": PYTHON_VERSION}
        built = subprocess.run(command, cwd=REPO_ROOT, env=environment, capture_output=True, text=True, check=False)
        if built.returncode != 0:
            raise RuntimeError(f"sam build failed: {(built.stderr or built.stdout)[-1500:]}")
    return build, f"the benchmark's own `sam build` in `{build.relative_to(REPO_ROOT)}`"


def size(directory: Path) -> dict[str, int]:
    files = sorted(path for path in directory.rglob("*") if path.is_file())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, path.relative_to(directory).as_posix())
    return {
        "files": len(files),
        "unzipped": sum(path.stat().st_size for path in files),
        "zipped": len(buffer.getvalue()),
    }


def measure() -> dict[str, Any]:
    build, source = _build()
    packages = {name: size(build / name) for name in [*functions(), LAYER] if (build / name).is_dir()}
    parts: dict[str, int] = {}
    for entry in (build / LAYER / "python").iterdir():
        name = entry.name.split("-")[0] if entry.name.endswith(".dist-info") else entry.name.removesuffix(".py")
        files = [entry] if entry.is_file() else [path for path in entry.rglob("*") if path.is_file()]
        parts[name] = parts.get(name, 0) + sum(path.stat().st_size for path in files)
    largest = dict(sorted(parts.items(), key=lambda item: -item[1])[:8])
    return {"source": source, "packages": packages, "layer_largest": largest, "unzipped_limit": UNZIPPED_LIMIT}
