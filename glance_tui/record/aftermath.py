"""Where a run ends: outcome, what changed, what is left, and the next safe action.

The summary screen shows this at the end of every run (finished, aborted or failed). What
changed comes from the run's steps and journal; which nodes are out of rotation or stopped
comes from fresh probes — an unknown reading is shown as unknown, never as "fine".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glance_tui.record.model import read_run

if TYPE_CHECKING:  # pragma: no cover
    from glance_tui.config import Config
    from glance_tui.probes import LBFacts, NodeFacts


@dataclass
class RunEnd:
    outcome: str  # finished | aborted | failed | blocked
    detail: str
    changed: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    out_of_rotation: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    next_action: str = ""
    journal: str = ""


def _changed(plan_steps: list[Any], states: dict[str, str], journal: Path | None) -> list[str]:
    lines = [f"step {s.number} done: {s.title}" for s in plan_steps if states.get(s.id) == "done" and s.id != "preflight"]
    if journal is None or not journal.is_file():
        return lines
    rec = read_run(journal)
    if rec.backup:
        lines.append(f"backup {rec.backup.get('path')} (sha256 {str(rec.backup.get('sha256', '?'))[:16]}…)")
    for n in rec.nodes:
        if n.rolled_back:
            lines.append(f"{n.name} rolled back to {n.after or 'the old release'}")
        elif n.after and n.after != n.before and n.before is not None:
            lines.append(f"{n.name}: {n.before} → {n.after}")
    if rec.db_after and rec.db_after != rec.db_before:
        lines.append(f"database revisions now {', '.join(rec.db_after)}")
    overrides = [d for d in rec.decisions if d.reason]
    if overrides:
        lines.append(f"{len(overrides)} decision(s) with a typed reason, journaled")
    return lines


def _cluster(config: "Config", lb: "LBFacts | None", nodes: "dict[str, NodeFacts] | None") -> tuple[list[str], list[str], list[str]]:
    out, stopped, unknown = [], [], []
    for node in config.nodes:
        stats = lb.servers.get(node.lb_server) if lb is not None and not lb.error else None
        if stats is None:
            unknown.append(f"{node.name}: load balancer state unknown")
        elif not stats.in_rotation:
            out.append(f"{node.name} ({stats.state})")
        facts = (nodes or {}).get(node.name)
        if facts is None or facts.running is None:
            unknown.append(f"{node.name}: service state unknown")
        elif facts.running is False:
            stopped.append(f"{node.name}" + (f" ({facts.version})" if facts.version else ""))
    return out, stopped, unknown


def _next_action(end: RunEnd, states: dict[str, str], new_node: str | None, config_path: str) -> str:
    resume = f"resume with `glance-tui -c {config_path}` (it re-probes and continues from what the cluster shows)"
    if end.outcome == "finished":
        return "Nothing is left to run. Keep the backup until the new release has served for a while; file the report."
    if end.unknown:
        return "Some states are unknown: check the load balancer and SSH to the nodes first, then " + resume + "."
    migrated = states.get("migrate") == "done"
    if end.stopped:
        names = ", ".join(s.split(" ")[0] for s in end.stopped)
        new_first = (f" Do not start the NEW NODE ({new_node}) on the new release before step 5 (migrate) is done."
                     if new_node and not migrated and any(s.startswith(new_node) for s in end.stopped) else "")
        return f"Glance is stopped on {names}: {resume}; or, to stop here, roll back and start it, then put it back in rotation.{new_first}"
    if end.out_of_rotation:
        names = ", ".join(s.split(" ")[0] for s in end.out_of_rotation)
        return f"{names} is out of rotation but running: put it back in rotation (ready) if you stop here, or {resume}."
    return f"Every node serves and is in rotation. Fix the cause ({end.detail}), then {resume}."


def run_end(outcome: str, detail: str, *, config: "Config", plan_steps: list[Any], states: dict[str, str], new_node: str | None,
            journal: Path | None, lb: "LBFacts | None", nodes: "dict[str, NodeFacts] | None") -> RunEnd:
    end = RunEnd(outcome, detail, journal=str(journal or ""))
    end.changed = _changed(plan_steps, states, journal)
    end.left = [f"step {s.number}: {s.title}" for s in plan_steps if states.get(s.id) != "done"]
    end.out_of_rotation, end.stopped, end.unknown = _cluster(config, lb, nodes)
    end.next_action = _next_action(end, states, new_node, str(config.path or "glance-tui.toml"))
    return end
