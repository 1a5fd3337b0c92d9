"""One real container: the truth of a Kolla node read from real ``podman`` (with ``runc``, images
made locally as NOTES.md describes): a container restarted after a new image arrived under its tag
is stale; after the upgrade's re-create command it runs the target image. Skipped when podman
cannot run containers here."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

from glance_tui.adapters.local import LocalShell
from glance_tui.commands import NodeCommands
from glance_tui.config import parse_config
from glance_tui.node.containers import recreate_command
from glance_tui.node.facts import CODE_INSTALLED, CODE_OLD
from glance_tui.node.probe import probe_node
from glance_tui.node.verdict import Health

pytestmark = pytest.mark.skipif(not (shutil.which("podman") and shutil.which("runc")),
                                reason="podman and runc are not installed (apt-get install -y podman runc)")

CONTAINERS_CONF = """[containers]
default_ulimits = []
pids_limit = 0
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
"""


def rootfs_tar(path: Path, program: str, version: str) -> None:
    """A tiny image: the host's dash and sleep (with their libraries); ``program`` is sleep under a
    Glance-like name, ``python3`` prints the image's Glance version as importlib.metadata would."""
    with tarfile.open(path, "w") as tar:
        files = {"/bin/sh": shutil.which("dash") or "/bin/dash", f"/usr/bin/{program}": shutil.which("sleep") or "/bin/sleep",
                 "/bin/cat": shutil.which("cat") or "/bin/cat", "/bin/mkdir": shutil.which("mkdir") or "/bin/mkdir"}
        for binary in list(files.values()):
            out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
            for word in out.split():
                if word.startswith("/"):
                    files[word] = word
        for inside, outside in files.items():
            tar.add(os.path.realpath(outside), arcname=inside.lstrip("/"))
        script = path.with_suffix(".py3")
        script.write_text(f"#!/bin/sh\necho glance {version}\n")
        script.chmod(0o755)
        tar.add(script, arcname="usr/bin/python3")
        passwd = path.with_suffix(".passwd")  # `--user root` (read_config's one-off container) needs it
        passwd.write_text("root:x:0:0:root:/root:/bin/sh\n")
        tar.add(passwd, arcname="etc/passwd")


@pytest.fixture
def podman(tmp_path, monkeypatch):
    """podman on its own storage (vfs under tmp_path) and configuration: nothing shared with a lab."""
    (tmp_path / "containers.conf").write_text(CONTAINERS_CONF)
    # a short run root: conmon's attach socket path must fit a unix socket (else `podman run` waits ~20 s)
    runroot = tempfile.mkdtemp(prefix="kinds-podman-", dir="/tmp")
    (tmp_path / "storage.conf").write_text(f'[storage]\ndriver = "vfs"\ngraphroot = "{tmp_path}/graph"\nrunroot = "{runroot}"\n')
    monkeypatch.setenv("CONTAINERS_CONF", str(tmp_path / "containers.conf"))
    monkeypatch.setenv("CONTAINERS_STORAGE_CONF", str(tmp_path / "storage.conf"))

    def run(*args: str) -> str:
        return subprocess.run(["podman", *args], capture_output=True, text=True, check=True, timeout=120).stdout

    probe = subprocess.run(["podman", "info"], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"podman cannot run here: {probe.stderr.strip()[:200]}")
    yield run
    subprocess.run(["podman", "rm", "--all", "--force", "--time", "0"], capture_output=True, timeout=120)
    subprocess.run(["podman", "rmi", "--all", "--force"], capture_output=True, timeout=120)
    shutil.rmtree(runroot, ignore_errors=True)


