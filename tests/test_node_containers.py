"""The running code of a Kolla node is its container's image, compared by id with the target
image — never by timestamps. The real probe (``Cluster.probe_node``) and the real gates are fed a
Kolla node's answers (host ``ps``/``ss``, ``container inspect``, ``image inspect``, the version in
an image) as docker and podman print them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from glance_tui import gates as G
from glance_tui.adapters.local import CommandResult
from glance_tui.config import parse_config
from glance_tui.node.containers import ContainerReading, image_id, parse_container
from glance_tui.node.facts import CODE_INSTALLED, CODE_OLD
from glance_tui.node.verdict import Health
from glance_tui.probes import Cluster, DbCheck
from tests.test_gates import FakeCtx, check

OLD = "1" * 64  # the image the container was created from (2024.2, Glance 29.0.0)
NEW = "2" * 64  # the target image, pulled under the same tag (2025.1, Glance 30.0.0)
VERSIONS = {OLD: "glance 29.0.0\n", NEW: "glance 30.0.0\n"}
TARGET = "quay.io/openstack.kolla/glance-api:2025.1-ubuntu-noble"


def kolla_config(engine: str = "podman", n: int = 3):
    import os

    os.environ["CONTAINER_TEST_DB_PW"] = "pw-containers"
    return parse_config({
        "database": {"password_env": "CONTAINER_TEST_DB_PW"},
        "load_balancer": {"stats_url": "http://lb:8404/stats", "backend": "glance_api"},
        "commands": {"kind": "kolla", "kolla": {"engine": engine, "container": "glance_api", "image": TARGET.split(":")[0],
                                                "target_tag": TARGET.split(":")[1]}},
        "nodes": [{"name": f"g{i}", "ssh_host": f"10.0.0.{i}", "lb_server": f"g{i}", "api_url": f"http://10.0.0.{i}:9292"} for i in range(1, n + 1)],
        "policy": {"target_release": "2025.1"},
    })


def inspect(engine: str, image: str, *, running: bool = True, pid: int = 501, status: str | None = None, **state) -> str:
    """``{engine} container inspect glance_api`` as each engine prints it (the fields the probe reads)."""
    obj = {
        "Id": "c" * 64,
        "Name": "/glance_api" if engine == "docker" else "glance_api",
        "Image": f"sha256:{image}" if engine == "docker" else image,
        "State": {"Status": status or ("running" if running else "exited"), "Running": running, "Paused": False, "Restarting": False,
                  "Pid": pid if running else 0, "StartedAt": "2026-12-07T04:00:00.000000000Z", **state},
        "Config": {"Env": ["KOLLA_CONFIG_STRATEGY=COPY_ALWAYS", "PATH=/var/lib/kolla/venv/bin:/usr/bin"], "Labels": {"kolla_version": "19"}},
        "HostConfig": {"NetworkMode": "host", "RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0}, "Privileged": False},
        "Mounts": [{"Type": "bind", "Source": "/etc/kolla/glance-api", "Destination": "/var/lib/kolla/config_files", "RW": False}],
    }
    if engine == "podman":
        obj["ImageName"] = TARGET
    return json.dumps([obj], indent=4)


def image_inspect(engine: str, image: str) -> str:
    return json.dumps([{"Id": f"sha256:{image}" if engine == "docker" else image, "RepoTags": [TARGET], "Config": {"Env": ["PATH=/var/lib/kolla/venv/bin:/usr/bin"]}}])


# The host's view of a Kolla glance_api container: conmon → dumb-init (the container's pid) → uWSGI master → worker.
PS_RUNNING = """1700000000
1 0 100000 systemd /sbin/init
500 1 5000 conmon /usr/bin/conmon --api-version 1 -c cccc
501 500 4990 dumb-init dumb-init --single-child -- kolla_start
502 501 4990 uwsgi uwsgi /etc/glance/glance-api-uwsgi.ini
503 502 4990 uwsgi uwsgi /etc/glance/glance-api-uwsgi.ini
"""
PS_STOPPED = "1700000000\n1 0 100000 systemd /sbin/init\n"
SS_RUNNING = 'LISTEN 0 128 0.0.0.0:9292 0.0.0.0:* users:(("uwsgi",pid=502,fd=3),("uwsgi",pid=503,fd=3))\n'


@dataclass
class KollaNode:
    """One node's answers; ``None`` for a command that must not be asked."""

    engine: str = "podman"
    container: str | None = None  # inspect JSON; None = no such container
    target: str | None = NEW  # the target image's id; None = not pulled
    ps: str = PS_RUNNING
    ss: str = SS_RUNNING
    health: Health | None = None
    container_exit: int = 0
    asked: list[str] = field(default_factory=list)

    def answer(self, command: str) -> CommandResult:
        self.asked.append(command)
        ok = lambda out: CommandResult(command, 0, out, "", 0.01, False)  # noqa: E731
        if "ps -eo" in command:
            return ok(self.ps)
        if "ss -Htlnp" in command:
            return ok(self.ss)
        if " container inspect " in command:
            if self.container is None:
                err = "Error: no such container glance_api" if self.engine == "podman" else "Error: No such container: glance_api"
                return CommandResult(command, 125 if self.engine == "podman" else 1, "[]\n", err, 0.01, False)
            return CommandResult(command, self.container_exit, self.container, "", 0.01, False)
        if " image inspect " in command:
            if self.target is None:
                return CommandResult(command, 125, "[]\n", f"Error: {TARGET}: image not known", 0.01, False)
            return ok(image_inspect(self.engine, self.target))
        if command == "uname -n":
            return ok("node1\n")
        if "importlib.metadata" in command:
            image = next((i for i in VERSIONS if i in command), None)
            return ok(VERSIONS[image]) if image else CommandResult(command, 125, "", "Error: image not known", 0.01, False)
        raise AssertionError(f"unexpected command on a Kolla node: {command}")


