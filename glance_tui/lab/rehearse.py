"""``glance-tui lab rehearse``: the whole upgrade on the lab, under live image traffic, with hazards.

The drained procedure is the engine's own unattended run (what ``run --yes`` and the TUI
drive). ``--naive`` also runs what common deployment tools do — restart node after node
behind health checks, no drain — under the same load, so the report compares both.
``--scenario`` injects one hazard of a real cloud (see :mod:`glance_tui.lab.hazards`); an
independent witness (:mod:`glance_tui.lab.monitor`) checks which code ran when, and the
journal tells where the time went (:mod:`glance_tui.lab.timesplit`).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from glance_tui.config import Config, load_config
from glance_tui.engine import Engine
from glance_tui.errors import GlanceTuiError, UsageError
from glance_tui.events import ActionFinished, Notice, RunFinished
from glance_tui.journal import read_records
from glance_tui.lab import containers, nodectl
from glance_tui.lab.envs import DEFAULT_PATH, GLANCE_VERSIONS
from glance_tui.lab.hazards import (KIND_ONLY, MAY_STOP, NAIVE_SCENARIOS, OUTAGE_SECONDS, SCENARIOS, ImportHazard, LongDownload, is_drain,
                                    is_drain_wait, is_first_step, is_step7_upgrade, lb_states, wait_for_record)
from glance_tui.lab.lab import BACKEND, EXTERNAL_BACKEND, Lab
from glance_tui.lab.load import ImportMix, MiB, LoadReport, Targets, run_load
from glance_tui.lab.monitor import ProcessMonitor
from glance_tui.lab.statsproxy import StatsProxy
from glance_tui.lab.timesplit import CATEGORIES, split_journal
from glance_tui.operator import Unattended
from glance_tui.probes import Cluster
from glance_tui.report import EventPrinter

# The last schema revision on every path the lab builds (2024.1 .. 2026.2 add none).
FINAL_HEAD = "2024_1_contract01"
# the clients' import share (lab rehearse --imports) a scenario runs with unless told: the import
# scenario passes with its clients importing since the drain places an import by its staging file
SCENARIO_IMPORTS = {"import": 0.05}
REHEARSAL_LOAD_SECONDS = 3600.0  # the load runs until the rehearsal stops it; this only bounds it


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
    scenario: str = "default"
    hazard: list[str] = field(default_factory=list)  # what was injected, and when (seconds into the run)
    stopped: str = ""  # the tool's own reason when it stopped before the end
    out_of_rotation: dict[str, dict[str, str]] = field(default_factory=dict)  # node -> {lb/backend: status} at the end
    time_split: dict[str, Any] = field(default_factory=dict)  # timesplit.split_journal, or the naive equivalent
    witness: dict[str, Any] = field(default_factory=dict)  # process spans seen, samples taken
    long_request: dict[str, Any] | None = None
    imports: list[dict[str, Any]] = field(default_factory=list)  # {image, method, node, status, checksum_match, ...} of every import
    path: list[str] = field(default_factory=lambda: list(DEFAULT_PATH))  # [from, to] release: the lab's upgrade path

    @property
    def target(self) -> str:
        return self.path[-1]

    @property
    def ok(self) -> bool:
        return not self.problems and (self.finished or bool(self.stopped))


def _windows(records: list[dict[str, Any]], action: str) -> list[tuple[float, float]]:
    """[start, end] of every run of ``action`` (an unfinished one ends at the last record)."""
    found, open_at = [], None
    for rec in records:
        if rec.get("event") == "action.start" and rec.get("action") == action:
            open_at = rec["ts"]
        elif rec.get("event") == "action.end" and rec.get("action") == action and open_at is not None:
            found.append((open_at, rec["ts"]))
            open_at = None
    if open_at is not None and records:
        found.append((open_at, records[-1]["ts"]))
    return found


def _judge_witness(report: ProcedureReport, records: list[dict[str, Any]], monitor: ProcessMonitor) -> None:
    """From the journal's action windows and the processes seen: contract never under old code,
    the NEW NODE never running during expand/migrate (the guide keeps it stopped)."""
    for start, end in _windows(records, "contract"):
        old = monitor.running_during(start, end, not_release=report.target)
        if old:
            who = ", ".join(sorted({f"{s.node} (pid {s.pid}, {s.release or '?'} code)" for s in old}))
            report.problems.append(f"db contract ran while old code was serving: {who}")
    new_node = next((r.get("new_node") for r in reversed(records) if r.get("event") == "state" and r.get("new_node")), None)
    for kind in ("expand", "migrate"):
        for start, end in _windows(records, kind):
            running = monitor.running_during(start, end, node=new_node) if new_node else []
            if running:
                report.problems.append(f"db {kind} ran while the NEW NODE {new_node} was running "
                                       f"(pid {running[0].pid}, {running[0].release or '?'} code); the guide keeps it stopped")


def _judge(report: ProcedureReport, load: LoadReport, said: list[str]) -> None:
    """The rehearsal's pass criteria: nothing failed, nothing lost, and either the final state is
    right or the tool stopped with a reason that names every node it left out of rotation."""
    report.load = load.to_json()
    if load.failures:
        report.problems.append(f"{len(load.failures)} request(s) failed")
    if load.checksum_mismatches:
        report.problems.append(f"{len(load.checksum_mismatches)} checksum mismatch(es)")
    if load.images_not_active:
        report.problems.append(f"{len(load.images_not_active)} image(s) lost or stuck")
    if report.finished:
        if report.final_heads != [FINAL_HEAD]:
            report.problems.append(f"final database revision {report.final_heads}, expected [{FINAL_HEAD!r}]")
        want = GLANCE_VERSIONS[report.target]
        behind = {n: v for n, v in report.node_versions.items() if v != want}
        if behind:
            report.problems.append(f"nodes not on {want}: {behind}")
        return
    if report.scenario not in MAY_STOP or not report.stopped:
        report.problems.append(f"the procedure did not finish{': ' + report.stopped if report.stopped else ''}")
        return
    text = "\n".join(said)
    for node, places in report.out_of_rotation.items():
        if node not in text:
            report.problems.append(f"{node} is out of rotation ({', '.join(f'{p} {s}' for p, s in places.items())}) "
                                   "but the tool did not say so")


async def _final_state(config: Config, report: ProcedureReport) -> None:
    cluster = Cluster(config)
    try:
        nodes, db = await asyncio.gather(cluster.probe_nodes(), cluster.db.alembic_heads())
        report.node_versions = {n: f.version for n, f in nodes.items()}
        report.final_heads = sorted(db)
    finally:
        await cluster.close()


def _out_of_rotation(lab: Lab) -> dict[str, dict[str, str]]:
    layout = lab.load_layout()
    urls = {b.name: lb.stats_url for b, lb in zip(layout.balancers, lab.haproxies(layout))}
    states = lb_states(urls, [BACKEND, EXTERNAL_BACKEND])
    return {node: places for node, places in states.items() if any(not s.startswith("UP") for s in places.values())}


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
    """The naive procedure's steps, split like the journal's (commands, LB/health waits, overhead)."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []
        self.current: dict[str, float] = {}

    async def step(self, step: str, title: str, work: Callable[[], Any]) -> None:
        self.current = {c: 0.0 for c in CATEGORIES}
        started = time.monotonic()
        await work()
        wall = time.monotonic() - started
        self.current["overhead"] = max(0.0, wall - sum(self.current.values()))
        self.steps.append({"step": step, "title": title, "seconds": round(wall, 2), "wall": round(wall, 2),
                           "split": {k: round(v, 2) for k, v in self.current.items()}, "actions": []})

    def add(self, category: str, seconds: float) -> None:
        self.current[category] = self.current.get(category, 0.0) + seconds

    def split(self) -> dict[str, Any]:
        total = {c: round(sum(s["split"][c] for s in self.steps), 2) for c in CATEGORIES}
        return {"steps": self.steps, "total": {"wall": round(sum(s["wall"] for s in self.steps), 2), "split": total}}


