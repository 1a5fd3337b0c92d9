"""What the program needs from its standard streams, and one line when they cannot give it.

* The TUI needs a terminal on standard input and output: without one (``</dev/null >file``,
  cron, a pipe) Textual would write escape codes into the file and wait forever for keys, so
  it is refused at once and ``run --yes`` is named.
* Standard output that cannot take the answer — a full disk (``> /dev/full``), an I/O error,
  an encoding that cannot show the text (``PYTHONIOENCODING=ascii``) — is one line on
  stderr, not an internal error: exit 1 when the stream fails (as for a closed pipe), exit 2
  for the encoding (the operator's setting to fix). Replacing characters instead would show a
  command that differs from the one that runs.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

from glance_tui.errors import GlanceTuiError, UsageError


class OutputError(GlanceTuiError):
    """Standard output refused the answer (exit 1; 2 when the fix is the operator's encoding setting)."""


def require_terminal(stdin: TextIO | None = None, stdout: TextIO | None = None) -> None:
    """Refuse the TUI unless standard input and output are both terminals."""
    streams = {"input": stdin or sys.stdin, "output": stdout or sys.stdout}
    missing = [name for name, stream in streams.items() if stream is None or not _isatty(stream)]
    if missing:
        raise UsageError(f"the TUI needs a terminal, and standard {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not one",
                         where="glance-tui", fix="run it in a terminal, or run unattended with `glance-tui run --yes -c FILE`")


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _failed(exc: Exception, stream: TextIO) -> OutputError:
    if isinstance(exc, UnicodeEncodeError):
        error = OutputError(f"standard output's encoding ({getattr(stream, 'encoding', '?')}) cannot show {exc.object[exc.start:exc.end]!a}",
                            fix="use a UTF-8 locale (LANG=C.UTF-8) or set PYTHONIOENCODING=utf-8")
        error.exit_code = 2
        return error
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc.__class__.__name__
    return OutputError(f"cannot write to standard output ({reason})", fix="send the output somewhere with room, e.g. a file on another disk")


class GuardedOutput:
    """``sys.stdout`` whose write/flush failures become :class:`OutputError` (a closed pipe stays BrokenPipeError)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            raise
        except (OSError, UnicodeEncodeError) as exc:
            raise _failed(exc, self.stream) from None

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _failed(exc, self.stream) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def silence_stdout() -> None:
    """Point fd 1 at /dev/null, so what stays buffered for a broken or full stream is dropped at exit, not reported."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)
    except (OSError, ValueError, AttributeError):
        pass
