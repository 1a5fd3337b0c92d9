"""Terminals and standard output that are not what the program expects (issue 18, item 8).

Each case runs the real console script in a subprocess: one line on stderr, exit 1 (a stream
that fails) or 2 (a setting or argument to fix), never 70 and never a traceback; the TUI
without a terminal refuses at once; Ctrl-C at any moment of the first 0.3 s is one line.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from glance_tui.errors import MESSAGE_LIMIT, bounded, quoted
from tests.sigint_ready import marking, until_marked, wait_for_mark

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).parent / "glance-tui"
EXAMPLE = ROOT / "config.example.toml"


def run(argv: list[str], tmp_path: Path, *, stdin: int | None = subprocess.DEVNULL, stdout: int | None = subprocess.PIPE,
        timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "PYTHONIOENCODING")}
    environ.update(XDG_STATE_HOME=str(tmp_path / "state"), **env)
    return subprocess.run([str(SCRIPT), *argv], stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, text=True,
                          timeout=timeout, cwd=ROOT, env=environ)


def assert_one_line(done: subprocess.CompletedProcess[str], code: int, fragment: str) -> None:
    assert done.returncode == code, (done.returncode, done.stderr)
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: "), done.stderr
    assert fragment in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr


@pytest.mark.parametrize("argv", [[], ["run"], ["run", "--dry-run"], ["--dry-run"]])
def test_the_tui_without_a_terminal_refuses_at_once(tmp_path: Path, argv: list[str]) -> None:
    """``glance-tui -c F </dev/null >file`` wrote escape codes into the file and never exited. (A
    config that cannot load is named first: its one line is as useful, and `run --yes` needs it too.)"""
    out = tmp_path / "out"
    with out.open("w") as fh:
        done = run([*argv, "-c", str(EXAMPLE)], tmp_path, stdout=fh.fileno(), timeout=30, GLANCE_DB_PASSWORD="terminal-test-pw")
    assert_one_line(done, 2, "the TUI needs a terminal")
    assert "run --yes" in done.stderr
    assert out.read_text() == ""


@pytest.mark.parametrize("argv", [["plan", "-c", str(EXAMPLE)], ["runs"], ["runs", "--json"],
                                  ["plan", "-c", str(EXAMPLE), "--format", "md"], ["plan", "-c", str(EXAMPLE), "--format", "json", "-o", "-"]])
def test_a_full_standard_output_is_one_line_exit_1(tmp_path: Path, argv: list[str]) -> None:
    with open("/dev/full", "w") as full:
        done = run(argv, tmp_path, stdout=full.fileno())
    assert_one_line(done, 1, "cannot write to standard output (No space left on device)")


def test_an_ascii_terminal_is_one_line_exit_2(tmp_path: Path) -> None:
    """A plan shows commands: replacing characters would show something else than what runs, so it refuses."""
    done = run(["plan", "-c", str(EXAMPLE)], tmp_path, PYTHONIOENCODING="ascii")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "encoding (ascii) cannot show" in done.stderr and "PYTHONIOENCODING=utf-8" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("command", ["plan", "check", "status"])
def test_a_5000_character_config_path_is_one_short_line_exit_2(tmp_path: Path, command: str) -> None:
    done = run([command, "-c", str(tmp_path / ("a" * 5000))], tmp_path)
    assert_one_line(done, 2, "config file path is too long")
    assert len(done.stderr) < 600, len(done.stderr)


def test_bounded_messages_keep_the_start_and_end_of_a_long_word() -> None:
    path = "/srv/" + "d" * 5000 + "/glance-tui.toml"
    text = bounded(f"{path}: config file not found")
    assert text.startswith("/srv/ddd") and text.endswith("ddd/glance-tui.toml: config file not found") and "…" in text
    assert len(bounded("word " * 2000)) <= MESSAGE_LIMIT + 40
    assert quoted("a\x1b[2Kb\r\n" + "x" * 500) == repr("a\x1b[2Kb\r\n" + "x" * 192 + "…")


# ---------------------------------------------------------------- Ctrl-C in the first moments


async def _interrupt(argv: list[str], after: float, state: Path) -> tuple[int, str, str]:
    """SIGINT ``after`` s after glance-tui started loading its CLI (see tests/sigint_ready.py)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env["XDG_STATE_HOME"] = str(state)
    env, mark = marking(env, state / "hook")
    proc = await asyncio.create_subprocess_exec(
        str(SCRIPT), *argv, cwd=ROOT, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    await until_marked(mark, lambda: proc.returncode is None)
    await asyncio.sleep(after)
    if proc.returncode is None:
        proc.send_signal(signal.SIGINT)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{argv}: SIGINT after {after:.3f}s was ignored (still running after 60s)") from None
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


async def test_many_early_ctrl_c_are_each_one_line(tmp_path: Path) -> None:
    """40 SIGINTs from the start of glance-tui's CLI import to 0.3 s later: one line or the complete answer, never a traceback, never ignored.

    A signal that lands while the interpreter itself starts, before glance-tui's first line
    runs (``site`` and its .pth files: ~10 ms for an installed wheel on an idle machine, far
    more for an editable install's import finder on a loaded one), is Python's own and no
    program can catch it: the offsets count from the moment the program starts loading its CLI
    (tests/sigint_ready.py; a measured start-up, half as long again, was too short under load).
    """
    rng = random.Random(18)
    gate = asyncio.Semaphore(3)
    argvs = [["plan", "-c", str(EXAMPLE)], ["runs"], ["check", "-c", str(EXAMPLE)]]
    cases = [(argvs[i % len(argvs)], rng.uniform(0.0, 0.3)) for i in range(40)]

    async def one(i: int, argv: list[str], after: float) -> tuple[list[str], float, int, str, str]:
        async with gate:
            return (argv, after, *await _interrupt(argv, after, tmp_path / f"s{i}"))

    results = await asyncio.gather(*(one(i, a, t) for i, (a, t) in enumerate(cases)))
    interrupted = 0
    for argv, after, code, out, err in results:
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, (argv, after, err)
        if code == 130:
            interrupted += 1
            assert err.count("\n") == 1 and err.startswith("interrupted"), (argv, after, err)
        else:  # the answer came first: complete, with its own exit code (or ended by the signal while Python shut down:
            # its status is then -SIGINT or, rarely, 255, as in test_fuzz_cli.test_sigint_prints_one_line)
            assert code in (0, 1, 2, -signal.SIGINT, 255) and (out or err), (argv, after, code, err)
            assert (out + err).endswith("\n"), (argv, after, code, out, err)  # the whole answer, never cut
    assert interrupted >= len(cases) // 2, [r[2] for r in results]


def test_the_interrupted_line_says_what_the_command_leaves() -> None:
    """Ctrl-C's one line: a command that only reads says nothing changed; run and the TUI point at
    the journal and the resume; the lab at its status and reset. Read from argv before argparse."""
    from glance_tui.entry import INTERRUPTED, LAB, command_of, interrupted_line

    assert command_of(["-c", "check", "status", "--json"]) == "status"  # -c's value is not the command
    assert command_of(["--config=x.toml", "--dry-run", "run", "--yes"]) == "run" and command_of(["--version"]) is None
    for argv in (["check"], ["-c", "x.toml", "status"], ["plan", "-o", "p.md"], ["runs"], ["report", "abc"], ["init", "--stats-url", "u"]):
        line = interrupted_line(argv)
        assert line.startswith(f"interrupted: nothing was changed ({argv[-1] if len(argv) == 1 else command_of(argv)}:"), line
    for argv in ([], ["run", "--yes"], ["-c", "x.toml"], ["nonsense"]):
        assert interrupted_line(argv) == INTERRUPTED
    assert interrupted_line(["lab", "rehearse"]) == LAB and "lab reset" in LAB


def test_what_a_node_printed_is_bounded_and_escaped_in_a_tail() -> None:
    """A command's output lands in messages (db check errors, failed steps): no escape sequence, no 80 KB line."""
    from glance_tui.adapters.local import TAIL_LINE_LIMIT, CommandResult

    result = CommandResult("glance-manage db check", 1, "ok\tdone\n" + "y" * 90_000, "\x1b[2Kerror\x07 here", 0.1)
    tail = result.tail()
    assert tail[0] == "ok      done" and len(tail[1]) == TAIL_LINE_LIMIT + 1 and tail[1].endswith("…")
    assert tail[2] == "\\x1b[2Kerror\\x07 here"
    assert all(line.isprintable() for line in tail)


def test_a_ctrl_c_that_surfaced_as_another_error_is_still_an_interrupt() -> None:
    """Python 3.11 wraps what ``__set_name__`` raises (a Ctrl-C while a dataclass is defined) in RuntimeError."""
    from glance_tui.entry import caused_by_interrupt

    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as inner:
            raise RuntimeError("Error calling __set_name__ on 'Field' instance") from inner
    except RuntimeError as wrapped:
        assert caused_by_interrupt(wrapped)
    assert not caused_by_interrupt(RuntimeError("a bug")) and not caused_by_interrupt(None)


def _tui_in_a_pty(tmp_path: Path, after: float) -> tuple[int | None, str]:
    """The TUI on a real pseudo-terminal, SIGINT ``after`` s after it started loading its CLI; (exit code or None if still running after 20 s, output)."""
    import pty
    import select
    import time

    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env.update(XDG_STATE_HOME=str(tmp_path / "state"), GLANCE_DB_PASSWORD="not-a-real-password", TERM="xterm-256color")
    env, mark = marking(env, tmp_path / "hook")
    proc = subprocess.Popen([str(SCRIPT), "-c", str(EXAMPLE)], stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, env=env,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    os.close(slave)
    out = b""
    wait_for_mark(mark, lambda: proc.poll() is None)  # offsets from glance-tui's CLI import, not from the spawn
    time.sleep(after)
    proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        running = proc.poll() is None
        if select.select([master], [], [], 0.2 if running else 0)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal and everything it wrote was read
                break
            out += chunk
            if chunk:
                continue
        if not running:  # ended, and nothing more to read (was: its last line could be left unread)
            break
    try:
        code: int | None = proc.wait(max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        code = None
        proc.kill()
        proc.wait()
    os.close(master)
    return code, out.decode(errors="replace")


@pytest.mark.parametrize("after", [0.4, 1.2, 2.0, 2.8, 4.0])  # from the moment it starts loading its CLI
def test_sigint_to_the_tui_while_it_opens_is_one_line(tmp_path: Path, after: float) -> None:
    """Before the terminal is raw, Ctrl-C is SIGINT: while importing, opening the run, building the
    main screen or polling, it ends the TUI with the one line (exit 130) — never a half-built screen
    reported as a bug, never a traceback, never ignored."""
    code, out = _tui_in_a_pty(tmp_path, after)
    assert code is not None, f"SIGINT after {after}s was ignored:\n{out[-2000:]}"
    assert "Traceback" not in out and "internal error" not in out and "never retrieved" not in out, out[-3000:]
    assert code == 130 and "interrupted: the journal records where the run stands" in out, (code, out[-2000:])
    assert not (tmp_path / "state" / "glance-tui" / "crash.log").exists()
