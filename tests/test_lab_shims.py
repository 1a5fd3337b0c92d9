"""A lab node looks like a packaged Debian/Ubuntu node: its own machine (PID and mount
namespaces) and, on its PATH, ``systemctl``, ``dpkg-query``, ``apt-get``, ``glance-manage`` and
``glance-api`` acting on that node only — so the tool's default commands, unchanged, read and
drive it. Real processes, real namespaces, real ports; the Glance environments are the small
stand-ins of test_lab_nodectl."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from glance_tui.config import CommandsConfig
from glance_tui.lab import glance, nodectl, nodens, procs
from glance_tui.lab.lab import SESSION_PATH
from glance_tui.lab.monitor import ProcessMonitor
from glance_tui.node import CODE_INSTALLED, glance_processes
from glance_tui.node.probe import patterns_of
from glance_tui.node.readings import parse_epoch, parse_listeners, parse_processes
from glance_tui.node.verdict import Readings, judge
from glance_tui.releases import parse_version
from glance_tui.templates import render
from tests.test_lab_nodectl import make_env

DEFAULTS = CommandsConfig()
HOST = "127.0.0.23"


def make_node(tmp_path: Path, *, autostart: bool = False) -> nodectl.Node:
    envs = {"2023.1": str(make_env(tmp_path / "env-2023.1", "26.1.0")), "2024.1": str(make_env(tmp_path / "env-2024.1", "28.2.0"))}
    d = tmp_path / "node"
    d.mkdir()
    port = procs.free_port(HOST)
    node = nodectl.Node(d, {"name": "n1", "host": HOST, "port": port, "release": "2023.1", "envs": envs, "base": "2023.1",
                            "target": "2024.1", "autostart": autostart})
    node.save()
    glance.write_api_conf(node.conf, host=HOST, port=port, database="mysql+pymysql://u:p@127.0.0.1:1/g",
                          store_dir=tmp_path / "images", node_dir=d)
    nodectl.install_package(node)
    return node


@pytest.fixture
def node(tmp_path: Path):
    """A node without a machine: the tools' semantics (their pids are this host's)."""
    node = make_node(tmp_path)
    yield node
    nodectl.stop(nodectl.Node.load(node.dir), timeout=2)


@pytest.fixture
def machine(tmp_path: Path):
    """A node in its own machine, its service started from the host (as `lab up` does)."""
    node = make_node(tmp_path)
    nodens.start(node.dir)
    try:
        yield node
    finally:
        nodectl.stop(nodectl.Node.load(node.dir), timeout=2)
        nodens.stop(node.dir)


def session_env(node: nodectl.Node) -> dict[str, str]:
    """What the node's sshd gives a session (see Lab.sshd)."""
    return {**os.environ, "PATH": f"{node.dir / nodectl.PATH_DIR}:{SESSION_PATH}", "HOME": str(node.dir)}


