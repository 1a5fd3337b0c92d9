"""The plan as a record, before anything runs: the change request a board approves.

Built from the config and the plan's own previews only (no probe, no secret), so it has the
report's layout with "planned" where the report has results.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from glance_tui.journal import file_sha256, run_origin
from glance_tui.record.model import ActionRecord, NodeRecord, RunRecord, StepRecord

if TYPE_CHECKING:  # pragma: no cover
    from glance_tui.context import Context
    from glance_tui.plan import Plan


def planned_record(ctx: "Context", plan: "Plan") -> RunRecord:
    config = ctx.config
    origin = run_origin(config.path)
    rec = RunRecord(run_id="planned", journal="", planned=True, outcome="planned",
                    detail="nothing has run: each step's gates are checked live before it may change anything",
                    user=origin["user"], sudo_user=origin.get("sudo_user"), host=origin["host"], tool_version=origin["tool_version"],
                    config=str(config.path or ""), config_sha256=file_sha256(config.path), target_release=config.policy.target_release,
                    new_node=plan.new_node, started=time.time())
    for step in plan.steps:
        srec = StepRecord(step.id, step.number, step.title, "planned", why=step.why,
                          gates=[{"gate": g.id, "title": g.title, "soft": g.soft} for g in step.gates])
        for action in step.actions:
            srec.actions.append(ActionRecord(action.id, action.title, action.node, "planned", commands=list(action.preview(ctx)),
                                             gates=[{"gate": g.id, "title": g.title, "soft": g.soft} for g in action.gates],
                                             changes=action.changes, confirm_word=action.confirm_word))
        rec.steps.append(srec)
    rec.nodes = [NodeRecord(n.name) for n in config.nodes]
    return rec
