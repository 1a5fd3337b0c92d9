"""What a node's kind does differently: the one place that decides a kind's commands.

``packages`` is the ``[commands]`` templates as they are (Debian/Ubuntu/RDO systemd units).
``kolla`` drives a container (``docker``/``podman``): stop/start the container, pull the target
image (the re-create from the inspected container is ``node.containers.recreate_command``), and
run ``glance-manage`` as Kolla's bootstrap container does: a one-off container with the service
container's volumes, of the service container's image — after the upgrade re-created it, the
target image; before, the code the node has (as ``glance-manage`` on a packaged node).
``osa`` runs everything inside the LXC container (``lxc-attach``) against the uWSGI
``glance-api`` unit, the venv its ini names and the target venv.

A key the operator wrote in ``[commands]`` always wins over the kind's command. Every value we
put into a command is shell-quoted here.
"""

from __future__ import annotations

import shlex

from glance_tui.config import Config, KollaConfig, OsaConfig

__all__ = ["VERSION_SCRIPT", "kind_commands", "kolla_image", "kolla_version_of", "osa_configured_version", "osa_target_venv", "osa_uwsgi_ini", "spare_name"]

# Prints "glance <version>" (parse_version reads it) from whatever Python runs Glance.
VERSION_SCRIPT = 'import importlib.metadata as m; print("glance", m.version("glance"))'


def _q(*args: str) -> str:
    return " ".join(shlex.quote(a) for a in args)


def kolla_image(k: KollaConfig) -> str:
    """``repository:target_tag``: the target image."""
    return f"{k.image}:{k.target_tag}"


def spare_name(container: str) -> str:
    """The name a re-created container has until the old one is removed (then it is renamed)."""
    return f"{container}-glance-tui-new"


def kolla_version_of(k: KollaConfig, image_id: str) -> str:
    """The Glance version inside one image (by id), from a one-off container without network."""
    return _q(str(k.engine), "run", "--rm", "--network", "none", "--entrypoint", "python3", image_id, "-c", VERSION_SCRIPT)


def container_image(k: KollaConfig) -> str:
    """Shell text for the id of the image the node's container was created from: what it runs
    (after the upgrade re-created it, the target image) — an empty id makes the run fail."""
    return '"$(' + _q(str(k.engine), "container", "inspect", "--format", "{{.Image}}", str(k.container)) + ')"'


def _one_off(k: KollaConfig, entrypoint: str, network: str) -> str:
    """A one-off container of the node's container's image with its volumes (its config at
    ``manage_config``), as root: Kolla's config files are root's, read by kolla_set_configs."""
    return " ".join([_q(str(k.engine), "run", "--rm", "--network", network, "--user", "root", "--volumes-from", str(k.container),
                        "--entrypoint", entrypoint), container_image(k)])


def _kolla(k: KollaConfig) -> dict[str, str]:
    engine, container = str(k.engine), str(k.container)
    return {
        "stop": _q(engine, "stop", container),
        "start": _q(engine, "start", container),
        # The pull only; the container is re-created from its inspected configuration afterwards.
        "upgrade": _q(engine, "pull", kolla_image(k)),
        "glance_manage": f"{_one_off(k, 'glance-manage', 'host')} {_q('--config-file', str(k.manage_config))}",
        "read_config": f"{_one_off(k, 'cat', 'none')} {_q(str(k.manage_config))}",
        # The target image's Glance version (a preview; the probe asks the container's own image by id).
        "installed_version": kolla_version_of(k, kolla_image(k)),
    }


def _in_lxc(o: OsaConfig, shell: str) -> str:
    """``shell`` run inside the node's LXC container (or on metal when ``container`` is "")."""
    if not o.container:
        return shell
    return _q("lxc-attach", "-n", o.container, "--", "sh", "-c", shell)


def osa_target_venv(o: OsaConfig) -> str:
    return f"{o.venv_root}/glance-{o.venv_tag}"


def osa_uwsgi_ini(o: OsaConfig) -> str:
    return f"/etc/uwsgi/{o.service}.ini"


def osa_configured_version(o: OsaConfig) -> str:
    """Shell text: the Glance version of the venv the unit's uWSGI ini names (``virtualenv =``, as
    OSA's uwsgi role writes it), then ``venv=<path>`` on its own line; exit 1 without one."""
    ini = shlex.quote(osa_uwsgi_ini(o))
    return (f"v=$(sed -n 's/^[[:space:]]*virtualenv[[:space:]]*=[[:space:]]*//p' {ini} | tail -n 1); "
            f"[ -n \"$v\" ] || {{ echo 'no virtualenv in '{ini} >&2; exit 1; }}; "
            f"\"$v/bin/python\" -c {shlex.quote(VERSION_SCRIPT)} && echo \"venv=$v\"")


def _osa(o: OsaConfig) -> dict[str, str]:
    unit, venv = str(o.service), osa_target_venv(o)
    return {
        "stop": _in_lxc(o, _q("systemctl", "stop", unit)),
        "start": _in_lxc(o, _q("systemctl", "start", unit)),
        "processes": _in_lxc(o, "date +%s && ps -eo pid=,ppid=,etimes=,comm=,args="),
        # The venv the uWSGI unit is configured with (its ini's `virtualenv`): what a start runs.
        "installed_version": _in_lxc(o, osa_configured_version(o)),
        # The target venv's creation: a uWSGI process older than it still runs the previous venv.
        "installed_at": _in_lxc(o, _q("stat", "-L", "-c", "%Z", f"{venv}/bin/python")),
        # argv form: NodeCommands.manage appends the quoted subcommand
        "glance_manage": _q(*(["lxc-attach", "-n", o.container, "--"] if o.container else []), f"{venv}/bin/glance-manage"),
        "read_config": _in_lxc(o, _q("cat", "/etc/glance/glance-api.conf")),
    }


def kind_commands(config: Config, node: str, port: str) -> dict[str, str]:
    """The node's kind's command for each ``[commands]`` key it changes (none for ``packages``)."""
    kind = config.kind_of(node)
    if kind == "kolla":
        return _kolla(config.kolla_of(node))
    if kind == "osa":
        o = config.osa_of(node)
        found = _osa(o)
        found["listeners"] = _in_lxc(o, f"ss -Htlnp sport = :{shlex.quote(port)}")
        return found
    return {}
