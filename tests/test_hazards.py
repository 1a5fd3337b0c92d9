"""Issue 7's hazards injected against real services (MariaDB, HAProxy, sshd; simulated Glance):
the tool either handles each correctly or halts with the node out of rotation and says why."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from glance_tui import gates as G
from glance_tui.cli import main
from glance_tui.config import load_config
from glance_tui.context import Context, RunState
from glance_tui.engine import Engine
from glance_tui.events import DrainProgress, Notice
from glance_tui.journal import NullJournal, read_records
from glance_tui.lab import nodectl, nodens
from glance_tui.lab import procs as lab_procs
from glance_tui.lab.haproxy import HAProxyLab, HAProxyServer
from glance_tui.operator import FailureDecision, Unattended
from glance_tui.plan import StepFailed, api_healthy, start_action, stop_action, wait_drained_action
from glance_tui.probes import Cluster

pytestmark = pytest.mark.services
NAMES = ("glance-1", "glance-2", "glance-3")


def journal_events(state_home: Path) -> list[dict]:
    paths = sorted((state_home / "glance-tui" / "runs").rglob("*.jsonl"))
    return [r for p in paths for r in read_records(p)]


def lab_node(lab, name: str) -> nodectl.Node:
    return nodectl.Node.load(lab.node_dir(name))


def status(lab, capsys) -> dict:
    capsys.readouterr()
    assert main(["status", "-c", str(lab.config_path), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def write_config(tmp_path: Path, text: str, name: str = "hazard.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def starts(events: list[dict]) -> list[tuple[str, str]]:
    return [(r["step"], r["action"]) for r in events if r["event"] == "action.start"]


def index_of(events: list[dict], pred) -> int:
    return next(i for i, r in enumerate(events) if pred(r))


async def wait_for(check, timeout: float = 30, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError("condition not reached in time")


# ---------------------------------------------------------------- 1. running code, not the installed package


def test_stale_processes_are_drained_stopped_and_restarted_before_contract(sim_lab, sim_config, tmp_path, capsys):
    sim_lab.reset()
    time.sleep(2.5)  # the processes are clearly older than the install below
    for name in NAMES:  # unattended upgrades: every package switched, the old processes keep serving
        nodectl.set_release(lab_node(sim_lab, name), "2024.1")
    cfg = str(sim_lab.config_path)
    assert main(["check", "-c", cfg, "--json"]) == 0
    gates = {g["gate"]: g for g in json.loads(capsys.readouterr().out)["gates"]}
    for name in NAMES:
        assert f"{name}: installed 28.2.0, still running code started before the upgrade" in gates["same-release"]["reason"]
    snap = status(sim_lab, capsys)
    assert all(n["stale"] is True and n["running"] is True for n in snap["nodes"])
    capsys.readouterr()
    assert main(["status", "-c", cfg]) == 0
    assert "running OLD code (stale)" in capsys.readouterr().out

    assert main(["run", "--yes", "--quiet", "-c", cfg]) == 0, capsys.readouterr().out[-3000:]
    events = journal_events(tmp_path / "state")
    acts = starts(events)
    contract = index_of(events, lambda r: r["event"] == "action.start" and r.get("action") == "contract")
    for name in NAMES:
        mine = [a for s, a in acts if s in ("new-node", "start-new", f"node:{name}") and (s != "new-node" or name == "glance-1") and (s != "start-new" or name == "glance-1")]
        assert {"drain", "wait-drained", "stop", "start"} <= set(mine), (name, mine)
        assert "upgrade" not in mine  # installed already: skipped, not re-run
        restarted = max(i for i, r in enumerate(events) if r["event"] == "action.end" and r.get("action") == "start" and r.get("ok")
                        and (r["step"] == f"node:{name}" or (name == "glance-1" and r["step"] == "start-new")))
        assert restarted < contract, name
    # the contract gates were evaluated after the confirmation and saw no old service
    after = [r for r in events if r["event"] == "gates" and r.get("action") == "contract" and r.get("when") == "after confirm"]
    assert after and all(g["ok"] for g in after[-1]["results"])
    snap = status(sim_lab, capsys)
    assert all(n["stale"] is False and n["running"] is True and n["version"] == "28.2.0" for n in snap["nodes"])
    assert snap["database"]["heads"] == ["2024_1_contract01"]


class Scripted(Unattended):
    """Unattended, plus a hook that changes the cluster while a confirmation dialog is open."""

    def __init__(self, new_node: str, on_confirm=None) -> None:
        super().__init__(new_node)
        self.on_confirm = on_confirm or {}
        self.failures: list[tuple[str, str, bool]] = []

    async def confirm(self, step, action, commands) -> bool:
        hook = self.on_confirm.pop((step.id, action.id), None)
        if hook is not None:
            await hook()
        return True

    async def action_failed(self, step, action, error, output, can_rollback):
        self.failures.append((step.id, action.id, can_rollback))
        return FailureDecision("abort")


# ---------------------------------------------------------------- 3. + 9. NEW NODE stays stopped; restoring capacity is never gated


async def test_autostarting_upgrades_are_stopped_again_and_capacity_is_restored(sim_lab, sim_config, tmp_path):
    """The package starts the service on install (Debian postinst): the NEW NODE is stopped again
    before expand and migrate. While glance-2's upgrade waits for confirmation the NEW NODE goes
    down: glance-2 is still upgraded, started and put back (never left stopped by the forward-only
    "NEW NODE serving" gate); then step 6 brings the NEW NODE back and the run completes."""
    sim_lab.reset()
    text = sim_lab.config_path.read_text()
    text = text.replace("[commands]\n", '[commands]\nupgrade = "apt-get install -y glance-api && systemctl start glance-api"\n', 1)
    config = load_config(write_config(tmp_path, text))
    assert config.commands.upgrade.endswith("systemctl start glance-api")

    async def new_node_dies() -> None:
        await asyncio.to_thread(nodectl.stop, lab_node(sim_lab, "glance-1"))

    operator = Scripted("glance-1", {("node:glance-2", "upgrade"): new_node_dies})
    engine = Engine.open(config, resume=False)
    notices: list[str] = []
    engine.subscribe(lambda e: notices.append(e.text) if isinstance(e, Notice) else None)
    try:
        assert await engine.run(operator) is True
        facts = await engine.node_facts()  # the run's view: it knows which processes it started after each install
        views = (await engine.cluster.probe_lb()).views
    finally:
        await engine.close()
    assert not operator.on_confirm  # the hook ran
    records = list(read_records(engine.journal.path))
    for node in NAMES:
        assert any(f"the upgrade started Glance on {node} again" in n for n in notices), notices
        assert any(r["event"] == "restarted-by-upgrade" and r["node"] == node for r in records)
        assert any(r["event"] == "stopped-again" and r["node"] == node for r in records)
    for step in ("expand", "migrate"):
        gates = [r for r in records if r["event"] == "gates" and r["step"] == step]
        assert gates and all(any(g["gate"] == "new-node-stopped" and g["ok"] for g in r["results"]) for r in gates), step
        assert any(r["event"] == "action.end" and r["step"] == step and r["ok"] for r in records)
    acts = [(i, r["step"], r["action"]) for i, r in enumerate(records) if r["event"] == "action.start"]
    at = {(s, a): i for i, s, a in acts if s == "node:glance-2"}
    new_starts = [i for i, s, a in acts if (s, a) == ("start-new", "start")]
    assert len(new_starts) == 2, acts  # the NEW NODE was started in step 6, and again after it died
    # glance-2 came back while the NEW NODE was down: restoring capacity was not gated
    assert at[("node:glance-2", "upgrade")] < at[("node:glance-2", "start")] < at[("node:glance-2", "ready")] < new_starts[1]
    for r in records:
        if r["event"] == "gates" and r["step"] == "node:glance-2" and r.get("action") in ("upgrade", "start", "health", "ready", "wait-up"):
            assert "new-node-serving" not in {g["gate"] for g in r["results"]}
    assert all(f.running and f.version == "28.2.0" and f.stale is False for f in facts.values())
    assert {v.state for v in views.values()} == {"UP"}
    # `status` after the run knows it too (from the run's journal), though each start followed its
    # install within a second or two, where ps's whole seconds alone would say "stale"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert await asyncio.to_thread(main, ["status", "-c", str(config.path), "--json"]) == 0
    assert {(n["version"], n["stale"]) for n in json.loads(out.getvalue())["nodes"]} == {("28.2.0", False)}


# ---------------------------------------------------------------- 6. gates re-checked after the confirmation


async def test_capacity_is_rechecked_after_a_slow_confirmation(sim_lab, sim_config):
    sim_lab.reset()
    engine = Engine.open(sim_config, resume=False)

    async def others_go_out() -> None:  # while the dialog is open, someone drains the other two
        await engine.cluster.lb.drain("glance-2")
        await engine.cluster.lb.drain("glance-3")

    operator = Scripted("glance-1", {("new-node", "drain"): others_go_out})
    try:
        for step in ("preflight", "backup"):
            assert await engine.run_step(engine.plan.step(step), operator) == "done"
        assert await engine.run_step(engine.plan.step("new-node"), operator) == "blocked"
        view = (await engine.cluster.probe_lb()).views["glance-1"]
        assert view.in_rotation is True and view.state == "UP"  # the last node was not taken out
        assert (await engine.cluster.probe_node("glance-1")).running
    finally:
        await engine.cluster.lb.ready("glance-2")
        await engine.cluster.lb.ready("glance-3")
        await engine.close()
    records = list(read_records(engine.journal.path))
    after = [r for r in records if r["event"] == "gates" and r.get("when") == "after confirm" and r["action"] == "drain"]
    assert after and any(g["gate"] == "min-rotation" and not g["ok"] and "leave 0 node(s)" in g["reason"] for g in after[0]["results"])
    assert not any(r["event"] == "action.start" and r["action"] == "drain" for r in records)


# ---------------------------------------------------------------- 5. drained means drained


async def test_a_server_down_by_health_check_is_drained_and_pinned_in_maint_before_stop(sim_lab, sim_config):
    sim_lab.reset()
    engine = Engine.open(sim_config, resume=False)
    operator = Unattended("glance-1")
    pid = nodectl.running_pid(lab_node(sim_lab, "glance-1"))
    assert pid
    try:
        for step in ("preflight", "backup"):
            assert await engine.run_step(engine.plan.step(step), operator) == "done"
        os.killpg(pid, signal.SIGSTOP)  # hangs: HAProxy's check marks it DOWN, its admin state stays READY

        async def down():
            v = (await engine.cluster.probe_lb()).views["glance-1"]
            return v.state == "DOWN"

        await wait_for(down, 30)
        task = asyncio.create_task(engine.run_step(engine.plan.step("new-node"), operator))

        async def maint():
            v = (await engine.cluster.probe_lb()).views["glance-1"]
            return v.state == "MAINT"

        await wait_for(maint, 60)
        os.killpg(pid, signal.SIGCONT)
        assert await task == "done"
        view = (await engine.cluster.probe_lb()).views["glance-1"]
        assert view.state == "MAINT" and (await engine.cluster.probe_node("glance-1")).running is False
    finally:
        try:
            os.killpg(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        await engine.close()
    records = list(read_records(engine.journal.path))
    lb = [(i, r["action"]) for i, r in enumerate(records) if r["event"] == "lb" and r["node"] == "glance-1"]
    stop = index_of(records, lambda r: r["event"] == "action.start" and r["action"] == "stop")
    assert [a for i, a in lb if i < stop][:2] == ["drain", "maint"], lb  # drained although DOWN, then MAINT
    drained = next(r for r in records if r["event"] == "drained")
    assert drained["quiet"] >= sim_config.policy.drain_quiet_period and drained["readings"] >= 2


# ---------------------------------------------------------------- 7. rollback drains first


async def test_rollback_drains_and_waits_before_stopping(sim_lab, sim_config):
    sim_lab.reset()
    url = f"http://{sim_lab.load_layout().lb_host}:{sim_lab.load_layout().frontend_port}"
    engine = Engine.open(sim_config, resume=False)
    from glance_tui.plan import ActionIO

    io = ActionIO(Unattended("glance-1"))
    try:
        # refused while it would leave no node in rotation
        await engine.cluster.lb.drain("glance-1")
        await engine.cluster.lb.drain("glance-3")
        await engine._rollback("glance-2", io)
        assert (await engine.cluster.probe_node("glance-2")).running
        assert (await engine.cluster.probe_lb()).views["glance-2"].in_rotation is True
        await engine.cluster.lb.ready("glance-1")
        await engine.cluster.lb.ready("glance-3")
        engine.ctx.invalidate()
        async with httpx.AsyncClient(timeout=60) as client:
            slow = [asyncio.create_task(client.get(f"{url}/slow", params={"s": 3})) for _ in range(6)]

            async def busy():
                return (await engine.cluster.probe_lb()).views["glance-2"].in_flight

            await wait_for(busy, 20, 0.05)
            await engine._rollback("glance-2", io)
            codes = [r.status_code for r in await asyncio.gather(*slow)]
        assert codes == [200] * 6  # nothing cut
        f = await engine.cluster.probe_node("glance-2")
        assert f.running and f.version == "26.1.0"
        assert (await engine.cluster.probe_lb()).views["glance-2"].state == "UP"
    finally:
        await engine.close()
    records = list(read_records(engine.journal.path))
    ends = [i for i, r in enumerate(records) if r["event"] == "rollback.end"]
    assert records[ends[0]]["ok"] is False and "refused before drain" in records[ends[0]]["error"]
    second = records[ends[0] + 1:]
    steps = [r.get("action") for r in second if r["event"] == "rollback.action"]
    assert steps[:3] == ["drain", "wait-drained", "stop"], steps
    drained = index_of(second, lambda r: r["event"] == "drained")
    cmd = index_of(second, lambda r: r["event"] == "command" and "downgrade" in r["command"])
    last_end = [r for r in second if r["event"] == "rollback.end"]
    assert drained < cmd and last_end and last_end[-1]["ok"] is True
    assert index_of(second, lambda r: r["event"] == "rollback.end") > cmd  # the rollback ended after its command


# ---------------------------------------------------------------- 4. every load balancer, every backend


@pytest.fixture
def two_lbs(sim_lab, tmp_path):
    """Two more real HAProxy instances over the sim nodes, each with an internal and an external
    Glance backend (Kolla-Ansible's glance_api / glance_api_external); lb2 also has a stray server."""
    sim_lab.reset()
    layout = sim_lab.load_layout()
    servers = [HAProxyServer(n.name, n.host, n.api_port) for n in layout.nodes]
    stray = HAProxyServer("stray", layout.nodes[2].host, layout.nodes[2].api_port)
    lbs = [HAProxyLab(tmp_path / name, backend="glance_api", servers=srv, frontend_host=layout.lb_host, stats_host=layout.lb_host,
                      extra_backends=[["glance_api_external", 0]], check_inter_ms=500)
           for name, srv in (("lb1", servers), ("lb2", servers + [stray]))]
    try:
        for lb in lbs:
            lb.start()
        yield lbs
    finally:
        for lb in lbs:
            lb.stop()


def two_lb_config(lab, tmp_path, lbs, *, exclude: bool, name: str = "two-lbs.toml", **policy):
    text = lab.config_path.read_text()
    tables = []
    for i, lb in enumerate(lbs, 1):
        tables += ["[[load_balancers]]", f'name = "lb{i}"', f'stats_url = "{lb.stats_url}"', 'backends = ["glance_api", "glance_api_external"]',
                   'admin = "http"'] + (['exclude_servers = ["stray"]'] if exclude and i == 2 else []) + [""]
    text = re.sub(r"^\[load_balancer\]\n(?:[^\n]+\n)*", "\n".join(tables), text, flags=re.M)
    for key, value in policy.items():
        text = re.sub(rf"^{key} = .*$", f"{key} = {value}", text, flags=re.M)
    return write_config(tmp_path, text, name)


async def test_every_lb_and_backend_is_mapped_drained_and_an_unknown_server_blocks(sim_lab, sim_config, tmp_path, two_lbs, capsys):
    strict = two_lb_config(sim_lab, tmp_path, two_lbs, exclude=False, name="strict.toml")
    assert await asyncio.to_thread(main, ["check", "-c", str(strict), "--json"]) == 1
    gates = {g["gate"]: g for g in json.loads(capsys.readouterr().out)["gates"]}
    assert "unknown server(s) in the Glance backends: stray in lb2/glance_api, stray in lb2/glance_api_external" in gates["lb-mapping"]["reason"]
    path = two_lb_config(sim_lab, tmp_path, two_lbs, exclude=True)
    assert await asyncio.to_thread(main, ["check", "-c", str(path), "--json"]) == 0, capsys.readouterr().out
    gates = {g["gate"]: g for g in json.loads(capsys.readouterr().out)["gates"]}
    assert "on 4 backend(s)" in gates["lb-mapping"]["reason"]

    config = load_config(path)
    engine = Engine.open(config, resume=False)
    operator = Unattended("glance-1")
    try:
        for step in ("preflight", "backup", "new-node"):
            assert await engine.run_step(engine.plan.step(step), operator) == "done", step
        view = (await engine.cluster.probe_lb()).views["glance-1"]
        assert set(view.rows) == {"lb1/glance_api", "lb1/glance_api_external", "lb2/glance_api", "lb2/glance_api_external"}
        assert {r.state for r in view.rows.values()} == {"MAINT"} and view.in_flight == 0
        assert (await engine.cluster.probe_node("glance-1")).running is False
        two_lbs[1].stop()  # an instance becomes unreachable: named, and it blocks
        capsys.readouterr()
        assert await asyncio.to_thread(main, ["check", "-c", str(path), "--json"]) == 1
        gates = {g["gate"]: g for g in json.loads(capsys.readouterr().out)["gates"]}
        assert not gates["lb-mapping"]["ok"] and "lb2:" in gates["lb-mapping"]["reason"]
        engine.ctx.invalidate()
        result = await G.min_in_rotation_gate("glance-2").evaluate(engine.ctx)
        assert not result.ok and "lb2" in result.reason
    finally:
        await engine.close()


async def test_an_lb_lost_while_draining_halts_out_of_rotation_without_offering_rollback(sim_lab, sim_config, tmp_path, two_lbs):
    config = load_config(two_lb_config(sim_lab, tmp_path, two_lbs, exclude=True, drain_timeout=4))
    assert config.commands.rollback and config.policy.drain_timeout == 4
    engine = Engine.open(config, resume=False)
    operator = Scripted("glance-1")
    seen: list[DrainProgress] = []

    def on_event(event) -> None:
        if isinstance(event, DrainProgress):
            seen.append(event)
            if len(seen) == 1:
                two_lbs[1].stop()  # the stats of lb2 vanish mid-drain

    engine.subscribe(on_event)
    try:
        for step in ("preflight", "backup"):
            assert await engine.run_step(engine.plan.step(step), operator) == "done"
        assert await engine.run_step(engine.plan.step("new-node"), operator) == "failed"
        assert (await engine.cluster.probe_node("glance-1")).running is True  # never stopped blind
        view = (await engine.cluster.probe_lb()).views["glance-1"]
        assert view.in_rotation is None and view.state == "UNKNOWN"  # lb2 unreadable: unknown, never "drained"
        assert {view.rows[p].state for p in ("lb1/glance_api", "lb1/glance_api_external")} <= {"DRAIN", "MAINT"}
    finally:
        await engine.close()
    assert operator.failures == [("new-node", "wait-drained", False)]  # rollback not offered
    unknown = [p for p in seen if p.in_flight is None]
    assert unknown and unknown[-1].state == "UNKNOWN" and unknown[-1].in_flight_text == "unknown"


# ---------------------------------------------------------------- 2. unknown is never "stopped"


async def test_an_ssh_failure_is_unknown_never_stopped(sim_lab, sim_config, tmp_path, capsys):
    layout = sim_lab.load_layout()
    port = layout.nodes[1].ssh_port
    text = sim_lab.config_path.read_text().replace(f"ssh_port = {port}\n", "ssh_port = 1\n")
    path = write_config(tmp_path, text)
    config = load_config(path)
    cluster = Cluster(config)
    ctx = Context(config, cluster, NullJournal(), RunState(), lambda e: None)
    try:
        f = await cluster.probe_node("glance-2")
        assert f.running is None and f.fresh is None and not f.on("2023.1")
        assert await wait_drained_action("glance-2").needed(ctx) is True  # the wait is never skipped
        for action in (stop_action("glance-2"), start_action("glance-2")):
            with pytest.raises(StepFailed, match="cannot tell whether Glance runs on glance-2"):
                await action.needed(ctx)
    finally:
        await cluster.close()
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["status", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"glance-2 .* UNKNOWN", out) and "glance-2: service state unknown" in out


async def test_a_resumed_step7_node_already_running_the_target_is_not_stopped_again(sim_lab, sim_config):
    """Killed right after a node's start: the resumed step finds it drained and running the NEW
    code. Nothing may stop it again (wait, stop, upgrade, start are not needed); only health,
    ready and wait-up remain. A rollback of that node still drains, waits and stops it."""
    from glance_tui.plan import drain_action, health_action, ready_action, upgrade_action

    sim_lab.reset()
    engine = Engine.open(sim_config, resume=False)
    node = lab_node(sim_lab, "glance-2")
    try:
        await engine.cluster.lb.drain("glance-2")
        await engine.cluster.lb.maint("glance-2")
        nodectl.stop(node)
        nodectl.set_release(node, "2024.1")
        await asyncio.sleep(3.2)  # the new process starts clearly after the install
        pid = nodectl.start(node)
        ctx = engine.ctx
        ctx.invalidate()
        f = await engine.cluster.probe_node("glance-2")
        assert f.running and f.stale is False and f.version == "28.2.0"
        # drained by someone else, the run drains it itself, so that it holds it out (holds.py)
        assert await drain_action("glance-2").needed(ctx) is True
        ctx.state.held["glance-2"] = "maint"  # what the killed run's own drain and maint recorded
        needed = {a.id: await a.needed(ctx) for a in (drain_action("glance-2"), wait_drained_action("glance-2"), stop_action("glance-2"),
                                                      upgrade_action("glance-2"), start_action("glance-2"), health_action("glance-2"),
                                                      ready_action("glance-2"))}
        assert needed == {"drain": False, "wait-drained": False, "stop": False, "upgrade": False, "start": False, "health": True, "ready": True}
        # the rollback path stops target code too
        assert await wait_drained_action("glance-2", keep_target=False).needed(ctx) is True
        assert await stop_action("glance-2", keep_target=False).needed(ctx) is True
        assert nodectl.running_pid(node) == pid  # nothing above touched the process
        # a stale node (target installed, old process) still needs the wait and the stop
        nodectl.set_release(node, "2023.1")
        await asyncio.sleep(1.1)
        nodectl.set_release(node, "2024.1")
        ctx.invalidate()
        assert await stop_action("glance-2").needed(ctx) is True
        assert await wait_drained_action("glance-2").needed(ctx) is True
    finally:
        await engine.close()


# ---------------------------------------------------------------- 11. the default processes probe


async def test_default_processes_probe_sees_every_service_and_not_our_own_probes(sim_lab, sim_config, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("glance-api", "glance-scrubber"):
        script = bin_dir / name
        script.write_text("#!/bin/sh\nwhile :; do sleep 1; done\n")
        script.chmod(0o755)
    node = sim_lab.node_dir("glance-1")
    on_node = nodens.enter(node)  # the node's own machine: its ps sees only what runs there
    procs = [subprocess.Popen([*on_node, str(bin_dir / "glance-api"), "--config-file", "/etc/glance/glance-api.conf"]),
             subprocess.Popen([*on_node, str(bin_dir / "glance-scrubber")]),
             subprocess.Popen([*on_node, str(bin_dir / "glance-api"), "--version"])]  # the tool's own version probe, running concurrently
    text = sim_lab.config_path.read_text()
    text = re.sub(r"^processes = .*\n", "", text, flags=re.M).replace("[commands]\n", '[commands]\nservices = ["glance-api", "glance-scrubber"]\n', 1)
    config = load_config(write_config(tmp_path, text))
    assert config.commands.processes == "date +%s && ps -eo pid=,ppid=,etimes=,comm=,args="  # the default
    cluster = Cluster(config)
    children = started_children(procs, str(bin_dir))  # under nsenter, in the node
    try:
        inside = [nodens.local_pid(child) for child in children]  # the pids the node's ps shows
        assert all(inside)
        f = await cluster.probe_node("glance-1")
    finally:
        await cluster.close()
        for child in children:
            if child:
                os.kill(child, signal.SIGKILL)
        for p in procs:
            p.wait()
    assert f.running is True and f.clock is not None
    assert inside[0] in f.pids and inside[1] in f.pids
    assert inside[2] not in f.pids


def started_children(parents: list[subprocess.Popen], marker: str, timeout: float = 60) -> list[int]:
    """Each nsenter's child once it runs the script under ``marker`` (``/bin/sh <script> …``: forked
    and exec'd), waited for rather than assumed after a fixed pause (0 for a parent with none in time)."""
    def child(parent: subprocess.Popen) -> int:
        for pid in lab_procs.processes(parent=parent.pid):
            with contextlib.suppress(OSError):
                argv = Path(f"/proc/{pid}/cmdline").read_text(errors="replace").split("\0")
                if argv[0] == "/bin/sh" and argv[1].startswith(marker):
                    return pid
        return 0

    deadline = time.monotonic() + timeout
    while not all(found := [child(p) for p in parents]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


# ---------------------------------------------------------------- 10. health behind Keystone


class KeystoneProtected(BaseHTTPRequestHandler):
    """What Glance behind keystonemiddleware answers without a token."""

    def do_GET(self) -> None:  # noqa: N802
        code = {"/healthcheck": 200, "/versions": 300}.get(self.path, 401)
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


async def test_health_check_works_behind_keystone():
    server = ThreadingHTTPServer(("127.0.0.1", 0), KeystoneProtected)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert await api_healthy(url, ["/healthcheck", "/versions"], 5) == ""
        assert await api_healthy(url, ["/healthcheck", "/v2/images"], 5) == "/v2/images answered 401"
    finally:
        server.shutdown()


# ---------------------------------------------------------------- issue 9 item 9: a dry run that cannot proceed


def test_dry_run_with_failing_preflight_says_what_blocks(sim_lab, sim_config, tmp_path, capsys):
    bad = write_config(tmp_path, sim_lab.config_path.read_text().replace('lb_server = "glance-3"', 'lb_server = "glance-9"'))
    assert main(["run", "--yes", "--dry-run", "-c", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "dry run complete" not in out
    assert "STOPPED: dry run: 1 preflight gate(s) would block the run: Every node is one LB server" in out
    assert "glance-3 → glance-9" in out
