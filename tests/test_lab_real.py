"""The staging lab with REAL Glance 2023.1/2024.1 (``-m lab``): up, traffic through HAProxy,
one node upgraded over SSH exactly as the engine would do it, reset, down."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time

import httpx
import pytest

from glance_tui.commands import NodeCommands
from glance_tui.config import Config, load_config
from glance_tui.lab import procs
from glance_tui.lab.lab import Lab
from glance_tui.lab.load import run_load

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    lab = Lab(tmp_path_factory.mktemp("lab"), nodes=2, lb_ip=30, first_ip=31, api_port=0, frontend_port=0, stats_port=0,
              runtime_tcp_port=0, ssh_port=0, db_port=0, progress=lambda line: None)
    try:
        yield lab
    finally:
        lab.down()


def ssh(config: Config, node: str, command: str) -> subprocess.CompletedProcess[str]:
    n = config.node(node)
    argv = ["ssh", "-i", config.ssh.identity_file, "-o", f"UserKnownHostsFile={config.ssh.known_hosts}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-p", str(n.ssh_port), f"root@{n.ssh_host}", command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def roundtrip(upload_url: str, download_url: str) -> None:
    data = os.urandom(300_000)
    with httpx.Client(timeout=60) as http:
        image = http.post(f"{upload_url}/v2/images", json={"name": "lab-test", "disk_format": "raw", "container_format": "bare"})
        assert image.status_code == 201, image.text
        image_id = image.json()["id"]
        assert http.put(f"{upload_url}/v2/images/{image_id}/file", content=data,
                        headers={"Content-Type": "application/octet-stream"}).status_code == 204
        meta = http.get(f"{download_url}/v2/images/{image_id}").json()
        assert meta["status"] == "active" and meta["checksum"] == hashlib.md5(data).hexdigest()
        assert http.get(f"{download_url}/v2/images/{image_id}/file").content == data


async def test_lab_up_upgrade_one_node_reset_down(lab: Lab) -> None:
    started = time.monotonic()
    layout = lab.up()
    cold = time.monotonic() - started
    config = load_config(lab.config_path)
    status = lab.status()
    assert [n["release"] for n in status["nodes"]] == ["2023.1", "2023.1"]
    assert all(n["running"] and n["sshd_running"] for n in status["nodes"]) and status["haproxy"]["running"]
    frontend = status["haproxy"]["frontend"]

    report = await run_load(frontend, clients=2, duration=3, sizes=[256 * 1024, 2 * 1024 * 1024])
    assert report.ok, report.summary()
    assert report.requests.get("upload", 0) > 0 and report.requests.get("download", 0) > 0

    pids = [n["pid"] for n in status["nodes"]]
    started = time.monotonic()
    lab.up()  # idempotent: nothing restarts
    assert time.monotonic() - started < cold and [n["pid"] for n in lab.status()["nodes"]] == pids

    one, two = NodeCommands(config, "glance-1"), NodeCommands(config, "glance-2")
    assert ssh(config, "glance-1", one.stop().command).returncode == 0
    assert ssh(config, "glance-1", one.is_running().command).returncode == 1
    assert ssh(config, "glance-1", one.upgrade().command).returncode == 0
    assert ssh(config, "glance-1", one.installed_version().command).stdout.strip() == "28.2.0"
    assert ssh(config, "glance-2", two.installed_version().command).stdout.strip() == "26.1.0"  # only that node changed
    assert ssh(config, "glance-1", one.db_check().command).returncode == 3  # expand next
    assert ssh(config, "glance-1", one.db_expand().command).returncode == 0
    assert ssh(config, "glance-1", one.db_migrate().command).returncode == 0
    assert ssh(config, "glance-1", one.db_check().command).returncode == 5  # contract next
    assert ssh(config, "glance-1", one.start().command).returncode == 0
    assert ssh(config, "glance-1", one.is_running().command).returncode == 0
    assert "bind_port" in ssh(config, "glance-1", one.read_config().command).stdout

    # A 2024.1 node and a 2023.1 node serve the same database and store, directly and through HAProxy.
    roundtrip(layout.nodes[0].api_url, layout.nodes[1].api_url)
    roundtrip(layout.nodes[1].api_url, layout.nodes[0].api_url)
    report = await run_load(frontend, clients=2, duration=3, sizes=[256 * 1024])
    assert report.ok, report.summary()

    lab.reset()
    status = lab.status()
    assert [n["release"] for n in status["nodes"]] == ["2023.1", "2023.1"] and all(n["running"] for n in status["nodes"])
    assert httpx.get(f"{frontend}/v2/images").json()["images"] == []  # fresh database
    assert ssh(config, "glance-1", one.db_check().command).returncode == 0  # 2023.1 code, schema up to date

    pids = [n["pid"] for n in status["nodes"]]
    stopped = lab.down()
    assert {"haproxy", "mariadb", "glance-api glance-1", "sshd glance-2"} <= set(stopped)
    assert not any(procs.pid_alive(p) for p in pids)
    status = lab.status()
    assert not status["mariadb"]["running"] and not status["haproxy"]["running"]
    assert not any(n["running"] or n["sshd_running"] for n in status["nodes"])
