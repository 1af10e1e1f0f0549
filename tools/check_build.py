"""Fails when the SAM build would not import in Lambda (python3.13, arm64).

- Every compiled module must be aarch64: without BuildArchitecture on the layer, `sam build`
  installs x86_64 wheels of pydantic_core and the functions crash on import.
- The layer must hold the `concierge` package at python/concierge, the folder Lambda puts on
  sys.path (/opt/python); a ContentUri one level too high lands it at python/python/concierge.
- Its modules must come with python3.13 bytecode: Lambda cannot write .pyc files, so without them
  every cold start compiles the package (and its dependencies) from source.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

ELF_MAGIC = b"\x7fELF"
EM_AARCH64 = 183


def machine_of(path: Path) -> int | None:
    header = path.read_bytes()[:20]
    if not header.startswith(ELF_MAGIC):
        return None
    byte_order = "<" if header[5] == 1 else ">"
    return struct.unpack(f"{byte_order}H", header[18:20])[0]


def layer_problems(build_dir: Path) -> list[str]:
    package = build_dir / "CommonLayer" / "python" / "concierge"
    if not (package / "__init__.py").is_file():
        return [f"the layer does not hold {package.relative_to(build_dir)}/__init__.py"]
    return [
        f"no python3.13 bytecode for {module.relative_to(build_dir)}"
        for module in sorted(package.glob("*.py"))
        if not (package / "__pycache__" / f"{module.stem}.cpython-313.pyc").is_file()
    ]


def main(build_dir: str = ".aws-sam/build") -> int:
    problems = layer_problems(Path(build_dir))
    for problem in problems:
        print(problem, file=sys.stderr)
    modules = sorted(Path(build_dir).rglob("*.so"))
    if not modules:
        print(f"no compiled modules under {build_dir}: run `make build` first", file=sys.stderr)
        return 1
    wrong = [path for path in modules if machine_of(path) != EM_AARCH64]
    for path in wrong:
        print(f"not aarch64: {path}", file=sys.stderr)
    print(f"{len(modules) - len(wrong)} of {len(modules)} compiled modules are aarch64")
    return 1 if wrong or problems else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
