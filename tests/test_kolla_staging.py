"""A Kolla node's staging directory is inside its container: listed at its host path through the
container's mounts (longest destination wins), unknown when the mounts cannot be read, and — on
no volume — named as lost by the upgrade's re-create before the stop.

The mapping is fed both engines' inspect JSON; the staging code runs with the real config,
commands and a real shell listing real directories (the "host path" a tmp dir), only the
context's bookkeeping faked."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from glance_tui import staging
from glance_tui.adapters.local import CommandResult, LocalShell
from glance_tui.commands import NodeCommands
from glance_tui.import_work import ImportItem, ImportWork
from glance_tui.inflight import InFlight, import_conf, stage_hosts, staged_files
from glance_tui.node.container_mounts import host_place
from tests.test_node_containers import PODMAN_INSPECT, KOLLA_INSPECT, kolla_config

IMAGE = "0b3b6f4e-1c9a-4d59-9a52-6d7b8f2c1e01"


def _with_mounts(base: dict, mounts: list[dict], tmpfs: dict | None = None) -> dict:
    data = json.loads(json.dumps(base))
    data["Mounts"] = mounts
    data["HostConfig"]["Tmpfs"] = tmpfs or {}
    return data


VOLUME = {"Type": "volume", "Name": "glance", "Source": "/var/lib/docker/volumes/glance/_data", "Destination": "/var/lib/glance", "RW": True}
BIND = {"Type": "bind", "Source": "/srv/staging", "Destination": "/var/lib/glance/staging", "RW": True}


def test_the_longest_destination_holds_the_path():
    both = _with_mounts(KOLLA_INSPECT, [VOLUME, BIND])
    assert host_place(both, "/var/lib/glance/staging", "glance_api").host == "/srv/staging"
    assert host_place(both, "/var/lib/glance/staging/sub/", "glance_api").host == "/srv/staging/sub"
    place = host_place(both, "/var/lib/glance/tasks", "glance_api")
    assert place.host == "/var/lib/docker/volumes/glance/_data/tasks" and place.mount == "volume glance on /var/lib/glance" and not place.gone
    # a sibling that only shares a prefix is not under the mount
    assert host_place(_with_mounts(KOLLA_INSPECT, [VOLUME]), "/var/lib/glancefoo/staging", "glance_api").host is None
    # podman's shape: the volume's mount point is its Source too; a destination written with a trailing slash
    podman = _with_mounts(PODMAN_INSPECT, [{**PODMAN_INSPECT["Mounts"][0], "Destination": "/var/lib/glance/"}])
    assert host_place(podman, "/var/lib/glance/staging", "glance_api").host == "/var/lib/containers/storage/volumes/glance/_data/staging"


def test_a_path_on_no_volume_is_lost_by_the_recreate():
    layer = host_place(_with_mounts(KOLLA_INSPECT, [VOLUME]), "/tmp/staging", "glance_api")
    assert layer.host is None and "own layer" in layer.gone and "re-create" in layer.gone
    tmp = host_place(_with_mounts(KOLLA_INSPECT, [VOLUME], {"/var/lib/glance/staging": "size=1g"}), "/var/lib/glance/staging", "glance_api")
    assert tmp.host is None and "tmpfs" in tmp.gone  # the tmpfs is deeper than the volume: it wins


@pytest.mark.parametrize(("mounts", "needle"), [
    ("x", "Mounts is not a list"),
    ([{"Type": "volume", "Name": "glance", "Destination": "/var/lib/glance"}], "has no host directory"),
    ([{"Type": "volume", "Name": "glance", "Source": "", "Destination": "/var/lib/glance", "Driver": "rexray"}], "has no host directory"),
    ([{"Type": "npipe", "Source": "/x", "Destination": "/var/lib/glance"}], "has no host directory"),
    ([{"Type": "bind", "Source": "/x"}], "without an absolute Destination"),
])
def test_mounts_that_cannot_be_read_are_an_error(mounts, needle):
    data = json.loads(json.dumps(KOLLA_INSPECT))
    data["Mounts"] = mounts
    with pytest.raises(ValueError, match=needle):
        host_place(data, "/var/lib/glance/staging", "glance_api")


# ---------------------------------------------------------------- the staging code on a Kolla node

CONF = "[DEFAULT]\nenabled_backends = fs:file\nworker_self_reference_url = http://10.0.0.{n}:9292\n"


@dataclass
class Journal:
    records: list[tuple[str, dict]] = field(default_factory=list)

    def write(self, kind: str, **data: Any) -> None:
        self.records.append((kind, data))


@dataclass
class State:
    staging: dict = field(default_factory=dict)


class KollaCtx:
    """The context's surface the staging code uses: the real config and commands, a real shell for
    the listings; each node's read_config and container inspect answered from ``conf``/``inspect``."""

    def __init__(self, inspect: dict[str, str | None], config: Any = None) -> None:
        self.config = config or kolla_config("docker", n=len(inspect))
        self.inspect = inspect
        self.shell = LocalShell(30)
        self.journal, self.state, self.notices = Journal(), State(), []

    def commands(self, node: str) -> NodeCommands:
        return NodeCommands(self.config, node)

    async def run(self, cmd, **kw) -> CommandResult:
        if cmd.command.endswith("glance-api.conf"):  # read_config (a one-off container)
            return CommandResult(cmd.command, 0, CONF.format(n=cmd.node[1:]), "", 0.01, False)
        if cmd.command == "docker container inspect glance_api":
            out = self.inspect[cmd.node]
            if out is None:
                return CommandResult(cmd.command, 1, "", "Cannot connect to the Docker daemon", 0.01, False)
            return CommandResult(cmd.command, 0, out, "", 0.01, False)
        raise AssertionError(cmd.command)

    async def run_text(self, node: str, text: str) -> CommandResult:
        return await self.shell.run(text, timeout=30)

    def emit(self, event) -> None:
        self.notices.append(event)

    def save_state(self) -> None:
        pass


