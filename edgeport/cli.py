"""The ``edgeport`` command: arguments, logging set-up, configuration, exit codes.

::

    edgeport [--config PATH] [--log-level LEVEL] [--log-format text|json] [--workers N]
             [--pid-file PATH]
    edgeport check-config PATH
    edgeport reload [--pid-file PATH]
    edgeport builtin-processor [ARGS...]
    edgeport worker --index I --count N --rundir DIR [--processor ADDR]  (by the supervisor)
    edgeport --version

With ``--workers N`` (or ``WORKERS``, or ``spec.workers``) above 1 the
process supervises N worker processes (edgeport.workers).

SIGHUP reloads the configuration (edgeport.reload); ``edgeport reload``
sends it to the process named in the pid file (edgeport.pidfile), which a
serving edgeport writes.

The configuration comes from ``--config``, else ``CONFIG_PATH``, else the
embedded default. Exit codes: 0 after a clean stop (SIGINT/SIGTERM), 2 for
a configuration problem or a startup failure (a port that cannot be bound): one line per problem on
stderr and no traceback. This is the only module that prints or configures
logging.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import gc
import importlib
import json
import logging
import os
import sys
from typing import TYPE_CHECKING, Any, Final

import yaml

from edgeport import __version__
from edgeport.compiled import codec_build
from edgeport.config import (
    ConfigError,
    describe_config,
    load_config,
    load_config_with_warnings,
    parse_workers,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from edgeport.config import EdgePortConfig

logger = logging.getLogger(__name__)

GC_YOUNG_THRESHOLD: Final = 20_000  # allocations between young collections (default 700)
EXIT_OK: Final = 0
EXIT_NOT_RUNNING: Final = 1  # edgeport reload: no edgeport to signal
EXIT_CONFIG: Final = 2
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS: Final = ("text", "json")

# The attributes every LogRecord has; anything else came in through ``extra``.
_RECORD_ATTRIBUTES: Final = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None))
) | {"message", "asctime", "taskName"}


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:  # argparse's --help, --version and usage errors
        return exit_.code if isinstance(exit_.code, int) else EXIT_CONFIG
    configure_logging(args.log_level, args.log_format)
    if args.command == "check-config":
        return _check_config(args.path)
    if args.command == "reload":
        return _reload(args.pid_file)
    if args.command == "builtin-processor":
        from edgeport.builtin import cli_main  # the processor's own dependencies load only here

        return cli_main(list(args.args))
    if args.command == "worker":
        return _serve_worker(args)
    return _serve(args.config, args.workers, args.log_level, args.log_format, args.pid_file)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgeport",
        description="A SIP edge proxy for Routr: SIP over UDP, TCP, TLS, WS and WSS in, "
        "gRPC to a Routr processor out.",
    )
    parser.add_argument(
        "--version", action="version", version=f"edgeport {__version__} (codec: {codec_build()})"
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="YAML or JSON configuration (default: $CONFIG_PATH, else a built-in default)",
    )
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default="INFO",
        metavar="LEVEL",
        help="DEBUG, INFO, WARNING, ERROR or CRITICAL (default INFO)",
    )
    parser.add_argument("--log-format", choices=LOG_FORMATS, default="text")
    parser.add_argument(
        "--workers",
        metavar="N",
        help="worker processes sharing the ports: a count or 'auto', one per usable core "
        "(default: $WORKERS, else spec.workers, else 1: one process, no supervisor)",
    )
    parser.add_argument(
        "--pid-file",
        metavar="PATH",
        help="where to write the process id for edgeport reload (default: "
        "$XDG_RUNTIME_DIR/edgeport.pid, else /run/edgeport.pid when writable; '' for none)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = commands.add_parser(
        "check-config",
        help="validate a configuration and print the effective one",
        description="Validate a configuration file (with the environment applied) and print "
        "the effective configuration, passwords masked. Exit 0 when valid, 2 when not.",
    )
    check.add_argument("path", metavar="PATH")
    reload = commands.add_parser(
        "reload",
        help="make the running edgeport reload its configuration (SIGHUP)",
        description="Send SIGHUP to the edgeport named in the pid file: it reads its "
        "configuration and TLS files again and applies them without dropping anything. "
        "Exit 0 when the signal was sent, 1 when no edgeport runs.",
    )
    reload.add_argument(
        "--pid-file",
        metavar="PATH",
        default=argparse.SUPPRESS,  # given before the command, or here
        help="the running edgeport's pid file (default: as edgeport writes it)",
    )
    builtin = commands.add_parser(
        "builtin-processor",
        help="serve the built-in Routr processor",
        add_help=False,
        prefix_chars="\0",  # every argument, --help included, belongs to the processor
    )
    builtin.add_argument("args", nargs=argparse.REMAINDER)
    worker = commands.add_parser(
        "worker",
        help="one worker process (started by edgeport --workers N, not by hand)",
    )
    worker.add_argument("--index", type=int, required=True)
    worker.add_argument("--count", type=int, required=True)
    worker.add_argument("--rundir", required=True, help="where the workers' sockets are")
    worker.add_argument("--processor", help="the processor address, replacing the configured one")
    return parser


def _check_config(path: str) -> int:
    try:
        config, warnings = load_config_with_warnings(path, os.environ)
    except ConfigError as error:
        _print_problems(error.problems)
        _print_problems([f"warning: {line}" for line in error.warnings])
        return EXIT_CONFIG
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)
    print(yaml.safe_dump(describe_config(config), sort_keys=False), end="")
    return EXIT_OK


def _pid_file(given: str | None) -> str | None:
    from edgeport.pidfile import default_pid_file

    if given is not None:
        return given or None  # '' : no pid file
    return default_pid_file(os.environ)


def _reload(pid_file: str | None) -> int:
    from edgeport.pidfile import PidFileError, signal_reload

    path = _pid_file(pid_file)
    if path is None:
        _print_problems(["no pid file: give --pid-file PATH"])
        return EXIT_NOT_RUNNING
    try:
        pid = signal_reload(path)
    except PidFileError as error:
        _print_problems([str(error)])
        return EXIT_NOT_RUNNING
    print(f"sent SIGHUP to edgeport (pid {pid}); its log says what the reload did")
    return EXIT_OK


@contextlib.contextmanager
def _pid_file_written(given: str | None) -> Iterator[None]:
    """The pid file for ``edgeport reload``, written while serving (see edgeport.pidfile)."""
    from edgeport.pidfile import remove_pid_file, write_pid_file

    path = _pid_file(given)
    if path is not None and not write_pid_file(path):
        path = None
    try:
        yield
    finally:
        if path is not None:
            remove_pid_file(path)


def _serve(
    path: str | None,
    workers_arg: str | None,
    log_level: str,
    log_format: str,
    pid_file: str | None = None,
) -> int:
    try:
        config = load_config(path, os.environ)
    except ConfigError as error:
        _print_problems(error.problems)
        _print_problems([f"warning: {line}" for line in error.warnings])
        return EXIT_CONFIG
    workers = config.workers
    if workers_arg is not None:
        try:
            workers = parse_workers(workers_arg)
        except ValueError as error:
            _print_problems([f"--workers: {error}"])
            return EXIT_CONFIG
    if workers > 1:
        with _pid_file_written(pid_file):
            return _supervise(config, path, workers, log_level, log_format)
    server = importlib.import_module("edgeport.server")  # late: check-config needs none of it
    from edgeport.reload.reloader import ConfigSource

    if path is None and not os.environ.get("CONFIG_PATH"):
        logger.info(
            "no configuration given (--config or CONFIG_PATH): serving the embedded default, "
            "UDP and TCP 5060 and WS 5062 with the built-in processor"
        )
    logger.info("edgeport %s starting as %s (codec: %s)", __version__, config.ref, codec_build())
    _tune_garbage_collector()
    # SIGTERM and SIGINT stop the listeners and drain transactions (architecture: shutdown);
    # SIGHUP reloads the configuration from where it came.
    source = ConfigSource(path, dict(os.environ))
    with _pid_file_written(pid_file):
        return _run(functools.partial(server.serve, handle_signals=True, source=source), config)


def _supervise(
    config: EdgePortConfig, path: str | None, workers: int, log_level: str, log_format: str
) -> int:
    import trio

    from edgeport.workers.supervisor import supervise

    logger.info(
        "edgeport %s starting as %s with %d workers (codec: %s)",
        __version__,
        config.ref,
        workers,
        codec_build(),
    )
    try:
        code: int = trio.run(
            functools.partial(
                supervise,
                config,
                config_path=path,
                workers=workers,
                log_level=log_level,
                log_format=log_format,
            )
        )
    except KeyboardInterrupt:
        return EXIT_OK
    return code


def _serve_worker(args: argparse.Namespace) -> int:
    from edgeport.reload.reloader import ConfigSource
    from edgeport.workers.worker import WorkerRole, run_worker, tag_log_lines

    try:
        config = load_config(args.config, os.environ)
        role = WorkerRole(args.index, args.count, args.rundir, args.processor)
        source = ConfigSource(args.config, dict(os.environ), prepare=role.config_for)
    except ConfigError as error:
        _print_problems(error.problems)
        return EXIT_CONFIG
    except ValueError as error:
        _print_problems([str(error)])
        return EXIT_CONFIG
    # Tagged only once the role is valid: a refused worker command leaves the
    # process's log handlers as it found them.
    tag_log_lines(role.index)
    _tune_garbage_collector()
    return _run(functools.partial(run_worker, role=role, source=source), config)


def _tune_garbage_collector() -> None:
    """Keep full collections short and rare under load.

    Every module, class and constant loaded so far lives as long as the
    process: ``gc.freeze`` takes them out of every later collection. UDP
    transactions linger 32 s (Timer J), so at a few hundred requests a
    second tens of thousands of objects survive each young collection; a
    larger first threshold lets most messages die before they are ever
    scanned.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)


