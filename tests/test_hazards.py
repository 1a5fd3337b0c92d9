"""Issue 7's hazards injected against real services (MariaDB, HAProxy, sshd; simulated Glance):
the tool either handles each correctly or halts with the node out of rotation and says why."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from glance_tui.cli import main
from glance_tui.config import load_config
from glance_tui.context import Context, RunState
from glance_tui.engine import Engine
from glance_tui.events import DrainProgress, Notice
from glance_tui.journal import NullJournal, read_records
from glance_tui.lab import nodectl
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


def nodectl_cmd(lab) -> str:
    line = next(line for line in lab.config_path.read_text().splitlines() if line.startswith("stop = "))
    return json.loads(line.split("=", 1)[1].strip()).rsplit(" stop", 1)[0]


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
