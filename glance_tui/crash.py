"""A bug's traceback goes to ``crash.log``, redacted; the operator's screen gets one line.

Used by the CLI (any unexpected exception) and by the TUI (Textual would otherwise print a
traceback with local variables, a password passed to a driver among them).
"""

from __future__ import annotations

import traceback

from glance_tui.secrets import redact

BUG_LINE = "internal error in glance-tui (a bug) — details in {where}; the journal keeps the run resumable"


def write_crash_log(error: BaseException | None = None) -> str:
    """Append ``error``'s traceback (default: the one being handled), redacted; return where it went."""
    from glance_tui.errors import GlanceTuiError
    from glance_tui.statedir import make_dir, state_home, unusable

    text = "".join(traceback.format_exception(error)) if error is not None else traceback.format_exc()
    crash = None
    try:
        crash = make_dir(state_home()) / "crash.log"
        with open(crash, "a", encoding="utf-8") as fh:
            fh.write(redact(text) + "\n")
        return str(crash)
    except GlanceTuiError as exc:  # the state directory cannot be used: say which and why
        return f"no file ({exc.what}; rerun with XDG_STATE_HOME set to a writable directory to keep them)"
    except OSError as exc:
        return f"no file ({unusable(exc, crash, 'write').what})" if crash else f"no file ({exc.strerror or exc})"


def bug_line(error: BaseException | None = None) -> str:
    """Record the crash and return the one line to show."""
    return BUG_LINE.format(where=write_crash_log(error))
