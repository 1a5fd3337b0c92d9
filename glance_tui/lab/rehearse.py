"""``glance-tui lab rehearse``: the whole upgrade on the lab, under live image traffic.

The drained procedure is the engine's own unattended run (what ``run --yes`` and the TUI
drive). ``--naive`` also runs what common deployment tools do — restart node after node
behind health checks, no drain — under the same load, so the report compares both.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from glance_tui.config import Config, load_config
from glance_tui.engine import Engine
from glance_tui.errors import GlanceTuiError
from glance_tui.journal import read_records
from glance_tui.lab.envs import GLANCE_VERSIONS, TARGET_RELEASE
from glance_tui.lab.lab import Lab
from glance_tui.lab.load import MiB, LoadReport, run_load
from glance_tui.operator import Unattended
from glance_tui.probes import Cluster
from glance_tui.report import EventPrinter

FINAL_HEAD = "2024_1_contract01"


@dataclass
class ProcedureReport:
    mode: str  # "drain" (the guide, via the engine) | "naive" (restart behind health checks)
    finished: bool
    total_seconds: float
    steps: list[dict[str, Any]] = field(default_factory=list)  # {step, title, seconds}
    drain_waits: dict[str, float] = field(default_factory=dict)  # node -> seconds waited for in-flight 0
    load: dict[str, Any] = field(default_factory=dict)
    final_heads: list[str] = field(default_factory=list)
    node_versions: dict[str, str | None] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.finished and not self.problems


def _judge(report: ProcedureReport, load: LoadReport) -> None:
    """The rehearsal's pass criteria: nothing failed, nothing lost, the final state is right."""
    report.load = load.to_json()
    if not report.finished:
        report.problems.append("the procedure did not finish")
    if load.failures:
        report.problems.append(f"{len(load.failures)} request(s) failed")
    if load.checksum_mismatches:
        report.problems.append(f"{len(load.checksum_mismatches)} checksum mismatch(es)")
    if load.images_not_active:
        report.problems.append(f"{len(load.images_not_active)} image(s) lost or stuck")
    if report.final_heads != [FINAL_HEAD]:
        report.problems.append(f"final database revision {report.final_heads}, expected [{FINAL_HEAD!r}]")
    want = GLANCE_VERSIONS[TARGET_RELEASE]
    behind = {n: v for n, v in report.node_versions.items() if v != want}
    if behind:
        report.problems.append(f"nodes not on {want}: {behind}")


async def _final_state(config: Config, report: ProcedureReport) -> None:
    cluster = Cluster(config)
    try:
        nodes, db = await asyncio.gather(cluster.probe_nodes(), cluster.db.alembic_heads())
        report.node_versions = {n: f.version for n, f in nodes.items()}
        report.final_heads = sorted(db)
    finally:
        await cluster.close()


def _journal_timings(journal: Path) -> tuple[list[dict[str, Any]], dict[str, float]]:
    steps, open_steps, drains, drained_at = [], {}, {}, {}
    for rec in read_records(journal):
        if rec["event"] == "step.start":
            open_steps[rec["step"]] = (rec["ts"], rec.get("title", ""))
        elif rec["event"] == "step.end" and rec["step"] in open_steps:
            started, title = open_steps.pop(rec["step"])
            steps.append({"step": rec["step"], "title": title, "seconds": round(rec["ts"] - started, 2)})
        elif rec["event"] == "lb" and rec.get("action") == "drain":
            drained_at[rec["node"]] = rec["ts"]
        elif rec["event"] == "drained":
            # from the moment the node left rotation until its last request finished
            drains[rec["node"]] = round(rec["ts"] - drained_at.get(rec["node"], rec["ts"] - rec["waited"]), 2)
    return steps, drains


class _Timer:
    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []

    async def step(self, step: str, title: str, work: Callable[[], Any]) -> None:
        started = time.monotonic()
        await work()
        self.steps.append({"step": step, "title": title, "seconds": round(time.monotonic() - started, 2)})


async def _naive(config: Config, say: Callable[[str], None]) -> list[dict[str, Any]]:
    """Restart node after node relying on health checks: no drain, no wait for in-flight requests."""
    cluster = Cluster(config)
    timer = _Timer()
    first, *rest = [n.name for n in config.nodes]

    async def sh(node: str, cmd) -> None:
        result = await cluster.run(cmd)
        if not result.ok:
            raise GlanceTuiError(f"naive: `{cmd.command}` on {node} exited {result.exit_status}: {' | '.join(result.tail(3))}")

    async def wait_up(node: str) -> None:
        deadline = time.monotonic() + config.policy.up_timeout
        while time.monotonic() < deadline:
            stats = (await cluster.lb.servers()).get(config.node(node).lb_server)
            if stats and stats.state == "UP":
                return
            await asyncio.sleep(config.policy.lb_poll_interval)
        raise GlanceTuiError(f"naive: {node} never came back UP")

    async def restart(node: str, *, manage: bool = False) -> None:
        cmds = cluster.commands(node)
        say(f"naive: restarting {node} without draining")
        await sh(node, cmds.stop())
        await sh(node, cmds.upgrade())
        if manage:
            await sh(node, cmds.db_expand())
            await sh(node, cmds.db_migrate())
        await sh(node, cmds.start())
        await wait_up(node)

    try:
        await timer.step("new-node", f"restart {first} on the new release, expand, migrate", lambda: restart(first, manage=True))
        for node in rest:
            await timer.step(f"node:{node}", f"restart {node} on the new release", lambda node=node: restart(node))
        await timer.step("contract", "glance-manage db contract", lambda: sh(first, cluster.commands(first).db_contract()))
    finally:
        await cluster.close()
    return timer.steps


