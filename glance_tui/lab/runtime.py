"""How a lab node serves Glance on each release: the eventlet ``glance-api`` or uWSGI.

Which release runs which is :data:`glance_tui.lab.envs.RELEASES`' ``runtime`` column; this
module says what each runtime means: the binary its environment must have, the command line
a node's service runs, and how to tell its processes from anything else in the node's process
group (the witness and ``nodectl`` both ask :func:`is_glance`). Stdlib only: nodectl uses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from glance_tui.lab import envs

UWSGI_INI = "glance-api-uwsgi.ini"
# Where a container node's config dir is mounted (Kolla's container_config_directory): the conf and the ini.
CONTAINER_CONFIG_DIR = "/var/lib/kolla/config_files"
# uWSGI workers per node, as Glance's reference ini has: each serves one request at a time, and
# with 2 a node under the rehearsal's load (slow uploads) left HAProxy's health checks waiting
# past their timeout (the node went DOWN while serving).
UWSGI_PROCESSES = 4


@dataclass(frozen=True)
class Runtime:
    name: str
    binary: str  # in the release's environment's bin/: what the node's service runs
    # How long the LB's health check may wait for an answer. An eventlet server answers between
    # requests at once; a uWSGI worker serves one request at a time, so while every worker holds
    # a slow upload the check waits in the listen queue — with the lab's 2 s the node went DOWN
    # while serving. 10 s is Kolla-Ansible's `timeout check`.
    check_timeout: float = 2.0

    def command(self, bin_dir: Path, node_dir: Path, conf: Path, *, host: str, port: int,
                workers: int) -> tuple[list[str], dict[str, str]]:
        """The service's command line and environment (writing what it reads first, e.g. uWSGI's ini)."""
        if self.name == "uwsgi":
            write_uwsgi_ini(node_dir, host=host, port=port, workers=workers)
        return self._argv(bin_dir, conf.parent)

    def container_command(self, bin_dir: Path) -> tuple[list[str], dict[str, str]]:
        """A container image's command and environment: the node's config dir (the conf, and the ini
        :func:`write_uwsgi_ini` wrote there) is mounted on :data:`CONTAINER_CONFIG_DIR`."""
        return self._argv(bin_dir, Path(CONTAINER_CONFIG_DIR))

    def _argv(self, bin_dir: Path, config_dir: Path) -> tuple[list[str], dict[str, str]]:
        if self.name == "eventlet":
            return [str(bin_dir / self.binary), "--config-file", str(config_dir / "glance-api.conf")], {}
        # glance.wsgi.api reads OS_GLANCE_CONFIG_DIR from os.environ, which pyuwsgi's Python took
        # before the ini's `env =` could set it: it comes from the service's environment, as a
        # systemd unit's Environment= gives it.
        return [str(bin_dir / self.binary), "--ini", str(config_dir / UWSGI_INI)], {"OS_GLANCE_CONFIG_DIR": str(config_dir)}

    def serves(self, argv: list[str]) -> bool:
        """Is this process (its argv) this runtime's server? A console script runs as
        ``python3 <venv>/bin/NAME …``, a binary as ``<path>/NAME …``: NAME is one of the first two."""
        return any(Path(arg).name == self.binary for arg in argv[:2])


EVENTLET = Runtime("eventlet", "glance-api")
UWSGI = Runtime("uwsgi", "uwsgi", check_timeout=10.0)
RUNTIMES = {r.name: r for r in (EVENTLET, UWSGI)}


def runtime_of(release: str) -> Runtime:
    """The runtime a node on ``release`` serves with (releases the table does not know, e.g. a
    test's simulated ones, run the standalone server)."""
    known = envs.RELEASES.get(release)
    return RUNTIMES[known.runtime] if known else EVENTLET


def is_glance(argv: list[str]) -> bool:
    """Is this process a Glance API server of any runtime (uWSGI: the master and every worker)?"""
    return any(r.serves(argv) for r in RUNTIMES.values())


def write_uwsgi_ini(config_dir: Path, *, host: str, port: int, workers: int) -> Path:
    """The node's uWSGI ini beside its glance-api.conf."""
    ini = config_dir / UWSGI_INI
    ini.write_text(uwsgi_ini(host=host, port=port, processes=max(UWSGI_PROCESSES, workers)))
    return ini


def uwsgi_ini(*, host: str, port: int, processes: int) -> str:
    """Glance's reference ``httpd/glance-api-uwsgi.ini`` for one node, serving the WSGI module
    (``plugins = python`` dropped: pyuwsgi has Python built in). ``need-app``: a worker that
    cannot load Glance exits instead of answering every request with 500."""
    return f"""\
# Written by glance-tui's staging lab: Glance's reference glance-api-uwsgi.ini for this node.
[uwsgi]
http-socket = {host}:{port}
module = glance.wsgi.api:application
need-app = true
master = true
processes = {processes}
lazy-apps = true
enable-threads = true
die-on-term = true
exit-on-reload = true
thunder-lock = true
add-header = Connection: close
http-auto-chunked = true
http-chunked-input = true
http-raw-body = true
buffer-size = 65535
socket-timeout = 10
"""
