"""Node kinds: the config (kinds, per-node overrides, errors) and the commands each kind renders."""

from __future__ import annotations

import shlex
import tomllib

import pytest

from glance_tui.commands import NodeCommands
from glance_tui.config import parse_config
from glance_tui.errors import ConfigError

BASE = """
[database]
password_env = "KINDS_DB_PW"
[load_balancer]
stats_url = "http://lb:8404/stats"
backends = ["glance_api"]
[policy]
target_release = "2025.1"
target_version = "30.0.0"
[[nodes]]
name = "n1"
ssh_host = "10.0.0.1"
lb_server = "n1"
api_url = "http://10.0.0.1:9292"
[[nodes]]
name = "n2"
ssh_host = "10.0.0.2"
lb_server = "n2"
api_url = "http://10.0.0.2:9393"
"""

KOLLA = """
[commands]
kind = "kolla"
[commands.kolla]
engine = "podman"
container = "glance_api"
image = "quay.io/openstack.kolla/glance-api"
target_tag = "2025.1-ubuntu-noble"
"""


@pytest.fixture(autouse=True)
def _password(monkeypatch):
    monkeypatch.setenv("KINDS_DB_PW", "kinds-db-password")


def config(extra: str, nodes: str = ""):
    text = BASE + nodes + extra
    return parse_config(tomllib.loads(text))


def refused(extra: str, nodes: str = "") -> str:
    with pytest.raises(ConfigError) as err:
        config(extra, nodes)
    message = err.value.message
    assert "\n" not in message and "fix:" in message, message
    return message


def argv(command: str) -> list[str]:
    return shlex.split(command)


def test_packages_is_the_default_and_unchanged():
    c = config("")
    cmds = NodeCommands(c, "n1")
    assert c.kind_of("n1") == "packages" and cmds.kind == "packages"
    assert cmds.stop().command == "systemctl stop glance-api"
    assert cmds.upgrade().command == "apt-get install -y glance-api"
    assert cmds.manage("db", "check").command == "glance-manage db check"
    assert cmds.listeners().command == "ss -Htlnp sport = :9292"


def test_kolla_commands():
    c = config(KOLLA)
    cmds = NodeCommands(c, "n1")
    assert argv(cmds.stop().command) == ["podman", "stop", "glance_api"]
    assert argv(cmds.start().command) == ["podman", "start", "glance_api"]
    assert argv(cmds.upgrade().command) == ["podman", "pull", "quay.io/openstack.kolla/glance-api:2025.1-ubuntu-noble"]
    # glance-manage: a one-off container of the image the container was created from (after the
    # upgrade re-created it: the target image), with the container's volumes and Kolla's config
    image = "$(podman container inspect --format '{{.Image}}' glance_api)"
    assert argv(cmds.db_expand().command) == [
        "podman", "run", "--rm", "--network", "host", "--user", "root", "--volumes-from", "glance_api", "--entrypoint", "glance-manage",
        image, "--config-file", "/var/lib/kolla/config_files/glance-api.conf", "db", "expand"]
    assert argv(cmds.read_config().command)[-2:] == [image, "/var/lib/kolla/config_files/glance-api.conf"]
    assert argv(cmds.installed_version().command)[:7] == ["podman", "run", "--rm", "--network", "none", "--entrypoint", "python3"]
    # the host's processes and sockets (Kolla runs with host networking): the packages' reads
    assert cmds.processes().command == NodeCommands(config(""), "n1").processes().command
    assert cmds.is_running() is None


def test_a_node_overrides_kolla_keys_one_by_one():
    c = config(KOLLA + '[[nodes]]\nname = "n3"\nssh_host = "10.0.0.3"\nlb_server = "n3"\napi_url = "http://10.0.0.3:9292"\n'
               '[nodes.kolla]\nengine = "docker"\ncontainer = "glance_api_blue"\n')
    assert argv(NodeCommands(c, "n3").stop().command) == ["docker", "stop", "glance_api_blue"]
    assert argv(NodeCommands(c, "n3").upgrade().command) == ["docker", "pull", "quay.io/openstack.kolla/glance-api:2025.1-ubuntu-noble"]
    assert argv(NodeCommands(c, "n1").stop().command) == ["podman", "stop", "glance_api"]


