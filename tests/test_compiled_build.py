"""The optional compiled codec: the build switch, the build backend, and what an operator sees.

``nox -s compiled`` runs this file in a copy of the tree whose codec was
compiled in place, with ``EDGEPORT_EXPECT_CODEC=compiled``; the ordinary
suite runs it on the pure tree (the default, ``pure``). Either way the first
test checks that the modules imported are the build under test.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import logging
import os
import re
import runpy
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import trio

from edgeport import __version__
from edgeport.cli import main
from edgeport.compiled import (
    COMPILE_VARIABLE,
    COMPILED_MODULES,
    MYPYC_REQUIREMENTS,
    codec_build,
    compile_requested,
    compiled_module_names,
)

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = os.environ.get("EDGEPORT_EXPECT_CODEC", "pure")
SUFFIXES = tuple(importlib.machinery.EXTENSION_SUFFIXES)


def test_the_codec_modules_imported_are_the_build_under_test() -> None:
    assert EXPECTED in ("pure", "compiled")
    for name in compiled_module_names():
        module = importlib.import_module(name)
        assert module.__file__ is not None
        assert module.__file__.startswith(str(ROOT / "edgeport")), module.__file__
        assert module.__file__.endswith(SUFFIXES) == (EXPECTED == "compiled"), module.__file__
    assert codec_build() == EXPECTED


def test_every_listed_module_exists_and_is_sans_io() -> None:
    for path in COMPILED_MODULES:
        source = (ROOT / path).read_text()
        assert not re.search(r"^\s*(import|from)\s+(trio|socket|grpc|asyncio)\b", source, re.M)
        assert "async def" not in source, path


def test_the_variable_reads_yes_no_or_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not compile_requested({})
    for value in ("0", "", "no", "false", "off"):
        assert not compile_requested({COMPILE_VARIABLE: value})
    for value in ("1", "yes", "true", "ON"):
        assert compile_requested({COMPILE_VARIABLE: value})
    with pytest.raises(ValueError, match=r"^EDGEPORT_COMPILE='maybe': expected 1 .* or 0"):
        compile_requested({COMPILE_VARIABLE: "maybe"})


def backend(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.chdir(ROOT)  # where pip runs a PEP 517 backend
    return runpy.run_path(str(ROOT / "build_support" / "edgeport_backend.py"))


def test_the_pure_build_requires_no_mypy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(COMPILE_VARIABLE, raising=False)
    hooks = backend(monkeypatch)
    requires = hooks["get_requires_for_build_wheel"]()
    assert not [r for r in requires if r.startswith(("mypy", "types-"))], requires


def test_the_compiled_build_requires_the_pinned_mypy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(COMPILE_VARIABLE, "1")
    hooks = backend(monkeypatch)
    assert hooks["get_requires_for_build_wheel"]() == list(MYPYC_REQUIREMENTS)
    assert hooks["get_requires_for_build_editable"]() == list(MYPYC_REQUIREMENTS)
    assert hooks["get_requires_for_build_sdist"]() == list(MYPYC_REQUIREMENTS)
    assert "mypy==2.4.1" in MYPYC_REQUIREMENTS


def test_a_bad_value_stops_the_build_before_any_download(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(COMPILE_VARIABLE, "2")
    hooks = backend(monkeypatch)
    with pytest.raises(SystemExit, match="EDGEPORT_COMPILE='2'"):
        hooks["get_requires_for_build_wheel"]()


# setup.py run as setuptools' backend runs it, with mypyc hidden from it.
_WITHOUT_MYPYC = (
    "import sys; sys.modules['mypyc'] = None; sys.modules['mypyc.build'] = None; "
    "sys.argv = ['setup.py', '--quiet', 'build_ext', '--inplace']; "
    "import runpy; runpy.run_path('setup.py', run_name='__main__')"
)


def test_asking_for_the_compiled_build_without_mypyc_is_an_error_not_a_pure_build(
    tmp_path: Path,
) -> None:
    env = dict(os.environ, EDGEPORT_COMPILE="1")
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_MYPYC],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "error: EDGEPORT_COMPILE=1 needs mypyc to compile the codec (mypy==2.4.1" in done.stderr


def test_a_failed_compile_is_an_error_not_a_pure_build(tmp_path: Path) -> None:
    pytest.importorskip("mypyc.build", reason="mypyc is installed in nox -s compiled only")
    (tmp_path / "edgeport").mkdir()
    shutil.copy2(ROOT / "setup.py", tmp_path / "setup.py")
    listing = (ROOT / "edgeport" / "compiled.py").read_text()
    listing, count = re.subn(
        r"COMPILED_MODULES: Final = \([^)]*\)",
        'COMPILED_MODULES: Final = ("edgeport/broken.py",)',
        listing,
    )
    assert count == 1
    (tmp_path / "edgeport" / "compiled.py").write_text(listing)
    (tmp_path / "edgeport" / "__init__.py").write_text("")
    (tmp_path / "edgeport" / "broken.py").write_text('number: int = "not a number"\n')
    done = subprocess.run(
        [sys.executable, "setup.py", "--quiet", "build_ext", "--inplace"],
        cwd=tmp_path,
        env=dict(os.environ, EDGEPORT_COMPILE="1"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode != 0
    assert "error: EDGEPORT_COMPILE=1: mypyc could not compile the codec" in done.stderr
    assert not list((tmp_path / "edgeport").glob("broken.*.so"))


def test_the_build_is_told_apart_module_by_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "codecbuild"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "plain.py").write_text("")
    # find_spec looks at file names only: the extension module is never loaded.
    (package / f"native{SUFFIXES[0]}").write_bytes(b"")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "codecbuild", raising=False)
    both = ("codecbuild.native", "codecbuild.plain")
    assert codec_build(both) == "partly compiled (1 of 2 modules)"
    assert codec_build(("codecbuild.native",)) == "compiled"
    assert codec_build(("codecbuild.plain",)) == "pure"


def test_edgeport_version_names_the_codec_build() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "edgeport", "--version"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"edgeport {__version__} (codec: {EXPECTED})\n"


def test_the_startup_log_line_names_the_codec_build(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for variable in ("CONFIG_PATH", "WORKERS"):
        monkeypatch.delenv(variable, raising=False)

    async def serve(*_: object, **__: object) -> None:
        await trio.lowlevel.checkpoint()

    module = types.ModuleType("edgeport.server")
    module.serve = serve  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "edgeport.server", module)
    with caplog.at_level(logging.INFO, logger="edgeport.cli"):
        assert main(["--pid-file", ""]) == 0
    starting = [r.getMessage() for r in caplog.records if " starting as " in r.getMessage()]
    assert starting == [f"edgeport {__version__} starting as edgeport-01 (codec: {EXPECTED})"]


def codec_benchmark() -> Any:
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks import codec
    finally:
        sys.path.remove(str(ROOT))
    return codec


def test_the_codec_benchmark_measures_a_build_in_a_python_of_its_own() -> None:
    codec = codec_benchmark()
    rows = codec._measure_in(ROOT, EXPECTED, 3, False)
    assert [row[0] for row in rows] == ["REGISTER", "INVITE+SDP", "200 OK+RR"]
    assert all(figure > 0 for row in rows for figure in row[1:])
    other = "compiled" if EXPECTED == "pure" else "pure"
    with pytest.raises(RuntimeError, match=f"runs the {EXPECTED} codec, not the {other} one"):
        codec._measure_in(ROOT, other, 3, False)


def test_the_codec_benchmark_refuses_an_unknown_build() -> None:
    codec = codec_benchmark()
    assert codec.parse_options(["--builds", "pure,compiled"]).builds == ["pure", "compiled"]
    with pytest.raises(SystemExit):
        codec.parse_options(["--builds", "pure,fast"])
    with pytest.raises(SystemExit):
        codec.parse_options(["--builds", "pure,pure"])


VALUE_CLASSES = (
    ("edgeport.sip.via", "Via"),
    ("edgeport.sip.addresses", "NameAddr"),
    ("edgeport.sip.uri", "SipUri"),
    ("edgeport.sip.uri", "OpaqueUri"),
    ("edgeport.sip.auth_headers", "DigestChallenge"),
    ("edgeport.sip.auth_headers", "DigestCredentials"),
    ("edgeport.convert.replies", "ForwardedRequest"),
)


@pytest.mark.parametrize(("module", "name"), VALUE_CLASSES)
def test_a_value_class_made_per_message_has_an_init_the_compiler_sees(
    module: str, name: str
) -> None:
    """A dataclass's generated __init__ is code made at run time ("<string>"), which
    a compiled caller reaches through an argument tuple and an interpreted frame;
    one written in the module is compiled with it and called natively."""
    init = getattr(importlib.import_module(module), name).__init__
    code = getattr(init, "__code__", None)
    if EXPECTED == "compiled":
        assert code is None, f"{name}.__init__ is interpreted code"
    else:
        assert code is not None
        assert code.co_filename.endswith(module.replace(".", "/") + ".py"), code.co_filename


def test_value_classes_build_by_position_keyword_and_dataclasses_replace() -> None:
    import dataclasses

    from edgeport.sip.addresses import NameAddr
    from edgeport.sip.uri import SipUri
    from edgeport.sip.via import Via

    via = Via("UDP", "192.0.2.1", 5060, {"branch": "z9hG4bK1"})
    assert (via.protocol, via.params) == ("SIP/2.0", {"branch": "z9hG4bK1"})
    moved = dataclasses.replace(via, params={"branch": "z9hG4bK2", "rport": None})
    assert moved == Via(
        transport="UDP", host="192.0.2.1", port=5060, params={"branch": "z9hG4bK2", "rport": None}
    )
    assert Via("TCP", "h").params == {}
    assert Via("TCP", "h").params is not Via("TCP", "h").params  # a dict of its own each
    uri = SipUri(host="example.com")
    assert (uri.scheme, uri.params, uri.headers) == ("sip", {}, {})
    assert str(NameAddr(None, uri, {"tag": "1"})) == "<sip:example.com>;tag=1"
    assert repr(SipUri(host="h", port=1)).startswith("SipUri(scheme='sip', user=None")


def _outcomes(pythonpath: Path, cwd: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "support" / "codec_outcomes.py"), "11", "3000"],
        cwd=cwd,
        env=dict(os.environ, PYTHONPATH=str(pythonpath), PYTHONHASHSEED="0"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.skipif(
    EXPECTED != "compiled", reason="compares the compiled codec with the pure one: nox -s compiled"
)
def test_the_compiled_codec_makes_what_the_pure_one_makes_of_3000_fuzzed_messages(
    tmp_path: Path,
) -> None:
    pure = tmp_path / "pure"
    shutil.copytree(ROOT / "edgeport", pure / "edgeport", ignore=shutil.ignore_patterns("*.so"))
    compiled = _outcomes(ROOT, tmp_path)
    reference = _outcomes(pure, tmp_path)
    assert (compiled["build"], reference["build"]) == ("compiled", "pure")
    assert len(compiled["outcomes"]) == len(reference["outcomes"]) == 3000
    differ = [
        i
        for i, (a, b) in enumerate(zip(compiled["outcomes"], reference["outcomes"], strict=True))
        if a != b
    ]
    assert not differ, f"inputs {differ[:10]} of seed 11 differ (tests/support/codec_outcomes.py)"