async def _naive(config: Config, say: Callable[[str], None], timer: _Timer,
                 before_stop: Callable[[str], Any] | None = None) -> list[dict[str, Any]]:
    """Restart node after node relying on health checks: no drain, no wait for in-flight requests.
    ``before_stop(node)`` (a coroutine function) runs right before each stop: a scenario's hazard."""
    cluster = Cluster(config)
    first, *rest = [n.name for n in config.nodes]

    async def sh(node: str, cmd) -> None:
        started = time.monotonic()
        result = await cluster.run(cmd)
        timer.add("commands", time.monotonic() - started)
        if not result.ok:
            raise GlanceTuiError(f"naive: `{cmd.command}` on {node} exited {result.exit_status}: {' | '.join(result.tail(3))}")

    async def wait_up(node: str) -> None:
        started = time.monotonic()
        deadline = started + config.policy.up_timeout
        try:
            while time.monotonic() < deadline:
                stats = (await cluster.probe_lb()).servers.get(config.node(node).lb_server)
                if stats and stats.state == "UP":
                    return
                await asyncio.sleep(config.policy.lb_poll_interval)
            raise GlanceTuiError(f"naive: {node} never came back UP")
        finally:
            timer.add("lb_health", time.monotonic() - started)

    async def restart(node: str, *, manage: bool = False) -> None:
        cmds = cluster.commands(node)
        say(f"naive: restarting {node} without draining")
        if before_stop is not None:
            await before_stop(node)
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


