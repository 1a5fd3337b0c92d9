"""The running code of an OpenStack-Ansible node: the venv its serving processes run from (real
probe and gates, fed an OSA node's answers from inside its LXC container)."""

from __future__ import annotations

import shlex

import pytest

from glance_tui import gates as G
from glance_tui.adapters.local import CommandResult
from glance_tui.config import parse_config
from glance_tui.node.facts import CODE_INSTALLED, CODE_MIXED, CODE_OLD
from glance_tui.node.venvs import is_target, venvs_of
from glance_tui.node.verdict import Health
from glance_tui.probes import Cluster, DbCheck
from tests.test_gates import FakeCtx, check

VENV_AT = 1_700_000_000  # the target venv's python was made then (node clock)
NOW = VENV_AT + 1000
CONTAINER = "infra1_glance_container-1a2b3c4d"


def osa_config():
    import os

    os.environ["VENV_TEST_DB_PW"] = "pw-venvs"
    return parse_config({
        "database": {"password_env": "VENV_TEST_DB_PW"},
        "load_balancer": {"stats_url": "http://lb:8404/stats", "backend": "glance_api"},
        "commands": {"kind": "osa", "upgrade": "ssh deploy openstack-ansible os-glance-install.yml --limit {node}",
                     "osa": {"container": CONTAINER, "venv_tag": "31.1.0"}},
        "nodes": [{"name": f"g{i}", "ssh_host": f"10.0.0.{i}", "lb_server": f"g{i}", "api_url": f"http://10.0.0.{i}:9292"} for i in (1, 2)],
        "policy": {"target_release": "2025.2"},
    })


def uwsgi(tag: str, pid: int, ppid: int, age: int) -> str:
    return f"{pid} {ppid} {age} uwsgi /openstack/venvs/uwsgi-{tag}-python3/bin/uwsgi --autoload --ini /etc/uwsgi/glance-api.ini"


def ps(*lines: str) -> str:
    return "\n".join([str(NOW), "1 0 99999 systemd /sbin/init", *lines]) + "\n"


SS = 'LISTEN 0 100 0.0.0.0:9292 0.0.0.0:* users:(("uwsgi",pid=200,fd=3))\n'


def answers(processes: str, version: str = "31.1.0", venv_tag: str = "31.1.0", ss: str = SS):
    async def run(cmd, **kw):
        argv = shlex.split(cmd.command)
        assert argv[:4] == ["lxc-attach", "-n", CONTAINER, "--"], cmd.command  # everything runs in the container
        inner = argv[-1]
        if "ps -eo" in inner:
            return CommandResult(cmd.command, 0, processes, "", 0.01, False)
        if "ss -Htlnp" in inner:
            return CommandResult(cmd.command, 0, ss, "", 0.01, False)
        if "importlib.metadata" in inner:
            assert "/etc/uwsgi/glance-api.ini" in inner  # the venv the unit is configured with
            return CommandResult(cmd.command, 0, f"glance {version}\nvenv=/openstack/venvs/glance-{venv_tag}\n", "", 0.01, False)
        if inner.startswith("stat "):
            assert "/openstack/venvs/glance-31.1.0/bin/python" in inner
            return CommandResult(cmd.command, 0, f"{VENV_AT}\n", "", 0.01, False)
        raise AssertionError(cmd.command)

    return run


async def probe(processes: str, name: str = "g1", **configured):
    cluster = Cluster(osa_config())

    async def refused(url):
        return Health(url, refused=True)

    cluster.run = answers(processes, **configured)  # type: ignore[method-assign]
    cluster.read_health = refused  # type: ignore[method-assign]
    try:
        return await cluster.probe_node(name)
    finally:
        await cluster.close()