def _run(serve: Any, config: EdgePortConfig) -> int:
    import trio

    try:
        trio.run(serve, config)
    except KeyboardInterrupt:
        return EXIT_OK
    except BaseExceptionGroup as group:
        startup, rest = group.split(_is_startup_error)
        if rest is not None:
            _, rest = rest.split(KeyboardInterrupt)
        if rest is not None:
            raise
        if startup is None:
            return EXIT_OK  # interrupted
        _print_problems([str(exc) for exc in _leaves(startup)])
        return EXIT_CONFIG
    except Exception as error:
        if not _is_startup_error(error):
            raise
        _print_problems([str(error)])
        return EXIT_CONFIG
    return EXIT_OK


def _is_startup_error(error: BaseException) -> bool:
    """Errors that mean "cannot start" and say why in one line carry ``startup_error = True``."""
    return getattr(error, "startup_error", False) is True


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    leaves: list[BaseException] = []
    for item in group.exceptions:
        if isinstance(item, BaseExceptionGroup):
            leaves.extend(_leaves(item))
        else:
            leaves.append(item)
    return leaves


def _print_problems(lines: list[str]) -> None:
    for line in lines:
        print(line, file=sys.stderr)


# --- logging ------------------------------------------------------------------


class _EdgeportHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`configure_logging` installs, told apart from anyone else's."""


def configure_logging(level: str = "INFO", log_format: str = "text") -> None:
    """One stderr handler on the root logger; calling again replaces it."""
    handler = _EdgeportHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old, _EdgeportHandler):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def _timestamp(created: float) -> str:
    moment = datetime.datetime.fromtimestamp(created, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _RECORD_ATTRIBUTES and not key.startswith("_")
    }


class TextFormatter(logging.Formatter):
    """``2026-11-26T10:00:00.123Z INFO edgeport.proxy message key=value``."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record.created)} {record.levelname} {record.name} "
        line += record.getMessage()
        for key, value in _extras(record).items():
            line += f" {key}={value}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, every ``extra`` key, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _extras(record).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)