def _variant(lab: Lab, scenario: str, replace: dict[str, str]) -> Path:
    """The lab's config with some values replaced, for one scenario (its own journal directory too)."""
    text = lab.config_path.read_text()
    for old, new in replace.items():
        if old not in text:
            raise GlanceTuiError(f"the lab's config has no {old!r} to replace", where=str(lab.config_path), fix="run `glance-tui lab up`")
        text = text.replace(old, new)
    path = lab.dir / f"glance-tui-{scenario}.toml"
    path.write_text(text)
    return path


async def rehearse(lab: Lab, *, naive: bool, scenario: str = "default", clients: int = 8,
                   sizes: tuple[int, ...] = (256 * 1024, 1 * MiB, 2 * MiB), upload_rate: int | None = 1 * MiB,
                   warmup: float = 3.0, say: Callable[[str], None] = print, verbose: bool = False,
                   long_size: int = 48 * MiB, long_rate: int = 1 * MiB,
                   import_seconds: float = 30.0, import_rate: int = 1 * MiB, import_share: float = 0.0,
                   settle_timeout: float = 90.0) -> ProcedureReport:
    """Reset the lab, inject the scenario's hazard, start the load, run one procedure, stop the
    load, judge the result."""
    if scenario not in SCENARIOS:
        raise UsageError(f"unknown scenario {scenario!r}", fix=f"use one of {', '.join(SCENARIOS)} or all")
    if naive and scenario not in NAIVE_SCENARIOS:
        raise UsageError(f"--naive runs only with the scenarios {', '.join(sorted(NAIVE_SCENARIOS))}", fix="drop --naive or --scenario")
    mode = "naive" if naive else "drain"
    say(f"rehearsal {scenario} ({'naive: restart behind health checks' if naive else 'drain: the guide, via the engine'}): "
        f"{SCENARIOS[scenario]}; resetting the lab")
    check_kind(lab, scenario, naive)
    lab.autostart = scenario == "autostart"
    lab.reset()
    layout = lab.load_layout()
    say(f"lab path {layout.base} -> {layout.target}, {layout.node_kind} nodes")
    if scenario in ("failover", "stats-outage") and len(layout.balancers) < 2:
        raise UsageError(f"scenario {scenario} needs the lab's second HAProxy instance", fix="use the real lab (`glance-tui lab up`)")
    hazard: list[str] = []
    t0 = time.monotonic()

    def note(text: str) -> None:
        hazard.append(f"{time.monotonic() - t0:6.1f}s  {text}")
        say(f"hazard: {text}")

    if scenario == "autostart":
        note("every node's upgrade starts its service, as a Debian/Ubuntu postinst does")
    if scenario == "prestaged":
        for n in layout.nodes:
            nodectl.set_release(lab.node(n), layout.target)
        note(f"every node's package upgraded to {layout.target}; the running {layout.base} processes were left alone")
    if scenario == "stale-image":
        await asyncio.to_thread(_stale_images, lab, layout)
        note(f"every node pulled {containers.image_ref(layout.target)} and restarted {containers.CONTAINER}: "
             f"each container still runs its {layout.base} image")
    token = lab.token()
    config_path = lab.config_path
    proxy: StatsProxy | None = None
    if scenario == "stats-outage":
        b = layout.balancers[1]
        proxy = StatsProxy(b.host, b.host, b.stats_port)
        await proxy.start()
        config_path = _variant(lab, scenario, {f"http://{b.host}:{b.stats_port}/stats": proxy.url()})
    elif scenario != "default":
        config_path = _variant(lab, scenario, {})
    config = load_config(config_path)
    targets = Targets(layout.frontend_urls)
    monitor = ProcessMonitor({n.name: lab.node_dir(n.name) for n in layout.nodes}, kind=layout.node_kind)
    monitor.start()
    long: LongDownload | None = None
    long_task: asyncio.Task | None = None
    new_node = None
    if scenario == "long-request":
        long = LongDownload(layout.frontend_urls[0], token, long_size, long_rate)
        await long.prepare()
        served: asyncio.Future = asyncio.get_running_loop().create_future()
        long_task = asyncio.create_task(long.run(served))
        new_node = await served
        note(f"{long_size / MiB:.0f} MiB image downloading at {long_rate / MiB:g} MiB/s from {new_node or '?'}; it is the NEW NODE")
    imports: ImportHazard | None = None
    # The clients' own imports (any scenario; by default only the import scenario's, SCENARIO_IMPORTS).
    # Glance does not record which node runs an import task: the drain narrows one to a node by
    # its staging file, else it counts against every node (README, scenario import).
    mix = ImportMix(import_share, layout.web_url, settle_timeout=settle_timeout) if import_share and layout.web_url else None
    if scenario == "import":
        if not layout.web_url or len(layout.nodes) < 2:
            raise UsageError("scenario import needs the lab's slow web-download server and 2 nodes", fix="run `glance-tui lab up`")
        first, last = layout.nodes[0], layout.nodes[-1]
        new_node = first.name
        imports = ImportHazard(layout.frontend_urls[0], token, layout.web_url, (first.name, first.api_url), (last.name, last.api_url),
                               web_size=int(import_seconds * import_rate), web_rate=import_rate, stage_size=8 * MiB)
        staged = await imports.stage()
        note(f"{staged.image or 'an image'} staged on {last.name} ({staged.detail or 'its own staging store'}); "
             f"its import goes through the LB when {last.name} leaves rotation")
    stop = asyncio.Event()
    load = asyncio.create_task(run_load(targets, clients=clients, duration=REHEARSAL_LOAD_SECONDS, sizes=sizes, stop_event=stop,
                                        max_requests=None, upload_rate=upload_rate, token=token, imports=mix,
                                        cleanup=False))  # the next rehearsal resets the lab anyway
    await asyncio.sleep(warmup)
    say(f"load running: {clients} clients over {', '.join(targets.urls)}" + (" with a Keystone token" if token else ""))
    started = time.monotonic()
    finished = False
    stopped = ""
    said: list[str] = []
    steps: list[dict[str, Any]] = []
    drains: dict[str, float] = {}
    split: dict[str, Any] = {}
    injector: asyncio.Task | None = None
    triggered: list[bool] = []  # the hazard's trigger came
    records: list[dict[str, Any]] = []

    def listen(event) -> None:
        if isinstance(event, RunFinished):
            said.append(event.detail)
        elif isinstance(event, Notice):
            said.append(event.text)
        elif isinstance(event, ActionFinished) and not event.ok:
            said.append(event.detail)

    async def web_download() -> None:
        outcome = await imports.start_web_download()
        note(f"web-download of {imports.web_size / MiB:.0f} MiB at {import_rate / MiB:g} MiB/s sent to {outcome.node} (the NEW NODE) "
             f"directly: {outcome.detail or outcome.image}")

    async def import_staged(node: str) -> None:
        staged = imports.outcomes[0]
        served = await imports.import_staged(staged)
        note(f"{node} leaves: import of the image staged there requested through the LB "
             f"({'answered by ' + served if served else staged.detail})")

    try:
        if naive:
            timer = _Timer()
            before_stop = None
            if imports is not None:
                await web_download()
                triggered.append(True)

                async def before_stop(node: str) -> None:
                    if node == imports.stage_node[0]:
                        await import_staged(node)
            steps = await _naive(config, say, timer, before_stop)
            split = timer.split()
            finished = True
        else:
            engine = Engine.open(config, resume=False)
            engine.subscribe(EventPrinter(verbose=verbose))
            engine.subscribe(listen)
            journal = engine.journal.path
            if scenario == "failover":
                async def failover() -> None:
                    rec = await wait_for_record(journal, is_drain)
                    triggered.append(True)
                    await asyncio.sleep(0.5)
                    b = layout.balancers[1]
                    targets.move_to(list(b.urls.values()))
                    note(f"drain of {rec.get('node')} issued; every client moved from {layout.balancers[0].name} to {b.name} "
                         f"({', '.join(b.urls.values())})")
                injector = asyncio.create_task(failover())
            elif scenario == "lb-reload":
                async def reloads() -> None:
                    a = lab.haproxies(layout)[0]
                    rec = await wait_for_record(journal, is_drain)
                    triggered.append(True)
                    await asyncio.sleep(0.5)
                    pid = await asyncio.to_thread(a.reload)
                    note(f"drain of {rec.get('node')} issued; {layout.balancers[0].name} reloaded (new worker pid {pid}): "
                         "every server READY again there")
                    rec = await wait_for_record(journal, is_step7_upgrade)
                    pid = await asyncio.to_thread(a.reload)
                    note(f"{rec.get('node')} stopped and being upgraded; {layout.balancers[0].name} reloaded again (pid {pid})")
                injector = asyncio.create_task(reloads())
            elif scenario == "stats-outage" and proxy is not None:
                async def outage() -> None:
                    rec = await wait_for_record(journal, is_drain_wait)
                    triggered.append(True)
                    note(f"waiting for {rec.get('node')} to drain; {layout.balancers[1].name}'s stats endpoint stops answering "
                         f"for {OUTAGE_SECONDS:g}s")
                    await proxy.outage(OUTAGE_SECONDS)
                    note(f"{layout.balancers[1].name}'s stats endpoint answers again")
                injector = asyncio.create_task(outage())
            elif imports is not None:
                async def import_hazard() -> None:
                    await wait_for_record(journal, is_first_step)
                    triggered.append(True)
                    await web_download()
                    await wait_for_record(journal, lambda r: is_drain(r) and r.get("node") == imports.stage_node[0])
                    await import_staged(imports.stage_node[0])
                injector = asyncio.create_task(import_hazard())
            try:
                finished = await engine.run(Unattended(new_node=new_node or None))
            finally:
                await engine.close()
            records = list(read_records(journal))
            steps, drains = _journal_timings(journal)
            split = split_journal(records)
            if not finished:
                stopped = said[-1] if said else "stopped without a reason"
    except GlanceTuiError as exc:
        stopped = f"error: {exc.message}"
        say(stopped)
    finally:
        total = time.monotonic() - started
        if injector is not None:
            if not triggered:
                note("the hazard's trigger never came: it was not injected")
            injector.cancel()
        await asyncio.sleep(warmup)  # traffic keeps flowing on the upgraded cluster
        stop.set()
        report_load = await load
        if imports is not None:
            await imports.settle(settle_timeout)
        if long_task is not None:
            await long_task
        await monitor.stop()
        if proxy is not None:
            await proxy.close()
    report = ProcedureReport(mode, finished, round(total, 2), steps, drains, scenario=scenario, hazard=hazard, stopped=stopped,
                             time_split=split, path=list(layout.path))
    report.witness = {"samples": monitor.samples, "processes": [s.to_json() for s in monitor.spans.values()]}
    await _final_state(load_config(lab.config_path), report)
    if not finished:
        report.out_of_rotation = await asyncio.to_thread(_out_of_rotation, lab)
    _judge(report, report_load, said)
    if not naive:
        _judge_witness(report, records, monitor)
    if long is not None:
        report.long_request = long.to_json()
        _judge_long(report, long, records)
    if imports is not None or mix is not None:
        _judge_imports(report, imports.outcomes if imports else [], records)
    if scenario == "lb-reload" and not naive:
        _judge_reloads(report, records)
    if scenario == "autostart" and not naive:
        _judge_autostart(report, records)
    if layout.node_kind == "kolla":
        await asyncio.to_thread(_judge_images, report, records, monitor, lab)
    return report


