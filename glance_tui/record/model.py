"""A run's journal replayed into one document: who, what, when, every decision, every command.

The journal is the only input: the record is what was *written down* during the run. Values
the journal does not hold are ``None`` and shown as "not recorded", never guessed.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from glance_tui.errors import one_line
from glance_tui.journal_read import JournalProblem, scan, strip_line_numbers

# Titles for the engine's action ids (action.start records carry only the id and the node).
ACTION_TITLES = {
    "backup": "Back up the Glance database (mysqldump) and verify it",
    "drain": "Drain {node} (take it out of rotation)",
    "wait-drained": "Wait until {node} has no request in flight",
    "stop": "Stop Glance on {node}",
    "upgrade": "Upgrade {node} to the target release",
    "start": "Start Glance on {node}",
    "health": "Health-check {node}'s own API",
    "ready": "Put {node} back into rotation",
    "wait-up": "Wait until the load balancer reports {node} UP",
    "expand": "glance-manage db expand",
    "migrate": "glance-manage db migrate",
    "contract": "glance-manage db contract",
    "restore-binlog": "Restore log_bin_trust_function_creators to 0",
}

OUT_ACTIONS = ("drain", "maint")  # journaled ``lb`` actions that take a node out of rotation


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f]")


def clean_lines(lines: Any) -> list[str]:
    """Output tails as journaled, without terminal escapes and control characters (a report is a document)."""
    return [_ANSI.sub("", str(line)) for line in lines or []]


def action_title(action_id: str, node: str | None) -> str:
    title = ACTION_TITLES.get(action_id)
    return title.format(node=node or "the NEW NODE") if title else action_id  # an unknown id is shown as written, never formatted


@dataclass
class CommandRun:
    node: str
    command: str
    exit: int | None
    timed_out: bool = False
    duration: float | None = None
    tail: list[str] = field(default_factory=list)


class _Timed:
    """``duration`` from ``started``/``ended`` (either may be missing after a crash)."""

    started: float | None
    ended: float | None

    @property
    def duration(self) -> float | None:
        return None if self.started is None or self.ended is None else self.ended - self.started


@dataclass
class ActionRecord(_Timed):
    id: str
    title: str
    node: str | None
    status: str  # done | failed | aborted | skipped | interrupted | planned
    started: float | None = None
    ended: float | None = None
    commands: list[str] = field(default_factory=list)  # as shown to (and confirmed by) the operator
    runs: list[CommandRun] = field(default_factory=list)  # each command executed, with its exit code
    gates: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    tail: list[str] = field(default_factory=list)
    changes: bool | None = None
    confirm_word: str | None = None
    note: str = ""


@dataclass
class StepRecord(_Timed):
    id: str
    number: str
    title: str
    status: str  # done | failed | aborted | blocked | verify | interrupted | planned
    started: float | None = None
    ended: float | None = None
    gates: list[dict[str, Any]] = field(default_factory=list)
    actions: list[ActionRecord] = field(default_factory=list)
    why: str = ""


@dataclass
class Decision:
    ts: float | None
    what: str  # new-node | override | drain-timeout | failure | confirm | remedy | rollback | run
    choice: str
    reason: str = ""
    step: str | None = None
    node: str | None = None
    detail: str = ""


@dataclass
class NodeRecord:
    name: str
    before: str | None = None
    after: str | None = None
    out: list[list[float | None]] = field(default_factory=list)  # [taken out, put back (None: still out)]
    drain_waits: list[float] = field(default_factory=list)
    samples: list[list[float | None]] = field(default_factory=list)  # [seconds into the wait, in flight (None: unknown)]
    rolled_back: bool = False
    waited_for: list[str] = field(default_factory=list)  # what held each drain wait, and how long (drain.work records)
    staged: list[str] = field(default_factory=list)  # images staged on it at its stop, and whether the upgrade kept them

    def out_seconds(self, until: float | None) -> float | None:
        total, known = 0.0, False
        for start, end in self.out:
            stop = end if end is not None else until
            if start is not None and stop is not None:
                total, known = total + max(0.0, stop - start), True
        return total if known else None

    @property
    def still_out(self) -> bool:
        return bool(self.out) and self.out[-1][1] is None


@dataclass
class RunRecord(_Timed):
    run_id: str
    journal: str
    planned: bool = False
    user: str | None = None
    sudo_user: str | None = None
    host: str | None = None
    tool_version: str | None = None
    config: str | None = None
    config_sha256: str | None = None
    target_release: str | None = None
    new_node: str | None = None
    started: float | None = None
    ended: float | None = None
    outcome: str = "interrupted"  # finished | failed | aborted | blocked | interrupted | planned
    detail: str = ""
    resumed: list[float] = field(default_factory=list)
    backup: dict[str, Any] | None = None
    db_before: list[str] | None = None
    db_after: list[str] | None = None
    steps: list[StepRecord] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    nodes: list[NodeRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def node(self, name: str) -> NodeRecord:
        for n in self.nodes:
            if n.name == name:
                return n
        rec = NodeRecord(name)
        self.nodes.append(rec)
        return rec

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["duration"] = self.duration
        for node, out in zip(data["nodes"], self.nodes):
            node["out_of_rotation_seconds"] = out.out_seconds(self.ended)
            node["still_out_of_rotation"] = out.still_out
        return data


# ---------------------------------------------------------------- replaying the journal


class _Replay:
    """Walks the records in order, keeping the current step and action."""

    def __init__(self, rec: RunRecord) -> None:
        self.rec = rec
        self.step: StepRecord | None = None
        self.action: ActionRecord | None = None
        self.pending_gates: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
        self.last_pause: dict[str, Any] | None = None
        self.samples_base: dict[str, float] = {}

    def feed(self, r: dict[str, Any]) -> None:
        handler = getattr(self, "on_" + str(r.get("event", "")).replace(".", "_"), None)
        if handler is not None:
            handler(r)

    # run
    def on_run_start(self, r: dict[str, Any]) -> None:
        rec = self.rec
        rec.started = r.get("ts")
        rec.run_id = str(r.get("run") or rec.run_id)  # the file may have been copied and renamed
        for key in ("user", "sudo_user", "host", "tool_version", "config", "config_sha256", "target_release"):
            if r.get(key) is not None:  # from the environment (SUDO_USER, a path): control characters shown escaped, never sent
                setattr(rec, key, one_line(str(r[key])))

    def on_run_resume(self, r: dict[str, Any]) -> None:
        self.rec.resumed.append(r.get("ts"))

    def on_run_pause(self, r: dict[str, Any]) -> None:
        self.last_pause = r

    def on_run_end(self, r: dict[str, Any]) -> None:
        self.rec.outcome = "finished" if r.get("ok") else "failed"
        self.rec.detail = str(r.get("detail") or "")
        self.rec.ended = r.get("ts")

    def on_state(self, r: dict[str, Any]) -> None:
        if r.get("new_node"):
            self.rec.new_node = r["new_node"]
        if r.get("backup"):
            self.rec.backup = dict(r["backup"])

    def on_versions(self, r: dict[str, Any]) -> None:
        nodes = r.get("nodes") or {}
        first = r.get("when") == "before" and self.rec.db_before is None and not any(n.before for n in self.rec.nodes)
        for name, version in nodes.items():
            node = self.rec.node(name)
            if first or node.before is None:
                node.before = version
            node.after = version
        heads = r.get("heads")
        if heads is not None:
            if first or self.rec.db_before is None:
                self.rec.db_before = list(heads)
            self.rec.db_after = list(heads)

    # steps and actions
    def on_step_start(self, r: dict[str, Any]) -> None:
        self.step = StepRecord(r.get("step", "?"), step_number(r.get("step", "?")), r.get("title", r.get("step", "?")), "interrupted", started=r.get("ts"))
        self.rec.steps.append(self.step)
        self.action = None

    def on_step_end(self, r: dict[str, Any]) -> None:
        if self.step is not None and self.step.id == r.get("step"):
            self.step.status = "done" if r.get("ok") else str(r.get("outcome") or "failed")
            self.step.ended = r.get("ts")
        self.action = None

    def on_gates(self, r: dict[str, Any]) -> None:
        results = list(r.get("results") or [])
        if r.get("action") is None:
            if self.step is not None and self.step.id == r.get("step"):
                self.step.gates = results
        else:
            self.pending_gates[(r.get("step"), r.get("action"))] = results

    def _new_action(self, r: dict[str, Any], status: str) -> ActionRecord:
        step_id, action_id = r.get("step"), r.get("action", "?")
        node = r.get("node")
        if node is None and self.step is not None and self.step.id.startswith("node:"):
            node = self.step.id[5:]
        action = ActionRecord(action_id, action_title(action_id, node), node, status, started=r.get("ts"),
                              commands=list(r.get("commands") or []), gates=self.pending_gates.pop((step_id, action_id), []))
        if self.step is None or self.step.id != step_id:  # a record outside step.start/end (should not happen)
            self.step = StepRecord(step_id or "?", step_number(step_id or "?"), step_id or "?", "interrupted", started=r.get("ts"))
            self.rec.steps.append(self.step)
        self.step.actions.append(action)
        return action

    def on_action_start(self, r: dict[str, Any]) -> None:
        self.action = self._new_action(r, "interrupted")

    def on_action_skip(self, r: dict[str, Any]) -> None:
        skipped = self._new_action(r, "skipped")
        skipped.ended, skipped.note = r.get("ts"), str(r.get("why") or "")

    def on_action_end(self, r: dict[str, Any]) -> None:
        action = self.action
        if action is None or action.id != r.get("action"):
            return
        action.ended = r.get("ts")
        action.status = "done" if r.get("ok") else ("aborted" if r.get("aborted") else "failed")
        action.error = str(r.get("error") or "")
        action.tail = clean_lines(r.get("tail"))
        self.action = None

    def on_command(self, r: dict[str, Any]) -> None:
        run = CommandRun(str(r.get("node", "")), str(r.get("command", "")), r.get("exit"), bool(r.get("timed_out")), r.get("duration"), clean_lines(r.get("tail")))
        if self.action is not None:
            self.action.runs.append(run)
        elif self.rec.steps:
            self.rec.notes.append(f"command outside an action on {run.node}: {run.command} (exit {run.exit})")

    # what happened to the cluster
    def on_lb(self, r: dict[str, Any]) -> None:
        node = self.rec.node(str(r.get("node")))
        if r.get("action") in OUT_ACTIONS:
            if not node.still_out:
                node.out.append([r.get("ts"), None])
        elif r.get("action") == "ready" and node.still_out:
            node.out[-1][1] = r.get("ts")

    def on_drain_sample(self, r: dict[str, Any]) -> None:
        name = str(r.get("node"))
        node = self.rec.node(name)
        t = r.get("t")
        if t is not None and node.samples and t < (node.samples[-1][0] or 0):
            node.samples.append([None, None])  # a new wait: break the line
        node.samples.append([t, r.get("in_flight")])

    def on_drained(self, r: dict[str, Any]) -> None:
        node = self.rec.node(str(r.get("node")))
        if r.get("waited") is not None:
            node.drain_waits.append(float(r["waited"]))
        for t, n in r.get("samples") or []:  # samples carried in the drained record, if any
            node.samples.append([t, n])

    def on_drain_work(self, r: dict[str, Any]) -> None:
        node = self.rec.node(str(r.get("node")))
        held = {k: v for k, v in (r.get("held_by") or {}).items() if v}
        line = ", ".join(f"{k} {v:.0f}s" for k, v in held.items()) or "nothing but the quiet period"
        imports = [f"{i.get('image') or i.get('task')} ({i.get('method')})" for i in r.get("imports") or [] if isinstance(i, dict)]
        peers = list(r.get("connections") or [])
        node.waited_for.append(line + (f"; imports: {', '.join(imports)}" if imports else "") + (f"; connections from {', '.join(peers)}" if peers else ""))

    def on_staged(self, r: dict[str, Any]) -> None:
        images = [str(i.get("image")) for i in r.get("imports") or [] if isinstance(i, dict)]
        if images:
            self.rec.node(str(r.get("node"))).staged.append(f"{len(images)} staged in {r.get('staging_dir')}: {', '.join(images)}")

    def on_staged_kept(self, r: dict[str, Any]) -> None:
        if r.get("files"):
            self.rec.node(str(r.get("node"))).staged.append(f"kept through the upgrade: {', '.join(r['files'])}")

    def on_staged_lost(self, r: dict[str, Any]) -> None:
        self.rec.node(str(r.get("node"))).staged.append(f"LOST by the upgrade: {', '.join(r.get('files') or [])}")

    def on_upgraded(self, r: dict[str, Any]) -> None:
        self.rec.node(str(r.get("node"))).after = r.get("version")

    def on_db(self, r: dict[str, Any]) -> None:
        if r.get("heads") is not None:
            self.rec.db_after = list(r["heads"])

    # decisions
    def on_decision(self, r: dict[str, Any]) -> None:
        what = r.get("what") or r.get("gate") or "decision"
        choice = str(r.get("choice", ""))
        if what == "blocked" and choice == "override":
            what = "override"
        detail = ""
        if r.get("gate") == "drain-timeout":
            what = "drain-timeout"
            detail = f"{r.get('in_flight')} in flight after {r.get('waited')}s"
            if r.get("node") and r.get("waited") is not None and choice != "wait":
                self.rec.node(str(r["node"])).drain_waits.append(float(r["waited"]))
        elif r.get("action"):
            detail = f"action {r['action']}"
        self.rec.decisions.append(Decision(r.get("ts"), str(what), choice, str(r.get("reason") or ""), r.get("step"), r.get("node"), detail))

    def on_remedy_start(self, r: dict[str, Any]) -> None:
        self.rec.decisions.append(Decision(r.get("ts"), "remedy", "applied", "", self.step.id if self.step else None, None, f"{r.get('gate')}: {r.get('command')}"))

    def on_db_variable(self, r: dict[str, Any]) -> None:
        self.rec.notes.append(f"{r.get('name')}: {r.get('old')} → {r.get('new')} ({r.get('why', '')})")

    def on_rollback_start(self, r: dict[str, Any]) -> None:
        self.rec.decisions.append(Decision(r.get("ts"), "rollback", "started", "", self.step.id if self.step else None, r.get("node"), str(r.get("command", ""))))

    def on_rollback_end(self, r: dict[str, Any]) -> None:
        node = self.rec.node(str(r.get("node")))
        node.rolled_back = bool(r.get("ok"))
        self.rec.decisions.append(Decision(r.get("ts"), "rollback", "succeeded" if r.get("ok") else "failed", "", None, r.get("node"), str(r.get("error") or "")))

    # the end
    def finish(self, last_ts: float | None) -> None:
        rec = self.rec
        if rec.ended is None:
            rec.ended = last_ts
            if self.last_pause is not None:
                outcome = str(self.last_pause.get("outcome") or "aborted")
                rec.outcome = outcome if outcome in ("failed", "aborted", "blocked") else "aborted"
                rec.detail = f"stopped at step {step_number(str(self.last_pause.get('step')))}: {outcome}; the run can be resumed"
            else:
                last_end = next((s for s in reversed(rec.steps) if s.ended is not None), None)
                if last_end is not None and last_end.status not in ("done",):
                    rec.outcome = last_end.status if last_end.status in ("failed", "aborted", "blocked") else "failed"
                    rec.detail = f"stopped at step {last_end.number} ({last_end.title}): {last_end.status}; the run can be resumed"
                else:
                    rec.outcome = "interrupted"
                    rec.detail = "no end was recorded (the process stopped or is still running); resume re-probes the cluster"


def step_number(step_id: str) -> str:
    return {"preflight": "0", "backup": "1", "new-node": "2", "upgrade-new": "3", "expand": "4", "migrate": "5",
            "start-new": "6", "contract": "8"}.get(step_id, "7" if step_id.startswith("node:") else "?")


def read_run(path: Path, warn: Callable[[str], None] | None = None) -> RunRecord:
    """Replay the journal at ``path`` into a :class:`RunRecord`.

    A file that is not a glance-tui journal (unreadable, not a regular file, no ``run.start``
    first) raises :class:`JournalProblem`: a record is never made up from it. A bad line is
    skipped, named through ``warn`` and in the record's notes; a torn line is noted."""
    found = scan(path)
    if why := found.not_a_journal:
        raise JournalProblem(f"{path} is not a glance-tui journal: {why}", where="report",
                             fix="pass a run id from `glance-tui runs` or a journal file that glance-tui wrote")
    rec = RunRecord(run_id=path.stem, journal=str(path))
    replay = _Replay(rec)
    last_ts = None
    for r in strip_line_numbers(found.records):
        replay.feed(r)
        last_ts = r.get("ts", last_ts)
    replay.finish(last_ts)
    for bad in found.bad:
        rec.notes.append(f"journal line {bad.line} skipped: {bad.what}")
        if warn is not None:
            warn(f"{bad} (line skipped)")
    rec.notes += [f"journal line {n} was torn by a crash mid-write (dropped)" for n in found.torn]
    _note_unrecorded_steps(rec)
    _number_node_steps(rec)
    return rec


GUIDE_STEPS = ("preflight", "backup", "new-node", "upgrade-new", "expand", "migrate", "start-new", "contract")


def _note_unrecorded_steps(rec: RunRecord) -> None:
    """A step the engine found already done (by probing) is skipped without a record: say so."""
    seen = {s.id for s in rec.steps}
    last = max((GUIDE_STEPS.index(i) for i in seen if i in GUIDE_STEPS), default=0)  # no step recorded: none skipped
    for step_id in GUIDE_STEPS[:last]:
        if step_id not in seen:
            rec.notes.append(f"step {step_number(step_id)} ({step_id}) has no record: the cluster already showed it done, so this run did not run it")


def _number_node_steps(rec: RunRecord) -> None:
    """Step 7's rows are numbered 7.1, 7.2 … in the order the nodes were first worked on."""
    order: list[str] = []
    for s in rec.steps:
        if s.id.startswith("node:") and s.id not in order:
            order.append(s.id)
    for s in rec.steps:
        if s.id in order:
            s.number = f"7.{order.index(s.id) + 1}"