async def rehearse(lab: Lab, *, naive: bool, clients: int = 8, sizes: tuple[int, ...] = (256 * 1024, 1 * MiB, 2 * MiB),
                   upload_rate: int | None = 1 * MiB, warmup: float = 3.0, say: Callable[[str], None] = print,
                   verbose: bool = False) -> ProcedureReport:
    """Reset the lab, start the load, run one procedure, stop the load, judge the result."""
    say(f"rehearsal ({'naive: restart behind health checks' if naive else 'drain: the guide, via the engine'}): resetting the lab")
    lab.reset()
    config = load_config(lab.config_path)
    layout = lab.load_layout()
    url = f"http://{layout.lb_host}:{layout.frontend_port}"
    stop = asyncio.Event()
    load = asyncio.create_task(run_load(url, clients=clients, duration=3600, sizes=sizes, stop_event=stop,
                                        max_requests=None, upload_rate=upload_rate))
    await asyncio.sleep(warmup)
    say(f"load running: {clients} clients through {url}")
    started = time.monotonic()
    finished = False
    steps: list[dict[str, Any]] = []
    drains: dict[str, float] = {}
    try:
        if naive:
            steps = await _naive(config, say)
            finished = True
        else:
            engine = Engine.open(config, resume=False)
            engine.subscribe(EventPrinter(verbose=verbose))
            try:
                finished = await engine.run(Unattended())
            finally:
                await engine.close()
            steps, drains = _journal_timings(engine.journal.path)
    except GlanceTuiError as exc:
        say(f"error: {exc.message}")
    finally:
        total = time.monotonic() - started
        await asyncio.sleep(warmup)  # traffic keeps flowing on the upgraded cluster
        stop.set()
        report_load = await load
    report = ProcedureReport("naive" if naive else "drain", finished, round(total, 2), steps, drains)
    await _final_state(config, report)
    _judge(report, report_load)
    return report


def report_text(reports: list[ProcedureReport]) -> str:
    """One column per procedure, side by side."""
    rows: list[tuple[str, list[str]]] = [
        ("result", ["PASS" if r.ok else "FAIL" for r in reports]),
        ("total time", [f"{r.total_seconds:.1f}s" for r in reports]),
        ("requests", [str(r.load.get("total", 0)) for r in reports]),
        ("failed requests", [str(len(r.load.get("failures", []))) for r in reports]),
        ("checksum mismatches", [str(len(r.load.get("checksum_mismatches", []))) for r in reports]),
        ("images lost or stuck", [str(len(r.load.get("images_not_active", {}))) for r in reports]),
        ("final db revision", [", ".join(r.final_heads) or "?" for r in reports]),
        ("node versions", [", ".join(sorted({str(v) for v in r.node_versions.values()})) for r in reports]),
    ]
    names = list(dict.fromkeys(s["step"] for r in reports for s in r.steps))  # first report's order first
    for name in names:
        rows.append((f"  {name}", [next((f"{s['seconds']:.1f}s" for s in r.steps if s["step"] == name), "-") for r in reports]))
    for node in sorted({n for r in reports for n in r.drain_waits}):
        rows.append((f"  drain wait {node}", [f"{r.drain_waits[node]:.1f}s" if node in r.drain_waits else "-" for r in reports]))
    width = max(len(label) for label, _ in rows)
    header = " " * width + "  " + "  ".join(f"{r.mode:>14}" for r in reports)
    lines = [header] + [f"{label:<{width}}  " + "  ".join(f"{v:>14}" for v in values) for label, values in rows]
    for r in reports:
        for reason, n in r.load.get("failures_by_reason", {}).items():
            lines.append(f"{r.mode}: {n} × {reason}")
        for problem in r.problems:
            lines.append(f"{r.mode}: {problem}")
    return "\n".join(lines)


def write_reports(reports: list[ProcedureReport], path: Path) -> None:
    path.write_text(json.dumps([{**asdict(r), "ok": r.ok} for r in reports], indent=2) + "\n")