async def probe(config, nodes: dict[str, KollaNode]):
    cluster = Cluster(config)

    async def run(cmd, **kw):
        return nodes[cmd.node].answer(cmd.command)

    async def health(url):
        node = next(n for name, n in nodes.items() if f"//{config.node(name).ssh_host}:" in url)
        return node.health or Health(url, refused=True)

    cluster.run = run  # type: ignore[method-assign]
    cluster.read_health = health  # type: ignore[method-assign]
    try:
        return {name: await cluster.probe_node(name) for name in nodes}
    finally:
        await cluster.close()


@pytest.mark.parametrize("engine", ["podman", "docker"])
async def test_pull_and_start_on_the_old_image_fails_the_contract_gates(engine):
    """The issue's case: the new image pulled, the container started again — it runs the OLD image."""
    config = kolla_config(engine)
    nodes = {f"g{i}": KollaNode(engine, inspect(engine, NEW)) for i in (1, 2)}
    nodes["g3"] = KollaNode(engine, inspect(engine, OLD))  # `pull` + `start`: still created from the old image
    facts = await probe(config, nodes)
    assert facts["g1"].on("2025.1") and facts["g1"].code == CODE_INSTALLED and facts["g1"].version == "30.0.0"
    g3 = facts["g3"]
    assert g3.running is True and g3.code == CODE_OLD and g3.stale is True and g3.deployed_current is False
    assert not g3.on("2025.1") and not g3.installed("2025.1")
    ctx = FakeCtx(config=config, nodes=facts, check=DbCheck("g1", 5, "2025.1"))
    for gate in (G.ALL_NODES_TARGET, G.NO_OLD_PROCESS):
        result = await check(gate, ctx)
        assert not result.ok, gate.id
        assert f"g3 (installed 29.0.0, container glance_api on image {OLD[:12]}, not the target image {TARGET} ({NEW[:12]})" in result.reason, result.reason
    # the same image under the same version number (a rebuilt image): still decided by id
    VERSIONS["3" * 64] = "glance 30.0.0\n"
    try:
        nodes["g3"] = KollaNode(engine, inspect(engine, "3" * 64))
        facts = await probe(config, nodes)
        assert facts["g3"].version == "30.0.0" and not facts["g3"].on("2025.1")
        assert not (await check(G.NO_OLD_PROCESS, FakeCtx(config=config, nodes=facts))).ok
    finally:
        del VERSIONS["3" * 64]
    # re-created on the target image and started: every gate passes
    nodes["g3"] = KollaNode(engine, inspect(engine, NEW))
    facts = await probe(config, nodes)
    ctx = FakeCtx(config=config, nodes=facts, check=DbCheck("g1", 5, "2025.1"))
    for gate in (G.ALL_NODES_TARGET, G.NO_OLD_PROCESS):
        assert (await check(gate, ctx)).ok, gate.id


async def test_a_stopped_container_on_the_old_image_is_not_upgraded():
    """Stopped, nothing old runs — but starting it would run the old image: not installed, upgrade needed."""
    config = kolla_config()
    node = KollaNode(container=inspect("podman", OLD, running=False), ps=PS_STOPPED, ss="")
    f = (await probe(config, {"g1": node, "g2": KollaNode(container=inspect("podman", NEW)), "g3": KollaNode(container=inspect("podman", NEW))}))["g1"]
    assert f.running is False and f.deployed_current is False and not f.on("2025.1") and f.fresh is True
    ctx = FakeCtx(config=config, nodes={"g1": f})
    assert (await check(G.NO_OLD_PROCESS, ctx)).ok  # nothing old serves...
    assert not (await check(G.ALL_NODES_TARGET, ctx)).ok  # ...but it is not upgraded


