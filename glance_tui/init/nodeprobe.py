"""One node over SSH (host key verified): what kind of node it is, which release, which database.

Two read-only commands: a survey (tools on PATH, systemd units, processes, containers, installed
and candidate package versions), then the Glance config of the place Glance runs (the container's
for Kolla). The kind is decided from what runs, never from a name alone:

* ``kolla``: a container of docker or podman whose name is ``glance_api`` (or names Glance's API);
* ``osa``: Glance's processes run from an OpenStack-Ansible venv (``/openstack/venvs/glance-…``);
* ``packages``: a systemd unit (``glance-api``, ``openstack-glance-api``, or Apache for mod_wsgi)
  with the server the processes show: eventlet ``glance-api``, uWSGI, or Apache mod_wsgi.

The config's ``[database] connection`` is parsed by :func:`glance_tui.db_target.parse_connection`,
which registers its password for redaction; only user, host, port and schema leave this module.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from glance_tui.adapters.known_hosts import KnownHostsCache
from glance_tui.adapters.ssh import NodeSSH
from glance_tui.config import NodeConfig, SSHConfig
from glance_tui.db_target import DbTarget, Unknown, parse_connection
from glance_tui.errors import AdapterError, HostKeyError, UsageError, clipped
from glance_tui.init import privilege, rpmnode
from glance_tui.kinds import VERSION_SCRIPT
from glance_tui.node.readings import parse_processes
from glance_tui.node.runtimes import runtime_of
from glance_tui.releases import parse_version, release_of

MARK = "@@glance-tui-init"
UNITS = ("glance-api", "openstack-glance-api", "apache2", "httpd")
DEFAULT_CONF = "/etc/glance/glance-api.conf"
PROBE_TIMEOUT = 60.0

SURVEY = [
    f"echo {MARK} tools",
    "for t in systemctl dpkg-query rpm dnf apt-cache docker podman lxc-ls; do command -v \"$t\" >/dev/null 2>&1 && echo \"$t\"; done",
    f"echo {MARK} host", "hostname 2>/dev/null",
    f"echo {MARK} virt", "systemd-detect-virt -c 2>/dev/null",
    f"echo {MARK} units",
    # is-active: "active" or not; status exits 0 running, 3 not running, 4 no such unit (systemd's codes)
    f"for u in {' '.join(UNITS)}; do a=$(systemctl is-active \"$u\" 2>/dev/null | head -n 1); "
    "systemctl status \"$u\" >/dev/null 2>&1; echo \"$u ${a:-?} $?\"; done",
    f"echo {MARK} processes", "date +%s && ps -eo pid=,ppid=,etimes=,comm=,args=",
    f"echo {MARK} containers",
    "for e in docker podman; do command -v $e >/dev/null 2>&1 && $e ps -a --format \"$e {{.Names}} {{.Image}} {{.State}}\" 2>/dev/null; done",
    f"echo {MARK} version", "dpkg-query -W glance-api 2>/dev/null",
    f"echo {MARK} candidate", "apt-cache policy glance-api 2>/dev/null",
    f"echo {MARK} rpm", f"{rpmnode.RPM_VERSION} 2>/dev/null",
    f"echo {MARK} dnf", rpmnode.DNF_SURVEY,
]


def survey_command(port: str) -> str:
    """The survey's one command; ``port`` is the node's API port (whose listener ``ss -p`` must name)."""
    return "; ".join(SURVEY + [f"echo {MARK} uid", "id -u", f"echo {MARK} listeners",
                               f"ss -Htlnp {shlex.quote(f'sport = :{port}')} 2>&1", f"echo {MARK} end"])


@dataclass
class NodeFindings:
    """What one node showed; ``problem`` set = it could not be read (the other fields are then empty)."""

    problem: str = ""
    reached: bool = False  # SSH logged in (a ``problem`` is then the survey's, e.g. an account without a shell)
    kind: str | None = None  # packages / kolla / osa; None = undecided (``kind_reason`` says why)
    kind_reason: str = ""
    runtime: str | None = None  # eventlet / uwsgi / mod_wsgi
    unit: str | None = None
    engine: str | None = None
    container: str | None = None
    image: str | None = None
    venv_root: str | None = None
    venv: str | None = None  # the venv Glance runs from (OSA)
    hostname: str = ""
    version: str | None = None
    candidate: str | None = None
    repository: str = ""  # why the repository offers no candidate, when it is known ("" = apt-cache or dnf answered or was asked)
    packager: str | None = None  # "deb" (dpkg, apt-cache) or "rpm" (RDO: rpm, dnf): what the version was read from
    conf_path: str = DEFAULT_CONF
    read_config: str = ""
    db: DbTarget | None = None
    db_problem: str = ""
    notes: list[str] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)  # what this node's answers leave to the operator (sudo, privileges)

    @property
    def release(self) -> str | None:
        return release_of(self.version)

    @property
    def candidate_release(self) -> str | None:
        return release_of(self.candidate)


def sections(output: str) -> dict[str, str]:
    """The survey's output split at its markers: {section: text}."""
    found: dict[str, list[str]] = {}
    current = None
    for line in output.splitlines():
        if line.startswith(MARK + " "):
            current = line[len(MARK) + 1:].strip()
            found[current] = []
        elif current is not None:
            found[current].append(line)
    return {k: "\n".join(v) for k, v in found.items()}


