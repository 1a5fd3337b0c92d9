"""The engine and the headless commands against real MariaDB, HAProxy and sshd (simulated Glance)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from glance_tui.cli import main
from glance_tui.config import load_config
from glance_tui.engine import Engine
from glance_tui.events import DrainProgress
from glance_tui.journal import read_records
from glance_tui.lab.lab import Lab
from glance_tui.operator import Unattended
from glance_tui.probes import Cluster

pytestmark = pytest.mark.services
ROOT = Path(__file__).resolve().parents[1]


def journal_events(state_home: Path) -> list[dict]:
    paths = sorted((state_home / "glance-tui" / "runs").rglob("*.jsonl"))
    return [r for p in paths for r in read_records(p)]


def frontend(lab: Lab) -> str:
    layout = lab.load_layout()
    return f"http://{layout.lb_host}:{layout.frontend_port}"


# ---------------------------------------------------------------- headless commands


def test_check_passes_on_a_healthy_cluster(sim_lab, sim_config, capsys):
    assert main(["check", "-c", str(sim_lab.config_path), "--json"]) == 0, capsys.readouterr()
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    assert {g["gate"] for g in report["gates"]} == {"db-version", "api-v2-only", "node-count", "lb-mapping", "ssh", "same-release", "upgrade-path",
                                                    "db-check", "db-clients"}
    assert main(["check", "-c", str(sim_lab.config_path)]) == 0
    assert "9/9 gates pass" in capsys.readouterr().out


def test_status_snapshot(sim_lab, sim_config, capsys):
    assert main(["status", "-c", str(sim_lab.config_path), "--json"]) == 0
    snap = json.loads(capsys.readouterr().out)
    assert [n["release"] for n in snap["nodes"]] == ["2023.1"] * 3
    assert all(n["running"] for n in snap["nodes"])
    assert {s["state"] for s in snap["load_balancer"]["servers"].values()} == {"UP"}
    assert snap["database"]["heads"] == ["2023_1_contract01"]
    assert snap["database"]["db_check"]["exit"] == 0
    assert main(["status", "-c", str(sim_lab.config_path)]) == 0
    text = capsys.readouterr().out
    assert "glance-1" in text and "UP" in text and "26.1.0 (2023.1)" in text


def test_plan_lists_exact_commands_and_changes_nothing(sim_lab, sim_config, capsys):
    assert main(["plan", "-c", str(sim_lab.config_path), "--new-node", "glance-2"]) == 0
    out = capsys.readouterr().out
    assert "NEW NODE glance-2" in out
    assert "[glance-2] $ " in out and "apt-get install -y glance-api" in out
    assert out.index("Expand") < out.index("Migrate") < out.index("Contract")
    assert "7.1  Upgrade glance-1" in out and "7.2  Upgrade glance-3" in out
    assert main(["status", "-c", str(sim_lab.config_path), "--json"]) == 0
    assert [n["release"] for n in json.loads(capsys.readouterr().out)["nodes"]] == ["2023.1"] * 3


# ---------------------------------------------------------------- gates failing on the real thing


def test_check_fails_for_v1_api_and_wrong_lb_server(sim_lab, sim_config, tmp_path, capsys):
    conf = sim_lab.node_dir("glance-2") / "glance-api.conf"
    original = conf.read_text()
    conf.write_text(original.replace("[DEFAULT]\n", "[DEFAULT]\nenable_v1_api = True\n", 1))
    try:
        assert main(["check", "-c", str(sim_lab.config_path), "--json"]) == 1
        gates = {g["gate"]: g for g in json.loads(capsys.readouterr().out)["gates"]}
        assert not gates["api-v2-only"]["ok"] and "glance-2: enable_v1_api = True" in gates["api-v2-only"]["reason"]
        assert gates["ssh"]["ok"] and gates["lb-mapping"]["ok"]
    finally:
        conf.write_text(original)
    bad = tmp_path / "bad.toml"
    bad.write_text(sim_lab.config_path.read_text().replace('lb_server = "glance-3"', 'lb_server = "glance-9"'))
    assert main(["check", "-c", str(bad), "--json"]) == 1
    gates = {g["gate"]: g for g in json.loads(capsys.readouterr().out)["gates"]}
    assert "glance-3 → glance-9" in gates["lb-mapping"]["reason"]


def test_check_refuses_a_changed_host_key(sim_lab, sim_config, tmp_path, capsys):
    from glance_tui.lab.sshd import generate_keypair

    other = generate_keypair(tmp_path / "other_host_key")
    layout = sim_lab.load_layout()
    n1 = layout.nodes[0]
    kh = tmp_path / "known_hosts"
    lines = sim_lab.known_hosts.read_text().splitlines()
    fake_key = Path(str(other) + ".pub").read_text().split()[:2]
    kh.write_text("\n".join(f"[{n1.host}]:{n1.ssh_port} {' '.join(fake_key)}" if line.startswith(f"[{n1.host}]:{n1.ssh_port} ") else line for line in lines) + "\n")
    bad = tmp_path / "bad.toml"
    bad.write_text(sim_lab.config_path.read_text().replace(str(sim_lab.known_hosts), str(kh)))
    assert main(["check", "-c", str(bad), "--json"]) == 1
    gates = {g["gate"]: g for g in json.loads(capsys.readouterr().out)["gates"]}
    assert not gates["ssh"]["ok"]
    assert "glance-1: host key changed" in gates["ssh"]["reason"] and "SHA256:" in gates["ssh"]["reason"]


async def test_min_in_rotation_refuses_the_last_node(sim_lab, sim_config):
    from glance_tui import gates as G
    from glance_tui.context import Context, RunState
    from glance_tui.journal import NullJournal

    cluster = Cluster(sim_config)
    try:
        await cluster.lb.drain("glance-2")
        await cluster.lb.drain("glance-3")
        ctx = Context(sim_config, cluster, NullJournal(), RunState(), lambda e: None)
        result = await G.min_in_rotation_gate("glance-1").evaluate(ctx)
        assert not result.ok and "leave 0 node(s)" in result.reason
        await cluster.lb.ready("glance-2")
        ctx.invalidate()
        assert (await G.min_in_rotation_gate("glance-1").evaluate(ctx)).ok
    finally:
        await cluster.lb.ready("glance-2")
        await cluster.lb.ready("glance-3")
        await cluster.close()


# ---------------------------------------------------------------- the whole run


def test_unattended_run_upgrades_everything(sim_lab, sim_config, tmp_path, capsys):
    sim_lab.reset()
    assert main(["run", "--yes", "--quiet", "-c", str(sim_lab.config_path)]) == 0, capsys.readouterr().out[-3000:]
    out = capsys.readouterr().out
    assert "DONE: upgrade complete" in out
    assert main(["status", "-c", str(sim_lab.config_path), "--json"]) == 0
    snap = json.loads(capsys.readouterr().out)
    assert {n["version"] for n in snap["nodes"]} == {"28.2.0"}
    assert snap["database"]["heads"] == ["2024_1_contract01"]
    assert snap["database"]["db_check"]["exit"] == 0
    events = journal_events(tmp_path / "state")
    starts = [(r["step"], r["action"]) for r in events if r["event"] == "action.start"]
    order = [s for s, _ in starts]
    assert order.index("backup") < order.index("new-node") < order.index("upgrade-new") < order.index("expand") < order.index("migrate") < order.index("start-new") < order.index("contract")
    # every node step drained before stopping, and waited for in-flight 0
    for node in ("glance-2", "glance-3"):
        acts = [a for s, a in starts if s == f"node:{node}"]
        assert acts[:4] == ["drain", "wait-drained", "stop", "upgrade"], acts
    backup = next(r for r in events if r["event"] == "state" and r.get("backup"))["backup"]
    assert Path(backup["path"]).stat().st_size == backup["size"] > 0
    assert events[-1]["event"] == "run.end" and events[-1]["ok"] is True


def test_resume_after_the_process_is_killed_mid_plan(sim_lab, sim_config, tmp_path, capsys):
    sim_lab.reset()
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    proc = subprocess.Popen([sys.executable, "-m", "glance_tui", "run", "--yes", "--quiet", "-c", str(sim_lab.config_path)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 900  # generous: a loaded 2-core box runs far slower than a laptop
    killed_at = None
    while time.monotonic() < deadline and proc.poll() is None:
        events = journal_events(tmp_path / "state")
        if any(r["event"] == "action.end" and r.get("step") == "node:glance-2" and r.get("action") == "stop" for r in events):
            proc.send_signal(signal.SIGKILL)
            killed_at = len(events)
            break
        time.sleep(0.05)
    if proc.poll() is None and killed_at is None:
        proc.kill()
    proc.wait(timeout=30)
    assert killed_at is not None, f"the run never reached glance-2's stop: {proc.stderr.read().decode()[-2000:]}"
    # glance-2 is drained and stopped but not upgraded: the truth to resume from
    assert main(["run", "--yes", "--quiet", "-c", str(sim_lab.config_path)]) == 0, capsys.readouterr().out[-3000:]
    events = journal_events(tmp_path / "state")
    resumed = events[next(i for i, r in enumerate(events) if r["event"] == "run.resume"):]
    assert resumed[0].get("user") and resumed[0].get("host")  # who resumed it, and where
    starts = [(r["step"], r["action"]) for r in resumed if r["event"] == "action.start"]
    steps = {s for s, _ in starts}
    assert not steps & {"backup", "new-node", "upgrade-new", "expand", "migrate", "start-new", "node:glance-1"}, starts
    assert ("node:glance-2", "drain") not in starts and ("node:glance-2", "stop") not in starts
    assert ("node:glance-2", "upgrade") in starts
    skipped = [(r["step"], r["action"]) for r in resumed if r["event"] == "action.skip"]
    assert ("node:glance-2", "drain") in skipped and ("node:glance-2", "stop") in skipped
    assert sum(1 for r in events if r["event"] == "action.start" and r["action"] == "expand") == 1
    assert resumed[-1]["event"] == "run.end" and resumed[-1]["ok"] is True


async def test_drain_waits_for_in_flight_requests(sim_lab, sim_config):
    sim_lab.reset()
    url = frontend(sim_lab)
    seen: list[DrainProgress] = []
    engine = Engine.open(sim_config, resume=False)
    engine.subscribe(lambda e: seen.append(e) if isinstance(e, DrainProgress) else None)
    operator = Unattended("glance-1")
    async with httpx.AsyncClient(timeout=30) as client:
        try:
            assert await engine.run_step(engine.plan.step("preflight"), operator) == "done"
            assert await engine.run_step(engine.plan.step("backup"), operator) == "done"
            # three slow requests: leastconn gives each server one
            # long enough to still be in flight when the drain starts, even on a loaded box
            slow = [asyncio.create_task(client.get(f"{url}/slow", params={"s": 15})) for _ in range(3)]
            for _ in range(1200):  # up to 60 s (a loaded machine)
                views = (await engine.cluster.probe_lb()).views
                if views["glance-1"].in_flight:
                    break
                await asyncio.sleep(0.05)
            assert views["glance-1"].in_flight >= 1
            started = time.monotonic()
            assert await engine.run_step(engine.plan.step("new-node"), operator) == "done"
            waited = time.monotonic() - started
            responses = await asyncio.gather(*slow)
        finally:
            await engine.close()
    assert [r.status_code for r in responses] == [200, 200, 200]  # nothing was cut
    assert any(p.node == "glance-1" and (p.in_flight or 0) >= 1 for p in seen)
    assert seen[-1].in_flight == 0 and waited >= 1.5


async def test_drain_timeout_fails_unattended_and_restores_rotation(sim_lab, sim_config, tmp_path):
    sim_lab.reset()
    cfg_path = tmp_path / "short-drain.toml"
    cfg_path.write_text(sim_lab.config_path.read_text().replace("drain_timeout = 120", "drain_timeout = 1"))
    config = load_config(cfg_path)
    url = frontend(sim_lab)
    engine = Engine.open(config, resume=False)
    operator = Unattended("glance-1")
    async with httpx.AsyncClient(timeout=30) as client:
        try:
            for step in ("preflight", "backup"):
                assert await engine.run_step(engine.plan.step(step), operator) == "done"
            slow = [asyncio.create_task(client.get(f"{url}/slow", params={"s": 20})) for _ in range(3)]
            for _ in range(1200):  # up to 60 s (a loaded machine)
                if (await engine.cluster.probe_lb()).views["glance-1"].in_flight:
                    break
                await asyncio.sleep(0.05)
            assert await engine.run_step(engine.plan.step("new-node"), operator) == "aborted"
            view = (await engine.cluster.probe_lb()).views["glance-1"]
            assert view.in_rotation is True  # put back, not left drained
            facts = await engine.cluster.probe_node("glance-1")
            assert facts.running  # never stopped with requests in flight
            assert [r.status_code for r in await asyncio.gather(*slow)] == [200, 200, 200]
        finally:
            await engine.close()
    decisions = [r for r in read_records(engine.journal.path) if r["event"] == "decision" and r.get("gate") == "drain-timeout"]
    assert decisions and decisions[0]["choice"] == "abort" and decisions[0]["in_flight"] >= 1


def test_dry_run_shows_every_command_and_changes_nothing(sim_lab, sim_config, tmp_path, capsys):
    sim_lab.reset()
    assert main(["run", "--yes", "--dry-run", "-c", str(sim_lab.config_path)]) == 0
    out = capsys.readouterr().out
    assert "dry run complete: nothing was changed" in out
    for text in ("mysqldump", "action=drain", "systemctl stop glance-api", "apt-get install -y glance-api", "manage db expand", "manage db migrate", "manage db contract"):
        assert text in out, text
    assert out.count("WOULD RUN") >= 20
    assert not (tmp_path / "state" / "glance-tui" / "runs").exists()  # no journal: nothing happened
    assert main(["status", "-c", str(sim_lab.config_path), "--json"]) == 0
    snap = json.loads(capsys.readouterr().out)
    assert {n["version"] for n in snap["nodes"]} == {"26.1.0"} and snap["database"]["heads"] == ["2023_1_contract01"]