def _judge_imports(report: ProcedureReport, outcomes: list, records: list[dict[str, Any]]) -> None:
    """Every import (the scenario's and the clients') ended active with a matching checksum, and
    the scenario's web-download was still running on the NEW NODE when its drain was issued."""
    report.imports = [o.to_json() for o in outcomes] + report.load.get("imports", [])
    bad = [i for i in report.imports if not (i["status"] == "active" and i["checksum_match"])]
    if bad:
        report.problems.append(f"{len(bad)} of {len(report.imports)} import(s) did not end active with a matching checksum: "
                               + "; ".join(f"{i['method']} {i['image'] or '?'} on {i['node'] or '?'}: {i['status']}"
                                           + (f" ({i['detail']})" if i.get("detail") else "") for i in bad[:5]))
    if report.mode != "drain" or not outcomes:
        return
    web = next((o for o in outcomes if o.method == "web-download"), None)
    drained = next((r["ts"] for r in records if is_drain(r) and web and r.get("node") == web.node), None)
    if web is None or not web.requested or drained is None or drained < web.requested or (web.settled and web.settled <= drained):
        report.problems.append("the hazard was not exercised: the web-download was not running on the NEW NODE when its drain was issued")


def check_kind(lab: Lab, scenario: str, naive: bool) -> str:
    """The lab's node kind (the one asked for, else the lab's), if the scenario and mode run on it."""
    layout = lab.load_layout()
    kind = lab.requested_kind or (layout.node_kind if layout else "packages")
    if KIND_ONLY.get(scenario, kind) != kind:
        raise UsageError(f"scenario {scenario} needs {KIND_ONLY[scenario]} nodes, the lab's are {kind}",
                         fix=f"add --node-kind {KIND_ONLY[scenario]}, or choose another scenario")
    if naive and kind != "packages":
        raise UsageError("--naive restarts packaged services (its upgrade is the package's); container nodes are re-created by the tool only",
                         fix="drop --naive, or use --node-kind packages")
    return kind