async def test_restart_on_the_old_image_is_stale_and_the_recreate_runs_the_target(tmp_path, podman):
    name = f"glance_api_{secrets.token_hex(3)}"
    program = f"glance-api-{secrets.token_hex(3)}"  # no other process on this machine matches it
    repo = f"localhost/kinds-test-{secrets.token_hex(3)}"
    for version, tar in (("29.0.0", tmp_path / "old.tar"), ("30.0.0", tmp_path / "new.tar")):
        rootfs_tar(tar, program, version)
    import_args = ["--change", f'ENTRYPOINT ["/usr/bin/{program}"]', "--change", 'CMD ["100000"]']
    podman("import", *import_args, str(tmp_path / "old.tar"), f"{repo}:2025.1")
    podman("create", "--name", name, "--network", "host", "--stop-timeout", "1", "--env", "KOLLA_CONFIG_STRATEGY=COPY_ALWAYS",
           "--label", "deployed-by=kinds-test", "--volume", f"{tmp_path}:/var/lib/kolla/config_files:ro", f"{repo}:2025.1")
    podman("start", name)
    os.environ["PODMAN_TEST_DB_PW"] = "pw-podman-test"
    config = parse_config({
        "database": {"password_env": "PODMAN_TEST_DB_PW"},
        "load_balancer": {"stats_url": "http://lb:8404/stats", "backend": "glance_api"},
        "commands": {"kind": "kolla", "process_patterns": [f"^/usr/bin/{program} "],
                     "kolla": {"engine": "podman", "container": name, "image": repo, "target_tag": "2025.1"}},
        "nodes": [{"name": "g1", "ssh_host": "127.0.0.1", "lb_server": "g1", "api_url": "http://127.0.0.1:1"}],
        "policy": {"target_release": "2025.1"},
    })
    shell = LocalShell(120)

    async def run(cmd, **kw):
        return await shell.run(cmd.command, timeout=120)

    async def refused(url):
        return Health(url, refused=True)

    async def facts():
        return await probe_node(config, "g1", run, refused)

    f = await facts()  # created from the image its tag names: current, but 2024.2's Glance
    assert f.running is True and f.deployed_current is True and f.code == CODE_INSTALLED and f.version == "29.0.0", f
    podman("import", *import_args, str(tmp_path / "new.tar"), f"{repo}:2025.1")  # the new image arrives under the same tag
    podman("restart", name)
    f = await facts()
    assert f.running is True and f.deployed_current is False and f.code == CODE_OLD and f.stale is True, f
    assert not f.on("2025.1") and "not the target image" in f.deployed_note, f
    podman("stop", name)
    cmds = NodeCommands(config, "g1")
    f = await facts()
    assert f.running is False and not f.on("2025.1"), f
    recreate = await recreate_command(run, cmds)
    assert recreate is not None
    result = await run(recreate)
    assert result.ok, result.tail()
    f = await facts()
    assert f.running is False and f.deployed_current is True and f.version == "30.0.0" and f.on("2025.1"), f  # re-created, not started
    inspect = podman("container", "inspect", "--format", "{{.Config.StopTimeout}} {{.HostConfig.NetworkMode}} {{range .Mounts}}{{.Destination}}{{end}}", name)
    assert inspect.split() == ["1", "host", "/var/lib/kolla/config_files"], inspect
    assert "KOLLA_CONFIG_STRATEGY=COPY_ALWAYS" in podman("container", "inspect", "--format", "{{.Config.Env}}", name)
    assert await recreate_command(run, cmds) is None  # already on the target image
    await run(cmds.start())
    f = await facts()
    assert f.running is True and f.code == CODE_INSTALLED and f.on("2025.1"), f


# Every setting the re-create must carry, as an operator or kolla-ansible sets it; and the inspect
# fields that must read the same after the re-create.
SETTINGS = ["--network", "host", "--hostname", "glance-node-a", "--ulimit", "core=1000:2000", "--ulimit", "memlock=-1:-1",
            "--log-driver", "k8s-file", "--log-opt", "max-size=10mb", "--log-opt", "tag=glance", "--annotation", "org.example/owner=ops",
            "--cap-add", "NET_ADMIN", "--cap-drop", "MKNOD", "--security-opt", "label=disable", "--tmpfs", "/run/lock:size=10m",
            "--shm-size", "128m", "--dns", "10.0.0.53", "--dns-search", "example.org", "--add-host", "db.example.org:10.0.0.9",
            "--stop-signal", "SIGINT", "--stop-timeout", "7", "--init", "--workdir", "/var/lib/glance", "--cgroupns", "host",
            "--device", "/dev/null:/dev/xnull", "--pids-limit", "100", "--memory", "1g", "--cpu-shares", "512", "--tty",
            "--env", "KOLLA_CONFIG_STRATEGY=COPY_ALWAYS", "--label", "deployed-by=kinds-test", "--volume", "glance-kinds:/var/lib/glance"]