@pytest.mark.parametrize(("case", "processes", "code", "needle"), [
    ("target venv", ps(uwsgi("31.1.0", 200, 1, 500), uwsgi("31.1.0", 201, 200, 500)), CODE_INSTALLED, "every process runs from a venv of 31.1.0"),
    # restarted after the target venv was built, but still from the old venv: the venv decides, not the start time
    ("old venv, young process", ps(uwsgi("31.0.0", 200, 1, 500), uwsgi("31.0.0", 201, 200, 500)), CODE_OLD, "runs from /openstack/venvs/uwsgi-31.0.0-python3"),
    ("one worker from the old venv", ps(uwsgi("31.1.0", 200, 1, 500), uwsgi("31.0.0", 201, 200, 500)), CODE_MIXED, "pid 201 runs from"),
    # no venv on the command line (a distro install): dated against the target venv, as packages are
    ("no venv, started after", ps("200 1 500 uwsgi uwsgi --ini /etc/uwsgi/glance-api.ini"), CODE_INSTALLED, "pid 200 match"),
    ("no venv, started before", ps("200 1 5000 uwsgi uwsgi --ini /etc/uwsgi/glance-api.ini"), CODE_OLD, "pid 200 match"),
])
async def test_osa_running_code(case, processes, code, needle):
    f = await probe(processes)
    assert f.running is True and f.code == code, (case, f.reason)
    assert needle in f.reason, (case, f.reason)
    assert f.version == "31.1.0" and f.release == "2025.2" and f.deployed_current is True


async def test_an_osa_node_on_the_old_venv_fails_the_contract_gates():
    old = await probe(ps(uwsgi("31.0.0", 200, 1, 500), uwsgi("31.0.0", 201, 200, 500)), "g2")
    new = await probe(ps(uwsgi("31.1.0", 200, 1, 500)), "g1")
    ctx = FakeCtx(config=osa_config(), nodes={"g1": new, "g2": old}, check=DbCheck("g1", 5, "2025.2"))
    for gate in (G.ALL_NODES_TARGET, G.NO_OLD_PROCESS):
        result = await check(gate, ctx)
        assert not result.ok and "g2" in result.reason and "g1" not in result.reason.split(":", 1)[-1], (gate.id, result.reason)
    ctx.nodes["g2"] = await probe(ps(uwsgi("31.1.0", 200, 1, 500)), "g2")
    for gate in (G.ALL_NODES_TARGET, G.NO_OLD_PROCESS):
        assert (await check(gate, ctx)).ok, gate.id


def test_venv_names():
    assert venvs_of("/openstack/venvs/uwsgi-31.1.0-python3/bin/uwsgi --ini /openstack/venvs/glance-31.1.0/x.ini", "/openstack/venvs/") == [
        "uwsgi-31.1.0-python3", "glance-31.1.0"]
    assert venvs_of("/usr/bin/uwsgi --ini x", "/openstack/venvs") == []
    assert is_target("glance-31.1.0", "31.1.0") and not is_target("glance-31.1.01", "31.1.0") and not is_target("glance-1.1.0", "31.1.0")


async def test_a_unit_configured_with_the_old_venv_is_not_upgraded():
    """Stopped, the target venv even built — but the unit still names the old venv: upgrade needed."""
    f = await probe(ps(), version="31.0.0", venv_tag="31.0.0", ss="")
    assert f.running is False and f.deployed_current is False and not f.on("2025.2")
    assert "the glance-api unit runs /openstack/venvs/glance-31.0.0, not the target venv /openstack/venvs/glance-31.1.0" in f.deployed_note
    ctx = FakeCtx(config=osa_config(), nodes={"g1": f})
    assert not (await check(G.ALL_NODES_TARGET, ctx)).ok


def test_plan_previews_an_osa_nodes_commands(tmp_path, capsys, monkeypatch):
    from glance_tui.cli import main
    from tests.test_fuzz_config import to_toml

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("VENV_TEST_DB_PW", "pw-venvs")
    data = {"database": {"password_env": "VENV_TEST_DB_PW"}, "load_balancer": {"stats_url": "http://lb:8404/stats", "backend": "glance_api"},
            "commands": {"kind": "osa", "upgrade": "ssh deploy openstack-ansible os-glance-install.yml --limit {node}",
                         "osa": {"container": CONTAINER, "venv_tag": "31.1.0"}},
            "nodes": [{"name": f"g{i}", "ssh_host": f"10.0.0.{i}", "lb_server": f"g{i}", "api_url": f"http://10.0.0.{i}:9292"} for i in (1, 2)],
            "policy": {"target_release": "2025.2"}}
    path = tmp_path / "osa.toml"
    path.write_text(to_toml(data))
    assert main(["plan", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"[g1] $ lxc-attach -n {CONTAINER} -- sh -c 'systemctl stop glance-api'" in out
    assert "[g2] $ ssh deploy openstack-ansible os-glance-install.yml --limit g2" in out
    assert f"[g1] $ lxc-attach -n {CONTAINER} -- /openstack/venvs/glance-31.1.0/bin/glance-manage db expand" in out
    assert "apt-get" not in out and "dpkg-query" not in out
