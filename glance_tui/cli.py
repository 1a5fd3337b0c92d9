"""``glance-tui``: the TUI by default, plus headless ``check``, ``plan``, ``status``, ``run`` and ``lab``.

Exit codes: 0 success, 1 a gate or step failed, 2 bad config or usage, 130 interrupted.
Expected failures print one line (``error: what — fix: how``), never a traceback; so does
Ctrl-C, even while the heavy modules are still importing (they are imported inside
:func:`main`), and nothing is printed after the answer: every task and connection is ended
before the event loop closes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from glance_tui import __version__
from glance_tui.entry import caused_by_interrupt, interrupted, loop_interrupts
from glance_tui.errors import GlanceTuiError, UsageError, one_line

if TYPE_CHECKING:
    from glance_tui.config import Config



def _add_config(p: argparse.ArgumentParser, *, top: bool = False) -> None:
    from glance_tui.config import DEFAULT_CONFIG

    p.add_argument("-c", "--config", metavar="FILE", default=str(DEFAULT_CONFIG) if top else argparse.SUPPRESS,
                   help=f"the deployment's TOML config (default ./{DEFAULT_CONFIG})")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        raise UsageError(message, where=self.prog, fix=f"see `{self.prog} --help`")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="glance-tui", description="Zero-downtime rolling upgrades of OpenStack Glance, step by step.")
    parser.add_argument("--version", action="version", version=f"glance-tui {__version__}")
    _add_config(parser, top=True)
    parser.add_argument("--dry-run", action="store_true", help="show every command instead of running it")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")

    p = sub.add_parser("check", help="run the preflight gates; exit 0 when all pass, 1 when one fails")
    _add_config(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("plan", help="list every step and the exact commands it would run (changes nothing)")
    _add_config(p)
    p.add_argument("--new-node", metavar="NODE", help="the NEW NODE to plan with (default: policy.new_node or the first node)")
    p.add_argument("--format", choices=("text", "md", "html", "json"), default="text",
                   help="text (default), or the run report's layout for a change request: md, html, json")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")

    p = sub.add_parser("report", help="the record of a run, from its journal alone (no cluster, no secret)")
    p.add_argument("run", nargs="?", metavar="RUN", help="a run id from `glance-tui runs` (or a prefix), or a journal file path")
    p.add_argument("--latest", action="store_true", help="the most recent run (the default without RUN)")
    p.add_argument("--format", choices=("md", "html", "json"), default="md", help="md (default), html (one printable file), json")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")

    p = sub.add_parser("runs", help="list past runs (id, start, outcome, target, config)")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("status", help="one snapshot of the nodes, the load balancer and the database")
    _add_config(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("run", help="run the upgrade: the TUI, or unattended with --yes")
    _add_config(p)
    p.add_argument("--yes", action="store_true", help="unattended: confirm every action; soft gates fail instead of asking")
    p.add_argument("--dry-run", action="store_true", default=argparse.SUPPRESS, help="show the commands instead of running them")
    p.add_argument("--new-node", metavar="NODE", help="the NEW NODE (default: policy.new_node or the first node)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--resume", dest="resume", action="store_true", default=None, help="resume the unfinished run (default with --yes)")
    group.add_argument("--new-run", dest="resume", action="store_false", help="start a new run even if one is unfinished")
    p.add_argument("--quiet", action="store_true", help="do not print command output lines")

    _add_init_parser(sub)

    try:
        from glance_tui.lab.cli import add_lab_parser
    except ImportError:  # pragma: no cover - the lab ships with the package
        pass
    else:
        add_lab_parser(sub)
    return parser


def _add_init_parser(sub: Any) -> None:
    p = sub.add_parser("init", help="write a first config from the HAProxy stats pages and the nodes (asks what it cannot decide)")
    p.add_argument("--stats-url", metavar="URL", action="append", required=True, help="an HAProxy stats page in front of Glance (repeat for each instance)")
    p.add_argument("--runtime-socket", metavar="SPEC", action="append", default=[],
                   help="that instance's runtime API (unix:/path or tcp:HOST:PORT), in --stats-url order: gives the server addresses "
                        "when the stats page hides them (no `stats show-legends`)")
    p.add_argument("--stats-user", metavar="NAME", help="basic-auth user of the stats pages")
    p.add_argument("--stats-user-env", metavar="VAR", help="... or the variable holding it")
    p.add_argument("--stats-password-env", metavar="VAR", help="the variable holding the stats pages' password")
    p.add_argument("--stats-password-file", metavar="FILE", help="... or a file holding it")
    p.add_argument("--ssh-user", metavar="USER", default="root", help="SSH user on the nodes (default root)")
    p.add_argument("--ssh-port", metavar="PORT", type=int, default=22, help="SSH port of the nodes (default 22)")
    p.add_argument("--sudo", action="store_true", help="run every command on the nodes through `sudo -n` (never prompts), as ssh.sudo = true will; "
                                                   "for an --ssh-user that may not read Glance's config or see which process holds its port")
    p.add_argument("--identity-file", metavar="FILE", help="SSH private key (default: ssh-agent and ~/.ssh)")
    p.add_argument("--known-hosts", metavar="FILE", default="~/.ssh/known_hosts", help="the nodes' host keys (always verified)")
    p.add_argument("--db-password-file", metavar="FILE", help="the config's database.password_file (default: password_env = \"GLANCE_DB_PASSWORD\")")
    p.add_argument("--target-release", metavar="RELEASE", help="the release to upgrade to (default: decided from the nodes, else asked)")
    p.add_argument("--timeout", metavar="SECONDS", type=float, default=5.0, help="for each stats page and /versions probe (default 5)")
    p.add_argument("-o", "--output", metavar="FILE", default=None, help="where to write the config (default ./glance-tui.toml; - for standard output)")
    p.add_argument("--force", action="store_true", help="replace an existing FILE")


# ---------------------------------------------------------------- commands


async def _with_context(config: Config, body: Callable[[Any], Awaitable[int]]) -> int:
    """A read-only context (no journal writes) carrying the unfinished run's decisions, if any."""
    from glance_tui.context import Context
    from glance_tui.engine import Engine
    from glance_tui.journal import NullJournal
    from glance_tui.probes import Cluster

    state = Engine.known_state(config, warn=warner())  # a look: a bad journal is named, not fatal
    cluster = Cluster(config)
    try:
        return await body(Context(config, cluster, NullJournal(), state, lambda e: None))
    finally:
        await _end_other_tasks()
        await cluster.close()


