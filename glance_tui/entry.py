"""Where the program starts (the ``glance-tui`` console script and ``python -m glance_tui``).

Two things must happen before any library is imported, so this module imports nothing heavy:

* library warnings (``CryptographyDeprecationWarning`` from asyncssh's DSA support, a
  ``DeprecationWarning`` from a driver) are not for the operator — they cannot act on them —
  so they never reach the terminal: they go to ``warnings.log`` in the state directory, capped,
  and a write that fails is dropped (stderr carries only the tool's own one-line messages);
* Ctrl-C is one line, never a traceback and never ignored: while a module is importing (the
  CLI's first ~0.1 s, and the lazy imports of each command) the signal ends the process at
  once with that line — nothing is open then, and a KeyboardInterrupt inside importlib is
  lost or wrapped; otherwise it is Python's ``KeyboardInterrupt`` (inside ``asyncio.run``:
  the command's task cancelled), which every command turns into the same line (exit 130);
  after that line another Ctrl-C ends the process without a second one. Only a signal that
  lands while the interpreter itself starts, before this module runs, is Python's own.

Tests import the modules directly and keep Python's own warning handling.
"""

from __future__ import annotations

import os
import signal
import sys
import warnings
from contextlib import contextmanager
from typing import Any, Iterator

LOG_NAME = "warnings.log"
LOG_CAP = 1 << 20  # a warning log is for reading, not for filling the disk

INTERRUPTED = "interrupted: the journal records where the run stands; `glance-tui run` resumes from the cluster's state"
# what a Ctrl-C leaves, by command: these only read (init writes its file at its end, atomically)
READ_ONLY = {"check": "it only reads", "plan": "it only reads", "status": "it only reads", "runs": "it only reads",
             "report": "it only reads (a document is written whole or not at all)", "init": "its config file is written whole at its end or not at all"}
LAB = "interrupted: the lab may be left part-way; `glance-tui lab status` shows it, `glance-tui lab reset` puts it back"


def command_of(argv: list[str]) -> str | None:
    """The subcommand named on the command line (after the global options), read before argparse runs."""
    args = iter(argv)
    for arg in args:
        if arg in ("-c", "--config"):
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return None


def interrupted_line(argv: list[str]) -> str:
    """The one line a Ctrl-C prints: what it leaves depends on the command."""
    command = command_of(argv)
    if command in READ_ONLY:
        return f"interrupted: nothing was changed ({command}: {READ_ONLY[command]})"
    return LAB if command == "lab" else INTERRUPTED


def _log_path() -> str:
    base = os.environ.get("XDG_STATE_HOME") or ""
    if not os.path.isabs(base):  # unset or relative (statedir refuses a relative one in a line; the log goes home)
        base = os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "glance-tui", LOG_NAME)


def _to_log(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001 - warnings' signature
    """``warnings.showwarning`` for the program: append to the log, never to the terminal."""
    try:
        path = _log_path()
        if os.path.exists(path) and os.path.getsize(path) >= LOG_CAP:
            return
        text = warnings.formatwarning(message, category, filename, lineno, line)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, text.encode("utf-8", "replace"))
        finally:
            os.close(fd)
    except (OSError, ValueError):
        pass  # no state directory (yet): the warning is dropped, the command goes on


def quiet_library_warnings() -> None:
    """Route every warning to :data:`LOG_NAME`; ``PYTHONWARNINGS`` still decides which are shown there."""
    if not sys.warnoptions:
        warnings.simplefilter("default")  # each once per place, as Python shows them by default
    # A library's warning (asyncssh's DSA import under cryptography >= 47) is logged even under -W error or
    # PYTHONWARNINGS=error: raised, it ended every command as an internal error (exit 70). The tool's own follow -W.
    warnings.filterwarnings("default", module=r"(?!(glance_tui|screens|tests)(\.|$))")
    warnings.showwarning = _to_log


_said = False  # the interrupted line was printed
_program = False  # main() runs: signal handlers are ours to set (never when a test imports the CLI)


def _say_interrupted() -> None:
    global _said
    if not _said:
        _said = True
        try:
            os.write(2, (interrupted_line(sys.argv[1:]) + "\n").encode("utf-8", "replace"))
        except OSError:
            pass


def _end_now(signum: int, frame: object) -> None:  # noqa: ARG001 - a signal handler's signature
    """SIGINT while nothing is open yet (imports) or after the line: end at once, exit 130."""
    _say_interrupted()
    os._exit(130)


def _importing(frame: Any) -> bool:
    """Python is importing a module: a KeyboardInterrupt there is lost in importlib's callbacks
    ("Exception ignored in _get_module_lock…cb") or wrapped in a RuntimeError."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _on_sigint(signum: int, frame: Any) -> None:
    """The program's SIGINT: while a module imports (nothing is open then), end at once with the
    line; otherwise Python's KeyboardInterrupt, which every command turns into the same line."""
    if _said or _importing(frame):
        _end_now(signum, frame)
    raise KeyboardInterrupt


@contextmanager
def loop_interrupts() -> Iterator[None]:
    """Around ``asyncio.run``: it turns the first Ctrl-C into cancelling the command's task (finally
    blocks run, connections close) only when it finds Python's own handler installed."""
    if not _program:
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def caused_by_interrupt(error: BaseException | None) -> bool:
    """A Ctrl-C that surfaced as another exception: Python 3.11 wraps what ``__set_name__`` raises
    (a Ctrl-C landing while a dataclass is being defined, i.e. while a module imports) in RuntimeError."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def interrupted() -> int:
    """The one line for Ctrl-C and exit code 130; a further Ctrl-C while exiting ends the process quietly."""
    try:
        sys.stdout.flush()
    except Exception:  # noqa: BLE001 - a full or closed stdout must not hide the line
        pass
    if not _program:  # the CLI called in-process (tests): just the line
        print(INTERRUPTED, file=sys.stderr)  # argv is the test runner's, not the command's
        return 130
    signal.signal(signal.SIGINT, _end_now)
    _say_interrupted()
    return 130


def main() -> int:
    global _program
    _program = True
    signal.signal(signal.SIGINT, _on_sigint)  # first: the imports below take ~0.1 s
    try:  # from the handler on: a Ctrl-C while the warnings are quieted is the same one line
        quiet_library_warnings()
        from glance_tui.cli import main as cli_main

        code = cli_main()
    except KeyboardInterrupt:  # raised while a command was already reporting its end
        return interrupted()
    _exit_with_on_interrupt(code)
    return code


def _exit_with_on_interrupt(code: int) -> None:
    """The answer is complete: a Ctrl-C while the interpreter shuts down ends it at once with the answer's code."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a stream that failed already said so
            pass
    signal.signal(signal.SIGINT, lambda signum, frame: os._exit(code))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