@pytest.mark.parametrize(("name", "node", "running", "current", "needle"), [
    ("running target", KollaNode(container=inspect("podman", NEW)), True, True, "on the target image"),
    ("restarted old", KollaNode(container=inspect("podman", OLD)), True, False, "not the target image"),
    ("created, not started", KollaNode(container=inspect("podman", NEW, running=False, status="created"), ps=PS_STOPPED, ss=""), False, True, "container glance_api is created"),
    ("missing container", KollaNode(container=None, ps=PS_STOPPED, ss=""), False, False, "no container glance_api"),
    ("target not pulled", KollaNode(container=inspect("podman", OLD), target=None), True, False, "is not on the node (pull it)"),
    ("docker ids", KollaNode("docker", inspect("docker", NEW)), True, True, "on the target image"),
    # unknown: the readings and the container disagree, or the container cannot be read
    ("running but nothing serves", KollaNode(container=inspect("podman", NEW), ps=PS_STOPPED, ss=""), None, True, "the readings disagree"),
    ("serving but container stopped", KollaNode(container=inspect("podman", NEW, running=False)), None, True, "something else serves"),
    ("serving but no container", KollaNode(container=None), None, False, "something else serves"),
    ("serving outside the container", KollaNode(container=inspect("podman", NEW, pid=777)), None, True, "outside container glance_api"),
    ("garbage", KollaNode(container="Error: short-name resolution\n"), None, None, "not JSON"),
    ("empty array", KollaNode(container="[]"), None, None, "array of one object"),
    ("two containers", KollaNode(container="[{}, {}]"), None, None, "array of one object"),
    ("no state", KollaNode(container='[{"Name": "glance_api", "Image": "' + NEW + '"}]'), None, None, "State.Running"),
    ("bad image id", KollaNode(container=inspect("podman", "not-an-id")), None, None, "not an image id"),
    ("paused", KollaNode(container=inspect("podman", NEW, Paused=True)), None, None, "paused"),
    ("inspect fails", KollaNode(container=inspect("podman", NEW), container_exit=125), None, None, "container inspect failed (exit 125)"),
    ("stopped, health answers", KollaNode(container=inspect("podman", NEW, running=False), ps=PS_STOPPED, ss="", health=Health("u", status=200)), None, True, "answered 200"),
])
async def test_container_truth_table(name, node, running, current, needle):
    others = {f"g{i}": KollaNode(container=inspect("podman", NEW)) for i in (2, 3)}
    f = (await probe(kolla_config(node.engine), {"g1": node, **others}))["g1"]
    assert f.running is running, (name, f.reason)
    assert f.deployed_current is current, (name, f.deployed_note)
    assert needle in f.reason or needle in f.deployed_note, (name, f.reason, f.deployed_note)
    if running is None:
        assert f.stale is None and f.fresh is None and not f.on("2025.1")
    assert f.installed_at is None  # no install time is read or used for a container
    assert not any("stat " in c for c in node.asked)


async def test_an_images_version_is_asked_once():
    node = KollaNode(container=inspect("podman", NEW))
    config = kolla_config()
    from glance_tui.node import containers

    containers._VERSIONS.pop(NEW, None)
    for _ in range(3):
        await probe(config, {"g1": node})
    assert sum("importlib.metadata" in c for c in node.asked) == 1


def test_image_ids_are_normalised():
    assert image_id("sha256:" + "A" * 64) == "a" * 64 == image_id("a" * 64)
    for bad in ("", "sha256:", "xyz", 5, None, "../../etc"):
        with pytest.raises(ValueError):
            image_id(bad)
    c = parse_container(inspect("docker", NEW))
    assert (c.name, c.image, c.running, c.pid) == ("glance_api", NEW, True, 501)


def test_a_reading_that_cannot_be_told_is_never_current():
    assert ContainerReading("glance_api", TARGET, container_error="x").deployed_current is None
    assert ContainerReading("glance_api", TARGET, target_error="x").deployed_current is None


# ---------------------------------------------------------------- the upgrade: re-create on the target image