def warner() -> Callable[[str], None]:
    """One ``warning:`` line on stderr per distinct problem (a bad journal line read twice is named once)."""
    seen: set[str] = set()

    def warn(text: str) -> None:
        if text not in seen:
            seen.add(text)
            print(f"warning: {one_line(text)}", file=sys.stderr)

    return warn


async def _end_other_tasks() -> None:
    """Cancel and await every task but this one (probes a gate no longer waits for, shared connects).

    Left to ``asyncio.run``'s shutdown, a task that ends with an error there prints "unhandled
    exception during asyncio.run() shutdown" after the answer; awaited here, its outcome is read
    and dropped (the answer already holds it).
    """
    import asyncio

    me = asyncio.current_task()
    for _ in range(3):  # a cancelled task may start a clean-up task of its own
        others = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        if not others:
            return
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)


async def cmd_check(config: Config, as_json: bool) -> int:
    from glance_tui.gates import PREFLIGHT, evaluate_all
    from glance_tui.report import gates_json, gates_text

    async def body(ctx: Any) -> int:
        results = await evaluate_all(PREFLIGHT, ctx)
        print(gates_json(results) if as_json else gates_text(results))
        return 0 if all(r.ok for r in results) else 1

    return await _with_context(config, body)


async def cmd_status(config: Config, as_json: bool) -> int:
    import asyncio

    from glance_tui.inflight import cluster_work
    from glance_tui.report import snapshot_dict, status_text

    async def body(ctx: Any) -> int:
        snap, work = await asyncio.gather(ctx.snapshot(), cluster_work(ctx))
        check = await ctx.newest_db_check()
        if as_json:
            print(json.dumps(snapshot_dict(snap, check, work=work), indent=2))
        else:
            print(status_text(snap, check, {n.name: n.lb_server for n in config.nodes}, work))
        return 0

    return await _with_context(config, body)