def on_node(node: nodectl.Node, command: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``command`` through ``sh -c`` as the node's SSH session runs it (inside its machine, if it has one)."""
    prefix = [] if nodens.inside(node.dir) else nodens.enter(node.dir)
    return subprocess.run([*prefix, "sh", "-c", command], capture_output=True, text=True, timeout=60,
                          env={**session_env(node), **env}, stdin=subprocess.DEVNULL)


def default(name: str, node: nodectl.Node) -> str:
    return render(getattr(DEFAULTS, name), {"port": str(node.port), "services": "glance-api", "target_release": "2024.1"})


# ---------------------------------------------------------------- the defaults, read inside a node's machine


def test_the_default_probes_see_this_node_only(machine: nodectl.Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside its machine the node's `ps -e` lists only its own processes (another glance-api on
    the host is not there), `ss -p` names the node's server with the pid `ps` shows, and /etc/glance
    is the node's; the host still sees the service with its host pid (the witness's view)."""
    decoy_script = tmp_path / "glance-api"
    decoy_script.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(60)\n")
    decoy_script.chmod(0o755)
    decoy = subprocess.Popen([str(decoy_script), "--config-file", "/etc/glance/glance-api.conf"])
    # The processes command reads the clock before ps (the safe order: a process reads as OLDER, never
    # newer, than it is), so on a loaded machine a start 1.5 s after the install can read as before it:
    # this test judges a fresh install, so it starts well clear of that.
    monkeypatch.setattr(nodectl, "INSTALL_SETTLE", 4.0)
    try:
        nodectl.start(machine)
        host_pid = nodectl.running_pid(machine)
        assert host_pid and procs.pid_alive(host_pid)
        out = on_node(machine, default("processes", machine))
        assert out.returncode == 0, out.stderr
        clock, rows = parse_processes(out.stdout)
        assert abs(clock - time.time()) < 5
        found = glance_processes(out.stdout, DEFAULTS)
        assert len(found) == 1 and found[0].args.endswith(f"env-2023.1/bin/glance-api --config-file {machine.conf}")
        assert decoy.pid not in [r.pid for r in rows] and all("time.sleep" not in r.args for r in rows)
        assert 1 in [r.pid for r in rows]  # the node's init
        local = found[0].pid
        assert nodens.host_pid(machine.dir, local) == host_pid != local
        listen = on_node(machine, default("listeners", machine))
        assert listen.returncode == 0, listen.stderr
        listeners = [s for s in parse_listeners(listen.stdout) if s.address == HOST]
        assert [s.holders for s in listeners] == [((local, "glance-api"),)]
        assert on_node(machine, default("read_config", machine)).stdout == machine.conf.read_text()
        at = parse_epoch(on_node(machine, default("installed_at", machine)).stdout)
        assert int(at) == int(nodectl.installed_at(machine)) and at <= found[0].started_at
        # the tool's verdict from these readings: running, the installed code, its tree the node's server
        verdict = judge(Readings("n1", machine.port, procs=tuple(rows), clock=clock, listeners=tuple(listeners), installed_at=at),
                        patterns_of(DEFAULTS))
        assert (verdict.running, verdict.code, verdict.stale) == (True, CODE_INSTALLED, False), verdict.reason
        assert [p.pid for p in verdict.tree] == [local]
        monitor = ProcessMonitor({"n1": machine.dir})  # the witness reads /proc on the host
        monitor.sample()
        assert [(s.pid, s.release) for s in monitor.spans.values()] == [(host_pid, "2023.1")]
    finally:
        decoy.kill()
        decoy.wait()
    assert nodectl.stop(machine) and not procs.pid_alive(host_pid)
    assert glance_processes(on_node(machine, default("processes", machine)).stdout, DEFAULTS) == []


def test_the_default_actions_drive_the_node(machine: nodectl.Node) -> None:
    """stop, upgrade, installed_version, installed_at, glance_manage and start, as the defaults say
    them, inside the node: the upgrade changes the version and the install time, the old process
    keeps running the old code until the service is restarted."""
    nodectl.start(machine)
    old = nodectl.running_pid(machine)
    version = on_node(machine, default("installed_version", machine))
    assert version.stdout == "glance-api\t2:26.1.0-0ubuntu1\n" and parse_version(version.stdout) == "26.1.0"
    before = parse_epoch(on_node(machine, default("installed_at", machine)).stdout)
    time.sleep(1.1)  # stat prints whole seconds
    up = on_node(machine, default("upgrade", machine))
    assert up.returncode == 0, up.stderr
    assert "Setting up glance-api (2:28.2.0-0ubuntu1) ..." in up.stdout
    assert parse_version(on_node(machine, default("installed_version", machine)).stdout) == "28.2.0"
    assert parse_epoch(on_node(machine, default("installed_at", machine)).stdout) > before
    assert nodectl.running_pid(machine) == old  # no autostart: the old code keeps serving
    manage = on_node(machine, default("glance_manage", machine) + " db check")
    assert manage.returncode == 0 and manage.stdout.strip() == f"manage --config-file {machine.conf} db check"
    assert on_node(machine, default("stop", machine)).returncode == 0 and not procs.pid_alive(old)
    assert on_node(machine, "systemctl is-active glance-api").stdout == "inactive\n"
    started = on_node(machine, default("start", machine))
    assert started.returncode == 0, started.stderr
    new = nodectl.running_pid(machine)
    assert new and b"env-2024.1/bin/glance-api" in Path(f"/proc/{new}/cmdline").read_bytes()
    # started from a session: the service lives in the node's machine, not under the session
    found = glance_processes(on_node(machine, default("processes", machine)).stdout, DEFAULTS)
    assert [nodens.host_pid(machine.dir, p.pid) for p in found] == [new] and found[0].ppid == 1


# ---------------------------------------------------------------- each tool as its real counterpart


def test_systemctl_answers_like_systemd(node: nodectl.Node) -> None:
    run = lambda *a: on_node(node, "systemctl " + " ".join(a))  # noqa: E731
    inactive = run("is-active", "glance-api")
    assert (inactive.returncode, inactive.stdout) == (3, "inactive\n")
    assert run("status", "glance-api").returncode == 3
    assert (run("start", "glance-api.service").returncode, run("is-active", "glance-api").stdout) == (0, "active\n")
    assert run("is-active", "--quiet", "glance-api").stdout == "" and run("status", "glance-api").returncode == 0
    pid = nodectl.running_pid(node)
    assert run("restart", "glance-api").returncode == 0 and nodectl.running_pid(node) not in (None, pid)
    for verb, message in (("stop", "Failed to stop nova-api.service: Unit nova-api.service not loaded."),
                          ("start", "Failed to start nova-api.service: Unit nova-api.service not found."),
                          ("restart", "Failed to restart nova-api.service: Unit nova-api.service not found.")):
        unknown = run(verb, "nova-api")
        assert (unknown.returncode, unknown.stderr.strip()) == (5, message)
    assert run("is-active", "nova-api").returncode == 3
    missing = run("status", "nova-api")
    assert (missing.returncode, missing.stderr.strip()) == (4, "Unit nova-api.service could not be found.")
    assert run("frobnicate", "glance-api").returncode == 1 and run("stop").returncode == 1
    assert run("stop", "glance-api").returncode == 0 and run("is-active", "glance-api").returncode == 3


def test_a_failing_start_is_a_failed_job(node: nodectl.Node) -> None:
    blocker = __import__("socket").socket()
    blocker.bind((HOST, node.port))
    blocker.listen(1)
    try:
        failed = on_node(node, "systemctl start glance-api")
    finally:
        blocker.close()
    assert failed.returncode == 1
    assert failed.stderr.startswith("Job for glance-api.service failed because the control process exited with error code.")


def test_dpkg_query_answers_like_dpkg(node: nodectl.Node) -> None:
    shown = on_node(node, "dpkg-query -W glance-api")
    assert (shown.returncode, shown.stdout) == (0, "glance-api\t2:26.1.0-0ubuntu1\n")
    assert on_node(node, "dpkg-query --show").stdout == shown.stdout
    missing = on_node(node, "dpkg-query -W glance-api nova-api")
    assert missing.returncode == 1 and missing.stdout == shown.stdout
    assert missing.stderr.strip() == "dpkg-query: no packages found matching nova-api"
    assert on_node(node, "dpkg-query glance-api").returncode == 2


def test_apt_get_installs_upgrades_and_pins_like_apt(node: nodectl.Node) -> None:
    run = lambda *a: on_node(node, "apt-get " + " ".join(a))  # noqa: E731
    ctime = lambda: (node.dir / nodectl.PATH_DIR / "glance-api").stat().st_ctime  # noqa: E731
    version = lambda: on_node(node, "dpkg-query -W glance-api").stdout.split("\t")[1].strip()  # noqa: E731
    first = ctime()
    assert run("install", "glance-api").returncode == 1 and version() == "2:26.1.0-0ubuntu1"  # no -y, no terminal: abort
    unknown = run("install", "-y", "nova-api")
    assert (unknown.returncode, unknown.stderr.strip()) == (100, "E: Unable to locate package nova-api")
    assert run("frobnicate").returncode == 100
    assert run("install", "-y", "glance-api").returncode == 0
    assert version() == "2:28.2.0-0ubuntu1" and nodectl.Node.load(node.dir).release == "2024.1" and ctime() > first
    again = run("install", "-y", "glance-api")
    assert again.returncode == 0 and "glance-api is already the newest version (2:28.2.0-0ubuntu1)." in again.stdout
    pinned = run("install", "-y", "glance-api=2:26.1.0-0ubuntu1")
    assert (pinned.returncode, pinned.stderr.strip()) == (100, "E: Packages were downgraded and -y was used without --allow-downgrades.")
    assert version() == "2:28.2.0-0ubuntu1"
    nowhere = run("install", "-y", "--allow-downgrades", "glance-api=2:99.0.0-0ubuntu1")
    assert (nowhere.returncode, nowhere.stderr.strip()) == (100, "E: Version '2:99.0.0-0ubuntu1' for 'glance-api' was not found")
    down = run("install", "-qy", "--allow-downgrades", "glance-api=2:26.1.0-0ubuntu1")
    assert down.returncode == 0 and "DOWNGRADED" in down.stdout and version() == "2:26.1.0-0ubuntu1"


def test_apt_get_with_autostart_restarts_the_service_as_a_postinst(tmp_path: Path) -> None:
    node = make_node(tmp_path, autostart=True)
    try:
        nodectl.start(node)
        old = nodectl.running_pid(node)
        up = on_node(node, "apt-get install -y glance-api")
        assert up.returncode == 0, up.stderr
        new = nodectl.running_pid(node)
        assert new and new != old and not procs.pid_alive(old)
        assert b"env-2024.1/bin/glance-api" in Path(f"/proc/{new}/cmdline").read_bytes()
    finally:
        nodectl.stop(nodectl.Node.load(node.dir), timeout=2)


def test_lab_up_keeps_an_install_time_and_a_reinstall_renews_it(node: nodectl.Node) -> None:
    """`lab up` rewrites the package files only when they change (a node's install time is a fact
    the tool reads); installing a release (set_release) is a new install."""
    before = nodectl.installed_at(node)
    time.sleep(0.05)
    nodectl.install_package(nodectl.Node.load(node.dir))
    assert nodectl.installed_at(node) == before
    nodectl.set_release(nodectl.Node.load(node.dir), "2023.1")
    assert nodectl.installed_at(node) > before


def test_apt_cache_policy_answers_like_apt(node: nodectl.Node) -> None:
    """What `glance-tui init` reads a packaged node's repository by: the candidate is the lab path's target."""
    policy = on_node(node, "apt-cache policy glance-api")
    assert policy.returncode == 0, policy.stderr
    assert policy.stdout == (
        "glance-api:\n"
        "  Installed: 2:26.1.0-0ubuntu1\n"
        "  Candidate: 2:28.2.0-0ubuntu1\n"
        "  Version table:\n"
        "     2:28.2.0-0ubuntu1 500\n"
        "        500 http://repository.lab.invalid/glance 2024.1/main amd64 Packages\n"
        " *** 2:26.1.0-0ubuntu1 500\n"
        "        500 http://repository.lab.invalid/glance 2023.1/main amd64 Packages\n"
        "        100 /var/lib/dpkg/status\n")
    from glance_tui.init.nodeprobe import NodeFindings, classify

    found = NodeFindings()
    classify({"candidate": policy.stdout, "version": on_node(node, "dpkg-query -W glance-api").stdout}, found)
    assert (found.release, found.candidate_release) == ("2023.1", "2024.1")
    unknown = on_node(node, "apt-cache policy nova-api")
    assert (unknown.returncode, unknown.stdout, unknown.stderr.strip()) == (0, "", "N: Unable to locate package nova-api")
    assert on_node(node, "apt-cache frobnicate").returncode == 100
    assert on_node(node, "apt-get install -y glance-api").returncode == 0
    after = on_node(node, "apt-cache policy glance-api").stdout
    assert "  Installed: 2:28.2.0-0ubuntu1\n  Candidate: 2:28.2.0-0ubuntu1\n" in after and " *** 2:28.2.0-0ubuntu1 500" in after


def test_a_container_node_has_no_apt_cache(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    kolla = nodectl.Node(node.dir, {**node.data, "kind": "kolla"})
    (node.dir / nodectl.PATH_DIR / "apt-cache").unlink()
    nodectl.install_package(kolla, reinstall=True)
    assert not (node.dir / nodectl.PATH_DIR / "apt-cache").exists()
    # whatever the machine's own apt-cache says (this host's may be on PATH), it is not the lab's repository
    assert "repository.lab.invalid" not in on_node(kolla, "apt-cache policy glance-api 2>&1").stdout