def _stale_images(lab: Lab, layout) -> None:
    """The stale-image hazard, as an operator's half-done upgrade leaves it: on every node the target
    image pulled (the node's own ``podman pull``) and ``glance_api`` restarted — on its old image."""
    for n in layout.nodes:
        box = lab.container(n)
        # the node's own podman (what its PATH has), as the tool's upgrade pulls
        wrapper = subprocess.run([str(box.bin_dir / "podman"), "pull", containers.image_ref(layout.target)], capture_output=True,
                                 text=True, timeout=120, stdin=subprocess.DEVNULL)
        if wrapper.returncode != 0:
            raise GlanceTuiError(f"stale-image: `podman pull` on {n.name} failed: {wrapper.stderr.strip()}", fix="run `glance-tui lab reset`")
        box.world.run("restart", containers.CONTAINER, timeout=90)
        box.wait_serving(f"{n.api_url}/versions")
        state, target = box.state(), box.world.image_id(containers.image_ref(layout.target))
        if not state or state["status"] != "running" or not target or state["image"] == target:
            raise GlanceTuiError(f"stale-image: the hazard did not take on {n.name} (container {state and state['status']}, "
                                 f"image {state and state['image'][:12]}, target image {str(target)[:12]})", fix="run `glance-tui lab reset`")