KOLLA_INSPECT = {  # a Kolla glance_api as docker inspect prints it (the fields the re-create carries)
    "Name": "/glance_api", "Image": f"sha256:{OLD}",
    "State": {"Status": "exited", "Running": False, "Paused": False, "Restarting": False, "Pid": 0},
    "Config": {"Env": ["PATH=/var/lib/kolla/venv/bin:/usr/bin", "KOLLA_CONFIG_STRATEGY=COPY_ALWAYS", "KOLLA_SERVICE_NAME=glance-api",
                       "HTTP_PROXY=http://proxy:3128 'quoted' $(x)"],
               "Labels": {"build-date": "20261101", "kolla_version": "19.0.0", "deployed-by": "kolla-ansible"},
               "User": "glance", "Cmd": ["kolla_start"], "Entrypoint": ["dumb-init", "--single-child", "--"],
               "Healthcheck": {"Test": ["CMD-SHELL", "healthcheck_curl http://10.0.0.1:9292"], "Interval": 30000000000, "Timeout": 30000000000,
                               "StartPeriod": 5000000000, "Retries": 3}},
    "HostConfig": {"NetworkMode": "host", "PidMode": "", "IpcMode": "private", "Privileged": False,
                   "RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0}, "CapAdd": None, "SecurityOpt": ["label=disable"]},
    "Mounts": [
        {"Type": "bind", "Source": "/etc/kolla/glance-api", "Destination": "/var/lib/kolla/config_files", "RW": False, "Propagation": "rprivate"},
        {"Type": "volume", "Name": "glance", "Source": "/var/lib/docker/volumes/glance/_data", "Destination": "/var/lib/glance", "RW": True},
        {"Type": "volume", "Name": "kolla_logs", "Source": "/var/lib/docker/volumes/kolla_logs/_data", "Destination": "/var/log/kolla", "RW": True},
        {"Type": "bind", "Source": "/run/netns", "Destination": "/run/netns", "RW": True, "Propagation": "rshared"},
    ],
}
OLD_IMAGE_CONFIG = {"Env": ["PATH=/var/lib/kolla/venv/bin:/usr/bin"], "Labels": {"build-date": "20261101", "kolla_version": "19.0.0"},
                    "User": "glance", "Cmd": ["kolla_start"], "Entrypoint": ["dumb-init", "--single-child", "--"]}


def test_create_args_carry_the_containers_own_configuration():
    from glance_tui.node.containers import create_args

    box = parse_container(json.dumps([KOLLA_INSPECT]))
    args = create_args("docker", box.raw, OLD_IMAGE_CONFIG, TARGET, "glance_api-glance-tui-new")
    assert args[:4] == ["docker", "create", "--name", "glance_api-glance-tui-new"]
    text = " ".join(args)
    assert args[args.index("--network") + 1] == "host" and args[args.index("--restart") + 1] == "unless-stopped"
    for mount in ("/etc/kolla/glance-api:/var/lib/kolla/config_files:ro", "glance:/var/lib/glance", "kolla_logs:/var/log/kolla", "/run/netns:/run/netns:rshared"):
        assert mount in args, mount
    # only what the container adds to its image: not the image's PATH or labels, not its user or command
    envs = [args[i + 1] for i, a in enumerate(args) if a == "--env"]
    assert envs == ["KOLLA_CONFIG_STRATEGY=COPY_ALWAYS", "KOLLA_SERVICE_NAME=glance-api", "HTTP_PROXY=http://proxy:3128 'quoted' $(x)"]
    assert [args[i + 1] for i, a in enumerate(args) if a == "--label"] == ["deployed-by=kolla-ansible"]
    assert "--user" not in args and "--pid" not in args and args[args.index("--ipc") + 1] == "private" and "--privileged" not in args
    assert args[args.index("--health-cmd") + 1] == "healthcheck_curl http://10.0.0.1:9292" and "--health-interval 30s" in text
    assert args[-1] == TARGET  # the image's own command (kolla_start)
    privileged = json.loads(json.dumps(KOLLA_INSPECT))
    privileged["HostConfig"].update(Privileged=True, PidMode="host", RestartPolicy={"Name": "on-failure", "MaximumRetryCount": 5})
    args = create_args("podman", parse_container(json.dumps([privileged])).raw, OLD_IMAGE_CONFIG, TARGET, "n")
    assert "--privileged" in args and args[args.index("--pid") + 1] == "host" and args[args.index("--restart") + 1] == "on-failure:5"


@pytest.mark.parametrize(("change", "needle"), [
    (lambda d: d["Mounts"].append({"Type": "npipe", "Source": "x", "Destination": "/y"}), "only bind mounts"),
    (lambda d: d["Mounts"].append({"Type": "bind", "Source": "/a:b", "Destination": "/y"}), "':' or ','"),
    (lambda d: d["Config"].update(Entrypoint=["/bin/sh"]), "its own entrypoint"),
    (lambda d: d["HostConfig"].update(KernelMemory=1 << 30), "HostConfig.KernelMemory is set"),
    (lambda d: d["HostConfig"].update(BlkioDeviceReadBps=[{"Path": "/dev/sda", "Rate": 1}]), "HostConfig.BlkioDeviceReadBps is set"),
    (lambda d: d["HostConfig"].update(MemorySwap=1 << 30), "MemorySwap is set without a memory limit"),
    (lambda d: d["HostConfig"].update(PortBindings={"9292/tcp": [{"HostPort": "9292"}]}), "published ports are not carried"),
    (lambda d: d["HostConfig"].update(SecurityOpt=['seccomp={"defaultAction": "SCMP_ACT_ERRNO"}']), "seccomp profile's content"),
    (lambda d: d["HostConfig"].update(CgroupnsMode="ns:/proc/1/ns/cgroup"), "cgroup namespace mode"),
    (lambda d: d["HostConfig"].update(Ulimits=[{"Soft": 1, "Hard": 2}]), "Ulimits: an entry without a name"),
    (lambda d: d["HostConfig"].update(LogConfig={"Type": "json-file", "Config": {"max-size": 10}}), "log option max-size"),
    (lambda d: d["Config"].update(Hostname="glance-a"), "cannot tell whether hostname 'glance-a'"),
    (lambda d: d["Config"].update(StopSignal="SIGNOPE"), "unknown stop signal"),
    (lambda d: d["Config"].update(Domainname="example.org"), "Config.Domainname is set"),
    (lambda d: d["HostConfig"].update(VolumeDriver="rexray"), "HostConfig.VolumeDriver is set"),
    (lambda d: d["HostConfig"].update(DeviceRequests=[{"Driver": "nvidia", "Count": -1}]), "HostConfig.DeviceRequests is set"),
    (lambda d: d.update(NetworkSettings={"Networks": {"glance_net": {"IPAMConfig": {"IPv4Address": "172.20.0.5"}}}}), "fixed address"),
    (lambda d: d["Config"].update(Env="PATH=x"), "Config.Env is not a list"),
])
def test_what_cannot_be_carried_is_named(change, needle):
    from glance_tui.node.containers import create_args

    data = json.loads(json.dumps(KOLLA_INSPECT))
    change(data)
    with pytest.raises(ValueError, match=needle.replace("(", r"\(")):
        create_args("docker", parse_container(json.dumps([data])).raw, OLD_IMAGE_CONFIG, TARGET, "n")


def _values(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == flag]


# What kolla-ansible's docker worker sets (dimensions' ulimits, cgroupns, tmpfs) and an operator may
# (log options, annotations, devices, DNS, ...), as docker inspect prints it.
DOCKER_EXTRA = {
    "Id": "d" * 64,
    "Config": {"Hostname": "node1", "StopSignal": "SIGINT", "WorkingDir": "/var/lib/glance", "Tty": True, "StopTimeout": 20},
    "HostConfig": {
        "Ulimits": [{"Name": "nofile", "Soft": 1048576, "Hard": 1048576}, {"Name": "memlock", "Soft": -1, "Hard": -1}],
        "LogConfig": {"Type": "json-file", "Config": {"max-size": "50m", "max-file": "5"}},
        "Annotations": {"org.example/owner": "ops"}, "CgroupnsMode": "host", "ShmSize": 67108864, "IpcMode": "private",
        "CapAdd": ["AUDIT_WRITE"], "CapDrop": ["MKNOD"], "Devices": [{"PathOnHost": "/dev/kvm", "PathInContainer": "/dev/kvm", "CgroupPermissions": "rwm"}],
        "Tmpfs": {"/run/lock": "size=10m"}, "Dns": ["10.0.0.53"], "DnsSearch": ["example.org"], "DnsOptions": ["ndots:2"],
        "ExtraHosts": ["db.example.org:10.0.0.9"], "Init": True, "Sysctls": {"net.ipv4.tcp_keepalive_time": "600"},
        "Memory": 4 << 30, "MemorySwap": 8 << 30, "MemoryReservation": 1 << 30, "CpuShares": 512, "CpuPeriod": 100000, "CpuQuota": 200000,
        "CpusetCpus": "0-3", "BlkioWeight": 300, "PidsLimit": None, "OomScoreAdj": -500, "MemorySwappiness": None,
    },
}


def _merged(base: dict, extra: dict) -> dict:
    data = json.loads(json.dumps(base))
    for key, value in extra.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return data


def test_create_args_carry_every_setting_docker_prints():
    from glance_tui.node.container_args import create_args

    args = create_args("docker", _merged(KOLLA_INSPECT, DOCKER_EXTRA), OLD_IMAGE_CONFIG, TARGET, "n", node_host_name="node1")
    expected = {
        "--ulimit": ["nofile=1048576:1048576", "memlock=-1:-1"], "--log-driver": ["json-file"], "--log-opt": ["max-file=5", "max-size=50m"],
        "--annotation": ["org.example/owner=ops"], "--cgroupns": ["host"], "--shm-size": ["67108864"], "--cap-add": ["AUDIT_WRITE"],
        "--cap-drop": ["MKNOD"], "--device": ["/dev/kvm:/dev/kvm:rwm"], "--tmpfs": ["/run/lock:size=10m"], "--dns": ["10.0.0.53"],
        "--dns-search": ["example.org"], "--dns-option": ["ndots:2"], "--add-host": ["db.example.org:10.0.0.9"],
        "--stop-signal": ["2"], "--stop-timeout": ["20"], "--workdir": ["/var/lib/glance"], "--sysctl": ["net.ipv4.tcp_keepalive_time=600"],
        "--memory": [str(4 << 30)], "--memory-swap": [str(8 << 30)], "--memory-reservation": [str(1 << 30)], "--cpu-shares": ["512"],
        "--cpu-period": ["100000"], "--cpu-quota": ["200000"], "--cpuset-cpus": ["0-3"], "--blkio-weight": ["300"], "--oom-score-adj": ["-500"],
        "--security-opt": ["label=disable"], "--network": ["host"],
    }
    for flag, values in expected.items():
        assert _values(args, flag) == values, flag
    assert "--init" in args and "--tty" in args
    # the host's own name under --network host is the engine's; private modes, unset limits are not passed
    assert _values(args, "--ipc") == ["private"]  # explicit: the daemon's default IPC mode may differ
    for absent in ("--hostname", "--pid", "--uts", "--pids-limit", "--memory-swappiness", "--cpus", "--privileged", "--runtime", "--rm"):
        assert absent not in args, absent
    assert args[-1] == TARGET
    # a name of the operator's under host networking, or any name on a bridge that is not the id's prefix
    named = _merged(KOLLA_INSPECT, {"Config": {"Hostname": "glance-a"}})
    assert _values(create_args("docker", named, OLD_IMAGE_CONFIG, TARGET, "n", node_host_name="node1"), "--hostname") == ["glance-a"]
    bridge = _merged(KOLLA_INSPECT, {"Id": "e" * 64, "Config": {"Hostname": "e" * 12}, "HostConfig": {"NetworkMode": "bridge"}})
    assert "--hostname" not in create_args("docker", bridge, OLD_IMAGE_CONFIG, TARGET, "n")  # the engine's default
    cpus = _merged(KOLLA_INSPECT, {"HostConfig": {"NanoCpus": 1500000000, "PidMode": "host", "IpcMode": "host", "ShmSize": 67108864}})
    args = create_args("docker", cpus, OLD_IMAGE_CONFIG, TARGET, "n")
    assert _values(args, "--cpus") == ["1.5"] and _values(args, "--pid") == ["host"] and _values(args, "--ipc") == ["host"]
    assert "--shm-size" not in args  # the host's IPC namespace: its /dev/shm is not the container's


# The same settings as podman 4.3 inspect prints them (captured from a real `podman create`): ulimits
# as RLIMIT_* (NOFILE/NPROC added by podman beside an explicit one), annotations under Config with
# podman's own, LogConfig's Path/Size/Tag, a numeric StopSignal, CgroupMode, CAP_ names.
PODMAN_ID = "5cb96cd95fc2a55726ed1dc8c459b8abec64801c3fab5c11ef936811bebe55ca"
PODMAN_INSPECT = {
    "Id": PODMAN_ID, "Name": "glance_api", "Image": OLD,
    "State": {"Status": "exited", "Running": False, "Paused": False, "Restarting": False, "Pid": 0},
    "Config": {"Hostname": "myhost", "Env": ["PATH=/var/lib/kolla/venv/bin:/usr/bin", "TERM=xterm", "container=podman", "HOSTNAME=myhost",
                                            "KOLLA_CONFIG_STRATEGY=COPY_ALWAYS"],
               "Cmd": ["kolla_start"], "Entrypoint": "dumb-init --single-child --", "WorkingDir": "/", "Labels": {"kolla_version": "19.0.0"},
               "Annotations": {"foo": "bar", "io.kubernetes.cri-o.TTY": "false", "io.podman.annotations.autoremove": "FALSE",
                               "io.podman.annotations.init": "TRUE", "io.podman.annotations.label": "disable",
                               "io.podman.annotations.privileged": "FALSE", "io.podman.annotations.publish-all": "FALSE"},
               "StopSignal": 15, "StopTimeout": 10, "User": "glance", "HealthcheckOnFailureAction": "none", "Umask": "0022", "Timeout": 0,
               "sdNotifyMode": "container"},
    "HostConfig": {
        "Binds": ["glance:/var/lib/glance:rw,rprivate,nosuid,nodev,rbind"], "CgroupManager": "cgroupfs", "CgroupMode": "host",
        "LogConfig": {"Type": "k8s-file", "Config": None, "Path": "/var/log/kolla/glance/ctr.log", "Tag": "glance", "Size": "10MB"},
        "NetworkMode": "host", "PortBindings": {}, "RestartPolicy": {"Name": "", "MaximumRetryCount": 0}, "VolumesFrom": None,
        "CapAdd": ["CAP_AUDIT_WRITE", "CAP_NET_ADMIN"], "CapDrop": ["CAP_MKNOD"], "Dns": [], "DnsOptions": [], "DnsSearch": [],
        "ExtraHosts": ["a.b:1.2.3.5"], "GroupAdd": [], "IpcMode": "shareable", "Cgroups": "default", "Links": None, "OomScoreAdj": 0,
        "PidMode": "private", "Privileged": False, "ReadonlyRootfs": False, "SecurityOpt": ["label=disable"],
        "Tmpfs": {"/run/x": "size=10m,rw,rprivate,nosuid,nodev,tmpcopyup"}, "UTSMode": "private", "UsernsMode": "", "ShmSize": 65536000,
        "Runtime": "oci", "CpuShares": 0, "Memory": 0, "NanoCpus": 0, "CgroupParent": "", "BlkioWeight": 0, "BlkioWeightDevice": None,
        "CpuPeriod": 0, "CpuQuota": 0, "CpusetCpus": "", "CpusetMems": "", "Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/xnull", "CgroupPermissions": ""}],
        "KernelMemory": 0, "MemoryReservation": 0, "MemorySwap": 0, "MemorySwappiness": 0, "OomKillDisable": False, "Init": True, "PidsLimit": 2048,
        "Ulimits": [{"Name": "RLIMIT_NOFILE", "Soft": 1048576, "Hard": 1048576}, {"Name": "RLIMIT_CORE", "Soft": 1000, "Hard": 2000},
                    {"Name": "RLIMIT_NPROC", "Soft": 1048576, "Hard": 1048576}],
    },
    "Mounts": [{"Type": "volume", "Name": "glance", "Source": "/var/lib/containers/storage/volumes/glance/_data", "Destination": "/var/lib/glance",
                "Driver": "local", "Options": ["nosuid", "nodev", "rbind"], "RW": True, "Propagation": "rprivate"}],
}
PODMAN_IMAGE_CONFIG = {**OLD_IMAGE_CONFIG, "Entrypoint": ["dumb-init", "--single-child", "--"]}


