"""No remote command twice: changing commands are journaled by tag and found again on their node.

Every command that changes something (stop, start, upgrade, expand, migrate, contract,
rollback, the backup's mysqldump) gets a tag — the ``$0`` of its shell on the node (or on this
machine for ``backup.where = "local"``), so ``ps`` shows it — and the tag is journaled in
``command.start`` *before* the command is sent, then in ``command.end``. If the tool is killed,
or the SSH connection drops, the command may go on running (a ``db expand`` or a long dump above
all; a local dump runs in its own session, so it outlives the tool too). Before acting again, :func:`settle` looks on the node for every tag
that has no end (``pgrep -af`` with the bracket trick) and waits until that command has
finished: the action's own probe then sees what it did, so it is never started a second time.
A look that fails is *unknown* and blocks; it is never read as "finished".

Another run's commands are not in this journal (another bastion, user or config copy; the
database lock stops two runs at once, not a command an earlier, dead run left running). So
before a database action :func:`settle_database` reads every node's processes (the
``processes`` template, as the node probe does) for *any* changing glance-tui command (their
tags are ``glance-tui-change-…``) and any ``glance-manage db`` run other than ``check`` and
``version``, and waits until none is left.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import time
from typing import TYPE_CHECKING, Callable

from glance_tui.adapters.ssh import CommandResult, new_tag, tag_pattern
from glance_tui.commands import RemoteCommand
from glance_tui.errors import GlanceTuiError
from glance_tui.events import Notice
from glance_tui.journal import unfinished_commands

if TYPE_CHECKING:  # pragma: no cover
    from glance_tui.context import Context

OnLine = Callable[[str, str], None]


CHANGE_KIND = "change-"
_CHANGE_TAG = re.compile(r"glance-tui-" + CHANGE_KIND + r"[0-9a-f]{16}")
_MANAGE_DB = re.compile(r"glance-manage\S*\s(?:.*\s)?db\s+(?P<verb>[A-Za-z_-]+)")
READ_ONLY_DB = frozenset({"check", "version"})


class CommandStillRunning(GlanceTuiError):
    """An earlier run's command is (or may be) still running on a node: nothing is started beside it."""


def _short(command: str, limit: int = 70) -> str:
    command = " ".join(command.split())
    return command if len(command) <= limit else command[: limit - 1] + "…"


def look_command(node: str, tag: str) -> RemoteCommand:
    """The read-only probe for ``tag`` on ``node``: lists its processes, exit 1 when there are none."""
    return RemoteCommand(node, f"pgrep -af {shlex.quote(tag_pattern(tag))}", "is an earlier command still running?")


async def run_journaled(ctx: "Context", cmd: RemoteCommand, *, on_line: OnLine | None = None, input: str | None = None) -> CommandResult:
    """Run a changing command with its tag journaled before it is sent and after it ends."""
    await settle(ctx, node=cmd.node, wait=False)
    tag = new_tag(CHANGE_KIND)
    shell = ctx.cluster.local if cmd.node == "local" else ctx.cluster.ssh.get(cmd.node)
    ctx.journal.write("command.start", node=cmd.node, tag=tag, command=cmd.command, purpose=cmd.purpose, timeout=cmd.timeout)
    try:
        result = await shell.run(cmd.command, timeout=cmd.timeout, on_line=on_line, input=input, tag=tag)
    except GlanceTuiError as exc:  # the connection dropped: the command may still be running
        ctx.journal.write("command.end", node=cmd.node, tag=tag, lost=True, error=exc.message)
        raise
    ctx.journal.write("command.end", node=cmd.node, tag=tag, exit=result.exit_status, timed_out=result.timed_out, duration=round(result.duration, 2))
    return result


async def _processes(ctx: "Context", rec: dict) -> list[str]:
    """The node's processes still carrying the record's tag ([] when none); raises when unknown."""
    node, tag = rec["node"], rec["tag"]
    what = f"`{_short(rec.get('command', '?'))}` (tag {tag})"
    fix = f"check SSH to {node}; on the node, `pgrep -af {tag}` must list nothing before the run goes on — then retry"
    try:
        result = await ctx.cluster.run(look_command(node, tag))
    except GlanceTuiError as exc:
        raise CommandStillRunning(f"cannot tell whether {what} still runs on {node}: {exc.what}", fix=fix) from None
    if result.exit_status == 1 and not result.stdout.strip():
        return []
    if result.exit_status == 0 and result.stdout.strip():
        return result.stdout.strip().splitlines()
    reason = "timed out" if result.timed_out else f"pgrep exited {result.exit_status}: {' '.join(result.tail(2))}"
    raise CommandStillRunning(f"cannot tell whether {what} still runs on {node} ({reason})", fix=fix)