def _judge_images(report: ProcedureReport, records: list[dict[str, Any]], monitor: ProcessMonitor, lab: Lab) -> None:
    """Container nodes, from podman's own storage (not the tool's probes): nothing served from an
    image other than the target's while contract ran, and when the run finished every glance_api
    was created from the target image."""
    target = lab.images().recorded().get(report.target)
    if not target:
        report.problems.append(f"no image of {report.target} was built: the witness cannot judge the containers")
        return
    for start, end in _windows(records, "contract"):
        old = [s for s in monitor.running_during(start, end) if s.image and s.image != target]
        if old:
            report.problems.append("db contract ran while a container of another image was serving: " + ", ".join(
                sorted({f"{s.node} (pid {s.pid}, image {s.image[:12]})" for s in old})))
    report.witness["containers"] = {}
    layout = lab.load_layout()
    for n in layout.nodes:
        state = lab.container(n).state()
        image = state["image"] if state else None
        report.witness["containers"][n.name] = {"image": image, "status": state["status"] if state else "absent",
                                                "target": image == target}
        if report.finished and image != target:
            report.problems.append(f"{n.name}'s {containers.CONTAINER} was created from image {str(image)[:12]}, "
                                   f"not {report.target}'s {target[:12]}")


def _judge_autostart(report: ProcedureReport, records: list[dict[str, Any]]) -> None:
    """Every upgrade started the service: the tool must have seen it and stopped it again."""
    started = sorted({str(r.get("node")) for r in records if r.get("event") == "restarted-by-upgrade"})
    report.hazard.append(f"{'end':>6}   the upgrade started Glance on {len(started)} node(s) ({', '.join(started) or 'none'}); "
                         "the tool stopped it again each time")
    if not started:
        report.problems.append("the hazard was not exercised: no upgrade started the service")


