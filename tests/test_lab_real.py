"""The staging lab with REAL Glance 2023.1/2024.1 behind a REAL Keystone (``-m lab``): up,
authenticated traffic through both HAProxy instances and both frontends, 401 without a token,
health checks without one, one node upgraded over SSH exactly as the engine would do it (and
once more with autostart), reset; then today's paths: 2025.1 (eventlet) -> 2026.1 (uWSGI), and
2026.1 -> 2026.2 (uWSGI to uWSGI, ``-m lab_extra``); down."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from glance_tui.commands import NodeCommands
from glance_tui.config import Config, load_config
from glance_tui.errors import UsageError
from glance_tui.lab import envs, nodens, procs, runtime
from glance_tui.lab.lab import Lab
from glance_tui.lab.monitor import ProcessMonitor
from glance_tui.lab.imports import GLANCE_DIRECT, WEB_DOWNLOAD, ImportOutcome, create, import_body, request_import, settle, stage
from glance_tui.lab.load import ImportMix, run_load
from glance_tui.lab.slowserve import blob_digests, blob_url
from glance_tui.node import glance_processes

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    lab = Lab(tmp_path_factory.mktemp("lab"), nodes=2, lb_ip=30, lb_b_ip=29, keystone_ip=28, first_ip=31, api_port=0, frontend_port=0,
              external_port=0, stats_port=0, runtime_tcp_port=0, ssh_port=0, db_port=0, keystone_port=0, progress=lambda line: None)
    try:
        yield lab
    finally:
        lab.down()


def ssh(config: Config, node: str, command: str) -> subprocess.CompletedProcess[str]:
    n = config.node(node)
    argv = ["ssh", "-i", config.ssh.identity_file, "-o", f"UserKnownHostsFile={config.ssh.known_hosts}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-p", str(n.ssh_port), f"root@{n.ssh_host}", command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def running(config: Config, node: str) -> bool:
    """Is a Glance service running on ``node``, read as the engine reads it (the processes command)?"""
    out = ssh(config, node, NodeCommands(config, node).processes().command)
    assert out.returncode == 0, out.stderr
    return bool(glance_processes(out.stdout, config.commands))


def roundtrip(upload_url: str, download_url: str, token: str) -> None:
    data = os.urandom(300_000)
    with httpx.Client(timeout=60, headers={"X-Auth-Token": token}) as http:
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
    frontends = [url for lb in status["haproxies"] for url in lb["frontends"].values()]
    assert len(frontends) == 4 and status["keystone"]["running"]
    assert [lb.name for lb in config.lbs] == ["lb-a", "lb-b"]
    assert all(lb.backends == ["glance_api", "glance_api_external"] for lb in config.lbs)

    # Keystone: no token, no images (through every frontend and on the node itself); health checks need none.
    for url in frontends + [n.api_url for n in layout.nodes]:
        assert httpx.get(f"{url}/v2/images", timeout=10).status_code == 401, url
        for path in config.policy.health_paths:  # the tool's own health check passes on this lab
            assert httpx.get(f"{url}{path}", timeout=10).status_code == 200, (url, path)
    token = lab.token()
    keystone = lab.keystone(layout)
    assert keystone.catalog(token) == {"internal": frontend, "admin": frontend, "public": frontends[1]}
    assert keystone.token("glance", keystone.glance_password, "service")  # the service user exists
    assert httpx.get(f"{frontends[3]}/v2/images", headers={"X-Auth-Token": token}, timeout=10).status_code == 200
    assert httpx.get(f"{frontend}/v2/images", headers={"X-Auth-Token": "not-a-token"}, timeout=10).status_code == 401

    # bounded by requests, not time: the machine may be slow
    report = await run_load(frontends, clients=4, duration=300, max_requests=40, sizes=[256 * 1024, 2 * 1024 * 1024], token=token)
    assert report.ok, report.summary()
    assert report.requests.get("upload", 0) > 0 and report.requests.get("download", 0) > 0
    # the load was spread over both instances and both frontends
    for lb in lab.haproxies(layout):
        csv = httpx.get(lb.stats_url + ";csv", timeout=10).text
        for backend in ("glance_api", "glance_api_external"):
            row = next(line for line in csv.splitlines() if line.startswith(f"{backend},BACKEND,"))
            assert int(row.split(",")[7]) > 0, (lb.stats_url, backend)  # stot: sessions served

    pids = [n["pid"] for n in status["nodes"]]
    started = time.monotonic()
    lab.up()  # idempotent: nothing restarts
    assert time.monotonic() - started < cold and [n["pid"] for n in lab.status()["nodes"]] == pids

    one, two = NodeCommands(config, "glance-1"), NodeCommands(config, "glance-2")
    assert ssh(config, "glance-1", one.stop().command).returncode == 0
    assert not running(config, "glance-1")
    assert ssh(config, "glance-1", one.upgrade().command).returncode == 0
    # the node's package database, as dpkg-query prints it (Ubuntu's epoch and revision)
    assert ssh(config, "glance-1", one.installed_version().command).stdout.strip() == "glance-api\t2:28.2.0-0ubuntu1"
    assert ssh(config, "glance-2", two.installed_version().command).stdout.strip() == "glance-api\t2:26.1.0-0ubuntu1"  # only that node changed
    assert ssh(config, "glance-1", one.db_check().command).returncode == 3  # expand next
    assert ssh(config, "glance-1", one.db_expand().command).returncode == 0
    assert ssh(config, "glance-1", one.db_migrate().command).returncode == 0
    assert ssh(config, "glance-1", one.db_check().command).returncode == 5  # contract next
    assert ssh(config, "glance-1", one.start().command).returncode == 0
    assert running(config, "glance-1")
    assert "bind_port" in ssh(config, "glance-1", one.read_config().command).stdout

    # A 2024.1 node and a 2023.1 node serve the same database and store, directly and through HAProxy.
    roundtrip(layout.nodes[0].api_url, layout.nodes[1].api_url, token)
    roundtrip(layout.nodes[1].api_url, layout.nodes[0].api_url, token)
    report = await run_load(frontends, clients=2, duration=3, sizes=[256 * 1024], token=token)
    assert report.ok, report.summary()

    # Packaged-service behaviour on demand: with autostart the upgrade starts the service (postinst).
    lab.autostart = True
    lab.up()
    assert lab.status()["autostart"]
    assert ssh(config, "glance-2", two.stop().command).returncode == 0
    started = ssh(config, "glance-2", two.upgrade().command)
    assert started.returncode == 0 and "Setting up glance-api (2:28.2.0-0ubuntu1) ..." in started.stdout, started.stdout + started.stderr
    assert running(config, "glance-2") and ssh(config, "glance-2", "systemctl is-active glance-api").stdout == "active\n"
    lab.autostart = False

    lab.reset()
    status = lab.status()
    assert [n["release"] for n in status["nodes"]] == ["2023.1", "2023.1"] and all(n["running"] for n in status["nodes"])
    token = lab.token()  # Keystone's database survives a reset
    assert httpx.get(f"{frontend}/v2/images", headers={"X-Auth-Token": token}).json()["images"] == []  # fresh database
    assert ssh(config, "glance-1", one.db_check().command).returncode == 0  # 2023.1 code, schema up to date


async def check_imports(lab: Lab, token: str) -> None:
    """Image import works on this lab as on a recent deployment: glance-direct data staged on
    glance-2's own staging store and imported by a request to glance-1 (which proxies it to
    glance-2's worker_self_reference_url: glance-1 has no such file); web-download through the
    LB from the lab's slow server (for as long as the server takes); a web-download from any
    other port is refused by the import filtering options; `lab load` imports both ways."""
    layout = lab.load_layout()
    one, two = layout.nodes[0], layout.nodes[1]
    frontend, web_url = layout.frontend_urls[0], lab.status()["web"]["url"]
    async with httpx.AsyncClient(timeout=60, headers={"X-Auth-Token": token}) as http:
        data = os.urandom(600_000)
        staged = ImportOutcome(await create(http, two.api_url, "lab-import-staged"), GLANCE_DIRECT, two.name,
                               hashlib.md5(data).hexdigest(), hashlib.sha512(data).hexdigest())
        await stage(http, two.api_url, staged.image, data)
        assert (lab.node_dir(two.name) / "staging" / staged.image).stat().st_size == len(data)
        assert not (lab.node_dir(one.name) / "staging" / staged.image).exists()
        await request_import(http, one.api_url, staged.image, GLANCE_DIRECT)

        size, rate = 1024 * 1024, 512 * 1024  # 2 s
        web = ImportOutcome(await create(http, frontend, "lab-import-web"), WEB_DOWNLOAD, "", *blob_digests("labtest", size))
        web.node = await request_import(http, frontend, web.image, WEB_DOWNLOAD, blob_url(web_url, "labtest", size, rate))
        web.requested = time.time()
        for o in (staged, web):
            await settle(http, frontend, o, timeout=120)
            assert o.ok, o
        assert web.settled - web.requested >= size / rate  # it ran as long as the slow server took to send it

        other = await create(http, frontend, "lab-import-elsewhere")
        port = int(web_url.rsplit(":", 1)[1])
        refused = await http.post(f"{frontend}/v2/images/{other}/import",
                                  json=import_body(WEB_DOWNLOAD, blob_url(web_url.replace(f":{port}", f":{port + 1}"), "x", 10, 10)))
        assert refused.status_code == 400, refused.text

    report = await run_load(layout.frontend_urls, clients=3, duration=300, max_requests=24, sizes=[256 * 1024], token=token,
                            imports=ImportMix(0.5, web_url))
    assert report.ok, report.summary()
    assert {i["method"] for i in report.imports} == {GLANCE_DIRECT, WEB_DOWNLOAD}, report.imports
    assert all(i["status"] == "active" and i["checksum_match"] for i in report.imports)


async def test_lab_imports_glance_direct_and_web_download(lab: Lab) -> None:
    lab.up()
    await check_imports(lab, lab.token())


def served_by(config: Config, node: str) -> list[tuple[int, str, str]]:
    """(pid, COMM, args) of every Glance server process the node's processes command lists — as
    ``ps`` shows them (the listing also holds the node's sshd and the probe itself)."""
    from glance_tui.node.readings import parse_processes

    out = ssh(config, node, NodeCommands(config, node).processes().command)
    assert out.returncode == 0, out.stderr
    return [(p.pid, p.comm, p.args) for p in parse_processes(out.stdout)[1] if runtime.is_glance(p.args.split())]


async def test_lab_paths_slurp_2025_1_eventlet_to_2026_1_uwsgi(lab: Lab) -> None:
    """2025.1 -> 2026.1 (today's SLURP path): the nodes start on the eventlet glance-api of 30.2.0;
    upgraded over SSH as the engine does it, a node runs 32.0.0 under uWSGI (master + 4 lazy-app
    workers, every one COMM ``uwsgi``) and serves beside a 2025.1 node; stop, reset work; the
    witness sees the master and every worker. Another path than the lab's is refused by ``up``."""
    lab.requested_path = ("2025.1", "2026.1")
    lab.reset()
    with pytest.raises(UsageError, match="the lab is on the path 2025.1 -> 2026.1"):
        Lab(lab.dir, path=envs.DEFAULT_PATH, progress=lambda line: None).up()
    config = load_config(lab.config_path)
    assert (config.policy.target_release, config.policy.target_version) == ("2026.1", "32.0.0")
    status = lab.status()
    assert status["path"] == {"from": "2025.1", "to": "2026.1", "versions": ["30.2.0", "32.0.0"], "runtimes": ["eventlet", "uwsgi"]}
    assert [(n["release"], n["version"], n["runtime"], n["running"]) for n in status["nodes"]] == [("2025.1", "30.2.0", "eventlet", True)] * 2
    assert {comm for _, comm, _ in served_by(config, "glance-1")} == {"glance-api"}

    one = NodeCommands(config, "glance-1")
    assert ssh(config, "glance-1", one.stop().command).returncode == 0
    assert served_by(config, "glance-1") == []
    assert ssh(config, "glance-1", one.upgrade().command).returncode == 0
    assert ssh(config, "glance-1", one.installed_version().command).stdout.strip() == "glance-api\t2:32.0.0-0ubuntu1"
    assert ssh(config, "glance-1", one.db_check().command).returncode == 0  # no revision after 2024.1: up to date
    assert ssh(config, "glance-1", one.start().command).returncode == 0
    uwsgi = served_by(config, "glance-1")  # pids as the node's own ps shows them (its PID namespace)
    master = lab.status()["nodes"][0]["pid"]  # the lab host's view
    assert {comm for _, comm, _ in uwsgi} == {"uwsgi"} and len(uwsgi) == 5, uwsgi  # the master and 4 workers
    assert nodens.local_pid(master) in {pid for pid, _, _ in uwsgi} and all("/glance-2026.1/bin/uwsgi --ini " in args for _, _, args in uwsgi)
    on_host = [nodens.host_pid(lab.node_dir("glance-1"), pid) for pid, _, _ in uwsgi]
    workers = [pid for pid in on_host if pid != master]
    assert all(Path(f"/proc/{w}/stat").read_text().rsplit(") ", 1)[1].split()[1] == str(master) for w in workers)  # forked by it
    assert {comm for _, comm, _ in served_by(config, "glance-2")} == {"glance-api"}  # only that node changed
    layout = lab.load_layout()
    for path in config.policy.health_paths:
        assert httpx.get(f"{layout.nodes[0].api_url}{path}", timeout=10).status_code == 200, path
    token = lab.token()
    roundtrip(layout.nodes[0].api_url, layout.nodes[1].api_url, token)  # 2026.1 (uWSGI) and 2025.1 (eventlet), one database
    roundtrip(layout.nodes[1].api_url, layout.nodes[0].api_url, token)
    await check_imports(lab, token)  # a 2026.1 uWSGI node and a 2025.1 eventlet node

    monitor = ProcessMonitor({n.name: lab.node_dir(n.name) for n in layout.nodes})
    monitor.sample()
    seen = {(s.node, s.pid, s.release) for s in monitor.spans.values()}
    assert {("glance-1", pid, "2026.1") for pid in on_host} <= seen
    assert {s.release for s in monitor.spans.values() if s.node == "glance-2"} == {"2025.1"}

    assert ssh(config, "glance-1", one.stop().command).returncode == 0
    assert served_by(config, "glance-1") == [] and not any(procs.pid_alive(pid) for pid in on_host)
    lab.reset()  # back on the path's start
    status = lab.status()
    assert [(n["release"], n["version"], n["running"]) for n in status["nodes"]] == [("2025.1", "30.2.0", True)] * 2


@pytest.mark.lab_extra
async def test_lab_paths_2026_1_to_2026_2_uwsgi_to_uwsgi(lab: Lab) -> None:
    """2026.1 -> 2026.2: every node starts under uWSGI on 32.0.0 and one upgraded node runs 33.0.0
    under uWSGI (2026.2 has no standalone server), serving beside the others."""
    lab.requested_path = ("2026.1", "2026.2")
    lab.reset()
    config = load_config(lab.config_path)
    status = lab.status()
    assert [(n["release"], n["version"], n["runtime"], n["running"]) for n in status["nodes"]] == [("2026.1", "32.0.0", "uwsgi", True)] * 2
    one = NodeCommands(config, "glance-1")
    assert ssh(config, "glance-1", one.stop().command).returncode == 0
    assert ssh(config, "glance-1", one.upgrade().command).returncode == 0
    assert ssh(config, "glance-1", one.start().command).returncode == 0
    uwsgi = served_by(config, "glance-1")
    assert {comm for _, comm, _ in uwsgi} == {"uwsgi"} and len(uwsgi) == 5
    assert all("/glance-2026.2/bin/uwsgi --ini " in args for _, _, args in uwsgi)
    assert ssh(config, "glance-1", one.installed_version().command).stdout.strip() == "glance-api\t2:33.0.0-0ubuntu1"
    layout = lab.load_layout()
    token = lab.token()
    roundtrip(layout.nodes[0].api_url, layout.nodes[1].api_url, token)
    roundtrip(layout.nodes[1].api_url, layout.nodes[0].api_url, token)
    await check_imports(lab, token)


def test_lab_down_stops_everything(lab: Lab) -> None:
    lab.up()
    status = lab.status()
    pids = [n["pid"] for n in status["nodes"]]
    assert all(pids)
    stopped = lab.down()
    assert {"haproxy lb-a", "haproxy lb-b", "keystone", "mariadb", "glance-api glance-1", "sshd glance-2", "web server"} <= set(stopped)
    assert not any(procs.pid_alive(p) for p in pids)
    status = lab.status()
    assert not status["mariadb"]["running"] and not any(lb["running"] for lb in status["haproxies"])
    assert not status["keystone"]["running"]
    assert not any(n["running"] or n["sshd_running"] for n in status["nodes"])