def test_create_args_carry_every_setting_podman_prints():
    from glance_tui.node.container_args import create_args

    args = create_args("podman", PODMAN_INSPECT, PODMAN_IMAGE_CONFIG, TARGET, "n", node_host_name="node1")
    expected = {
        "--hostname": ["myhost"], "--annotation": ["foo=bar"], "--log-driver": ["k8s-file"],
        "--log-opt": ["max-size=10MB", "path=/var/log/kolla/glance/ctr.log", "tag=glance"],
        "--ulimit": ["nofile=1048576:1048576", "core=1000:2000", "nproc=1048576:1048576"], "--cgroupns": ["host"], "--shm-size": ["65536000"],
        "--cap-add": ["CAP_AUDIT_WRITE", "CAP_NET_ADMIN"], "--cap-drop": ["CAP_MKNOD"], "--device": ["/dev/null:/dev/xnull"],
        "--tmpfs": ["/run/x:size=10m,rw,rprivate,nosuid,nodev,tmpcopyup"], "--add-host": ["a.b:1.2.3.5"], "--pids-limit": ["2048"],
        "--security-opt": ["label=disable"], "--env": ["TERM=xterm", "KOLLA_CONFIG_STRATEGY=COPY_ALWAYS"], "--volume": ["glance:/var/lib/glance"],
        "--stop-timeout": ["10"],
    }
    for flag, values in expected.items():
        assert _values(args, flag) == values, flag
    assert "--init" in args
    assert _values(args, "--ipc") == ["shareable"]
    for absent in ("--umask", "--sdnotify", "--timeout", "--runtime", "--pid", "--uts", "--stop-signal", "--workdir", "--user", "--restart", "--memory-swappiness", "--cgroups", "--health-on-failure"):
        assert absent not in args, absent
    # podman's own log file (under the container's directory), its default hostname: the engine's
    default = _merged(PODMAN_INSPECT, {"Config": {"Hostname": "node1"}, "HostConfig": {
        "LogConfig": {"Type": "journald", "Path": f"/var/lib/containers/storage/overlay-containers/{PODMAN_ID}/userdata/ctr.log", "Size": "0B", "Tag": ""}}})
    args = create_args("podman", default, PODMAN_IMAGE_CONFIG, TARGET, "n", node_host_name="node1")
    assert "--hostname" not in args and "--log-opt" not in args and _values(args, "--log-driver") == ["journald"]
    own_signal = _merged(PODMAN_INSPECT, {"Config": {"StopSignal": 2}})
    assert _values(create_args("podman", own_signal, PODMAN_IMAGE_CONFIG, TARGET, "n", node_host_name="myhost"), "--stop-signal") == ["2"]


