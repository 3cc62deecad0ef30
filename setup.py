"""setuptools' entry for the one thing pyproject.toml cannot say: the optional compiled codec.

Without ``EDGEPORT_COMPILE`` (or with ``EDGEPORT_COMPILE=0``) this adds
nothing: the package is pure Python, as pyproject.toml describes it. With
``EDGEPORT_COMPILE=1`` the modules listed in ``edgeport/compiled.py``
are compiled with mypyc into extension modules installed beside their
sources; a missing mypyc or a failed compile stops the build with an error,
never a silent pure build.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent
_BUILD = runpy.run_path(str(ROOT / "edgeport" / "compiled.py"))


def _ext_modules() -> list[object]:
    try:
        wanted = _BUILD["compile_requested"](os.environ)
    except ValueError as error:
        sys.exit(f"error: {error}")
    if not wanted:
        return []
    variable = _BUILD["COMPILE_VARIABLE"]
    try:
        from mypyc.build import mypycify
    except ImportError:
        sys.exit(
            f"error: {variable}=1 needs mypyc to compile the codec "
            f"({' '.join(_BUILD['MYPYC_REQUIREMENTS'])}); the build backend adds it when "
            f"{variable} is set, or install it beside setuptools for a build without isolation"
        )
    print(f"{variable}=1: compiling the codec with mypyc", file=sys.stderr)
    try:
        modules: list[object] = mypycify(
            list(_BUILD["COMPILED_MODULES"]), opt_level="3", group_name="edgeport_codec"
        )
    except SystemExit as stop:
        sys.exit(f"error: {variable}=1: mypyc could not compile the codec (status {stop.code})")
    return modules


setup(ext_modules=_ext_modules())