_CONFIG_FILE = re.compile(r"--config-file[= ](\S+)")
_OSA_VENV = re.compile(r"(/openstack/venvs/glance-[^/\s]+)/")


def classify(parts: dict[str, str], found: NodeFindings) -> None:
    """Fill kind, runtime, unit, engine/container, venv, config path and versions from the survey."""
    found.hostname = parts.get("host", "").strip().splitlines()[0] if parts.get("host", "").strip() else ""
    try:
        _, procs = parse_processes(parts.get("processes", ""))
    except ValueError as exc:
        procs = []
        found.notes.append(f"its process list could not be read ({clipped(exc, 80)})")
    glance = [(p, rt) for p in procs if (rt := runtime_of(p)) is not None]
    runtimes = sorted({rt.name for _, rt in glance})
    found.runtime = runtimes[0] if len(runtimes) == 1 else None
    if len(runtimes) > 1:
        found.notes.append(f"several Glance servers run: {', '.join(runtimes)}")
    for proc, _ in glance:
        if m := _CONFIG_FILE.search(proc.args):
            found.conf_path = m.group(1)
            break
    units = {}
    for line in parts.get("units", "").splitlines():
        bits = line.split()
        if len(bits) == 3 and bits[0] in UNITS:
            units[bits[0]] = (bits[1], bits[2])
    present = [u for u, (active, status) in units.items() if active == "active" or status in ("0", "3")]
    containers = []
    for line in parts.get("containers", "").splitlines():
        bits = line.split()
        if len(bits) >= 4 and bits[0] in ("docker", "podman") and "glance" in bits[1] and "api" in bits[1]:
            containers.append(bits)
    _packages(parts, found)
    venvs = sorted({m.group(1) for p, _ in glance if (m := _OSA_VENV.search(p.args))})
    if containers:
        chosen = next((c for c in containers if c[1] == "glance_api"), containers[0])
        found.kind, found.engine, found.container, found.image = "kolla", chosen[0], chosen[1], chosen[2]
        found.kind_reason = f"{chosen[0]} container {chosen[1]} ({chosen[3]}) of image {chosen[2]}"
        if len(containers) > 1:
            found.notes.append(f"several Glance API containers: {', '.join(c[0] + ' ' + c[1] for c in containers)}")
        found.read_config = f"{chosen[0]} exec {shlex.quote(chosen[1])} cat {DEFAULT_CONF}"
        found.version = None  # the host's packages are not what the container runs
        found.candidate, found.packager = None, None
        return
    if venvs:
        found.kind, found.venv, found.venv_root = "osa", venvs[0], venvs[0].rsplit("/", 1)[0]
        found.kind_reason = f"Glance runs from the OpenStack-Ansible venv {venvs[0]}"
        found.read_config = f"cat {shlex.quote(found.conf_path)}"
        found.version, found.packager = None, None
        return
    unit = next((u for u in ("glance-api", "openstack-glance-api") if u in present), None)
    if unit is None and found.runtime == "mod_wsgi":
        unit = next((u for u in ("apache2", "httpd") if u in present), None)
    if unit is not None:
        found.kind, found.unit = "packages", unit
        server = {"eventlet": "the eventlet glance-api", "uwsgi": "uWSGI", "mod_wsgi": "Apache mod_wsgi"}.get(found.runtime or "", "")
        state = units[unit][0]
        found.kind_reason = f"systemd unit {unit} ({state})" + (f" running {server}" if server else ", no Glance process running")
        found.read_config = f"cat {shlex.quote(found.conf_path)}"
        return
    seen = f"Glance processes ({', '.join(runtimes)}) but no systemd unit, container or venv" if runtimes else "no Glance unit, container, venv or process"
    found.kind_reason = f"{seen} was found"
    found.read_config = f"cat {shlex.quote(found.conf_path)}"


