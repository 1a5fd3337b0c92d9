"""The record as one self-contained HTML file (inline CSS and SVG, no script, no external asset)
that prints well: what a change board files."""

from __future__ import annotations

from html import escape

from glance_tui.record import layout as L
from glance_tui.record.charts import sparkline, svg_chart
from glance_tui.record.model import RunRecord

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #111; margin: 2rem auto; max-width: 64rem; padding: 0 1rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; border-bottom: 1px solid #999; margin-top: 2rem; } h3 { font-size: 1rem; margin-bottom: .3rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; } th, td { border: 1px solid #bbb; padding: .2rem .5rem; text-align: left; vertical-align: top; }
th { background: #eee; } td.k { font-weight: 600; white-space: nowrap; }
pre { background: #f5f5f5; border: 1px solid #ddd; padding: .4rem .6rem; white-space: pre-wrap; word-break: break-all; font-size: 12px; margin: .2rem 0 .5rem; }
code { font-size: 12px; } .why { font-style: italic; color: #444; }
.pass { color: #075e07; } .fail { color: #a00; font-weight: 600; } .outcome { font-weight: 700; }
.outcome-finished { color: #075e07; } .outcome-failed, .outcome-aborted, .outcome-blocked, .outcome-interrupted { color: #a00; }
.step { border-left: 3px solid #999; padding-left: .8rem; margin: 1rem 0; break-inside: avoid; page-break-inside: avoid; }
.step-done { border-color: #2a7a2a; } .step-failed, .step-aborted, .step-blocked, .step-verify, .step-interrupted { border-color: #a00; }
ol.actions > li { margin-bottom: .4rem; }
figure { margin: 0; } .chart { display: block; margin: .3rem 0 1rem; max-width: 100%; height: auto; } .chart .series { fill: none; stroke: #1b5fa8; stroke-width: 2; }
.chart .axis { stroke: #555; stroke-width: 1; } .chart text { font: 10px sans-serif; fill: #333; } .chart .unknown { fill: #a00; }
.still-out { color: #a00; font-weight: 700; } footer { margin-top: 2rem; color: #555; font-size: 12px; }
@media print {
  body { margin: 0; max-width: none; font-size: 11pt; } a { color: inherit; text-decoration: none; }
  h2 { break-after: avoid; page-break-after: avoid; } table, .chart, pre { break-inside: avoid; page-break-inside: avoid; }
  th { background: none; } pre { background: none; border-color: #999; }
  @page { margin: 1.5cm; }
}
"""


def _e(text: object) -> str:
    return escape(str(text))


def _pairs(rows: list[tuple[str, str]]) -> str:
    return "<table>" + "".join(f'<tr><td class="k">{_e(k)}</td><td>{_e(v)}</td></tr>' for k, v in rows) + "</table>"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _gate(g: dict) -> str:
    cls = "" if "ok" not in g else (' class="pass"' if g.get("ok") else ' class="fail"')
    return f"<li{cls}>gate {_e(L.gate_line(g))}</li>"


def _pre(lines: list[str]) -> str:
    return "<pre>" + _e("\n".join(lines)) + "</pre>"


def render_html(rec: RunRecord) -> str:
    parts = [f"<h1>{_e(L.title(rec))}</h1>",
             f'<p class="outcome outcome-{_e(rec.outcome)}">{_e(L.outcome(rec))}</p>', _pairs(L.summary_rows(rec))]

    rows = L.node_rows(rec)
    for row, node in zip(rows, rec.nodes):
        row[-1] = sparkline(node.samples) if node.samples else ("drawn in the report" if rec.planned else "—")
    parts += ["<h2>Nodes</h2>", _table(L.NODE_HEADERS, rows)]
    charts = [f"<figure>{svg_chart(n.samples, title=f'{n.name}: requests in flight during the drain wait')}</figure>" for n in rec.nodes if n.samples]
    if charts:
        parts += ["<h3>In flight while draining</h3>", *charts]
    stuck = [n.name for n in rec.nodes if n.still_out]
    if stuck:
        parts.append(f'<p class="still-out">Still out of rotation at the end of the record: {_e(", ".join(stuck))}</p>')

    parts += ["<h2>Database</h2>", _pairs(L.database_rows(rec)), "<h2>Backup</h2>", _pairs(L.backup_rows(rec)), "<h2>Operator decisions</h2>"]
    decisions = L.decision_rows(rec)
    parts.append(_table(L.DECISION_HEADERS, decisions) if decisions else f"<p>{_e(L.no_decisions(rec))}</p>")

    parts.append("<h2>Steps</h2>")
    for step in rec.steps:
        parts.append(f'<section class="step step-{_e(step.status)}"><h3>{_e(L.step_heading(step))}</h3>')
        if step.why:
            parts.append(f'<p class="why">{_e(step.why)}</p>')
        if step.gates:
            parts.append("<ul>" + "".join(_gate(g) for g in step.gates) + "</ul>")
        if step.actions:
            parts.append('<ol class="actions">')
            for a in step.actions:
                item = [f"<strong>{_e(L.action_heading(a))}</strong>"]
                if a.gates:
                    item.append("<ul>" + "".join(_gate(g) for g in a.gates) + "</ul>")
                if a.commands:
                    item.append(_pre(a.commands))
                for run in a.runs:
                    item.append(f"<div><code>{_e(run.command)}</code> {_e(L.run_line(run))}</div>")
                    if run.tail:
                        item.append(_pre(run.tail))
                if a.error:
                    item.append(f'<div class="fail">error: {_e(a.error)}</div>')
                if a.tail and not a.runs:
                    item.append(_pre(a.tail))
                parts.append("<li>" + "".join(item) + "</li>")
            parts.append("</ol>")
        parts.append("</section>")

    if rec.notes:
        parts += ["<h2>Notes</h2>", "<ul>" + "".join(f"<li>{_e(n)}</li>" for n in rec.notes) + "</ul>"]
    parts.append(f"<footer>{_e(L.footer(rec))}</footer>")
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{_e(L.title(rec))}</title>\n'
            f"<style>{CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")
