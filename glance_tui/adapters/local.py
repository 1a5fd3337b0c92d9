"""Commands on the operator's machine (e.g. a local mysqldump), same contract as ``NodeSSH.run``.

Also home of :class:`CommandResult` and the line-streaming helper both shells share.
"""

from __future__ import annotations

import asyncio
import codecs
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from glance_tui.errors import clipped
from glance_tui.secrets import redact

OnLine = Callable[[str, str], None]  # (stream "stdout" | "stderr", line without newline)
KILL_GRACE = 5.0  # seconds between SIGTERM and SIGKILL when a command times out
TAIL_LINE_LIMIT = 500  # characters of one output line kept in a tail (a traceback line fits)


@dataclass
class CommandResult:
    """What a command did. A non-zero exit is a result, not an exception."""

    command: str
    exit_status: int | None  # None when the command was ended before it reported a status
    stdout: str
    stderr: str
    duration: float
    timed_out: bool = False
    tag: str = ""  # the command's tag (``$0`` of its shell, see command_tags); "" when untagged

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 and not self.timed_out

    def tail(self, n: int = 20) -> list[str]:
        """The last ``n`` lines of stdout then stderr, secrets redacted (for journal, messages and screen):
        what a node printed is bounded (``TAIL_LINE_LIMIT`` characters a line) and its control
        characters escaped — an escape sequence in an error message must not reach the terminal."""
        lines = self.stdout.splitlines() + self.stderr.splitlines()
        return [clipped(redact(line).expandtabs(), TAIL_LINE_LIMIT) for line in lines[-n:]] if n > 0 else []


async def pump_lines(reader: Any, stream: str, sink: list[str], on_line: OnLine | None) -> None:
    """Read bytes from ``reader`` until EOF; hand each complete line (redacted) to ``on_line``.

    Reads chunks rather than ``readline`` so that a very long line cannot overflow a buffer.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    while True:
        chunk = await reader.read(65536)
        text = decoder.decode(chunk or b"", final=not chunk)
        sink.append(text)
        pending += text
        *lines, pending = pending.split("\n")
        if not chunk and pending:
            lines.append(pending)
        if on_line:
            for line in lines:
                on_line(stream, redact(line.removesuffix("\r")))
        if not chunk:
            return


def format_seconds(seconds: float) -> str:
    """``12``, ``0.5``: a duration as coreutils ``timeout`` accepts it."""
    return f"{seconds:.3f}".rstrip("0").rstrip(".") or "0"


def shell_argv(command: str, tag: str = "") -> list[str]:
    """``bash -c COMMAND [TAG]``: the tag is ``$0``; the trailing ``exit $?`` keeps bash (and so the
    tag) in the process list while the command runs, where bash would otherwise exec a simple command."""
    return ["bash", "-c", f"{command}\nexit $?", tag] if tag else ["bash", "-c", command]


class LocalShell:
    """Runs ``bash -c COMMAND`` locally in its own process group (killed whole on timeout)."""

    def __init__(self, default_timeout: float = 900.0) -> None:
        self.default_timeout = default_timeout

    async def run(self, command: str, *, timeout: float | None = None, on_line: OnLine | None = None, input: str | None = None,
                  tag: str = "") -> CommandResult:
        """``tag`` becomes the shell's ``$0``, so ``pgrep -af`` finds the command again (see command_tags)."""
        limit = timeout if timeout is not None else self.default_timeout
        start = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *shell_argv(command, tag),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        out: list[str] = []
        err: list[str] = []
        pumps = asyncio.gather(pump_lines(proc.stdout, "stdout", out, on_line), pump_lines(proc.stderr, "stderr", err, on_line))
        timed_out = False
        try:
            await asyncio.wait_for(_feed_and_wait(proc, input), limit)
        except asyncio.TimeoutError:
            timed_out = True
            await _kill_group(proc)
        except BaseException:
            await _kill_group(proc)
            raise
        finally:
            try:  # a daemonised grandchild may hold the pipes open: do not wait for it forever
                await asyncio.wait_for(pumps, KILL_GRACE if timed_out else None)
            except asyncio.TimeoutError:
                pass
        return CommandResult(command, None if timed_out else proc.returncode, "".join(out), "".join(err), time.monotonic() - start, timed_out, tag=tag)


async def _feed_and_wait(proc: asyncio.subprocess.Process, data: str | None) -> None:
    assert proc.stdin is not None
    try:
        if data:
            proc.stdin.write(data.encode())
            await proc.stdin.drain()
        proc.stdin.close()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the command did not read its input; its exit status tells the story
    await proc.wait()


def _killpg(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM the command's process group, then SIGKILL whatever is left of it."""
    _killpg(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), KILL_GRACE)
    except asyncio.TimeoutError:
        pass
    _killpg(proc.pid, signal.SIGKILL)  # group members may outlive the leader
    await proc.wait()