def _volume_at(tmp_path: Path, node: str) -> tuple[Path, str]:
    """A node's glance volume (a real directory) and its container's inspect naming it."""
    volume = tmp_path / node / "_data"
    (volume / "staging").mkdir(parents=True)
    return volume, json.dumps([_with_mounts(KOLLA_INSPECT, [{**VOLUME, "Source": str(volume)}])])


async def test_a_kolla_nodes_staging_is_listed_at_its_host_path(tmp_path):
    volume, inspect = _volume_at(tmp_path, "g1")
    (volume / "staging" / IMAGE).write_bytes(b"x")
    ctx = KollaCtx({"g1": inspect, "g2": json.dumps([_with_mounts(KOLLA_INSPECT, [VOLUME])])})
    conf = await import_conf(ctx, "g1")
    assert conf.staging_dir == str(volume / "staging") and conf.in_container == "/var/lib/glance/staging" and not conf.unlisted
    hosts = await stage_hosts(ctx)
    files = await staged_files(ctx, hosts)
    assert files.holders == {IMAGE: ("g1",)} and not files.unread  # g2's host path does not exist here: nothing staged there
    # before the stop: the file is listed at the host path and owed after the upgrade
    item = ImportItem(IMAGE, "glance-direct", ("image uploading",), 5.0)
    await staging.before_stop(ctx, "g1", InFlight(0, (), ImportWork((), (item,))), owed=True)
    assert ctx.state.staging["g1"] == {"dir": str(volume / "staging"), "existed": True, "files": [IMAGE]}
    assert ctx.journal.records[-1][1]["container_dir"] == "/var/lib/glance/staging" and ctx.journal.records[-1][1]["files"] == [IMAGE]


async def test_a_container_that_cannot_be_read_leaves_the_staging_unknown(tmp_path):
    _, inspect = _volume_at(tmp_path, "g1")
    ctx = KollaCtx({"g1": inspect, "g2": None})
    with pytest.raises(ValueError, match="cannot read g2's container"):
        await import_conf(ctx, "g2")
    files = await staged_files(ctx, await stage_hosts(ctx))
    assert "g2" in files.unread and files.owner(IMAGE) is None  # unknown: never "no files"
    ctx.inspect["g2"] = json.dumps([_with_mounts(KOLLA_INSPECT, [{"Type": "volume", "Name": "glance", "Destination": "/var/lib/glance"}])])
    files = await staged_files(ctx, await stage_hosts(ctx))
    assert "has no host directory" in files.unread["g2"]
    with pytest.raises(staging.StagingUnknown, match="cannot tell g2's staging directory"):
        await staging.before_stop(ctx, "g2", InFlight(0, (), ImportWork((), ())), owed=True)


async def test_a_staging_directory_on_no_volume_is_named_before_the_stop(tmp_path):
    layer = json.dumps([_with_mounts(KOLLA_INSPECT, [{**VOLUME, "Destination": "/var/lib/glance/images"}])])
    ctx = KollaCtx({"g1": layer, "g2": layer})
    files = await staged_files(ctx, await stage_hosts(ctx))
    assert "own layer" in files.unread["g1"] and files.owner(IMAGE) is None  # cannot be listed: counts against every node
    item = ImportItem(IMAGE, "glance-direct", ("image uploading",), 5.0)
    with pytest.raises(staging.StagingAtRisk, match="would lose") as refused:
        await staging.before_stop(ctx, "g1", InFlight(0, (), ImportWork((), (item,))), owed=True)
    assert "on a volume" in refused.value.fix and not ctx.state.staging
    # nothing staged that may be there: a warning, the record names why, no owed listing
    await staging.before_stop(ctx, "g1", InFlight(0, (), ImportWork((), ())), owed=True)
    assert "re-created" in ctx.notices[-1].text and "on a volume" in ctx.notices[-1].text and not ctx.state.staging
    assert ctx.journal.records[-1][1]["unlisted"].startswith("/var/lib/glance/staging is in container glance_api's own layer")
