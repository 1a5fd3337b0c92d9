"""The record's layout, shared by the Markdown and HTML renderings (and by the plan).

Each function returns plain rows of text; the renderers only format them, so both documents
say exactly the same things in the same order.
"""

from __future__ import annotations

import time
from typing import Any

from glance_tui.record.model import ActionRecord, CommandRun, RunRecord, StepRecord

NOT_RECORDED = "not recorded"


def when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts)) if ts is not None else NOT_RECORDED


def clock(ts: float | None) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(ts)) if ts is not None else "?"


def seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(round(value), 60)
    return f"{minutes // 60} h {minutes % 60} min {secs} s" if minutes >= 60 else f"{minutes} min {secs} s"


def size(n: Any) -> str:
    if not isinstance(n, int):
        return NOT_RECORDED
    return f"{n:,} bytes" + (f" ({n / 1_048_576:.1f} MiB)" if n >= 1_048_576 else "")


def title(rec: RunRecord) -> str:
    if rec.planned:
        return f"Change request: rolling upgrade of Glance to {rec.target_release or '?'}"
    return f"Glance rolling upgrade to {rec.target_release or '?'}: run {rec.run_id}"


def outcome(rec: RunRecord) -> str:
    return f"{rec.outcome.upper()}" + (f": {rec.detail}" if rec.detail else "")


def summary_rows(rec: RunRecord) -> list[tuple[str, str]]:
    who = f"{rec.user or NOT_RECORDED} on {rec.host or NOT_RECORDED}" + (f" (sudo from {rec.sudo_user})" if rec.sudo_user else "")
    rows = [
        ("Outcome", outcome(rec)),
        ("Target release", rec.target_release or NOT_RECORDED),
        ("NEW NODE", rec.new_node or ("chosen at step 2" if rec.planned else "not chosen")),
        ("Prepared by" if rec.planned else "Run by", who),
        ("Config", rec.config or NOT_RECORDED),
        ("Config sha256", rec.config_sha256 or NOT_RECORDED),
    ]
    if rec.planned:
        rows.append(("Prepared at", when(rec.started)))
    else:
        rows += [("Started", when(rec.started)), ("Ended", when(rec.ended) + (" (last record)" if rec.outcome == "interrupted" else "")),
                 ("Duration", seconds(rec.duration))]
        if rec.resumed:
            rows.append(("Resumed", ", ".join(when(t) for t in rec.resumed)))
        rows.append(("Journal", rec.journal))
    rows.append(("Tool", f"glance-tui {rec.tool_version or '?'}"))
    return rows


NODE_HEADERS = ["Node", "Version before", "Version after", "Out of rotation", "Drain wait", "In flight while draining"]


def node_rows(rec: RunRecord) -> list[list[str]]:
    rows = []
    for n in rec.nodes:
        if rec.planned:
            rows.append([n.name, "read at preflight", f"target {rec.target_release or '?'}", "planned: drain → ready", "until in flight is 0", ""])
            continue
        out = seconds(n.out_seconds(rec.ended))
        if n.still_out:
            out += f" — STILL OUT of rotation (since {clock(n.out[-1][0])})"
        after = n.after or NOT_RECORDED
        if n.rolled_back:
            after += " (rolled back)"
        waits = ", ".join(seconds(w) for w in n.drain_waits) or "—"
        if n.waited_for:
            waits += " (" + "; ".join(n.waited_for) + ")"
        if n.staged:
            waits += " · staged: " + "; ".join(n.staged)
        rows.append([n.name, n.before or NOT_RECORDED, after, out if n.out else "never taken out", waits, ""])
    return rows


def database_rows(rec: RunRecord) -> list[tuple[str, str]]:
    if rec.planned:
        return [("Revisions before", "read at preflight"), ("Revisions after", "the target's contract revision (db check exits 0)")]
    fmt = lambda heads: ", ".join(heads) if heads else ("none" if heads == [] else NOT_RECORDED)  # noqa: E731
    return [("Revisions before", fmt(rec.db_before)), ("Revisions after", fmt(rec.db_after))]


def backup_rows(rec: RunRecord) -> list[tuple[str, str]]:
    if rec.planned:
        return [("Backup", "mysqldump at step 1, before anything changes; verified (non-empty, has `images`), size and sha256 recorded")]
    b = rec.backup
    if not b:
        return [("Backup", "none recorded")]
    return [("Path", str(b.get("path", NOT_RECORDED))), ("Where", str(b.get("where", NOT_RECORDED))), ("Size", size(b.get("size"))),
            ("sha256", str(b.get("sha256", NOT_RECORDED))), ("Has the images table", "yes" if b.get("has_images_table") else "no")]


DECISION_HEADERS = ["Time", "Decision", "Choice", "Reason (typed)", "Step", "Node", "Detail"]


def decision_rows(rec: RunRecord) -> list[list[str]]:
    return [[clock(d.ts), d.what, d.choice, d.reason or "—", d.step or "—", d.node or "—", d.detail or ""] for d in rec.decisions]


def no_decisions(rec: RunRecord) -> str:
    return ("None yet. Only soft gates (the drain timeout) can be overridden, only with a typed reason, and every decision is journaled."
            if rec.planned else "No operator decision was recorded.")


def step_heading(step: StepRecord) -> str:
    status = "" if step.status == "planned" else f" — {step.status}" + (f" ({seconds(step.duration)})" if step.duration is not None else "")
    return f"{step.number} {step.title}{status}"


def gate_line(g: dict[str, Any]) -> str:
    """One gate result (or, in a plan, the gate that will be checked)."""
    name = g.get("title") or g.get("gate", "?")
    soft = " (soft)" if g.get("soft") else ""
    if "ok" not in g:
        return f"checked: {name}{soft}"
    mark = "PASS" if g.get("ok") else "FAIL"
    text = f"{mark} {name}{soft}"
    if g.get("reason") and not g.get("ok"):
        text += f": {g['reason']}" + (f" (fix: {g['fix']})" if g.get("fix") else "")
    elif g.get("reason"):
        text += f": {g['reason']}"
    return text


def action_heading(a: ActionRecord) -> str:
    where = f" on {a.node}" if a.node and a.node not in a.title else ""
    if a.status == "planned":
        marks = " [changes the cluster; confirmed first, journaled before and after]" if a.changes else ""
        if a.confirm_word:
            marks += f" [type '{a.confirm_word}' to confirm]"
        return f"{a.title}{where}{marks}"
    text = f"{a.title}{where}: {a.status}"
    if a.duration is not None:
        text += f" ({seconds(a.duration)}, {clock(a.started)}–{clock(a.ended)})"
    if a.note:
        text += f" — {a.note}"
    return text


def run_line(run: CommandRun) -> str:
    result = "timed out and was ended" if run.timed_out else f"exit {run.exit if run.exit is not None else '?'}"
    return f"on {run.node}: {result}" + (f" in {seconds(run.duration)}" if run.duration is not None else "")


def footer(rec: RunRecord) -> str:
    if rec.planned:
        return ("Nothing in this document was run. Every step re-checks its gates against the live cluster right before it "
                "changes anything; a failing hard gate stops the run.")
    return f"Built from the journal {rec.journal} alone (no cluster was contacted). Output tails were redacted when journaled."
