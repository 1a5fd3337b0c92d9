"""The proof of ``glance-tui init``: on a lab, init from the two HAProxy stats URLs (and the lab's SSH
key and known_hosts) writes a config that ``check`` passes as it is and that ``run --yes`` completes
the upgrade with — every node's kind, address and database told by the nodes themselves.

The simulated cluster (real MariaDB, HAProxy, sshd, each node its own PID + mount namespace with a
packaged node's tools; small simulated Glance) runs with the services tests; the real-Glance lab
(2023.1 -> 2024.1 behind Keystone) with ``-m lab``. The target release is what every node's package
repository offers (``apt-cache policy glance-api``: the lab path's target), so init asks nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from glance_tui.config import load_config
from glance_tui.lab.lab import Lab
from tests.fixtures.cluster import materialize_sim
from tests.init_nodes import common_port


def glance_tui(*argv: str, state: Path, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, XDG_STATE_HOME=str(state))
    return subprocess.run([sys.executable, "-m", "glance_tui", *argv], capture_output=True, text=True, env=env, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def init_check_run(lab: Lab, tmp_path: Path) -> None:
    lab_config = load_config(lab.config_path, secrets=False)
    password = Path(lab_config.database.password_file or "").read_text().strip()
    state = tmp_path / "state"
    out = tmp_path / "from-init.toml"
    stats = [arg for lb in lab_config.lbs for arg in ("--stats-url", lb.stats_url)]
    assert len(stats) == 4  # two HAProxy instances
    ports = {n.ssh_port for n in lab_config.nodes}
    assert len(ports) == 1
    answered = glance_tui("init", *stats, "--ssh-port", str(ports.pop()), "--identity-file", lab_config.ssh.identity_file or "",
                          "--known-hosts", lab_config.ssh.known_hosts, "--db-password-file", lab_config.database.password_file or "",
                          "-o", str(out), state=state)
    assert answered.returncode == 0, answered.stderr
    assert "no question" in answered.stderr, answered.stderr
    text = out.read_text()
    assert "# QUESTION:" not in "\n".join(line[:12] for line in text.splitlines()), text
    assert password not in text + answered.stdout + answered.stderr
    config = load_config(out)
    assert config.policy.target_release == lab.load_layout().target == "2024.1"  # what every node's repository offers (apt-cache policy)
    assert "their package repository offers 2024.1" in " ".join(line.removeprefix("# ") for line in text.splitlines())
    assert [(n.name, n.ssh_host, n.api_url) for n in config.nodes] == [(n.name, n.ssh_host, n.api_url) for n in lab_config.nodes]
    assert config.commands.kind == "packages" and "nodectl" not in text
    assert (config.database.host, config.database.port, config.database.schema_name) == (
        lab_config.database.host, lab_config.database.port, lab_config.database.schema_name)
    assert sorted(lb.stats_url for lb in config.lbs) == sorted(lb.stats_url for lb in lab_config.lbs)
    check = glance_tui("-c", str(out), "check", state=state)
    assert check.returncode == 0, check.stdout + check.stderr
    run = glance_tui("-c", str(out), "run", "--yes", "--quiet", state=state)
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr
    assert "DONE: upgrade complete" in run.stdout
    for journal in (state / "glance-tui").rglob("*.jsonl"):
        assert password not in journal.read_text()
    assert password not in run.stdout + run.stderr
    assert [n["release"] for n in lab.status()["nodes"]] == ["2024.1"] * len(config.nodes)


@pytest.mark.services
def test_init_on_the_simulated_cluster(tmp_path: Path) -> None:
    hosts = [f"127.0.3.{11 + i}" for i in range(3)]
    lab = Lab(tmp_path / "lab", nodes=3, envs=materialize_sim(tmp_path / "envs"), ip_base="127.0.3.", first_ip=11, lb_ip=10, lb_b_ip=9,
              api_port=0, frontend_port=0, external_port=0, stats_port=0, runtime_tcp_port=0, ssh_port=common_port(hosts), db_port=0,
              keystone=False, second_lb=True, autostart=False, progress=lambda line: None)
    try:
        lab.up()
        init_check_run(lab, tmp_path)
    finally:
        lab.down()


@pytest.mark.lab
def test_init_on_the_real_glance_lab(tmp_path: Path) -> None:
    hosts = [f"127.0.0.{71 + i}" for i in range(2)]
    lab = Lab(tmp_path / "lab", nodes=2, lb_ip=70, lb_b_ip=69, keystone_ip=68, first_ip=71, api_port=0, frontend_port=0,
              external_port=0, stats_port=0, runtime_tcp_port=0, ssh_port=common_port(hosts), db_port=0, keystone_port=0,
              progress=lambda line: None)
    try:
        lab.up()
        init_check_run(lab, tmp_path)
    finally:
        lab.down()