SURVIVE = {"Config": ["Hostname", "Annotations", "StopSignal", "StopTimeout", "WorkingDir", "Env", "Labels", "Tty"],
           "HostConfig": ["Ulimits", "CapAdd", "CapDrop", "SecurityOpt", "Tmpfs", "ShmSize", "Dns", "DnsSearch", "ExtraHosts", "Init", "CgroupMode",
                          "Devices", "PidsLimit", "Memory", "MemorySwap", "CpuShares", "IpcMode", "PidMode", "UTSMode", "NetworkMode"]}


def _settings(inspect: dict) -> dict:
    found = {f"{table}.{key}": inspect[table].get(key) for table, keys in SURVIVE.items() for key in keys}
    found["Config.Env"] = sorted(found["Config.Env"])
    log = inspect["HostConfig"]["LogConfig"]
    found["LogConfig"] = (log["Type"], log["Size"], log["Tag"])
    found["Mounts"] = sorted((m.get("Name") or m["Source"], m["Destination"], m["RW"]) for m in inspect["Mounts"])
    return found


async def test_recreate_carries_every_setting_of_the_container(tmp_path, podman):
    """Created (never started here: runc cannot set RLIMIT_NOFILE on this machine, which podman adds
    beside any explicit ulimit), re-created by the tool's own command, inspected: every setting kept."""
    import json

    name, repo = f"glance_api_{secrets.token_hex(3)}", f"localhost/kinds-test-{secrets.token_hex(3)}"
    for version, tar in (("29.0.0", tmp_path / "old.tar"), ("30.0.0", tmp_path / "new.tar")):
        rootfs_tar(tar, "glance-api-x", version)
    import_args = ["--change", 'ENTRYPOINT ["/usr/bin/glance-api-x"]', "--change", 'CMD ["100000"]']
    podman("import", *import_args, str(tmp_path / "old.tar"), f"{repo}:old")
    podman("import", *import_args, str(tmp_path / "new.tar"), f"{repo}:2025.1")
    podman("create", "--name", name, *SETTINGS, f"{repo}:old")
    before = json.loads(podman("container", "inspect", name))[0]
    os.environ["PODMAN_TEST_DB_PW"] = "pw-podman-test"
    config = parse_config({
        "database": {"password_env": "PODMAN_TEST_DB_PW"},
        "load_balancer": {"stats_url": "http://lb:8404/stats", "backend": "glance_api"},
        "commands": {"kind": "kolla", "kolla": {"engine": "podman", "container": name, "image": repo, "target_tag": "2025.1"}},
        "nodes": [{"name": "g1", "ssh_host": "127.0.0.1", "lb_server": "g1", "api_url": "http://127.0.0.1:1"}],
        "policy": {"target_release": "2025.1"},
    })
    shell = LocalShell(120)

    async def run(cmd, **kw):
        return await shell.run(cmd.command, timeout=120)

    recreate = await recreate_command(run, NodeCommands(config, "g1"))
    assert recreate is not None
    result = await run(recreate)
    assert result.ok, result.tail()
    after = json.loads(podman("container", "inspect", name))[0]
    assert after["Id"] != before["Id"] and after["Image"] == podman("image", "inspect", "--format", "{{.Id}}", f"{repo}:2025.1").strip()
    assert _settings(after) == _settings(before)
    assert after["Config"]["Hostname"] == "glance-node-a" and after["Config"]["Annotations"]["org.example/owner"] == "ops"
    assert {"Name": "RLIMIT_CORE", "Soft": 1000, "Hard": 2000} in after["HostConfig"]["Ulimits"]
    assert after["HostConfig"]["LogConfig"]["Tag"] == "glance" and after["HostConfig"]["LogConfig"]["Size"] == "10MB"


