"""The ``edgeport`` command: check-config, exit codes, startup errors, logging formats."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import textwrap
import types
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trustme
import yaml

from edgeport import __version__
from edgeport.cli import configure_logging, main
from edgeport.config import EdgePortConfig
from edgeport.transports.errors import BindError
from tests.config_fixtures import write_leaf_pkcs12

REPO = Path(__file__).resolve().parent.parent

INVALID = """\
kind: EdgePort
apiVersion: v2beta1
ref: edgeport-01
spec:
  transport:
    - protocol: udp
      port: 5060
    - protocol: tcp
      port: abc
  methods: [INVITE]
  processor:
    addr: dispatcher:51901
"""

VALID = """\
kind: EdgePort
apiVersion: v2beta1
ref: edgeport-01
spec:
  transport:
    - protocol: udp
      port: 5060
  methods: [INVITE]
  processor:
    addr: dispatcher:51901
  localnets: [10.0.0.0/8]
"""


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CONFIG_PATH", "HOSTNAME", "PROCESSOR_ADDR", "LOCALNETS", "EXTERNAL_ADDRS"):
        monkeypatch.delenv(name, raising=False)


def run_edgeport(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CONFIG_PATH", "HOSTNAME")}
    return subprocess.run(
        [sys.executable, "-m", "edgeport", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
        check=False,
    )


def write(tmp_path: Path, text: str, name: str = "edgeport.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


# --- check-config, as a real process -----------------------------------------------


def test_check_config_reports_a_problem_in_one_line(tmp_path: Path) -> None:
    result = run_edgeport("check-config", str(write(tmp_path, INVALID)))
    assert result.returncode == 2
    assert result.stderr == "spec.transport[1].port: expected an integer, got 'abc'\n"
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_check_config_prints_the_effective_configuration_with_secrets_masked(
    tmp_path: Path,
) -> None:
    keystore = write_leaf_pkcs12(
        tmp_path / "signaling.p12", "hunter2", trustme.CA().issue_cert("x")
    )
    path = write(
        tmp_path,
        f"""\
        kind: EdgePort
        apiVersion: v2beta1
        ref: edgeport-01
        spec:
          transport:
            - {{protocol: udp, port: 5060}}
            - {{protocol: tls, port: 5061}}
          methods: [INVITE, BYE]
          processor: {{addr: "dispatcher:51901"}}
          localnets: [10.0.0.0/8]
          securityContext:
            keyStore: {keystore}
            keyStorePassword: hunter2
            trustStore: {keystore}
            trustStorePassword: hunter2
        """,
    )
    result = run_edgeport("check-config", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "hunter2" not in result.stdout
    described = yaml.safe_load(result.stdout)
    security = described["spec"]["securityContext"]
    assert security["keyStore"] == str(keystore)
    assert security["keyStorePassword"] == "****"
    assert security["trustStorePassword"] == "****"
    assert described["spec"]["transport"] == [
        {"protocol": "udp", "port": 5060, "bindAddr": "0.0.0.0"},
        {"protocol": "tls", "port": 5061, "bindAddr": "0.0.0.0"},
    ]


def test_check_config_warns_about_unknown_keys(tmp_path: Path) -> None:
    path = write(tmp_path, VALID + "  recordRoute: true\n")
    result = run_edgeport("check-config", str(path))
    assert result.returncode == 0
    assert result.stderr == "warning: spec.recordRoute: unknown key, ignored\n"


def test_version() -> None:
    result = run_edgeport("--version")
    assert result.returncode == 0
    # The codec build (pure or compiled) is checked in tests/test_compiled_build.py.
    assert result.stdout.startswith(f"edgeport {__version__} (codec: ")


# --- the run command, in process --------------------------------------------------------


def test_invalid_configuration_exits_2_with_each_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], clean_env: None
) -> None:
    path = write(tmp_path, INVALID.replace("ref: edgeport-01\n", ""))
    assert main(["--config", str(path)]) == 2
    assert capsys.readouterr().err == (
        "ref: required key missing\nspec.transport[1].port: expected an integer, got 'abc'\n"
    )


def test_config_path_from_the_environment(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    clean_env: None,
) -> None:
    monkeypatch.setenv("CONFIG_PATH", str(write(tmp_path, INVALID)))
    assert main([]) == 2
    assert capsys.readouterr().err == "spec.transport[1].port: expected an integer, got 'abc'\n"


def fake_server(monkeypatch: pytest.MonkeyPatch, serve: Callable[..., Awaitable[None]]) -> None:
    module = types.ModuleType("edgeport.server")
    module.serve = serve  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "edgeport.server", module)


def test_runs_the_server_with_the_loaded_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: None
) -> None:
    seen: list[EdgePortConfig] = []

    async def serve(config: EdgePortConfig, *, handle_signals: bool = False, **_: object) -> None:
        await trio.lowlevel.checkpoint()
        assert handle_signals  # SIGTERM must drain, not kill
        seen.append(config)

    fake_server(monkeypatch, serve)
    assert main(["--config", str(write(tmp_path, VALID))]) == 0
    assert [config.processor.addr for config in seen] == ["dispatcher:51901"]


def test_no_configuration_at_all_runs_the_default(
    monkeypatch: pytest.MonkeyPatch, clean_env: None
) -> None:
    seen: list[EdgePortConfig] = []

    async def serve(config: EdgePortConfig, *, handle_signals: bool = False, **_: object) -> None:
        seen.append(config)

    fake_server(monkeypatch, serve)
    assert main(["--log-level", "warning"]) == 0
    assert [(config.ref, config.processor.addr) for config in seen] == [("edgeport-01", "builtin")]


def test_bind_error_is_one_line_and_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    clean_env: None,
) -> None:
    async def serve(config: EdgePortConfig, *, handle_signals: bool = False, **_: object) -> None:
        raise BindError("udp", "0.0.0.0", 5060, "Address already in use")

    fake_server(monkeypatch, serve)
    assert main(["--config", str(write(tmp_path, VALID))]) == 2
    err = capsys.readouterr().err
    assert err.endswith("unable to bind udp://0.0.0.0:5060: Address already in use\n")
    assert "Traceback" not in err


def test_startup_errors_raised_inside_nurseries(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    clean_env: None,
) -> None:
    class KeystoreGone(Exception):
        startup_error = True

    async def fail(error: Exception) -> None:
        raise error  # before any checkpoint, so that the sibling's failure cannot cancel it

    async def serve(config: EdgePortConfig, *, handle_signals: bool = False, **_: object) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fail, BindError("tcp", "::1", 5060, "Permission denied"))
            nursery.start_soon(fail, KeystoreGone("cannot open /etc/k.p12: wrong password"))

    fake_server(monkeypatch, serve)
    assert main(["--config", str(write(tmp_path, VALID))]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert sorted(lines[-2:]) == [
        "cannot open /etc/k.p12: wrong password",
        "unable to bind tcp://[::1]:5060: Permission denied",
    ]


def test_keyboard_interrupt_exits_0_quietly(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    clean_env: None,
) -> None:
    async def serve(config: EdgePortConfig, *, handle_signals: bool = False, **_: object) -> None:
        raise KeyboardInterrupt

    fake_server(monkeypatch, serve)
    assert main(["--config", str(write(tmp_path, VALID)), "--log-level", "ERROR"]) == 0
    assert capsys.readouterr().err == ""


def test_other_errors_are_not_hidden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: None
) -> None:
    async def serve(config: EdgePortConfig, *, handle_signals: bool = False, **_: object) -> None:
        raise RuntimeError("a bug")

    fake_server(monkeypatch, serve)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["--config", str(write(tmp_path, VALID))])


def test_builtin_processor_gets_every_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[list[str]] = []

    def cli_main(argv: list[str]) -> int:
        received.append(argv)
        return 7

    module = types.ModuleType("edgeport.builtin")
    module.cli_main = cli_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "edgeport.builtin", module)
    assert main(["builtin-processor", "--bind", "0.0.0.0:51904", "--help"]) == 7
    assert main(["--log-level", "debug", "builtin-processor"]) == 7
    assert received == [["--bind", "0.0.0.0:51904", "--help"], []]


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--log-level", "loud"]) == 2
    assert main(["--log-format", "xml"]) == 2
    assert main(["check-config"]) == 2
    assert "usage: edgeport" in capsys.readouterr().err


# --- logging formats ------------------------------------------------------------------------


def test_text_log_format(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("DEBUG", "text")
    logging.getLogger("edgeport.proxy").debug("sent %s", "INVITE", extra={"call_id": "abc"})
    line = capsys.readouterr().err
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z DEBUG edgeport\.proxy sent INVITE call_id=abc\n",
        line,
    )


def test_json_log_format(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    log = logging.getLogger("edgeport.processor")
    log.debug("not shown")
    log.warning("call %s failed", "c1", extra={"call_id": "c1", "elapsed": 0.25})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("handler crashed")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    first: dict[str, Any] = json.loads(lines[0])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first.pop("ts"))
    assert first == {
        "level": "WARNING",
        "logger": "edgeport.processor",
        "msg": "call c1 failed",
        "call_id": "c1",
        "elapsed": 0.25,
    }
    second = json.loads(lines[1])
    assert second["msg"] == "handler crashed"
    assert "ValueError: boom" in second["exc"]


def test_configure_logging_twice_keeps_one_handler(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "text")
    configure_logging("INFO", "json")
    logging.getLogger("edgeport.x").info("once")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["msg"] == "once"