def _packages(parts: dict[str, str], found: NodeFindings) -> None:
    """Installed and candidate versions from Debian's packages (dpkg, apt-cache) or RDO's (rpm, dnf: :mod:`rpmnode`)."""
    tools = parts.get("tools", "").split()
    version_lines = [ln for ln in parts.get("version", "").splitlines() if ln.strip()]
    found.version = parse_version(version_lines[0]) if version_lines else None
    if found.version:
        found.packager = "deb"
        if m := re.search(r"Candidate:\s*(\S+)", parts.get("candidate", "")):
            found.candidate = parse_version(m.group(1))
        if "tools" in parts and "apt-cache" not in tools:
            found.repository = "no apt-cache on it"
        return
    found.version = rpmnode.rpm_version(parts.get("rpm", ""))
    if found.version:
        found.packager = "rpm"
        found.candidate, found.repository = rpmnode.dnf_candidate(parts.get("dnf", ""), "dnf" in tools)
    elif "tools" in parts and "apt-cache" not in tools:
        found.repository = "neither glance-api (dpkg) nor openstack-glance (rpm) is installed on it"


async def probe_node(node: NodeConfig, ssh: SSHConfig, known_hosts: KnownHostsCache) -> NodeFindings:
    """Survey one node; an unknown or changed host key is a UsageError (never accepted), any other
    failure to reach it is ``problem`` (the config asks about the node)."""
    conn = NodeSSH(node, ssh, known_hosts)
    found = NodeFindings()
    url = urlsplit(node.api_url)
    port = str(url.port or (443 if url.scheme == "https" else 80))
    try:
        try:
            survey = await conn.run(survey_command(port), timeout=PROBE_TIMEOUT)
        except HostKeyError as exc:
            raise UsageError(exc.what, where=exc.where, fix=f"{exc.fix} (or give --known-hosts the file that holds it)") from None
        except AdapterError as exc:
            if "authentication failed" in exc.what:
                raise UsageError(exc.what, where=exc.where, fix="give --ssh-user and --identity-file of an account the nodes accept") from None
            found.problem = exc.what
            return found
        found.reached = True
        parts = sections(survey.stdout)
        if ssh.sudo and (said := privilege.sudo_refusal(survey.stderr)):
            found.problem = f"sudo -n refused: {said}"
            found.questions.append(privilege.sudo_question(conn.user, said))
            return found
        if "end" not in parts:
            found.problem = f"the survey did not complete (exit {survey.exit_status}: {clipped(' | '.join(survey.tail(2)), 160)})"
            return found
        classify(parts, found)
        await _read_versions(conn, found)
        await _read_database(conn, found)
        if not ssh.sudo:
            denied = found.db_problem if "permission denied" in found.db_problem.lower() else ""
            found.questions += privilege.unprivileged_questions(conn.user, parts.get("uid", ""), parts.get("listeners", ""), port, denied)
    finally:
        await conn.close()
    return found


async def _read_versions(conn: NodeSSH, found: NodeFindings) -> None:
    """Kolla and OSA: the Glance version of the code that runs (the container's, the venv's), read as the kinds read it."""
    script = shlex.quote(VERSION_SCRIPT)
    if found.kind == "kolla":
        command = f"{found.engine} exec {shlex.quote(found.container or '')} python3 -c {script}"
    elif found.kind == "osa" and found.venv:
        command = f"{shlex.quote(found.venv)}/bin/python -c {script}"
    else:
        return
    try:
        result = await conn.run(command, timeout=PROBE_TIMEOUT)
    except AdapterError as exc:
        found.notes.append(f"its Glance version could not be read ({exc.what})")
        return
    found.version = parse_version(result.stdout + "\n" + result.stderr) if result.ok else None
    if found.version is None:
        found.notes.append(f"`{command}` gave no version (exit {result.exit_status})")


async def _read_database(conn: NodeSSH, found: NodeFindings) -> None:
    """User, host, port and schema of the config's ``[database] connection`` — never its password."""
    try:
        result = await conn.run(found.read_config, timeout=PROBE_TIMEOUT)
    except AdapterError as exc:
        found.db_problem = f"`{found.read_config}` failed: {exc.what}"
        return
    if not result.ok:
        found.db_problem = f"`{found.read_config}` exited {result.exit_status} ({clipped(' | '.join(result.tail(1)), 120)})"
        return
    try:
        found.db = parse_connection(result.stdout)
    except Unknown as exc:
        found.db_problem = str(exc)
        return
    if found.kind != "kolla" and found.conf_path != DEFAULT_CONF:
        await _default_reads_the_same(conn, found)


async def _default_reads_the_same(conn: NodeSSH, found: NodeFindings) -> None:
    """Glance runs with another --config-file: the default ``read_config`` still serves when the
    node's /etc/glance/glance-api.conf names the same database (one command for every node)."""
    default = f"cat {DEFAULT_CONF}"
    try:
        result = await conn.run(default, timeout=PROBE_TIMEOUT)
        same = result.ok and parse_connection(result.stdout) == found.db
    except (AdapterError, Unknown):
        same = False
    if same:
        found.notes.append(f"Glance runs with --config-file {found.conf_path}; {DEFAULT_CONF} names the same database")
        found.read_config = default
