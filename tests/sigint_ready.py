"""When a Ctrl-C test may send its SIGINT: once glance-tui has set its own handler, not after a pause.

A SIGINT that lands while the interpreter starts (``site``, .pth files, the console script's import
of ``glance_tui.entry``) is Python's own: no program can catch it, and a loaded machine takes far
longer to get there than an idle one (a measured start-up, times 1.5, was still too short in CI).
So the child leaves a mark when the program first sets a SIGINT handler of its own (a
``sitecustomize`` on its PYTHONPATH wraps ``signal.signal``; the program's code is untouched), and
the tests' offsets count from that mark.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

MARK_ENV = "GLANCE_TUI_TEST_SIGINT_MARK"
HOOK = f'''"""Test hook: mark the moment the program sets its own SIGINT handler (tests/sigint_ready.py)."""
import os as _os
import signal as _signal

_mark, _set = _os.environ.get("{MARK_ENV}"), _signal.signal


def _marking_signal(signum, handler):
    previous = _set(signum, handler)
    if _mark and signum == _signal.SIGINT and callable(handler) and handler is not _signal.default_int_handler:
        open(_mark, "a").close()
    return previous


_signal.signal = _marking_signal
'''


def marking(env: dict[str, str], where: Path) -> tuple[dict[str, str], Path]:
    """``env`` for a child that creates the returned mark file once its SIGINT handler is set."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "sitecustomize.py").write_text(HOOK)
    mark = where / "sigint-handler-set"
    path = os.pathsep.join(p for p in (str(where), env.get("PYTHONPATH", "")) if p)
    return {**env, "PYTHONPATH": path, MARK_ENV: str(mark)}, mark


def wait_for_mark(mark: Path, running: Callable[[], bool], timeout: float = 60.0) -> None:
    """Until the child set its handler (or ended: then there is nothing to interrupt)."""
    deadline = time.monotonic() + timeout
    while not mark.exists() and running():
        assert time.monotonic() < deadline, f"the program set no SIGINT handler within {timeout:g}s"
        time.sleep(0.005)


async def until_marked(mark: Path, running: Callable[[], bool], timeout: float = 60.0) -> None:
    """:func:`wait_for_mark` without blocking the loop."""
    deadline = time.monotonic() + timeout
    while not mark.exists() and running():
        assert time.monotonic() < deadline, f"the program set no SIGINT handler within {timeout:g}s"
        await asyncio.sleep(0.005)