def _judge_reloads(report: ProcedureReport, records: list[dict[str, Any]]) -> None:
    """The tool must have seen each reload and put back out of rotation what it held out."""
    injected = sum("reloaded" in h for h in report.hazard)
    seen = [r for r in records if r.get("event") == "lb.restart"]
    put_back = [r for r in records if r.get("event") == "lb" and str(r.get("why", "")).startswith("re-asserted")]
    report.hazard.append(f"{'end':>6}   the tool saw {len(seen)} HAProxy restart(s) and put {len(put_back)} held node(s) back out of rotation "
                         f"({', '.join(sorted({str(r.get('node')) for r in put_back})) or 'none'})")
    if len(seen) < injected:
        report.problems.append(f"{injected} reload(s) injected, the tool journaled {len(seen)}")
    if injected and not put_back:
        report.problems.append("a reload put a held node back READY and the tool never re-asserted it")


def _judge_long(report: ProcedureReport, long: LongDownload, records: list[dict[str, Any]]) -> None:
    if not long.ok:
        report.problems.append(f"the long download failed: {long.detail}")
    drained = next((r["ts"] for r in records if is_drain(r) and r.get("node") == long.server), None)
    overlap = (long.finished - drained) if drained and long.finished else 0.0
    report.long_request["drained_while_in_flight_seconds"] = round(max(0.0, overlap), 2)
    if overlap <= 0:
        report.problems.append(f"the hazard was not exercised: {long.server or 'its node'} was not drained while the long download ran")


def _label(r: ProcedureReport) -> str:
    if r.scenario == "default":
        return r.mode
    return r.scenario if r.mode == "drain" else f"{r.scenario} {r.mode}"


