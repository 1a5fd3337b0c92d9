"""Nodes whose answers a test controls, behind a real HAProxy and a real sshd each (for ``glance-tui init``).

Each node is one loopback address with a real sshd (its own host key) and a small HTTP server
answering ``/versions`` like Glance (or not); its sshd puts a directory of scripts first on PATH
(``ps``, ``systemctl``, ``dpkg-query``, ``apt-cache``, ``rpm``, ``dnf``, ``docker``, ``podman``, ``id``,
``ss``, ``sudo`` ...), so what the node "runs" is what the test wrote — the rest (sh, sed, printf, the
SSH transport, HAProxy) is real. The rpm and dnf scripts answer in those tools' formats (their query
formats applied to the answers, their messages), written from rpm(8), dnf(8) and dnf's source.
"""

from __future__ import annotations

import json
import shlex
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from glance_tui.lab.haproxy import HAProxyLab, HAProxyServer
from glance_tui.lab.procs import free_port
from glance_tui.lab.sshd import SSHD, public_key_path

GLANCE_VERSIONS = {"versions": [{"id": "v2.15", "status": "CURRENT", "links": []}, {"id": "v2.14", "status": "SUPPORTED", "links": []}]}
NOVA_VERSIONS = {"versions": [{"id": "v2.1", "status": "CURRENT", "min_version": "2.1", "version": "2.96"}]}
SECRET = "Node-DB-Pa55word-never-copied"


@dataclass
class NodeAnswers:
    """What one node shows. ``processes``: ARGS lines; ``units``: unit -> active state; ``containers``: "NAME IMAGE STATE"."""

    processes: list[str] = field(default_factory=list)
    units: dict[str, str] = field(default_factory=dict)
    dpkg_version: str | None = None
    candidate: str | None = None
    engine: str | None = None
    containers: list[str] = field(default_factory=list)
    container_version: str | None = None
    connection: str | None = None  # [database] connection
    versions: dict | None = None  # the /versions document; None: nothing listens
    conf_in_container: bool = False
    # RDO: rpm's VERSION-RELEASE of openstack-glance (None: not installed), its INSTALLTIME, and dnf
    # (has_dnf; dnf_offers: VERSION-RELEASE in its cached metadata, None: none; dnf_cache: False = no cache yet)
    rpm_version: str | None = None
    rpm_installtime: int = 1733400000
    has_dnf: bool = False
    dnf_offers: str | None = None
    dnf_cache: bool = True
    # A non-root SSH user (uid): the config is not readable to it (conf_denied), ``ss -p`` hides the
    # holder of the API port from it; sudo: None (no sudo), "nopasswd" (sudo -n runs as root), "password" (sudo -n refuses).
    uid: int = 0
    conf_denied: bool = False
    sudo: str | None = None


