"""The typer application: one small module per command, imported only when that command runs.

`main()` (the console script) builds an application holding just the command on the command line
(all of them for `oomplan`, `--help` or an unknown word); `app` (tests, embedding) holds them all.
"""
from __future__ import annotations

import errno
import gc
import importlib
import os
import sys
import types
from typing import TYPE_CHECKING

from oomplan import __version__
from oomplan.errors import EXIT_RUNTIME, OomplanError

if TYPE_CHECKING:
    import typer

# typer, oomplan.cli.common and oomplan.safeio (pydantic, yaml) are imported by main() once the collector is off.

# command -> (module, attribute); a typer sub-application where the attribute ends in _app
COMMANDS: dict[str, tuple[str, str]] = {
    "estimate": ("oomplan.cli.estimate", "estimate_command"),
    "fit": ("oomplan.cli.fit", "fit_command"),
    "check": ("oomplan.cli.check", "check_command"),
    "export": ("oomplan.cli.export", "export_command"),
    "curve": ("oomplan.cli.curve", "curve_command"),
    "models": ("oomplan.cli.catalog", "models_app"),
    "gpus": ("oomplan.cli.catalog", "gpus_command"),
    "probe": ("oomplan.cli.probe", "probe_command"),
    "vet": ("oomplan.cli.vet", "vet_command"),
}


def _version(value: bool) -> None:
    import typer

    if value:
        typer.echo(f"oomplan {__version__}")
        raise typer.Exit(0)


def _root_callback():  # noqa: ANN202 - the typer callback, made once typer is imported
    import typer

    def _root(
        debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
        version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    ) -> None:
        from oomplan.cli.common import STATE

        STATE["debug"] = debug

    return _root


