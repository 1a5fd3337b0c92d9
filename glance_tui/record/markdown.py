"""The record as Markdown: for a change ticket, a wiki, or a terminal (sparklines, no images)."""

from __future__ import annotations

from glance_tui.record import layout as L
from glance_tui.record.charts import sparkline
from glance_tui.record.model import RunRecord


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out + [""]


def _pairs(rows: list[tuple[str, str]]) -> list[str]:
    return _table(["", ""], [[f"**{k}**", v] for k, v in rows])


def _block(lines: list[str], indent: str = "") -> list[str]:
    fence = "````" if any("```" in line for line in lines) else "```"
    return [indent + fence, *(indent + line for line in lines), indent + fence]


def render_markdown(rec: RunRecord) -> str:
    out = [f"# {L.title(rec)}", ""]
    out += _pairs(L.summary_rows(rec))

    out += ["## Nodes", ""]
    rows = L.node_rows(rec)
    for row, node in zip(rows, rec.nodes):
        row[-1] = f"`{sparkline(node.samples)}` ({len([s for s in node.samples if s[0] is not None])} samples)" if node.samples else ("—" if not rec.planned else "drawn in the report")
    out += _table(L.NODE_HEADERS, rows)

    out += ["## Database", ""] + _pairs(L.database_rows(rec))
    out += ["## Backup", ""] + _pairs(L.backup_rows(rec))

    out += ["## Operator decisions", ""]
    decisions = L.decision_rows(rec)
    out += _table(L.DECISION_HEADERS, decisions) if decisions else [L.no_decisions(rec), ""]

    out += ["## Steps", ""]
    for step in rec.steps:
        out += [f"### {L.step_heading(step)}", ""]
        if step.why:
            out += [f"_{step.why}_", ""]
        out += [f"- gate {L.gate_line(g)}" for g in step.gates]
        if step.gates:
            out.append("")
        for i, action in enumerate(step.actions, 1):
            out.append(f"{i}. **{L.action_heading(action)}**")
            out += [f"   - gate {L.gate_line(g)}" for g in action.gates]
            if action.commands:
                out += ["   - commands:"] + _block(action.commands, "     ")
            for run in action.runs:
                out.append(f"   - `{run.command}` {L.run_line(run)}")
                if run.tail:
                    out += _block(run.tail, "     ")
            if action.error:
                out.append(f"   - error: {action.error}")
            if action.tail and not action.runs:
                out += ["   - output tail:"] + _block(action.tail, "     ")
        out.append("")

    if rec.notes:
        out += ["## Notes", ""] + [f"- {n}" for n in rec.notes] + [""]
    out += ["---", "", L.footer(rec), ""]
    return "\n".join(out)