def _script(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


def write_bin(bin_dir: Path, node_dir: Path, a: NodeAnswers) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    conf = node_dir / "glance-api.conf"
    if a.connection is not None:
        conf.write_text(f"[DEFAULT]\nbind_port = 9292\n\n[database]\nconnection = {a.connection}\n")
    lines = [f"{100 + i} 1 50 {shlex.split(args)[0].rsplit('/', 1)[-1][:15]} {args}" for i, args in enumerate(a.processes)]
    lines = [ln.replace("{conf}", "/etc/glance/glance-api.conf") for ln in lines]
    # The node's /etc/glance/glance-api.conf is its own file (as in a node's mount namespace).
    root = '[ -n "$TEST_NODE_SUDO" ] || [ ' + str(a.uid) + ' = 0 ]'
    denied = f'{root} || {{ echo "cat: $1: Permission denied" >&2; exit 1; }}\n' if a.conf_denied else ""
    _script(bin_dir / "cat", f'[ "$1" = /etc/glance/glance-api.conf ] && {{ {denied}exec /bin/cat {shlex.quote(str(conf))}; }}\nexec /bin/cat "$@"')
    _script(bin_dir / "id", f'[ "$1" = -u ] && {{ {root} && echo 0 || echo {a.uid}; exit 0; }}\nexec /usr/bin/id "$@"')
    # ss shows another user's process holding a socket to root only (the users:(…) column)
    _script(bin_dir / "ss", f'{root} && exec /usr/bin/ss "$@"\n/usr/bin/ss "$@" | sed "s/ users:(.*//"')
    if a.sudo == "password":  # sudo -n's own message when the user's sudo asks for a password (sudo(8))
        _script(bin_dir / "sudo", 'echo "sudo: a password is required" >&2; exit 1')
    elif a.sudo == "nopasswd":
        _script(bin_dir / "sudo", '[ "$1" = -n ] && shift; export TEST_NODE_SUDO=1; exec "$@"')
    _script(bin_dir / "ps", "cat <<'EOF'\n" + "\n".join(["1 0 100 init /sbin/init", *lines]) + "\nEOF")
    cases = "".join(f"  {shlex.quote(u)}) state={shlex.quote(s)};;\n" for u, s in a.units.items())
    _script(bin_dir / "systemctl", f'for u; do :; done\ncase "$u" in\n{cases}  *) state=;;\nesac\n'
            'case "$1" in\n  is-active) [ -n "$state" ] && echo "$state" || echo inactive; [ "$state" = active ];;\n'
            '  status) [ -n "$state" ] || exit 4; [ "$state" = active ] && exit 0; exit 3;;\n  *) exit 1;;\nesac')
    _script(bin_dir / "dpkg-query", f"printf 'glance-api\\t%s\\n' {shlex.quote(a.dpkg_version)}" if a.dpkg_version else "exit 1")
    _script(bin_dir / "rpm", _rpm(a))
    if a.has_dnf:
        _script(bin_dir / "dnf", _dnf(a))
    _script(bin_dir / "apt-cache", f"printf 'glance-api:\\n  Installed: x\\n  Candidate: %s\\n' {shlex.quote(a.candidate)}" if a.candidate else "exit 0")
    _script(bin_dir / "systemd-detect-virt", "echo none; exit 1")
    _script(bin_dir / "hostname", f"echo {shlex.quote(node_dir.name)}")
    _script(bin_dir / "lxc-ls", "exit 0")
    for engine in ("docker", "podman"):
        if engine != a.engine:
            _script(bin_dir / engine, "exit 0")
            continue
        listing = "\n".join(f"{engine} {c}" for c in a.containers)
        _script(bin_dir / engine, f'case "$1" in\n  ps) cat <<\'EOF\'\n{listing}\nEOF\n;;\n'
                f'  exec) shift 2; case "$1" in\n    python3) echo glance {shlex.quote(a.container_version or "")};;\n'
                f'    cat) /bin/cat {shlex.quote(str(conf))};;\n  esac;;\nesac')


def _queryformat(fmt_var: str, tags: dict[str, str]) -> str:
    """Shell text printing ``$fmt_var`` with rpm/dnf queryformat tags replaced (``\\n`` as printf reads it); an
    unknown tag is left as it is, so printf fails on it as a wrong format would."""
    seds = " ".join(f"-e {shlex.quote(f's/%{{{tag}}}/{value}/g')}" for tag, value in tags.items())
    return f'printf "$(printf \'%s\' "${fmt_var}" | sed {seds})"'


def _rpm(a: NodeAnswers) -> str:
    """``rpm -q [--qf FMT] PKG`` as rpm answers it (rpm(8): the default format NAME-VERSION-RELEASE.ARCH;
    "package PKG is not installed" on stdout, exit 1, for a package it does not know)."""
    version, _, release = (a.rpm_version or "").partition("-")
    tags = {"NAME": "openstack-glance", "EPOCH": "1", "VERSION": version, "RELEASE": release, "ARCH": "noarch",
            "INSTALLTIME": str(a.rpm_installtime)}
    known = "openstack-glance" if a.rpm_version else "-"
    return (f"fmt='%{{NAME}}-%{{VERSION}}-%{{RELEASE}}.%{{ARCH}}\\n'\n[ \"$1\" = -q ] || exit 1; shift\n"
            'case "$1" in --qf|--queryformat) fmt=$2; shift 2;; esac\n'
            f'[ "$1" = {known} ] || {{ echo "package $1 is not installed"; exit 1; }}\n' + _queryformat("fmt", tags))


def _dnf(a: NodeAnswers) -> str:
    """``dnf [-q] -C repoquery [--latest-limit N] [--qf FMT] PKG``: refuses to run without --cacheonly (init
    must never refresh metadata); without a cache, dnf 4's error (dnf/repo.py: "Cache-only enabled but no
    cache for '<repo>'", exit 1); else the offered version in the query format (lower-case tags)."""
    version, _, release = (a.dnf_offers or "").partition("-")
    tags = {"name": "openstack-glance", "epoch": "1", "version": version, "release": release, "arch": "noarch"}
    return ("cacheonly=; qf='%{name}-%{epoch}:%{version}-%{release}.%{arch}\\n'; pkg=\n"
            'while [ $# -gt 0 ]; do case "$1" in -C|--cacheonly) cacheonly=1;; --qf|--queryformat) qf=$2; shift;; '
            '--latest-limit) shift;; -*|repoquery) ;; *) pkg=$1;; esac; shift; done\n'
            '[ -n "$cacheonly" ] || { echo "test node: dnf without --cacheonly would refresh metadata" >&2; exit 99; }\n'
            + ("" if a.dnf_cache else "echo \"Error: Cache-only enabled but no cache for 'centos-openstack-caracal'\" >&2; exit 1\n")
            + f'[ "$pkg" = openstack-glance ] && [ -n {shlex.quote(a.dnf_offers or "")} ] || exit 0\n' + _queryformat("qf", tags))


class _Versions(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass


def serve_versions(host: str, port: int, doc: dict) -> _Versions:
    body = json.dumps(doc).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200 if self.path.startswith("/versions") else 300)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = _Versions((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@dataclass
class FakeNode:
    name: str
    host: str
    api_port: int
    node_dir: Path
    sshd: SSHD
    http: _Versions | None

    def set_answers(self, answers: NodeAnswers) -> None:
        write_bin(self.node_dir / "bin", self.node_dir, answers)


@dataclass
class FakeCluster:
    nodes: list[FakeNode]
    lbs: list[HAProxyLab]
    ssh_port: int

    def stop(self) -> None:
        for lb in self.lbs:
            lb.stop()
        for n in self.nodes:
            n.sshd.stop()
            if n.http:
                n.http.shutdown()
                n.http.server_close()


def common_port(hosts: list[str]) -> int:
    """A port free on every host (sshd listens on the same port at each node address, as on real nodes)."""
    import socket

    for _ in range(50):
        port = free_port(hosts[0])
        try:
            for host in hosts[1:]:
                with socket.socket() as s:
                    s.bind((host, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no port free on every node address")


def start_cluster(workdir: Path, operator_key: Path, answers: dict[str, NodeAnswers], *, hosts: list[str],
                  backends: dict[str, list[str]], lb_count: int = 1, show_legends: bool = True,
                  stats_admin: bool = True, extra_config: str = "") -> FakeCluster:
    """Nodes ``answers`` (name -> answers) on ``hosts``; HAProxy instances with ``backends`` (backend -> node names)."""
    ssh_port = common_port(hosts)
    nodes = []
    for (name, a), host in zip(answers.items(), hosts):
        node_dir = workdir / name
        node_dir.mkdir(parents=True)
        write_bin(node_dir / "bin", node_dir, a)
        sshd = SSHD(node_dir / "sshd", host, ssh_port, authorized_keys=[public_key_path(operator_key)],
                    set_env={"PATH": f"{node_dir / 'bin'}:/usr/sbin:/usr/bin:/sbin:/bin"})
        sshd.start()
        api_port = free_port(host)
        http = serve_versions(host, api_port, a.versions) if a.versions is not None else None
        nodes.append(FakeNode(name, host, api_port, node_dir, sshd, http))
    by_name = {n.name: n for n in nodes}
    lbs = []
    names = list(backends)
    for i in range(lb_count):
        first = names[0]
        lab = HAProxyLab(workdir / f"haproxy-{i}", backend=first,
                         servers=[HAProxyServer(by_name[s].name, by_name[s].host, by_name[s].api_port) for s in backends[first]],
                         runtime_tcp_port=0, show_legends=show_legends, stats_admin=stats_admin)
        lab.extra_backends = [[b, 0] for b in names[1:]]
        if extra_config:  # more backends, with servers of their own
            rendered = lab.render_config
            lab.render_config = lambda rendered=rendered: rendered() + extra_config  # type: ignore[method-assign]
        lbs.append(lab)
    # extra backends share the first backend's servers in HAProxyLab: only use same-server backends here
    for lab in lbs:
        lab.start()
    return FakeCluster(nodes, lbs, ssh_port)
