"""Generate the Python package `lienthong` (messages, gRPC stubs, mypy stubs) from protos/.

Usage: python protos/generate.py OUT_DIR
The Makefile writes into libs/common/src (checked in); `make proto-check` writes into a
temporary directory and fails when the two differ.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc


def main(out_dir: Path) -> int:
    root = Path(__file__).resolve().parent
    protos = sorted(str(p.relative_to(root)) for p in root.rglob("*.proto"))
    builtin = Path(protoc.__file__).resolve().parent / "_proto"
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{root}",
        f"-I{builtin}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *protos,
    ]
    code = protoc.main(args)
    if code != 0:
        return int(code)
    package = out_dir / "lienthong"
    for directory in [package, *(p for p in package.rglob("*") if p.is_dir())]:
        (directory / "__init__.py").touch()
    (package / "py.typed").touch()
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
