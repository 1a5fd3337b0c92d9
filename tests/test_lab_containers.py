"""The container lab's mechanics with real podman (``--node-kind kolla``), on stand-in environments.

Two "releases" are tiny environments whose ``glance-api`` (stdlib Python from the host's /usr)
serves ``/versions`` on the conf's address and says which environment it runs from. Their images
are built as the lab builds them; each node has its own podman world behind its ``podman``
wrapper. What must hold: a pull through the wrapper brings the image into that node only; a
container restarted after the pull still runs the OLD image's code; re-created on the new image
it runs the NEW code; the witness reads the container's processes, release and image id from
podman's files. The real Glance rehearsals on container nodes are in tests/test_lab_kolla.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from glance_tui.commands import NodeCommands
from glance_tui.config import parse_config
from glance_tui.inflight import import_conf
from glance_tui.lab import containers, glance, procs
from glance_tui.lab.monitor import ProcessMonitor
from glance_tui.node.containers import recreate_command
from tests.test_kolla_staging import KollaCtx

pytestmark = pytest.mark.services

API = """#!/usr/bin/python3
import configparser, http.server, json, signal, sys
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))  # PID 1 of its container: no default action
conf = configparser.RawConfigParser()
conf.read(sys.argv[sys.argv.index("--config-file") + 1])
body = json.dumps({"versions": [], "code": sys.argv[0]}).encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer((conf["DEFAULT"]["bind_host"], int(conf["DEFAULT"]["bind_port"])), H).serve_forever()
"""


@pytest.fixture(scope="module")
def podman() -> str:
    if not (shutil.which("podman") and (shutil.which("runc") or Path("/usr/sbin/runc").exists())):
        pytest.skip("podman and runc are not installed (apt-get install -y podman runc): the container lab cannot run here")
    return containers.require_podman()


def stand_in_env(root: Path, release: str) -> Path:
    bin_dir = root / f"glance-{release}" / "bin"
    bin_dir.mkdir(parents=True)
    api = bin_dir / "glance-api"
    api.write_text(API)
    api.chmod(0o755)
    return bin_dir


def served_code(url: str) -> str:
    with urllib.request.urlopen(f"{url}/versions", timeout=5) as resp:
        return json.loads(resp.read())["code"]


async def test_pull_restart_keeps_the_old_image_recreate_runs_the_new(podman: str, tmp_path: Path, monkeypatch) -> None:
    envs = {rel: stand_in_env(tmp_path / "envs", rel) for rel in ("old", "new")}
    images = containers.Images(tmp_path / "images", progress=lambda line: None)
    started = time.monotonic()
    ids = {rel: images.ensure(rel, str(b)) for rel, b in envs.items()}
    print(f"\nimage build: {time.monotonic() - started:.2f}s for 2 images "
          f"({', '.join(f'{r} {images.archive(r).stat().st_size // 1024} KiB' for r in ids)})")
    assert ids["old"] != ids["new"] and images.recorded() == ids
    assert images.ensure("old", str(envs["old"])) == ids["old"]  # built once: the archive is reused

    host, store = "127.0.0.97", tmp_path / "store"
    store.mkdir()
    port = procs.free_port(host)
    nodes = [containers.ContainerNode(tmp_path / f"n{i}", f"glance-{i}", images) for i in (1, 2)]
    one, two = nodes
    try:
        for box in nodes:
            box.setup([str(b) for b in envs.values()])
        glance.write_api_conf(one.conf, host=host, port=port, database="mysql+pymysql://x:y@127.0.0.1:1/glance",
                              store_dir=Path(containers.DATA_DIR) / "images", node_dir=Path(containers.DATA_DIR),
                              paste_file=Path(containers.PASTE_FILE))
        wrapper = str(one.bin_dir / "podman")

        # the node's own `podman pull` loads the lab's image (no registry) and prints its id, as a pull does
        pulled = subprocess.run([wrapper, "pull", "-q", containers.image_ref("old")], capture_output=True, text=True, timeout=60)
        assert pulled.returncode == 0, pulled.stderr
        assert pulled.stdout.strip() == ids["old"]
        missing = subprocess.run([wrapper, "pull", containers.image_ref("nope")], capture_output=True, text=True, timeout=60)
        assert missing.returncode == 125 and "the lab has no such image" in missing.stderr
        # every node is its own world: glance-2 has neither the image nor a container
        assert two.world.image_id(containers.image_ref("old")) is None and two.state() is None

        one.create("old", store_dir=store)
        assert one.state()["status"] == "created"
        one.start(wait_url=f"http://{host}:{port}/versions")
        assert served_code(f"http://{host}:{port}") == str(envs["old"] / "glance-api")
        state = one.state()
        assert state["image"] == ids["old"] and state["status"] == "running"

        # the stale-image hazard: the new image pulled under its tag, the container restarted — old code
        assert subprocess.run([wrapper, "pull", containers.image_ref("new")], capture_output=True, timeout=60).returncode == 0
        subprocess.run([wrapper, "restart", containers.CONTAINER], check=True, capture_output=True, timeout=90)
        one.wait_serving(f"http://{host}:{port}/versions")
        assert one.state()["image"] == ids["old"]
        assert served_code(f"http://{host}:{port}") == str(envs["old"] / "glance-api")
        assert one.world.image_id(containers.image_ref("new")) == ids["new"]

        # Kolla's upgrade: re-created on the new image by the tool's own command (from the inspected
        # container, through the node's podman), it runs the new code
        monkeypatch.setenv("PATH", f"{one.bin_dir}:{os.environ['PATH']}")
        monkeypatch.setenv("LAB_CONTAINERS_DB_PW", "pw-lab-containers")
        ctx = KollaCtx({}, parse_config({
            "database": {"password_env": "LAB_CONTAINERS_DB_PW"}, "load_balancer": {"stats_url": "http://lb:8404/stats", "backend": "glance_api"},
            "commands": {"kind": "kolla", "kolla": {"engine": "podman", "container": containers.CONTAINER, "image": containers.IMAGE, "target_tag": "new"}},
            "nodes": [{"name": "g1", "ssh_host": host, "lb_server": "g1", "api_url": f"http://{host}:{port}"}], "policy": {"target_release": "2025.1"}}))
        ctx.run = lambda cmd, **kw: ctx.shell.run(cmd.command, timeout=120)  # every command for real, on this host
        conf = await import_conf(ctx, "g1")  # the staging directory inside the container, at its host path (the node's glance volume)
        assert conf.in_container == f"{containers.DATA_DIR}/staging" and conf.staging_dir == str(one.data_dir / "staging") and not conf.unlisted
        one.stop()
        recreate = await recreate_command(ctx.run, NodeCommands(ctx.config, "g1"))
        assert recreate is not None and (await ctx.run(recreate)).ok
        assert one.state()["status"] == "created" and one.state()["image"] == ids["new"]
        one.start(wait_url=f"http://{host}:{port}/versions")
        assert served_code(f"http://{host}:{port}") == str(envs["new"] / "glance-api")

        # the node's `ps` shows its own containers' processes only (every lab node shares this machine)
        ps = subprocess.run([str(one.bin_dir / "ps"), "-eo", "pid=,ppid=,comm=,args="], capture_output=True, text=True, timeout=30)
        assert ps.returncode == 0, ps.stderr
        assert [line.split()[0] for line in ps.stdout.splitlines()] == [str(one.state()["pid"])]
        assert subprocess.run([str(two.bin_dir / "ps"), "-eo", "pid="], capture_output=True, text=True, timeout=30).stdout == ""
        # a one-off container of the image answers without the service container's volumes (the host's code is every container's)
        version = subprocess.run([wrapper, "run", "--rm", "--network", "none", "--entrypoint", "python3", ids["new"], "-c", "print(42)"],
                                 capture_output=True, text=True, timeout=60)
        assert version.stdout.strip() == "42", version.stderr

        # the witness: the container's processes, their release and image, from podman's own files
        pid, image = containers.running_container(one.world.dir)
        assert pid == one.state()["pid"] and image == ids["new"]
        (one.node_dir / "node.json").write_text(json.dumps({"name": one.name, "host": host, "port": port, "release": "old",
                                                            "envs": {r: str(b) for r, b in envs.items()}}))
        monitor = ProcessMonitor({one.name: one.node_dir, two.name: two.node_dir}, kind="kolla")
        monitor.sample()
        spans = list(monitor.spans.values())
        assert [(s.node, s.release, s.image) for s in spans] == [(one.name, "new", ids["new"])]

        # a rollback (until contract): the stopped container re-created on the image it ran before, by its id
        assert one.stop()
        back = await recreate_command(ctx.run, NodeCommands(ctx.config, "g1"), image=ids["old"])
        assert back is not None and (await ctx.run(back)).ok
        assert one.state()["status"] == "created" and one.state()["image"] == ids["old"]
        one.start(wait_url=f"http://{host}:{port}/versions")
        assert served_code(f"http://{host}:{port}") == str(envs["old"] / "glance-api")

        assert one.stop() and containers.running_container(one.world.dir) is None and not one.stop()
    finally:
        for box in nodes:
            if box.world.conf.exists():
                box.remove()
        for world in [images.builder] + [box.world for box in nodes]:
            shutil.rmtree(world.state_dir, ignore_errors=True)  # podman's state for this test only (under /run)