async def test_recreate_command_replaces_a_stopped_container_and_keeps_it_otherwise():
    import shlex

    from glance_tui.commands import NodeCommands
    from glance_tui.errors import GlanceTuiError
    from glance_tui.node.containers import recreate_command

    config = kolla_config("docker")
    cmds = NodeCommands(config, "g1")
    node = KollaNode("docker", json.dumps([KOLLA_INSPECT]))

    async def run(cmd):
        if f"image inspect {OLD}" in cmd.command:
            return CommandResult(cmd.command, 0, json.dumps([{"Id": f"sha256:{OLD}", "Config": OLD_IMAGE_CONFIG}]), "", 0.01, False)
        return node.answer(cmd.command)

    cmd = await recreate_command(run, cmds)
    assert cmd is not None and cmd.changes
    first, create = cmd.command.split("; ", 1)
    assert first == "docker container rm --force glance_api-glance-tui-new >/dev/null 2>&1"
    create, rm, rename = create.split(" && ")
    assert shlex.split(rm) == ["docker", "container", "rm", "glance_api"]  # never --force: a running container stays
    assert shlex.split(rename) == ["docker", "rename", "glance_api-glance-tui-new", "glance_api"]
    argv = shlex.split(create)  # every value quoted: the hostile-looking env value is one argument
    assert "HTTP_PROXY=http://proxy:3128 'quoted' $(x)" in argv and argv[-1] == TARGET
    # already on the target image: nothing to do
    node.container = inspect("docker", NEW, running=False)
    assert await recreate_command(run, cmds) is None
    # a run ended between removing the old container and renaming the new one: the rename finishes it
    node.container = None
    spare = inspect("docker", NEW, running=False)
    answer = node.answer

    def with_spare(command: str) -> CommandResult:
        if "inspect glance_api-glance-tui-new" in command:
            return CommandResult(command, 0, spare, "", 0.01, False)
        return answer(command)

    node.answer = with_spare  # type: ignore[method-assign]
    finish = await recreate_command(run, cmds)
    assert finish is not None and shlex.split(finish.command) == ["docker", "rename", "glance_api-glance-tui-new", "glance_api"]
    spare = inspect("docker", OLD, running=False)  # a spare on another image is not the one to finish with
    with pytest.raises(GlanceTuiError, match="no container glance_api"):
        await recreate_command(run, cmds)
    node.answer = answer  # type: ignore[method-assign]
    # running, missing, unreadable, target not pulled: refused with the reason
    for container, target, needle in ((inspect("docker", OLD), NEW, "is running"), (None, NEW, "no container glance_api"),
                                      ("garbage", NEW, "not JSON"), (inspect("docker", OLD, running=False), None, "pull it")):
        node.container, node.target = container, target
        with pytest.raises(GlanceTuiError, match=needle):
            await recreate_command(run, cmds)


