"""Where the program starts (the ``glance-tui`` console script and ``python -m glance_tui``).

Two things must happen before any library is imported, so this module imports nothing heavy:

* library warnings (``CryptographyDeprecationWarning`` from asyncssh's DSA support, a
  ``DeprecationWarning`` from a driver) are not for the operator — they cannot act on them —
  so they never reach the terminal: they go to ``warnings.log`` in the state directory, capped,
  and a write that fails is dropped (stderr carries only the tool's own one-line messages);
* Ctrl-C while the CLI is still importing is one line, not a traceback.

Tests import the modules directly and keep Python's own warning handling.
"""

from __future__ import annotations

import os
import sys
import warnings

LOG_NAME = "warnings.log"
LOG_CAP = 1 << 20  # a warning log is for reading, not for filling the disk

INTERRUPTED = "interrupted: the journal records where the run stands; `glance-tui run` resumes from the cluster's state"


def _log_path() -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
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
    warnings.showwarning = _to_log


def main() -> int:
    quiet_library_warnings()
    try:
        from glance_tui.cli import main as cli_main
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    return cli_main()


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