def test_mixed_kinds_per_node():
    extra = ('[[nodes]]\nname = "n3"\nssh_host = "10.0.0.3"\nlb_server = "n3"\napi_url = "http://10.0.0.3:9292"\nkind = "kolla"\n'
             '[nodes.kolla]\nengine = "docker"\ncontainer = "glance_api"\nimage = "registry:5000/kolla/glance-api"\ntarget_tag = "t1"\n')
    c = config(extra)
    assert [c.kind_of(n) for n in ("n1", "n2", "n3")] == ["packages", "packages", "kolla"]
    assert NodeCommands(c, "n1").stop().command == "systemctl stop glance-api"
    assert argv(NodeCommands(c, "n3").upgrade().command) == ["docker", "pull", "registry:5000/kolla/glance-api:t1"]


def test_written_commands_keys_override_the_kind():
    c = config(KOLLA.replace('kind = "kolla"', 'kind = "kolla"\nstop = "systemctl stop kolla-glance_api-container"'))
    cmds = NodeCommands(c, "n1")
    assert cmds.stop().command == "systemctl stop kolla-glance_api-container"
    assert argv(cmds.start().command) == ["podman", "start", "glance_api"]


def test_osa_commands_run_in_the_lxc_container():
    osa = ('[commands]\nkind = "osa"\nupgrade = "ssh deploy openstack-ansible os-glance-install.yml --limit {node}"\n'
           '[commands.osa]\ncontainer = "infra1_glance_container-1a2b3c4d"\nvenv_tag = "31.1.0"\n')
    c = config(osa)
    cmds = NodeCommands(c, "n2")
    assert argv(cmds.stop().command) == ["lxc-attach", "-n", "infra1_glance_container-1a2b3c4d", "--", "sh", "-c", "systemctl stop glance-api"]
    assert argv(cmds.listeners().command)[-1] == "ss -Htlnp sport = :9393"
    assert argv(cmds.db_check().command) == ["lxc-attach", "-n", "infra1_glance_container-1a2b3c4d", "--", "/openstack/venvs/glance-31.1.0/bin/glance-manage", "db", "check"]
    # the version of the venv the unit's uWSGI ini names (what a start runs), and that venv
    inner = argv(cmds.installed_version().command)[-1]
    assert "/etc/uwsgi/glance-api.ini" in inner and inner.endswith('&& echo "venv=$v"')
    assert cmds.upgrade().command == "ssh deploy openstack-ansible os-glance-install.yml --limit n2"
    on_metal = config(osa.replace('container = "infra1_glance_container-1a2b3c4d"', 'container = ""'))
    assert argv(NodeCommands(on_metal, "n1").stop().command) == ["systemctl", "stop", "glance-api"]


def test_osa_venv_tag_defaults_to_the_target_version():
    c = config('[commands]\nkind = "osa"\nupgrade = "true"\n[commands.osa]\ncontainer = ""\n')
    assert c.osa_of("n1").venv_tag == "30.0.0"
    assert "/openstack/venvs/glance-30.0.0/bin/glance-manage" in NodeCommands(c, "n1").db_check().command


@pytest.mark.parametrize(("extra", "needle"), [
    ('[commands]\nkind = "containers"\n', "commands.kind: input should be 'packages', 'kolla' or 'osa'"),
    (KOLLA.replace('target_tag = "2025.1-ubuntu-noble"\n', ""), "commands.kolla.target_tag: target_tag is required for kind 'kolla' (node n1)"),
    (KOLLA.replace('kind = "kolla"\n', ""), "commands.kolla: [commands.kolla] is set but no node is of kind 'kolla'"),
    (KOLLA.replace('"podman"', '"lxc"'), "commands.kolla.engine: input should be 'docker' or 'podman'"),
    (KOLLA.replace('glance-api"\n', 'glance-api:2025.1"\n'), "(it has a tag or digest)"),
    (KOLLA.replace('kind = "kolla"', 'kind = "kolla"\ninstalled_version = "true"'), "commands.installed_version: is set, but n1 is of kind 'kolla'"),
    ('[commands]\nkind = "osa"\n[commands.osa]\ncontainer = "c1"\n', "commands.upgrade: is required for kind 'osa'"),
    ('[commands]\nkind = "osa"\nupgrade = "true"\n', "commands.osa.container: container is required for kind 'osa'"),
])
def test_kind_errors_are_one_line(extra, needle):
    assert needle in refused(extra)


