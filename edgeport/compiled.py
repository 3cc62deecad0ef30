"""The optional compiled build of the codec: which modules it compiles, and which runs.

``EDGEPORT_COMPILE=1 pip install .`` compiles :data:`COMPILED_MODULES` with
mypyc into extension modules installed beside their sources (an extension
module wins over a ``.py`` file of the same name in the same directory);
without the variable the install is pure Python. This module is the one
place that lists them: ``setup.py`` and the build backend in
``build_support/`` read it as a file (``runpy``), before anything of edgeport
is installed, so it imports nothing but the standard library. It is never
compiled itself.

:func:`codec_build` tells which build this process runs, for the startup
log and ``edgeport --version``.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "COMPILED_MODULES",
    "COMPILE_VARIABLE",
    "MYPYC_REQUIREMENTS",
    "codec_build",
    "compile_requested",
    "compiled_module_names",
]

# The environment variable that asks the build for the compiled codec.
COMPILE_VARIABLE: Final = "EDGEPORT_COMPILE"
_YES: Final = frozenset({"1", "true", "yes", "on"})
_NO: Final = frozenset({"", "0", "false", "no", "off"})

# What the build needs on top of setuptools to compile: mypyc comes with mypy
# (pinned: another mypy may compile the same source differently), and the
# protobuf stubs type the generated messages the codec fills.
MYPYC_REQUIREMENTS: Final = ("mypy==2.4.1", "types-protobuf>=5.28")

# Source files (relative to the project root) compiled by the compiled build:
# the sans-IO code on every message's path (stream framing, parse, SIP <->
# protobuf, the reply's SIP bytes, received/rport, loop checks, transaction
# keys). Only synchronous code that imports no trio, socket or grpc, and that
# nothing inspects at run time (trio looks at coroutines). Not here: the
# transaction state machines (sip/transaction*.py), whose actions are frozen
# dataclasses that a compiled caller would still build through their
# interpreted, generated __init__.
COMPILED_MODULES: Final = (
    "edgeport/sip/header_names.py",
    "edgeport/sip/header_grammar.py",
    "edgeport/sip/header_list.py",
    "edgeport/sip/uri.py",
    "edgeport/sip/addresses.py",
    "edgeport/sip/via.py",
    "edgeport/sip/request_ids.py",
    "edgeport/sip/auth_headers.py",
    "edgeport/sip/message.py",
    "edgeport/sip/parser.py",
    "edgeport/sip/framing.py",
    "edgeport/sip/received.py",
    "edgeport/sip/loops.py",
    "edgeport/sip/transaction_keys.py",
    "edgeport/convert/codes.py",
    "edgeport/convert/browser_via.py",
    "edgeport/convert/to_proto.py",
    "edgeport/convert/originals.py",
    "edgeport/convert/to_sip.py",
    "edgeport/convert/reply_headers.py",
    "edgeport/convert/replies.py",
)


def compile_requested(environ: Mapping[str, str]) -> bool:
    """Whether ``EDGEPORT_COMPILE`` asks for the compiled build; ValueError for a bad value."""
    value = environ.get(COMPILE_VARIABLE, "").strip().lower()
    if value in _YES:
        return True
    if value in _NO:
        return False
    raise ValueError(
        f"{COMPILE_VARIABLE}={environ[COMPILE_VARIABLE]!r}: expected 1 (compile the codec "
        "with mypyc) or 0 (pure Python)"
    )


def compiled_module_names() -> tuple[str, ...]:
    """The dotted names of :data:`COMPILED_MODULES`."""
    return tuple(path.removesuffix(".py").replace("/", ".") for path in COMPILED_MODULES)


def _is_extension(name: str) -> bool:
    spec = importlib.util.find_spec(name)
    origin = spec.origin if spec is not None else None
    return origin is not None and origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def codec_build(names: tuple[str, ...] | None = None) -> str:
    """``compiled`` when every module of the list (``names``, by default
    :data:`COMPILED_MODULES`) is an extension module, ``pure`` when none is,
    else ``partly compiled (N of M modules)``."""
    if names is None:
        names = compiled_module_names()
    compiled = sum(1 for name in names if _is_extension(name))
    if compiled == len(names):
        return "compiled"
    if compiled == 0:
        return "pure"
    return f"partly compiled ({compiled} of {len(names)} modules)"
