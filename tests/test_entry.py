"""Where the program starts: library warnings never reach the operator's terminal.

The tests run the real entry points in subprocesses, with today's dependencies (asyncssh
imports DSA support that cryptography ≥ 47 deprecates): stderr carries only the tool's own
one line, and the warnings are kept in ``warnings.log`` in the state directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).parent / "glance-tui"


def _run(argv: list[str], state: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "GLANCE_DB_PASSWORD")}
    environ.update(XDG_STATE_HOME=str(state), **env)
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT, env=environ)


def test_a_warning_raised_after_start_goes_to_the_log_not_the_terminal(tmp_path: Path) -> None:
    code = ("import warnings; from glance_tui.entry import quiet_library_warnings; quiet_library_warnings(); "
            "warnings.warn('a library grumbles', DeprecationWarning); print('answer')")
    done = _run([sys.executable, "-c", code], tmp_path)
    assert done.returncode == 0
    assert done.stdout == "answer\n"
    assert done.stderr == ""
    log = (tmp_path / "glance-tui" / "warnings.log").read_text()
    assert "DeprecationWarning: a library grumbles" in log


def test_an_unwritable_state_directory_drops_the_warning_quietly(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code = ("import warnings; from glance_tui.entry import quiet_library_warnings; quiet_library_warnings(); "
            "warnings.warn('dropped', UserWarning); print('answer')")
    done = _run([sys.executable, "-c", code], blocker)
    assert (done.returncode, done.stdout, done.stderr) == (0, "answer\n", "")


def _bad_password_config(tmp_path: Path) -> Path:
    path = tmp_path / "c.toml"
    text = (ROOT / "config.example.toml").read_text()
    path.write_text(text)
    return path


def test_the_console_script_and_python_m_print_only_their_own_line(tmp_path: Path) -> None:
    """``check`` imports asyncssh: with today's cryptography that warns about DSA at import."""
    config = _bad_password_config(tmp_path)
    for argv in ([str(SCRIPT), "check", "-c", str(config)], [sys.executable, "-m", "glance_tui", "check", "-c", str(config)]):
        done = _run(argv, tmp_path / "state")  # GLANCE_DB_PASSWORD unset: a config error, exit 2
        lines = done.stderr.splitlines()
        assert done.returncode == 2, done.stderr
        assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
        assert "Warning" not in done.stderr


def test_asyncssh_import_warnings_are_kept_in_the_log(tmp_path: Path) -> None:
    """What the program hides it keeps: whatever asyncssh's import warns lands in warnings.log."""
    probe = _run([sys.executable, "-W", "default", "-c", "import asyncssh"], tmp_path / "raw")
    code = "from glance_tui.entry import quiet_library_warnings; quiet_library_warnings(); import asyncssh"
    done = _run([sys.executable, "-c", code], tmp_path / "state")
    assert done.stderr == ""
    log = tmp_path / "state" / "glance-tui" / "warnings.log"
    if "Warning" in probe.stderr:  # today's cryptography deprecates DSA; an older one is silent
        assert "Warning" in log.read_text()
    else:
        assert not log.exists()


def test_a_ctrl_c_while_the_warnings_are_routed_is_the_one_line(tmp_path: Path) -> None:
    """The SIGINT handler is set first; a Ctrl-C in what follows it (here: while the library
    warnings are routed to the log) is the program's one line and 130, never a traceback."""
    code = ("import sys, glance_tui.entry as entry\n"
            "def interrupted(): raise KeyboardInterrupt\n"
            "entry.quiet_library_warnings = interrupted\n"
            "sys.argv = ['glance-tui', 'status']\n"
            "raise SystemExit(entry.main())\n")
    done = _run([sys.executable, "-c", code], tmp_path)
    assert done.returncode == 130, done.stderr
    assert done.stdout == "" and done.stderr.count("\n") == 1 and done.stderr.startswith("interrupted:"), done.stderr
    assert "Traceback" not in done.stderr