def test_osa_without_a_venv_tag_or_target_version_is_refused():
    c = BASE.replace('target_version = "30.0.0"\n', "")
    with pytest.raises(ConfigError) as err:
        parse_config(tomllib.loads(c + '[commands]\nkind = "osa"\nupgrade = "true"\n[commands.osa]\ncontainer = ""\n'))
    assert "commands.osa.venv_tag: venv_tag is required for kind 'osa'" in err.value.message


def test_a_node_table_for_another_kind_is_refused():
    message = refused("", nodes='[nodes.kolla]\nengine = "docker"\n')
    assert "nodes[1].kolla: [nodes.kolla] is set but n2 is of kind 'packages'" in message


def test_a_copied_packages_default_is_refused_for_another_kind():
    """A [commands] copied from config.example.toml would override the kind with apt-get and systemctl."""
    message = refused(KOLLA.replace('kind = "kolla"', 'kind = "kolla"\nupgrade = "apt-get install -y glance-api"'))
    assert "commands.upgrade: is the packages default, but n1 is of kind 'kolla'" in message
    message = refused('[commands]\nkind = "osa"\nstop = "systemctl stop {services}"\nupgrade = "x"\n[commands.osa]\ncontainer = ""\n')
    assert "commands.stop: is the packages default, but n1 is of kind 'osa'" in message


@pytest.mark.parametrize("kind", ["kolla", "osa"])
def test_the_kinds_keys_are_what_kinds_renders(kind):
    from glance_tui.config import KIND_KEYS
    from glance_tui.kinds import kind_commands

    extra = KOLLA if kind == "kolla" else '[commands]\nkind = "osa"\nupgrade = "x"\n[commands.osa]\ncontainer = "c"\n'
    rendered = set(kind_commands(config(extra), "n1", "9292"))
    assert rendered - {"upgrade"} == set(KIND_KEYS[kind]) - {"upgrade"}


@pytest.mark.parametrize("kind", ["kolla", "osa"])
def test_the_example_becomes_a_kind_as_its_comments_say(kind, monkeypatch):
    """config.example.toml: set kind, remove the commands the kind fills in, uncomment its table."""
    import re
    from pathlib import Path

    from glance_tui.config import KIND_KEYS

    monkeypatch.setenv("GLANCE_DB_PASSWORD", "s3cret-example-pw")
    text = (Path(__file__).parent.parent / "config.example.toml").read_text()
    text = text.replace('kind = "packages"', f'kind = "{kind}"', 1)
    for key in (*KIND_KEYS[kind], "installed_at"):
        text = re.sub(rf"^{key} = .*$", "", text, count=1, flags=re.MULTILINE)
    if kind == "osa":  # OSA builds the venv from its deploy host: the operator writes that upgrade
        text = re.sub(r"^upgrade = .*$", 'upgrade = "ssh deploy openstack-ansible os-glance-install.yml --limit {node}"', text, count=1, flags=re.MULTILINE)
    table = re.search(rf"^# \[commands\.{kind}\].*?(?=^#\n|^\n)", text, flags=re.MULTILINE | re.DOTALL).group(0)
    uncommented = "\n".join(line[2:] for line in table.splitlines())
    text = text.replace("\n[[nodes]]", "\n" + uncommented + "\n\n[[nodes]]", 1)
    c = parse_config(tomllib.loads(text))
    assert all(c.kind_of(n.name) == kind for n in c.nodes)
    stop = NodeCommands(c, c.nodes[0].name).stop().command
    assert stop == ("docker stop glance_api" if kind == "kolla" else "lxc-attach -n infra1_glance_container-1a2b3c4d -- sh -c 'systemctl stop glance-api'")
