"""Generate edgeport/_proto from proto/*.proto with grpcio-tools.

protoc writes the messages (``*_pb2.py`` and their ``.pyi`` stubs) and
grpcio's service code (``processor_pb2_grpc.py``: the client stub and the
servicer base). Both write sibling imports (``import common_pb2``) that only
work from the top level; the generated modules live inside the
``edgeport._proto`` package, so those imports are rewritten to relative ones.

Usage: ``python tools/gen_proto.py [OUTPUT_DIR]`` (default ``edgeport/_proto``).
The test suite calls :func:`generate` into a temporary directory and compares
the result with the committed files. The generator writes its own version
into the stubs, so it is pinned exactly (``GRPCIO_TOOLS`` in noxfile.py).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
DEFAULT_OUT = ROOT / "edgeport" / "_proto"
PROTOS = ("common.proto", "sipmessage.proto", "processor.proto")
HEADER = "# Generated from proto/ by tools/gen_proto.py. Do not edit.\n"
_SIBLING_IMPORT = re.compile(r"^import (\w+_pb2)( as \w+)?$", re.MULTILINE)


def generate(out_dir: Path, proto_dir: Path = PROTO_DIR) -> list[Path]:
    """Run protoc on ``proto_dir`` into ``out_dir`` and return the files written."""
    from grpc_tools import protoc  # dev-only dependency

    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{proto_dir}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(proto_dir / name) for name in PROTOS),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    written: list[Path] = []
    for path in sorted(out_dir.glob("*.py*")):
        if path.name == "__init__.py":
            continue
        if path.name.endswith("_grpc.py") and "class " not in path.read_text():
            path.unlink()  # a proto without services yields a module without classes
            continue
        text = _SIBLING_IMPORT.sub(r"from . import \1\2", path.read_text())
        path.write_text(HEADER + text)
        written.append(path)
    init = out_dir / "__init__.py"
    init.write_text('"""Protobuf and grpcio code generated from proto/ (never edited)."""\n')
    written.append(init)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT
    for file in generate(target):
        print(file.relative_to(target.parent) if file.is_relative_to(target.parent) else file)