def report_text(reports: list[ProcedureReport]) -> str:
    """One column per procedure (or scenario), side by side; then where each one's time went."""
    def split_of(r: ProcedureReport, step: str | None = None) -> dict[str, float]:
        if step is None:
            return r.time_split.get("total", {}).get("split", {})
        return next((s["split"] for s in r.time_split.get("steps", []) if s["step"] == step), {})

    rows: list[tuple[str, list[str]]] = [
        ("result", ["PASS" if r.ok else "FAIL" for r in reports]),
        ("path", ["→".join(r.path) for r in reports]),
        ("outcome", ["finished" if r.finished else "stopped" for r in reports]),
        ("total time", [f"{r.total_seconds:.1f}s" for r in reports]),
        ("requests", [str(r.load.get("total", 0)) for r in reports]),
        ("failed requests", [str(len(r.load.get("failures", []))) for r in reports]),
        ("checksum mismatches", [str(len(r.load.get("checksum_mismatches", []))) for r in reports]),
        ("images lost or stuck", [str(len(r.load.get("images_not_active", {}))) for r in reports]),
        ("imports active, checksum ok", [f"{sum(i['status'] == 'active' and i['checksum_match'] for i in r.imports)}/{len(r.imports)}"
                                         if r.imports else "-" for r in reports]),
        ("final db revision", [", ".join(r.final_heads) or "?" for r in reports]),
        ("node versions", [", ".join(sorted({str(v) for v in r.node_versions.values()})) for r in reports]),
    ]
    for c in CATEGORIES:
        rows.append((f"time: {c.replace('_', '/')}", [f"{split_of(r).get(c, 0):.1f}s" if r.time_split else "-" for r in reports]))
    names = list(dict.fromkeys(s["step"] for r in reports for s in r.steps))  # first report's order first
    for name in names:
        rows.append((f"  {name}", [next((f"{s['seconds']:.1f}s" for s in r.steps if s["step"] == name), "-") for r in reports]))
    for node in sorted({n for r in reports for n in r.drain_waits}):
        rows.append((f"  drain wait {node}", [f"{r.drain_waits[node]:.1f}s" if node in r.drain_waits else "-" for r in reports]))
    width = max(len(label) for label, _ in rows)
    header = " " * width + "  " + "  ".join(f"{_label(r):>14}" for r in reports)
    lines = [header] + [f"{label:<{width}}  " + "  ".join(f"{v:>14}" for v in values) for label, values in rows]
    for r in reports:
        for text in r.hazard:
            lines.append(f"{_label(r)}: hazard at {text.strip()}")
        if r.stopped:
            lines.append(f"{_label(r)}: stopped: {r.stopped}")
        for node, places in r.out_of_rotation.items():
            lines.append(f"{_label(r)}: out of rotation at the end: {node} ({', '.join(f'{p} {st}' for p, st in places.items())})")
        if r.long_request:
            lr = r.long_request
            lines.append(f"{_label(r)}: long download from {lr.get('server') or '?'}: {lr.get('seconds')}s, drained while in flight "
                         f"{lr.get('drained_while_in_flight_seconds')}s, then {lr.get('second_request') or 'no'} on the same connection")
        for i in r.imports:
            if not (i["status"] == "active" and i["checksum_match"]):
                lines.append(f"{_label(r)}: import {i['method']} {i['image'] or '?'} on {i['node'] or '?'}: {i['status']}"
                             f"{', checksum differs' if i['status'] == 'active' else ''}{' (' + i['detail'] + ')' if i.get('detail') else ''}")
        for reason, n in r.load.get("failures_by_reason", {}).items():
            lines.append(f"{_label(r)}: {n} × {reason}")
        for problem in r.problems:
            lines.append(f"{_label(r)}: PROBLEM: {problem}")
    for r in reports:
        lines += ["", time_text(r)]
    return "\n".join(lines)


def time_text(r: ProcedureReport) -> str:
    """Per step and per action: wall time = node commands + drain waits + LB/health waits + the tool's overhead."""
    head = "".join(f"{c.replace('_', '/'):>11}" for c in CATEGORIES)
    lines = [f"where the time went ({_label(r)})", f"  {'step / action':<34}{'wall':>8}{head}"]

    def row(label: str, wall: float, split: dict[str, float]) -> str:
        return f"  {label[:34]:<34}{wall:>7.1f}s" + "".join(f"{split.get(c, 0):>10.1f}s" for c in CATEGORIES)

    for s in r.time_split.get("steps", []):
        lines.append(row(s["step"], s["wall"], s["split"]))
        for a in s.get("actions", []):
            lines.append(row(f"  {a['action']}" + (f" {a['node']}" if a.get("node") else ""), a["wall"], a["split"]))
    total = r.time_split.get("total")
    if total:
        lines.append(row("total (incl. preflight, planning)", total["wall"], total["split"]))
    return "\n".join(lines)


def write_reports(reports: list[ProcedureReport], path: Path) -> None:
    """The JSON report (``--json FILE`` or the lab's own): atomically, nothing clobbered."""
    from glance_tui.outfile import write_output

    write_output(path, json.dumps([{**asdict(r), "ok": r.ok} for r in reports], indent=2) + "\n", where="--json")


def scenario_names(name: str, kind: str | None = None) -> list[str]:
    """``all`` -> every scenario (of the node ``kind``, when given); else the one named (checked)."""
    if name == "all":
        return [s for s in SCENARIOS if kind is None or KIND_ONLY.get(s, kind) == kind]
    if name not in SCENARIOS:
        raise UsageError(f"unknown scenario {name!r}", fix=f"use one of {', '.join(SCENARIOS)} or all")
    return [name]
