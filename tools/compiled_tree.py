"""A copy of this checkout with the codec compiled in place, for tests and benchmarks.

``python tools/compiled_tree.py DEST`` copies the checkout's files (tracked
and new, as git lists them) into DEST and runs ``setup.py build_ext
--inplace`` there with ``EDGEPORT_COMPILE=1``: each module listed in
``edgeport/compiled.py`` gets its extension module beside its source, and
an extension module wins over the ``.py`` file of the same name, so Python
started in DEST runs the compiled codec. The Python running this script
needs setuptools and mypyc (``MYPYC_REQUIREMENTS`` in ``edgeport/compiled.py``),
a C compiler and the Python headers. It exits non-zero, naming the problem,
when the compile fails or a listed module got no extension module.

Standard library only. ``nox -s compiled`` and ``python -m benchmarks codec
--builds pure,compiled`` call it.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
BUILD_TIMEOUT: Final = 600.0  # seconds for the compile (about 20 s on 2 cores)
SKIPPED_PARTS: Final = frozenset(
    {".git", ".venv", ".nox", "node_modules", "__pycache__", "build", ".mypy_cache"}
)


def tree_files(root: Path) -> list[str]:
    """The checkout's files as a fresh clone has them, plus new ones not yet committed."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            check=True,
        ).stdout.decode()
        names = [name for name in listed.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        names = [str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()]
    return [
        name
        for name in names
        if not SKIPPED_PARTS & set(Path(name).parts)
        and not name.startswith(".ci/venv/")
        and not name.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
        and (root / name).is_file()  # not deleted in the work tree
    ]


def copy_tree(root: Path, dest: Path) -> None:
    for name in tree_files(root):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target)


def missing_extensions(dest: Path) -> list[str]:
    """The listed modules that have no extension module beside their source in ``dest``."""
    build = runpy.run_path(str(dest / "edgeport" / "compiled.py"))
    missing = []
    for source in build["COMPILED_MODULES"]:
        stem = (dest / source).with_suffix("")
        if not any(
            stem.with_name(stem.name + suffix).is_file()
            for suffix in importlib.machinery.EXTENSION_SUFFIXES
        ):
            missing.append(source)
    return missing


def build_compiled_tree(dest: Path, *, root: Path = ROOT, python: str = sys.executable) -> None:
    """Copy ``root`` into ``dest`` and compile the codec there; SystemExit when that fails."""
    dest.mkdir(parents=True, exist_ok=True)
    copy_tree(root, dest)
    env = dict(os.environ, EDGEPORT_COMPILE="1")
    try:
        done = subprocess.run(
            [python, "setup.py", "--quiet", "build_ext", "--inplace"],
            cwd=dest,
            env=env,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SystemExit(f"compiling the codec took over {BUILD_TIMEOUT:.0f} s") from None
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-8000:])
        raise SystemExit(f"compiling the codec in {dest} failed (status {done.returncode})")
    missing = missing_extensions(dest)
    if missing:
        raise SystemExit(f"no extension module was built for: {', '.join(missing)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/compiled_tree.py", description=__doc__)
    parser.add_argument("dest", type=Path, help="directory to build the compiled copy in")
    args = parser.parse_args(argv)
    build_compiled_tree(args.dest.resolve())
    print(f"compiled copy of {ROOT} in {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