async def settle(ctx: "Context", *, node: str | None = None, wait: bool = True, poll: float | None = None) -> None:
    """Resolve every journaled command without an end (on ``node``, or on every node).

    Still running: wait for it to finish (``wait``), or refuse with :class:`CommandStillRunning`.
    Gone: journal ``command.settled`` — the action's probe will show what it did.
    """
    interval = poll if poll is not None else max(ctx.config.policy.node_poll_interval, 0.5)
    for rec in unfinished_commands(ctx.journal.records()):
        if node is not None and rec.get("node") != node:
            continue
        where, tag, text = rec["node"], rec["tag"], _short(rec.get("command", "?"))
        started = rec.get("ts")
        processes = await _processes(ctx, rec)
        waited = 0.0
        if processes:
            since = time.strftime("%H:%M:%S", time.localtime(started)) if isinstance(started, (int, float)) else "?"
            if not wait:
                raise CommandStillRunning(f"`{text}` (tag {tag}, started {since}) is still running on {where}",
                                          fix="wait for it to finish, then retry; it is not started a second time")
            ctx.journal.write("command.wait", node=where, tag=tag, command=rec.get("command"), processes=processes[:5])
            ctx.emit(Notice("warning", f"`{text}` (started {since} by an earlier run, tag {tag}) is still running on {where}: "
                                       "waiting for it to finish; it will not be started again"))
            t0 = time.monotonic()
            while processes:
                await asyncio.sleep(interval)
                processes = await _processes(ctx, rec)
            waited = round(time.monotonic() - t0, 1)
        ctx.journal.write("command.settled", node=where, tag=tag, command=rec.get("command"), waited=waited)
        if waited:
            ctx.emit(Notice("info", f"`{text}` has ended on {where} after {waited:g}s; re-probing before acting"))


def database_changers(output: str) -> list[str]:
    """``PID ARGS`` of each process in a ``processes`` answer (parsed by :mod:`glance_tui.node.readings`,
    the one reader of it) that is a changing glance-tui command or a changing ``glance-manage db``
    run; ValueError when the answer is not in that format (unknown, never "none")."""
    from glance_tui.node.readings import parse_processes

    found = []
    for proc in parse_processes(output)[1]:
        manage = _MANAGE_DB.search(proc.args)
        tag = _CHANGE_TAG.search(proc.args)
        if manage and manage.group("verb") not in READ_ONLY_DB:
            found.append(f"pid {proc.pid} `glance-manage … db {manage.group('verb')}`")
        elif tag:
            found.append(f"pid {proc.pid} (tag {tag.group(0)}) `{_short(proc.args, 60)}`")
    return found


async def _changers_on(ctx: "Context", node: str) -> list[str]:
    cmd = ctx.commands(node).processes()
    fix = f"check SSH to {node} and its processes command; a database action waits until no other run's command is running"
    try:
        result = await ctx.cluster.run(cmd)
    except GlanceTuiError as exc:
        raise CommandStillRunning(f"cannot tell whether another run's command runs on {node}: {exc.what}", fix=fix) from None
    if not result.ok:
        raise CommandStillRunning(f"cannot tell whether another run's command runs on {node} (exit {result.exit_status})", fix=fix)
    try:
        return database_changers(result.stdout)
    except ValueError as exc:
        raise CommandStillRunning(f"cannot tell whether another run's command runs on {node}: {exc}", fix=fix) from None


async def settle_database(ctx: "Context", *, wait: bool = True, poll: float | None = None) -> None:
    """Before expand/migrate/contract: wait until no node runs a changing glance-tui command or a
    changing ``glance-manage db`` (whichever run or journal started it); with ``wait=False`` refuse."""
    interval = poll if poll is not None else max(ctx.config.policy.node_poll_interval, 0.5)
    names = [n.name for n in ctx.config.nodes]
    t0 = time.monotonic()
    told = False
    while True:
        found = dict(zip(names, await asyncio.gather(*(_changers_on(ctx, n) for n in names))))
        busy = {n: p for n, p in found.items() if p}
        if not busy:
            if told:
                ctx.journal.write("command.foreign.settled", waited=round(time.monotonic() - t0, 1))
                ctx.emit(Notice("info", "no other run's command runs on any node any more; re-probing before acting"))
            return
        what = "; ".join(f"{n}: {', '.join(p[:3])}" for n, p in sorted(busy.items()))
        if not wait:
            raise CommandStillRunning(f"a command another run started is still running — {what}",
                                      fix="wait for it to finish (or find who runs it), then retry")
        if not told:
            ctx.journal.write("command.foreign", busy={n: p[:5] for n, p in busy.items()})
            ctx.emit(Notice("warning", f"a database change or glance-tui command started elsewhere still runs — {what}: waiting for it to end"))
            told = True
        await asyncio.sleep(interval)