def test_plan_previews_a_kolla_nodes_commands(tmp_path, capsys, monkeypatch):
    from glance_tui.cli import main
    from tests.test_fuzz_config import to_toml

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("CONTAINER_TEST_DB_PW", "pw-containers")
    data = kolla_config().model_dump(by_alias=True, exclude_none=True, exclude_defaults=True)
    data["commands"] = {"kind": "kolla", "kolla": {"engine": "podman", "container": "glance_api", "image": TARGET.split(":")[0], "target_tag": TARGET.split(":")[1]}}
    data["load_balancer"] = {"stats_url": "http://lb:8404/stats", "backend": "glance_api"}
    data["database"] = {"password_env": "CONTAINER_TEST_DB_PW"}
    path = tmp_path / "kolla.toml"
    path.write_text(to_toml(data))
    assert main(["plan", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert "[g1] $ podman stop glance_api" in out and "[g1] $ podman start glance_api" in out
    assert f"[g1] $ podman pull {TARGET}" in out
    assert f"[g1] $ podman create --name glance_api-glance-tui-new <every setting of glance_api" in out and "re-created on the target image, not started" in out
    assert "--entrypoint glance-manage \"$(podman container inspect --format '{{.Image}}' glance_api)\" --config-file /var/lib/kolla/config_files/glance-api.conf db expand" in out
    assert "apt-get" not in out and "systemctl" not in out and "dpkg-query" not in out


async def test_status_names_a_stopped_container_on_the_old_image():
    from glance_tui.probes import LBFacts, Snapshot, DBState
    from glance_tui.report import snapshot_dict, status_text

    config = kolla_config(n=2)
    nodes = {"g1": KollaNode(container=inspect("podman", OLD, running=False), ps=PS_STOPPED, ss=""), "g2": KollaNode(container=inspect("podman", NEW))}
    facts = await probe(config, nodes)
    snap = Snapshot(LBFacts({}), facts, DBState(None))
    text = status_text(snap, None, {"g1": "g1", "g2": "g2"})
    assert f"g1: container glance_api on image {OLD[:12]}, not the target image {TARGET}" in text
    assert "g2:" not in text.split("\n\n", 1)[-1]
    assert [n["image"] for n in snapshot_dict(snap, None)["nodes"]] == [facts["g1"].deployed_note, facts["g2"].deployed_note]


class RollbackCtx:
    """What the Kolla rollback reads: the real commands, a run state, the node's inspect answers
    (the container's JSON; which image ids the node holds)."""

    def __init__(self, container: str | None, images: set[str]) -> None:
        from glance_tui.context import RunState

        self.config = kolla_config("docker")
        self.state = RunState()
        self.container, self.images, self.saved = container, images, 0

    def commands(self, node: str):
        from glance_tui.commands import NodeCommands

        return NodeCommands(self.config, node)

    def save_state(self) -> None:
        self.saved += 1

    async def run(self, cmd, **kw) -> CommandResult:
        command = cmd.command
        if " container inspect " in command:
            if self.container is None:
                return CommandResult(command, 1, "[]\n", "Error: No such container: glance_api", 0.01, False)
            return CommandResult(command, 0, self.container, "", 0.01, False)
        if " image inspect " in command:
            wanted = command.rsplit(" ", 1)[1]
            held = NEW if wanted == TARGET else wanted
            if held not in self.images:
                return CommandResult(command, 1, "[]\n", f"Error: No such image: {wanted}", 0.01, False)
            return CommandResult(command, 0, json.dumps([{"Id": f"sha256:{held}", "Config": OLD_IMAGE_CONFIG}]), "", 0.01, False)
        if command == "uname -n":
            return CommandResult(command, 0, "node1\n", "", 0.01, False)
        raise AssertionError(command)


async def test_a_kolla_rollback_goes_back_to_the_image_this_run_saw():
    """The upgrade journals the image the container ran before its re-create; the rollback
    re-creates it on that image id. Without that record a container on the target image is
    refused (never guessed from a tag), and so is an old image that is gone."""
    import shlex

    from glance_tui.errors import GlanceTuiError
    from glance_tui.kolla_rollback import remember_prior_image, rollback_image
    from glance_tui.node.containers import recreate_command

    ctx = RollbackCtx(json.dumps([{**KOLLA_INSPECT, "Image": f"sha256:{OLD}"}]), {OLD, NEW})
    await remember_prior_image(ctx, "g1")
    assert ctx.state.prior_images == {"g1": OLD} and ctx.saved == 1
    ctx.container = json.dumps([{**KOLLA_INSPECT, "Image": f"sha256:{NEW}"}])  # re-created on the target; a resumed upgrade keeps the first record
    await remember_prior_image(ctx, "g1")
    assert ctx.state.prior_images == {"g1": OLD} and ctx.saved == 1
    assert await rollback_image(ctx, "g1") == OLD
    back = await recreate_command(ctx.run, ctx.commands("g1"), image=OLD)
    assert back is not None and "the one it ran before" in back.purpose
    create = shlex.split(back.command.split("; ", 1)[1].split(" && ")[0])
    assert create[-1] == OLD and create[:2] == ["docker", "create"]
    ctx.container = inspect("docker", OLD, running=False)  # already back: nothing to re-create
    assert await recreate_command(ctx.run, ctx.commands("g1"), image=OLD) is None
    # the old image pruned meanwhile: refused before anything changes
    ctx.container, ctx.images = inspect("docker", NEW, running=False), {NEW}
    with pytest.raises(GlanceTuiError, match="no longer on the node"):
        await rollback_image(ctx, "g1")
    # a run that never re-created it: on the target image, refused; on another image, nothing to re-create
    ctx.state.prior_images.clear()
    with pytest.raises(GlanceTuiError, match="did not see the image it ran before"):
        await rollback_image(ctx, "g1")
    ctx.container, ctx.images = inspect("docker", OLD, running=False), {OLD, NEW}
    assert await rollback_image(ctx, "g1") is None
    ctx.container = "not json"
    with pytest.raises(GlanceTuiError, match="rollback of g1 refused"):
        await rollback_image(ctx, "g1")
