"""When a Ctrl-C test may send its SIGINT: once glance-tui's CLI starts loading, not after a pause.

A SIGINT that lands while the interpreter starts (``site``, .pth files, the console script's import
of ``glance_tui.entry``) is Python's own: no program can catch it, and a loaded machine takes far
longer to get there than an idle one (a measured start-up, times 1.5, was still too short: Python's
own KeyboardInterrupt traceback, 2 runs in 8 under load). So the child leaves a mark when it first
looks for ``glance_tui.cli`` — the import ``entry.main()`` makes right after setting its SIGINT
handler and routing warnings — and the tests' offsets count from that mark. (A ``sitecustomize`` on
the child's PYTHONPATH adds the marking import finder; the program's code is untouched.)

The few statements between ``entry.main()`` setting its handler and that import
(``quiet_library_warnings()``) gave a traceback under load while they sat outside its ``try``;
they are inside it now, pinned by tests/test_entry.py (a KeyboardInterrupt raised there).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

MARK_ENV = "GLANCE_TUI_TEST_SIGINT_MARK"
HOOK = f'''"""Test hook: mark the moment the program starts loading its CLI (tests/sigint_ready.py)."""
import os as _os
import sys as _sys


class _MarkCliImport:
    def find_spec(self, name, path=None, target=None):
        mark = _os.environ.get("{MARK_ENV}")
        if name == "glance_tui.cli" and mark:
            open(mark, "a").close()
        return None  # the real finders import it


_sys.meta_path.insert(0, _MarkCliImport())
'''


def marking(env: dict[str, str], where: Path) -> tuple[dict[str, str], Path]:
    """``env`` for a child that creates the returned mark file once it starts loading the CLI."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "sitecustomize.py").write_text(HOOK)
    mark = where / "cli-import-started"
    path = os.pathsep.join(p for p in (str(where), env.get("PYTHONPATH", "")) if p)
    return {**env, "PYTHONPATH": path, MARK_ENV: str(mark)}, mark


def _waiting(mark: Path, running: Callable[[], bool], timeout: float) -> Callable[[], bool]:
    """True while there is still no mark from a running child; fails after ``timeout``."""
    deadline = time.monotonic() + timeout

    def still() -> bool:
        if mark.exists() or not running():  # a child that ended has nothing left to interrupt
            return False
        assert time.monotonic() < deadline, f"the program did not start loading its CLI within {timeout:g}s"
        return True

    return still


def wait_for_mark(mark: Path, running: Callable[[], bool], timeout: float = 60.0) -> None:
    still = _waiting(mark, running, timeout)
    while still():
        time.sleep(0.005)


async def until_marked(mark: Path, running: Callable[[], bool], timeout: float = 60.0) -> None:
    """:func:`wait_for_mark` without blocking the loop."""
    still = _waiting(mark, running, timeout)
    while still():
        await asyncio.sleep(0.005)
