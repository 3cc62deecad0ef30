"""Developer sessions: tests, lint, typecheck, proto, bench, fuzz."""

from __future__ import annotations

import runpy
import shutil
import sys
import tempfile
from pathlib import Path

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True

# The Python versions edgeport supports; each session runs once, on one of
# them: the one nox itself runs on when it is supported (so the distribution's
# python3 serves: 3.11 on Debian 12, 3.12 on Ubuntu 24.04, 3.13 on Debian 13),
# else the oldest supported one on PATH. `nox --force-python 3.12` picks another.
SUPPORTED_PYTHONS = ("3.11", "3.12", "3.13")
_RUNNING = f"{sys.version_info.major}.{sys.version_info.minor}"
PYTHON = (
    _RUNNING
    if _RUNNING in SUPPORTED_PYTHONS
    else next((v for v in SUPPORTED_PYTHONS if shutil.which(f"python{v}")), SUPPORTED_PYTHONS[0])
)
# Linters pinned to a minor release: a newer one may add checks, and CI on a
# fresh machine must judge the tree as it was judged when it was committed.
RUFF = "ruff>=0.17,<0.18"
MYPY = "mypy>=2.4,<2.5"
# The generator, pinned exactly: its version is written into the committed
# stubs (GRPC_GENERATED_VERSION), and tests/test_proto.py regenerates them and
# compares. To move it: change it here and in pyproject.toml (dev), then
# `nox -s proto` and commit edgeport/_proto.
GRPCIO_TOOLS = "grpcio-tools==1.85.1"
# The compiled build's list of modules and its pinned mypyc, from their one place.
_COMPILED = runpy.run_path(str(Path(__file__).parent / "edgeport" / "compiled.py"))
MYPYC: tuple[str, ...] = _COMPILED["MYPYC_REQUIREMENTS"]
# What `nox -s compiled` runs against the compiled codec: the sans-IO tests of
# the compiled modules, the conversion, the transports (stream framing), the
# codec benchmark (tests/test_convert_replies.py), the compiled codec against
# the pure one on fuzzed input (tests/test_compiled_build.py), and end-to-end
# cases through a real gRPC processor (REGISTER, calls, CANCEL, digest auth,
# the edge's own answers, reply checks) and the built-in one.
COMPILED_TESTS = (
    "tests/test_compiled_build.py",
    "tests/sip",
    "tests/test_convert_browser_via.py",
    "tests/test_convert_replies.py",
    "tests/test_convert_roundtrip.py",
    "tests/test_convert_to_proto.py",
    "tests/test_large_requests.py",
    "tests/test_transaction_layer.py",
    "tests/protection",
    "tests/capture/test_hep.py",
    "tests/transports",
    "tests/e2e/test_register_call_udp.py",
    "tests/e2e/test_cancel_and_auth.py",
    "tests/e2e/test_edge_answers.py",
    "tests/e2e/test_reply_injection.py",
    "tests/e2e/test_browser_via_shown.py",
)
# Left out by name: tests that replace a function of a compiled module with
# monkeypatch cannot run compiled (a compiled caller calls the native function
# directly). None of the files above does; list any such file here, with why.
COMPILED_LEFT_OUT: tuple[str, ...] = ()


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole suite, end-to-end cases included."""
    session.install("-e", ".[test]", GRPCIO_TOOLS)
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def compiled(session: nox.Session) -> None:
    """The codec compiled with mypyc (EDGEPORT_COMPILE=1), tested: a copy of the tree
    with the codec built in place (tools/compiled_tree.py) in a temporary directory,
    then COMPILED_TESTS run there, the first checking that the modules imported
    are the extension modules. Needs a C compiler and the Python headers."""
    session.install("-e", ".[test]", *MYPYC, "setuptools>=77", "wheel")
    with tempfile.TemporaryDirectory(prefix="edgeport-compiled-") as temporary:
        tree = Path(temporary) / "edgeport"
        session.run("python", "tools/compiled_tree.py", str(tree))
        with session.chdir(tree):
            session.run(
                "python",
                "-c",
                "from edgeport.compiled import codec_build; build = codec_build(); "
                "print('codec:', build); assert build == 'compiled', build",
            )
            left_out = [f"--ignore={name}" for name in COMPILED_LEFT_OUT]
            session.run(
                "python",
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                *left_out,
                *COMPILED_TESTS,
                *session.posargs,
                env={"EDGEPORT_EXPECT_CODEC": "compiled", "PYTHONDONTWRITEBYTECODE": "1"},
            )


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install(RUFF)
    session.run(
        "ruff",
        "check",
        "edgeport",
        "tests",
        "tools",
        "benchmarks",
        "build_support",
        "noxfile.py",
        "setup.py",
    )
    session.run(
        "ruff",
        "format",
        "--check",
        "edgeport",
        "tests",
        "tools",
        "benchmarks",
        "build_support",
        "setup.py",
    )


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[test]", MYPY, "types-protobuf", "types-pyyaml", "types-grpcio")
    session.run("mypy")


@nox.session(python=PYTHON)
def proto(session: nox.Session) -> None:
    """Regenerate edgeport/_proto (messages and grpcio stubs) from proto/*.proto."""
    session.install(GRPCIO_TOOLS)
    session.run("python", "tools/gen_proto.py")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Codec, processor hop, transport and load benchmarks; each prints its figures."""
    # grpclib only for the processor hop benchmark's comparison with the old client;
    # mypyc for the codec benchmark's compiled build (--builds pure,compiled).
    session.install("-e", ".[test]", "grpclib>=0.4.7,<0.5", *MYPYC, "setuptools>=77")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session(python=PYTHON)
def fuzz(session: nox.Session) -> None:
    """Generated and mutated SIP through the parser, conversion and framing, then over
    UDP, TCP, TLS, WS, WSS and PROXY protocol listeners into two real
    ``edgeport --workers 2`` processes with HEP capture and flood limits on;
    ``nox -s fuzz -- --seed 2 --count 50000``. Default: 10^6 inputs each way (about
    half an hour on 2 cores)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "tests.fuzz", *session.posargs)