async def test_a_kolla_nodes_staging_is_read_through_the_containers_real_mounts(tmp_path, podman):
    """read_config in a one-off container, the real inspect's mounts: the staging directory inside
    the container is listed at the named volume's mount point; on no volume it is not listed."""
    import json

    from glance_tui.inflight import import_conf, stage_hosts, staged_files
    from tests.test_kolla_staging import IMAGE, KollaCtx

    repo, volume = f"localhost/kinds-test-{secrets.token_hex(3)}", f"glance-{secrets.token_hex(3)}"
    rootfs_tar(tmp_path / "old.tar", "glance-api-x", "29.0.0")
    podman("import", "--change", 'ENTRYPOINT ["/usr/bin/glance-api-x"]', "--change", 'CMD ["100000"]', str(tmp_path / "old.tar"), f"{repo}:2025.1")
    kolla = tmp_path / "kolla"
    kolla.mkdir()
    (kolla / "glance-api.conf").write_text("[DEFAULT]\nenabled_backends = fs:file\nworker_self_reference_url = http://10.0.0.1:9292\n"
                                           "[os_glance_staging_store]\nfilesystem_store_datadir = /var/lib/glance/staging\n")
    names = {"g1": f"glance_api_{secrets.token_hex(3)}", "g2": f"glance_api_{secrets.token_hex(3)}"}
    podman("create", "--name", names["g1"], "--network", "host", "--volume", f"{kolla}:/var/lib/kolla/config_files:ro",
           "--volume", f"{volume}:/var/lib/glance", f"{repo}:2025.1")
    podman("create", "--name", names["g2"], "--network", "host", "--volume", f"{kolla}:/var/lib/kolla/config_files:ro", f"{repo}:2025.1")
    # Glance stages an image's data inside the container (a one-off container with its volumes writes it)
    podman("run", "--rm", "--network", "none", "--volumes-from", names["g1"], "--entrypoint", "sh", f"{repo}:2025.1", "-c",
           f"mkdir -p /var/lib/glance/staging && echo data > /var/lib/glance/staging/{IMAGE}")
    os.environ["PODMAN_TEST_DB_PW"] = "pw-podman-test"
    config = parse_config({
        "database": {"password_env": "PODMAN_TEST_DB_PW"},
        "load_balancer": {"stats_url": "http://lb:8404/stats", "backend": "glance_api"},
        "commands": {"kind": "kolla", "kolla": {"engine": "podman", "container": names["g1"], "image": repo, "target_tag": "2025.1"}},
        "nodes": [{"name": n, "ssh_host": f"127.0.0.{i}", "lb_server": n, "api_url": f"http://127.0.0.{i}:1", "kolla": {"container": names[n]}}
                  for i, n in ((1, "g1"), (2, "g2"))],
        "policy": {"target_release": "2025.1"},
    })

    class RealCtx(KollaCtx):
        def __init__(self) -> None:
            super().__init__({}, config)

        async def run(self, cmd, **kw):
            return await self.shell.run(cmd.command, timeout=120)

    ctx = RealCtx()
    conf = await import_conf(ctx, "g1")
    mountpoint = podman("volume", "inspect", "--format", "{{.Mountpoint}}", volume).strip()
    assert conf.staging_dir == f"{mountpoint}/staging" and conf.in_container == "/var/lib/glance/staging" and not conf.unlisted
    files = await staged_files(ctx, await stage_hosts(ctx))
    assert files.holders == {IMAGE: ("g1",)}, files
    assert "own layer" in files.unread["g2"] and files.owner(IMAGE) is None  # g2 keeps it in its layer: unknown
    podman("rm", names["g2"])
    files = await staged_files(ctx, await stage_hosts(ctx))
    assert files.unread["g2"].startswith("cannot read g2's") and files.owner(IMAGE) is None, files  # no container: unknown, never "no files"