def checked_new_node(config: Config, new_node: str | None) -> str | None:
    """``--new-node``, refused in one line unless it names a configured node (before anything is probed or journaled)."""
    if new_node is not None and new_node not in [n.name for n in config.nodes]:
        raise UsageError(f"--new-node {new_node!r} is not a configured node", fix=f"use one of: {', '.join(n.name for n in config.nodes)}")
    return new_node


def _plan_context(config: Config, new_node: str | None) -> Any:
    """A context for previews only: nothing is probed, no secret is read (``plan`` loads without them)."""
    from glance_tui.context import Context, RunState
    from glance_tui.journal import NullJournal
    from glance_tui.probes import Cluster

    chosen = checked_new_node(config, new_node) or config.policy.new_node or config.nodes[0].name
    return Context(config, Cluster(config), NullJournal(), RunState(new_node=chosen), lambda e: None)


def cmd_plan(config: Config, new_node: str | None) -> int:
    from glance_tui.plan import build_plan

    ctx = _plan_context(config, new_node)
    chosen = ctx.state.new_node
    plan = build_plan(ctx)
    how = "--new-node" if new_node else ("policy.new_node" if config.policy.new_node else "the first node; choose with --new-node")
    print(f"Plan: Glance → {config.policy.target_release}, NEW NODE {chosen} ({how}). Nothing is run.\n")
    for step in plan.steps:
        print(f"{step.number:>4}  {step.title}")
        for gate in step.gates:
            print(f"        gate: {gate.title}{' (soft)' if gate.soft else ''}")
        for action in step.actions:
            for gate in action.gates:
                print(f"        gate: {gate.title}")
            mark = "!" if action.changes else " "
            print(f"      {mark} {action.title}" + (f"   [type '{action.confirm_word}' to confirm]" if action.confirm_word else ""))
            for cmd in action.preview(ctx):
                print(f"            {cmd}")
        print()
    print("! = changes the cluster (confirmed before it runs, journaled before and after)")
    return 0


def _emit_text(text: str, output: str | None, inputs: dict[str, Any]) -> int:
    """Print ``text``, or write it to ``output`` (see :mod:`glance_tui.outfile`; never over one of ``inputs``) and say which file."""
    from glance_tui.outfile import write_output
    from glance_tui.record.runs import runs_dir
    from glance_tui.statedir import StateDirProblem

    try:
        journals = runs_dir()
    except StateDirProblem:  # none can be used here: there is no journal to protect (a plan needs no state directory)
        journals = None
    text = text if text.endswith("\n") else text + "\n"
    written = write_output("-" if output is None else output, text, inputs={**inputs, "the journal directory": journals})
    if written is not None:  # a stream or device is written as a redirect would: nothing more to say
        from pathlib import Path

        named = Path(output or "").expanduser()
        print(one_line(f"written: {written}" if written == named else f"written: {written} (through the link {named})"))
    return 0


def cmd_plan_record(config: Config, new_node: str | None, fmt: str, output: str | None) -> int:
    """``plan --format md|html|json``: the report's layout before the run (no probe, no secret)."""
    from glance_tui.plan import build_plan
    from glance_tui.record.planned import planned_record
    from glance_tui.record.render import render

    ctx = _plan_context(config, new_node)
    return _emit_text(render(planned_record(ctx, build_plan(ctx)), fmt), output, {"the config (-c)": config.path})


def cmd_report(run: str | None, latest: bool, fmt: str, output: str | None) -> int:
    from glance_tui.record.model import read_run
    from glance_tui.record.render import render
    from glance_tui.record.runs import find_journal

    if run and latest:
        raise UsageError("give RUN or --latest, not both", where="report", fix="drop one of them")
    warn = warner()
    journal = find_journal(run, warn=warn)
    return _emit_text(render(read_run(journal, warn), fmt), output, {"the run's journal": journal})


def cmd_runs(as_json: bool) -> int:
    from glance_tui.record.runs import list_runs, runs_json, runs_text

    runs = list_runs(warn=warner())
    print(runs_json(runs) if as_json else runs_text(runs))
    return 0


