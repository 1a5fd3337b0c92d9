"""Plain-text and JSON renderings for the headless commands (check, plan, status, run)."""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from glance_tui.events import ActionFinished, ActionStarted, DrainProgress, Event, GatesEvaluated, Notice, OutputLine, RunFinished, StepChanged
from glance_tui.gate_types import GateResult
from glance_tui.probes import DbCheck, Snapshot
from glance_tui.secrets import redact, redact_value

if TYPE_CHECKING:  # pragma: no cover
    from glance_tui.inflight import ClusterWork


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def gates_text(results: list[GateResult]) -> str:
    rows = [["PASS" if r.ok else ("FAIL (soft)" if r.soft else "FAIL"), r.title, r.reason] for r in results]
    out = table(rows, ["RESULT", "GATE", "DETAIL"])
    fixes = [f"  - {r.title}: {r.fix}" for r in results if not r.ok and r.fix]
    if fixes:
        out += "\n\nHow to fix:\n" + "\n".join(fixes)
    passed = sum(r.ok for r in results)
    return redact(out + f"\n\n{passed}/{len(results)} gates pass")


def gates_json(results: list[GateResult]) -> str:
    return json.dumps({"ok": all(r.ok for r in results), "gates": [redact_value(r.as_dict()) for r in results]}, indent=2)


def snapshot_dict(snap: Snapshot, check: DbCheck | None, roles: dict[str, str] | None = None, *, work: "ClusterWork | None" = None) -> dict[str, Any]:
    nodes = []
    for name, f in snap.nodes.items():
        nodes.append({
            "name": name, "address": f.address, "version": f.version, "release": f.release, "running": f.running,
            "stale": f.stale, "service": f.service, "error": f.error or f.version_error or f.running_error or None,
            "code": f.code, "reason": f.reason or None, "pids": list(f.pids), "image": f.deployed_note or None,
            "role": (roles or {}).get(name),
        })
    lb = {}
    for name, v in snap.lb.views.items():
        s = v.combined()
        lb[name] = {"status": v.status, "state": v.state, "in_flight": v.in_flight, "admin_out": v.admin_out,
                    "in_rotation": v.in_rotation, "scur": s.scur if s else None, "qcur": s.qcur if s else None,
                    "rate": v.rate, "check_status": s.check_status if s else None, "weight": s.weight if s else None,
                    "missing": list(v.missing), "unreachable": list(v.unreachable),
                    "places": {p: {"status": r.status, "state": r.state, "in_flight": r.in_flight} for p, r in sorted(v.rows.items())}}
    db: dict[str, Any] = {"error": snap.db.error or None}
    if snap.db.facts:
        f = snap.db.facts
        db.update(server=f.server_version, flavour=f.flavour, heads=f.alembic_heads, log_bin=f.log_bin,
                  log_bin_trust_function_creators=f.log_bin_trust_function_creators, has_super=f.has_super)
    if check:
        db["db_check"] = {"node": check.node, "release": check.release, "exit": check.code, "meaning": check.meaning}
    out = {"taken_at": snap.taken_at, "load_balancer": {"error": snap.lb.error or None, "servers": lb}, "nodes": nodes, "database": db}
    if work is not None:
        out["work"] = work.as_dict()
    return redact_value(out)


def _service_cell(f) -> str:
    if f.running is None:
        return "UNKNOWN"
    if f.running and f.stale:
        return "running OLD+NEW code (stale)" if f.code == "mixed" else "running OLD code (stale)"
    if f.running and f.stale is None:
        return "running (code age ?)"
    return "running" if f.running else "stopped"


