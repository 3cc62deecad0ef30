"""The build backend: setuptools', plus mypyc among the build requirements when asked.

PEP 517 lets a project name an in-tree backend (``backend-path``).
edgeport's is setuptools' own with one change: when ``EDGEPORT_COMPILE``
asks for the compiled codec, building a wheel (or an editable install) also
requires ``MYPYC_REQUIREMENTS`` from ``edgeport/compiled.py``, so pip
installs mypy into the isolated build environment only then. A plain
``pip install .`` needs no compiler, no Python headers and no mypy.
"""

from __future__ import annotations

import os
import runpy
from pathlib import Path
from typing import Any

from setuptools import build_meta as _setuptools
from setuptools.build_meta import (
    build_editable,
    build_sdist,
    build_wheel,
    prepare_metadata_for_build_editable,
    prepare_metadata_for_build_wheel,
)

__all__ = [
    "build_editable",
    "build_sdist",
    "build_wheel",
    "get_requires_for_build_editable",
    "get_requires_for_build_sdist",
    "get_requires_for_build_wheel",
    "prepare_metadata_for_build_editable",
    "prepare_metadata_for_build_wheel",
]

# pip runs the backend in the project's root directory (PEP 517).
_COMPILED = Path("edgeport") / "compiled.py"


def compile_requirements(environ: dict[str, str] | os._Environ[str]) -> list[str]:
    """What a compiled build needs on top of setuptools'; nothing for the pure build.

    A value of the variable that is neither yes nor no is an error here,
    before anything is downloaded.
    """
    build = runpy.run_path(str(_COMPILED))
    try:
        wanted = build["compile_requested"](environ)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    return list(build["MYPYC_REQUIREMENTS"]) if wanted else []


# setuptools answers these by running setup.py, which with the variable set
# wants mypyc already there; edgeport has no setup_requires, so a compiled
# build asks for mypyc alone and the pure build asks setuptools as usual.


def get_requires_for_build_wheel(config_settings: dict[str, Any] | None = None) -> list[str]:
    compiling = compile_requirements(os.environ)
    if compiling:
        return compiling
    requires: list[str] = _setuptools.get_requires_for_build_wheel(config_settings)
    return requires


def get_requires_for_build_editable(config_settings: dict[str, Any] | None = None) -> list[str]:
    compiling = compile_requirements(os.environ)
    if compiling:
        return compiling
    requires: list[str] = _setuptools.get_requires_for_build_editable(config_settings)
    return requires


def get_requires_for_build_sdist(config_settings: dict[str, Any] | None = None) -> list[str]:
    # setup.py runs for an sdist too, and with the variable set it compiles.
    compiling = compile_requirements(os.environ)
    if compiling:
        return compiling
    requires: list[str] = _setuptools.get_requires_for_build_sdist(config_settings)
    return requires