async def cmd_run(config: Config, *, dry_run: bool, new_node: str | None, resume: bool | None, quiet: bool) -> int:
    from glance_tui.engine import Engine
    from glance_tui.operator import Unattended
    from glance_tui.report import EventPrinter

    engine = Engine.open(config, resume=True if resume is None else resume, dry_run=dry_run)
    engine.subscribe(EventPrinter(verbose=not quiet))
    where = "none (a dry run records nothing)" if dry_run else engine.journal.path
    print(one_line(f"journal: {where}" + (" (resumed: re-probing the cluster)" if engine.resumed else "")), flush=True)
    try:
        ok = await engine.run(Unattended(new_node))
    finally:
        await _end_other_tasks()
        await engine.close()
    return 0 if ok else 1


# ---------------------------------------------------------------- entry point


def _run_async(command: Awaitable[int]) -> int:
    import asyncio

    with loop_interrupts():
        return asyncio.run(command)  # type: ignore[arg-type]


def _dispatch(args: argparse.Namespace) -> int:
    from glance_tui.config import load_config

    command = args.command
    if args.dry_run and command not in (None, "run"):  # only a run has commands to show instead of running
        raise UsageError(f"--dry-run applies to the assistant and to run, not to {command}", where="glance-tui",
                         fix="drop --dry-run, or use `glance-tui run --dry-run`")
    if getattr(args, "lab_handler", None):
        with loop_interrupts():  # the lab's own Ctrl-C handling expects Python's
            return args.lab_handler(args)
    if command == "init":
        from glance_tui.init.command import cmd_init

        return _run_async(cmd_init(args))
    if command == "report":
        return cmd_report(args.run, args.latest, args.format, args.output)
    if command == "runs":
        return cmd_runs(args.json)
    if command == "plan":  # a plan needs no secret: a change request is written before anyone has access
        config = load_config(args.config, secrets=False)
        if args.format != "text":
            return cmd_plan_record(config, args.new_node, args.format, args.output)
        if args.output is not None:
            raise UsageError("-o writes a document: it needs --format md, html or json", where="plan", fix="add --format md")
        return cmd_plan(config, args.new_node)
    config = load_config(args.config)
    # The engine's modules (asyncssh, aiomysql: ~0.25 s) load here, not inside the event loop's first step
    import glance_tui.engine  # noqa: F401
    import glance_tui.gates  # noqa: F401
    import glance_tui.inflight  # noqa: F401
    import glance_tui.report  # noqa: F401
    if command == "check":
        return _run_async(cmd_check(config, args.json))
    if command == "status":
        return _run_async(cmd_status(config, args.json))
    if command == "run" and args.yes:
        return _run_async(cmd_run(config, dry_run=args.dry_run, new_node=checked_new_node(config, args.new_node), resume=args.resume, quiet=args.quiet))
    if command == "run" and (args.new_node is not None or args.quiet):  # the TUI asks for the NEW NODE and shows all output
        flag = "--new-node" if args.new_node is not None else "--quiet"
        raise UsageError(f"{flag} applies only to an unattended run", where="run", fix=f"add --yes, or drop {flag} (the assistant asks)")
    from screens.app import run_tui  # the UI is imported only when it is needed

    return run_tui(args.config, dry_run=args.dry_run, resume=getattr(args, "resume", None))


def main(argv: list[str] | None = None) -> int:
    from glance_tui.terminal import GuardedOutput, OutputError, silence_stdout

    stdout = sys.stdout
    sys.stdout = GuardedOutput(stdout)  # a full disk or an ASCII terminal is one line, not an internal error
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        code = _dispatch(args)
        sys.stdout.flush()
        return code
    except OutputError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.exit_code == 1:  # the stream failed: drop what is still buffered for it
            silence_stdout()
        return exc.exit_code
    except GlanceTuiError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return interrupted()
    except BrokenPipeError:
        silence_stdout()
        return 1
    except Exception as exc:  # a bug: keep the operator's screen clean, keep the details (redacted)
        if caused_by_interrupt(exc):
            return interrupted()
        from glance_tui.crash import bug_line

        print(f"error: {bug_line()}", file=sys.stderr)
        return 70
    finally:
        sys.stdout = stdout


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