def status_text(snap: Snapshot, check: DbCheck | None, server_of: dict[str, str], work: "ClusterWork | None" = None) -> str:
    rows = []
    notes = []
    for name, f in snap.nodes.items():
        v = snap.lb.views.get(server_of[name])
        if v is None:
            lb_cell, flight = ("UNKNOWN" if snap.lb.error else "not in backend"), "?"
        else:
            lb_cell = v.state if v.state not in ("MIXED", "UNKNOWN") else f"{v.state}: {v.status}"
            flight = "?" if v.in_flight is None else str(v.in_flight)
        rate = "-" if v is None or v.rate is None else str(v.rate)
        conns = "-" if work is None else ("?" if work.connections.get(name) is None else str(len(work.connections[name] or ())))
        rows.append([
            name, f.address, lb_cell, flight, conns, rate,
            f"{f.version} ({f.release})" if f.version else (f.error or f.version_error or "?")[:40],
            _service_cell(f),
        ])
        if f.stale_text:
            notes.append(f"{name}: {f.stale_text}")
        elif f.running is None:
            notes.append(f"{name}: service state unknown: {f.running_error or f.error}")
        elif f.running and f.stale is None:
            notes.append(f"{name}: cannot tell when the running code was installed: {f.stale_error}")
        elif f.deployed_note and f.deployed_current is not True:  # a container node not (yet) on the target image
            notes.append(f"{name}: {f.deployed_note}")
    out = table(rows, ["NODE", "ADDRESS", "LB STATUS", "IN-FLIGHT", "OTHER CONNS", "RATE/s", "RELEASE", "SERVICE"])
    if notes:
        out += "\n\n" + "\n".join(notes)
    if work is not None:
        out += "\n\n" + work_text(work)
    if snap.lb.error:
        out += f"\n\nload balancer: {snap.lb.error}"
    if snap.db.facts:
        f = snap.db.facts
        out += (f"\n\ndatabase: {f.flavour} {f.server_version}; heads {', '.join(f.alembic_heads) or 'none'}; "
                f"log_bin {'ON' if f.log_bin else 'OFF'}")
    else:
        out += f"\n\ndatabase: {snap.db.error}"
    if check:
        out += f"\ndb check (on {check.node}, {check.release} code): exit {check.code} — {check.meaning}"
    return redact(out)


def work_text(work: "ClusterWork") -> str:
    """The work HAProxy cannot see: each node's other client connections, Glance's imports."""
    lines: list[str] = []
    for node, conns in work.connections.items():
        if conns is None:
            lines.append(f"{node}: other client connections unknown ({work.errors.get(node, '?')})")
        lines += [f"{node}: connection from {c.peer} (not a load balancer)" for c in conns or ()]
    if work.imports is None:
        lines.append(f"image imports: unknown ({work.imports_error})")
    else:
        shown = lambda i, where: f"  {i.describe().removesuffix(f'; {i.where})')}; {where})"  # noqa: E731
        dead = [i for i in work.imports.running if work.is_expired(i)]
        running = [shown(i, work.where(i)) for i in work.imports.running if i not in dead]
        staged = [shown(i, f"staged {work.where(i)}") for i in work.imports.staged]
        lines.append(f"image imports running: {len(running)}{' (at least)' if work.imports.truncated else ''}" + "".join("\n" + r for r in running))
        if dead:
            lines.append(f"image imports dead by Glance's lock expiry (not waited for): {len(dead)}" + "".join("\n" + shown(i, work.where(i)) for i in dead))
        lines.append(f"images staged, not imported: {len(staged)}" + "".join("\n" + r for r in staged))
    return "\n".join(lines)


class EventPrinter:
    """Prints engine events as timestamped lines for ``run --yes`` (and CI logs)."""

    def __init__(self, out: TextIO | None = None, verbose: bool = True) -> None:
        self.out = out
        self.verbose = verbose
        self._last_drain: dict[str, float] = {}

    def _p(self, text: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {redact(text)}", file=self.out or sys.stdout, flush=True)

    def __call__(self, event: Event) -> None:
        match event:
            case StepChanged(step_id=s, state=state, detail=d):
                self._p(f"[{s}] {state}{': ' + d if d else ''}")
            case GatesEvaluated() as g if g.blocking:
                for r in g.blocking:
                    self._p(f"[{g.step_id}] gate FAILED {r.title}: {r.reason} — fix: {r.fix}")
            case ActionStarted(step_id=s, title=t, commands=cmds, dry_run=dry):
                self._p(f"[{s}] {'WOULD RUN' if dry else '>'} {t}")
                for c in cmds:
                    self._p(f"[{s}]     {c}")
            case ActionFinished(step_id=s, action_id=a, ok=ok, detail=d):
                self._p(f"[{s}] {'ok' if ok else 'FAILED'} {a}{': ' + d if d else ''}")
            case OutputLine(node=n, line=line) if self.verbose:
                self._p(f"    {n}| {line}")
            case DrainProgress(node=n, in_flight=i, elapsed=e, timeout=t):
                if e - self._last_drain.get(n, -10) >= 5 or i == 0:
                    self._last_drain[n] = e
                    parts = f" [{event.parts}]" if event.parts else ""
                    self._p(f"    drain {n}: {event.in_flight_text} in flight{parts} (LB {event.state or '?'}), {e:.0f}s of {t:.0f}s")
                    for line in event.work[:5]:
                        self._p(f"      {line}")
            case Notice(level=lvl, text=text):
                self._p(f"{lvl}: {text}")
            case RunFinished(ok=ok, detail=d):
                self._p(f"{'DONE' if ok else 'STOPPED'}: {d}")
            case _:
                pass