def build_app(only: str | None = None) -> typer.Typer:
    """The application with every command, or with `only` that one (nothing else is imported)."""
    import typer

    built = typer.Typer(
        name="oomplan",
        help="Memory planner and OOM predictor for LLMs: how much memory, where it goes, and what plan fits.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
    built.callback()(_root_callback())
    for name, (module, attribute) in COMMANDS.items():
        if only is not None and name != only:
            continue
        target = getattr(importlib.import_module(module), attribute)
        if attribute.endswith("_app"):
            built.add_typer(target, name=name)
        else:
            built.command(name)(target)
    return built


def _invoked(argv: list[str]) -> str | None:
    """The command word on the command line, when it names a command."""
    words = [a for a in argv if not a.startswith("-")]
    return words[0] if words and words[0] in COMMANDS else None


def __getattr__(name: str) -> typer.Typer:
    if name == "app":  # every command: built on first use
        full = build_app()
        globals()["app"] = full
        return full
    raise AttributeError(name)


def _click_exceptions():
    """typer >= 0.16 vendors click as typer._click; older typers use click itself."""
    import typer

    try:
        from typer._click.exceptions import ClickException
    except ImportError:  # pragma: no cover - depends on the installed typer
        from click.exceptions import ClickException
    return typer.Abort, ClickException


def main() -> None:
    """The console script: usage errors become one line on stderr with exit 2, like every input error;
    output and I/O failures (closed or full stdout, a terminating signal) are one line with exit 3."""
    # Start-up allocates hundreds of thousands of objects (modules, classes, pydantic fields) and none is
    # garbage: the cyclic collector would pass over them again and again, a tenth of a command (issue 16).
    # It is off until the command's modules are imported (_run), then those objects are frozen out of it.
    gc.disable()
    # pydantic looks for plugins by reading the entry points of every installed distribution the first time it
    # builds a validator (milliseconds per hundred packages), for plugins a CLI never uses; a user's value is kept.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    _skip_plugin_loader()
    code = _run()
    if not _flush_stdout():
        code = EXIT_RUNTIME
    raise SystemExit(code)


_PLUGINS_OFF = ("__all__", "1", "true")  # the values pydantic's get_plugins() answers with no plugins
_LOADER = "pydantic.plugin._loader"


def _skip_plugin_loader() -> None:
    """With plugins disabled, pydantic still imports its plugin loader the first time it builds a validator, and
    the loader imports importlib.metadata (with email, csv, zipfile: 3% of `estimate`, issue 16) to find none.
    The loader is stood in for by a module whose get_plugins() answers as pydantic's does for these values, ()
    (tests/cli/test_startup.py compares); any other value or name loads pydantic's own module."""
    if os.environ.get("PYDANTIC_DISABLE_PLUGINS") not in _PLUGINS_OFF or _LOADER in sys.modules:
        return

    def real(name: str) -> object:
        if name.startswith("__"):  # the import system asking for __path__, __spec__ ...: a plain module
            raise AttributeError(name)
        if sys.modules.get(_LOADER) is stand_in:
            del sys.modules[_LOADER]
        return getattr(importlib.import_module(_LOADER), name)

    def get_plugins() -> object:
        return () if os.environ.get("PYDANTIC_DISABLE_PLUGINS") in _PLUGINS_OFF else real("get_plugins")()  # type: ignore[operator]

    stand_in = types.ModuleType(_LOADER, "stands in for pydantic's plugin loader while plugins are disabled (oomplan/cli/app.py)")
    stand_in.get_plugins = get_plugins  # type: ignore[attr-defined]
    stand_in.__getattr__ = real  # type: ignore[method-assign]
    sys.modules[_LOADER] = stand_in


def _run() -> int:
    import typer

    from oomplan.cli.common import STATE, bad_parameter_line, error_line
    from oomplan.safeio import Terminated, install_signal_cleanup

    if sys.stdout is None or not _fd_open(1):
        error_line("stdout is closed; nothing can be printed (redirect it to a file or /dev/null instead)")
        return EXIT_RUNTIME
    for stream in (sys.stdout, sys.stderr):  # a non-UTF-8 locale: unencodable characters print as '?'
        encoding = (getattr(stream, "encoding", "") or "").lower().replace("-", "")
        if stream is not None and not encoding.startswith("utf") and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")
    install_signal_cleanup()
    abort, click_exception = _click_exceptions()
    try:
        try:
            command = build_app(_invoked(sys.argv[1:]))
        finally:
            gc.freeze()
            gc.enable()
        code = command(standalone_mode=False)
        return code if isinstance(code, int) else 0
    except abort:
        error_line("aborted")
        return 130
    except click_exception as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `oomplan`: the help, not an error
            typer.echo(exc.format_message())
            return 0
        if STATE["debug"]:
            raise
        error_line(f"{bad_parameter_line(exc) or exc.format_message()} (see: oomplan {_command()}--help)")
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except Terminated as exc:
        error_line(f"terminated by signal {exc.signum}; nothing was left half-written")
        return 128 + exc.signum
    except KeyboardInterrupt:
        error_line("interrupted; nothing was left half-written")
        return 130
    except OomplanError as exc:  # raised outside a command body (an option callback)
        if STATE["debug"]:
            raise
        error_line(exc)
        return exc.exit_code
    except OSError as exc:  # writing the output failed: full disk, /dev/full, a closed pipe
        if STATE["debug"]:
            raise
        what = "writing the output" if exc.errno in (errno.ENOSPC, errno.EPIPE, errno.EBADF, errno.EFBIG, errno.EIO) else "I/O"
        error_line(f"{what} failed: {exc.strerror or exc}")
        _silence_stdout()
        return EXIT_RUNTIME
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, exit 3, never exit 1
        if STATE["debug"]:
            raise
        error_line(f"internal error ({type(exc).__name__}); please report it with the command (run with --debug for the traceback)")
        return EXIT_RUNTIME


def _fd_open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def _flush_stdout() -> bool:
    """Flush stdout now, so a full disk or /dev/full is exit 3 with one line (not an ignored error at exit)."""
    from oomplan.cli.common import error_line

    try:
        if sys.stdout is not None:
            sys.stdout.flush()
        return True
    except (OSError, ValueError) as exc:
        error_line(f"writing the output failed: {getattr(exc, 'strerror', None) or exc}")
        _silence_stdout()
        return False


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null so the interpreter's own flush at exit does not fail a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    except OSError:
        pass


def _command() -> str:
    word = _invoked(sys.argv[1:])
    return f"{word} " if word else ""
