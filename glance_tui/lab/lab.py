"""The staging lab: a real Glance cluster on loopback shaped like a production cloud.

MariaDB, Keystone (fernet, a ``glance`` service user, the image service in the catalog), N
glance-api nodes behind Keystone, two HAProxy instances (as Kolla-Ansible and
OpenStack-Ansible run one per controller) each with an internal and an external Glance
backend, one sshd per node. Keystone and the second instance are options: the simulated
cluster of the tests (no auth in its Glance) runs without them.

Everything runs as detached processes with pid files under one lab directory, so ``down()``
stops exactly what the lab started, and ``up()`` is idempotent (it starts only what is not
running). The resolved layout (addresses, ports, the upgrade path) is kept in ``lab.json`` so
later calls (``down``, ``status``, ``rehearse``) need no arguments. A lab is built on one upgrade
path (``envs.PATHS``, e.g. 2025.1 -> 2026.1): its nodes start on the path's first release, its
config targets the second, and it installs only those two environments. Parameterised so test fixtures can reuse it with
simulated Glance binaries and free ports (0). Synchronous: run it in a thread from async code.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import glance_tui
from glance_tui.errors import GlanceTuiError, UsageError, one_line
from glance_tui.lab import envs as lab_envs
from glance_tui.lab import containers, glance, nodectl, nodens, procs
from glance_tui.lab.haproxy import HAProxyLab, HAProxyServer
from glance_tui.lab.keystone import KeystoneLab, authtoken_section
from glance_tui.lab.mariadb import MariaDB
from glance_tui.lab.runtime import runtime_of, write_uwsgi_ini
from glance_tui.lab.slowserve import SlowWebServer
from glance_tui.lab.sshd import SSHD, generate_keypair, public_key_path, write_known_hosts
from glance_tui.secrets import register
from glance_tui.statedir import state_home, unusable

BACKEND = "glance_api"
EXTERNAL_BACKEND = "glance_api_external"
DB_SCHEMA = "glance"
DB_USER = "glance"
KEYSTONE_SCHEMA = "keystone"
KEYSTONE_DB_USER = "keystone"
# Header the lab's HAProxy adds to every Glance response: which server answered (for the rehearsals).
SERVED_BY = "X-Lab-Served-By"
# Each lab HAProxy's hard-stop-after (and the config's hard_stop_after): after a reload the old
# worker finishes its transfers for at most this long, so the tool knows when it is gone.
LB_HARD_STOP_AFTER = 10.0
# sshd's own PATH for a session (OpenSSH's default), after the node's package tools.
SESSION_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Debian packages the lab needs, checked up front so a fresh machine gets one line with the fix.
BINARIES = ("mariadbd", "mysql_install_db", "mariadb", "mysqldump", "haproxy", "sshd", "ssh-keygen", "unshare", "nsenter")


def default_dir() -> Path:
    return state_home() / "lab"


def require_packages() -> None:
    missing: list[str] = []
    for name in BINARIES:
        try:
            procs.require_binary(name)
        except GlanceTuiError:
            missing.append(procs.PACKAGES.get(name, name))
    if missing:
        pkgs = " ".join(dict.fromkeys(missing))
        raise GlanceTuiError(f"missing Debian packages: {pkgs}", fix=f"apt-get update && apt-get install -y {pkgs}")


@dataclass
class NodeLayout:
    name: str
    host: str
    api_port: int
    ssh_port: int

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"


@dataclass
class BalancerLayout:
    """One HAProxy instance: its address, the internal (and external) frontend, stats, runtime API."""

    name: str
    host: str
    frontend_port: int
    stats_port: int
    runtime_tcp_port: int
    external_port: int | None = None  # None: only the internal backend

    @property
    def frontend_url(self) -> str:
        return f"http://{self.host}:{self.frontend_port}"

    @property
    def urls(self) -> dict[str, str]:
        """backend -> the frontend URL routing to it."""
        urls = {BACKEND: self.frontend_url}
        if self.external_port:
            urls[EXTERNAL_BACKEND] = f"http://{self.host}:{self.external_port}"
        return urls


@dataclass
class Layout:
    """Every address and port of one lab (resolved: no 0 left), persisted as lab.json."""

    nodes: list[NodeLayout]
    balancers: list[BalancerLayout]
    db_port: int
    workers: int = 1
    envs: dict[str, str] = field(default_factory=dict)  # release -> bin dir (and the Keystone env)
    keystone_host: str | None = None  # None: Glance without Keystone
    keystone_port: int | None = None
    autostart: bool = False  # a node's `upgrade` starts its service, as a Debian postinst does
    path: tuple[str, str] = lab_envs.DEFAULT_PATH  # (from, to) release: lab.json without it predates paths
    web_host: str | None = None  # the slow HTTP server web-download imports read from (None: a lab.json from before it)
    web_port: int | None = None
    node_kind: str = "packages"  # lab_envs.NODE_KINDS: how each node runs Glance

    base = property(lambda self: self.path[0])
    target = property(lambda self: self.path[1])

    # Instance A: where `lab load` and the single-instance callers look.
    lb_host = property(lambda self: self.balancers[0].host)
    frontend_port = property(lambda self: self.balancers[0].frontend_port)
    stats_port = property(lambda self: self.balancers[0].stats_port)
    runtime_tcp_port = property(lambda self: self.balancers[0].runtime_tcp_port)

    @property
    def web_url(self) -> str | None:
        return f"http://{self.web_host}:{self.web_port}" if self.web_host else None

    @property
    def keystone_url(self) -> str | None:
        return f"http://{self.keystone_host}:{self.keystone_port}" if self.keystone_host else None

    @property
    def frontend_urls(self) -> list[str]:
        """Every frontend of every instance: the load is spread over all of them."""
        return [url for b in self.balancers for url in b.urls.values()]

    def to_json(self) -> dict:
        data = dict(self.__dict__)
        data["nodes"] = [n.__dict__ for n in self.nodes]
        data["balancers"] = [b.__dict__ for b in self.balancers]
        return data

    @classmethod
    def from_json(cls, data: dict) -> "Layout":
        data = dict(data)
        if "balancers" not in data:  # lab.json written before there were two instances
            data["balancers"] = [{"name": "lb", "host": data.pop("lb_host"), "frontend_port": data.pop("frontend_port"),
                                  "stats_port": data.pop("stats_port"), "runtime_tcp_port": data.pop("runtime_tcp_port")}]
        if "path" in data:
            data["path"] = tuple(data["path"])
        return cls(**{**data, "nodes": [NodeLayout(**n) for n in data["nodes"]],
                      "balancers": [BalancerLayout(**b) for b in data["balancers"]]})


class Lab:
    def __init__(
        self,
        workdir: str | Path | None = None,
        *,
        nodes: int | None = None,  # None: as the existing lab has, else 3
        envs: dict[str, Path] | None = None,  # release -> bin dir; None = the real, cached environments
        ip_base: str = "127.0.0.",
        first_ip: int = 11,
        lb_ip: int = 10,
        lb_b_ip: int = 9,
        keystone_ip: int = 5,
        web_ip: int = 6,
        api_port: int = 9292,
        frontend_port: int = 9292,
        external_port: int = 9293,
        stats_port: int = 8404,
        runtime_tcp_port: int = 9999,
        ssh_port: int = 2222,
        db_port: int = 13306,
        keystone_port: int = 5000,
        web_port: int = 0,  # the slow web-download server's; 0: a free one, kept in lab.json
        workers: int = 1,
        keystone: bool | None = None,  # None: on for the real Glance environments, off for simulated ones (envs=)
        second_lb: bool | None = None,  # instance B and the external backends; None: like keystone
        autostart: bool | None = None,  # None: as the existing lab has, else off
        path: tuple[str, str] | None = None,  # (from, to) release; None: as the existing lab has, else envs.DEFAULT_PATH
        node_kind: str | None = None,  # lab_envs.NODE_KINDS; None: as the existing lab has, else packages
        progress: Callable[[str], None] = print,
    ) -> None:
        if nodes is not None and (nodes < 1 or first_ip + nodes > 255):
            raise UsageError(f"cannot build a lab with {nodes} nodes", fix="use between 1 and 20 nodes")
        if workdir is not None and str(workdir) == "":  # never "the default lab": the operator typed something else
            raise UsageError("an empty lab directory (--dir '')", fix="give --dir a directory, or leave it out for the default")
        self.dir = Path(workdir or default_dir()).absolute()
        if not str(self.dir).isprintable():  # it is printed, written into configs and passed to every service
            raise UsageError(f"the lab directory {one_line(str(self.dir))} has a control character", fix="give --dir a plain path")
        if self.dir.exists() and not self.dir.is_dir():  # every lab file lives in it: one line now, not an errno later
            raise UsageError(f"the lab directory {self.dir} is not a directory", fix="give --dir a directory (it is created if missing)")
        self.n_nodes = nodes
        self.envs = {k: str(Path(v).absolute()) for k, v in envs.items()} if envs else None
        self.ip_base, self.first_ip, self.lb_ip, self.lb_b_ip, self.keystone_ip = ip_base, first_ip, lb_ip, lb_b_ip, keystone_ip
        self.web_ip = web_ip
        self.ports = dict(api=api_port, frontend=frontend_port, external=external_port, stats=stats_port, runtime=runtime_tcp_port,
                          ssh=ssh_port, db=db_port, keystone=keystone_port, web=web_port)
        self.workers = workers
        real = envs is None
        self.with_keystone = real if keystone is None else keystone
        self.with_second_lb = real if second_lb is None else second_lb
        # the simulated cluster's HAProxy is young in every test module: its old worker may linger 1 s, not 10
        self.lb_hard_stop_after = LB_HARD_STOP_AFTER if real else 1.0
        self.autostart = autostart
        self.requested_path = lab_envs.check_path(*path) if path else None
        if node_kind is not None and node_kind not in lab_envs.NODE_KINDS:
            raise UsageError(f"unknown node kind {node_kind!r}", fix=f"use one of {', '.join(lab_envs.NODE_KINDS)}")
        self.requested_kind = node_kind
        self.progress = progress

    # ------------------------------------------------------------------ paths
    layout_file = property(lambda self: self.dir / "lab.json")
    config_path = property(lambda self: self.dir / "glance-tui.toml")
    password_file = property(lambda self: self.dir / "db-password")
    admin_password_file = property(lambda self: self.dir / "keystone-admin-password")
    glance_password_file = property(lambda self: self.dir / "keystone-glance-password")
    operator_key = property(lambda self: self.dir / "keys" / "operator")
    known_hosts = property(lambda self: self.dir / "keys" / "known_hosts")
    store_dir = property(lambda self: self.dir / "images")
    backup_dir = property(lambda self: self.dir / "backups")

    def node_dir(self, name: str) -> Path:
        return self.dir / "nodes" / name

    def images(self) -> containers.Images:
        """The container lab's Glance images (one archive per release: the registry's part)."""
        return containers.Images(self.dir / "container-images", progress=self.progress)

    def container(self, node: NodeLayout) -> containers.ContainerNode:
        return containers.ContainerNode(self.node_dir(node.name), node.name, self.images())

    # ------------------------------------------------------------------ layout
    def load_layout(self) -> Layout | None:
        try:
            return Layout.from_json(json.loads(self.layout_file.read_text()))
        except FileNotFoundError:
            return None
        except OSError as exc:  # a directory in its place, no permission, a file where a directory should be
            raise unusable(exc, self.layout_file, "read the lab layout") from None
        except (ValueError, TypeError, KeyError) as exc:
            raise GlanceTuiError(f"cannot read the lab layout ({exc})", where=str(self.layout_file),
                                 fix="run `glance-tui lab down`, remove the file and run `glance-tui lab up`") from None

    def path(self, old: Layout | None = None) -> tuple[str, str]:
        """The upgrade path this lab is (to be) on: the one asked for, else the existing lab's, else the default."""
        old = old or self.load_layout()
        return self.requested_path or (old.path if old else lab_envs.DEFAULT_PATH)

    def _resolve_layout(self, env_bins: dict[str, str], path: tuple[str, str]) -> Layout:
        old = self.load_layout()
        if old and old.path != path:
            raise UsageError(f"the lab is on the path {old.base} -> {old.target}, not {path[0]} -> {path[1]}", where=str(self.dir),
                                 fix=f"run `glance-tui lab reset --from {path[0]} --to {path[1]}` (a fresh database on the new path), "
                                     "or omit --from/--to")
        kind = self.requested_kind or (old.node_kind if old else "packages")
        if old and old.node_kind != kind:
            raise UsageError(f"the lab's nodes are of kind {old.node_kind}, not {kind}", where=str(self.dir),
                             fix=f"run `glance-tui lab reset --node-kind {kind}` (a fresh database, the nodes re-made), or omit --node-kind")
        if self.n_nodes is None:
            self.n_nodes = len(old.nodes) if old else 3
        if old and len(old.nodes) != self.n_nodes and self._anything_running(old):
            raise GlanceTuiError(f"the running lab has {len(old.nodes)} nodes, not {self.n_nodes}",
                                 where=str(self.dir), fix="run `glance-tui lab down` first, or omit --nodes")

        def pick(key: str, host: str, previous: int | None) -> int:
            wanted = self.ports[key]
            if wanted:
                return wanted
            return previous if previous else procs.free_port(host)

        prev_nodes = {n.name: n for n in old.nodes} if old else {}
        nodes = []
        for i in range(self.n_nodes):
            name, host = f"glance-{i + 1}", f"{self.ip_base}{self.first_ip + i}"
            prev = prev_nodes.get(name)
            nodes.append(NodeLayout(name, host, pick("api", host, prev and prev.api_port), pick("ssh", host, prev and prev.ssh_port)))
        wanted = [("lb-a", self.lb_ip), ("lb-b", self.lb_b_ip)] if self.with_second_lb else [("lb", self.lb_ip)]
        prev_lbs = {b.name: b for b in old.balancers} if old else {}
        balancers = []
        for name, ip in wanted:
            host, prev = f"{self.ip_base}{ip}", prev_lbs.get(name)
            balancers.append(BalancerLayout(
                name, host,
                frontend_port=pick("frontend", host, prev and prev.frontend_port),
                stats_port=pick("stats", host, prev and prev.stats_port),
                runtime_tcp_port=pick("runtime", host, prev and prev.runtime_tcp_port),
                external_port=pick("external", host, prev and prev.external_port) if self.with_second_lb else None,
            ))
        keystone_host = f"{self.ip_base}{self.keystone_ip}" if self.with_keystone else None
        autostart = self.autostart if self.autostart is not None else bool(old and old.autostart)
        web_host = f"{self.ip_base}{self.web_ip}"
        return Layout(
            nodes=nodes,
            balancers=balancers,
            db_port=pick("db", "127.0.0.1", old and old.db_port),
            workers=self.workers,
            envs=env_bins,
            keystone_host=keystone_host,
            keystone_port=pick("keystone", keystone_host, old and old.keystone_port) if keystone_host else None,
            autostart=autostart,
            path=path,
            web_host=web_host,
            web_port=pick("web", web_host, old and old.web_host == web_host and old.web_port),
            node_kind=kind,
        )

    # ------------------------------------------------------------------ services
    def mariadb(self, layout: Layout) -> MariaDB:
        return MariaDB(self.dir / "mariadb", host="127.0.0.1", port=layout.db_port)

    def haproxies(self, layout: Layout) -> list[HAProxyLab]:
        """Every HAProxy instance (A first)."""
        return [self._haproxy(layout, b, i) for i, b in enumerate(layout.balancers)]

    def haproxy(self, layout: Layout) -> HAProxyLab:
        """Instance A."""
        return self.haproxies(layout)[0]

    def _haproxy(self, layout: Layout, b: BalancerLayout, index: int) -> HAProxyLab:
        return HAProxyLab(
            self.dir / ("haproxy" if index == 0 else f"haproxy-{b.name}"), backend=BACKEND,
            servers=[HAProxyServer(n.name, n.host, n.api_port) for n in layout.nodes],
            frontend_host=b.host, frontend_port=b.frontend_port,
            stats_host=b.host, stats_port=b.stats_port, runtime_tcp_port=b.runtime_tcp_port, source_host=b.host,
            stats_admin=True, check_inter_ms=500, served_by_header=SERVED_BY,
            check_timeout_s=max(runtime_of(r).check_timeout for r in layout.path),
            # Behind Keystone /versions still answers without a token, but /healthcheck is what a
            # production LB checks (and what disable_by_file_path switches off).
            health_path="/healthcheck" if layout.keystone_host else "/versions",
            extra_backends=[[EXTERNAL_BACKEND, b.external_port]] if b.external_port else [],
            hard_stop_after=self.lb_hard_stop_after,
        )

    def web_server(self, layout: Layout) -> SlowWebServer | None:
        """The slow HTTP server web-download imports read from (None: a layout from before it)."""
        if not layout.web_host or not layout.web_port:
            return None
        return SlowWebServer(self.dir / "webserver", layout.web_host, layout.web_port)

    def keystone(self, layout: Layout) -> KeystoneLab | None:
        if not layout.keystone_host:
            return None
        from glance_tui.lab.envs import KEYSTONE

        return KeystoneLab(self.dir / "keystone", Path(layout.envs[KEYSTONE]), layout.keystone_host, int(layout.keystone_port or 0),
                           glance.db_url(user=KEYSTONE_DB_USER, password=self._password(), host="127.0.0.1", port=layout.db_port,
                                         schema=KEYSTONE_SCHEMA),
                           admin_password=self._secret(self.admin_password_file), glance_password=self._secret(self.glance_password_file))

    def token(self) -> str | None:
        """A token for the load clients (admin in project admin); None when the lab has no Keystone."""
        layout = self.load_layout()
        ks = self.keystone(layout) if layout else None
        return ks.token() if ks else None

    def sshd(self, node: NodeLayout) -> SSHD:
        """The node's sshd, inside the node's machine (:mod:`nodens`). HOME is the node's own dir:
        sshd runs every command through the login shell, and bash then sources ~/.bashrc — the lab
        host's root dotfiles (a pyenv init there costs ~90 ms of CPU per command) are not the
        node's. The node's package tools (``nodectl.PATH_DIR``) come first on its PATH."""
        package_root = str(Path(glance_tui.__file__).resolve().parent.parent)
        home = self.node_dir(node.name)
        env = {nodectl.NODE_DIR_ENV: str(home), "PYTHONPATH": package_root, "HOME": str(home)}
        if self._kind() == "kolla":  # a container node's own `podman` (its world: containers.py) comes first on its PATH
            return SSHD(home / "sshd", node.host, node.ssh_port, authorized_keys=[public_key_path(self.operator_key)],
                        set_env={**env, "PATH": f"{self.container(node).bin_dir}:{SESSION_PATH}"})
        return SSHD(home / "sshd", node.host, node.ssh_port,
                    authorized_keys=[public_key_path(self.operator_key)],
                    set_env={**env, "PATH": f"{home / nodectl.PATH_DIR}:{SESSION_PATH}"},
                    wrap=lambda: nodens.enter(home))

    def node(self, node: NodeLayout) -> nodectl.Node:
        return nodectl.Node.load(self.node_dir(node.name))

    def _kind(self, layout: Layout | None = None) -> str:
        layout = layout or self.load_layout()
        return layout.node_kind if layout else (self.requested_kind or "packages")

    def _glance_running(self, layout: Layout, n: NodeLayout) -> bool:
        """Is the node's Glance running (its service, or its container)? Unreadable: no."""
        try:
            if layout.node_kind == "kolla":
                state = self.container(n).state() if (self.node_dir(n.name) / "podman").exists() else None
                return bool(state and state["status"] == "running")
            return (self.node_dir(n.name) / "node.json").exists() and nodectl.running_pid(self.node(n)) is not None
        except GlanceTuiError:
            return False

    def _anything_running(self, layout: Layout) -> bool:
        if self.mariadb(layout).is_running() or any(lb.is_running() for lb in self.haproxies(layout)):
            return True
        if layout.keystone_host and procs.is_running(self.dir / "keystone" / "keystone.pid"):
            return True
        web = self.web_server(layout)
        if web and web.is_running():
            return True
        for n in layout.nodes:
            if self.sshd(n).is_running() or nodens.is_running(self.node_dir(n.name)) or self._glance_running(layout, n):
                return True
        return False

    # ------------------------------------------------------------------ up
    def up(self) -> Layout:
        """Start whatever is not running; create database, configs and keys on first use."""
        started = time.monotonic()
        require_packages()
        path = self.path()
        if self._kind() == "kolla" or self.requested_kind == "kolla":
            containers.require_podman()
        env_bins = dict(self.envs or {rel: str(lab_envs.ensure_env(rel, progress=self.progress)) for rel in path})
        if self.with_keystone:
            env_bins[lab_envs.KEYSTONE] = str(lab_envs.ensure_env(lab_envs.KEYSTONE, progress=self.progress))
        self.dir.mkdir(parents=True, exist_ok=True)
        layout = self._resolve_layout(env_bins, path)
        self._check_ports(layout)
        self.layout_file.write_text(json.dumps(layout.to_json(), indent=2) + "\n")
        password = self._password()
        if not self.operator_key.exists():
            generate_keypair(self.operator_key, comment="glance-tui-lab-operator")
        database = glance.db_url(user=DB_USER, password=password, host="127.0.0.1", port=layout.db_port, schema=DB_SCHEMA)

        self._up_database(layout, password, database)
        authtoken = self._up_keystone(layout)
        self.store_dir.mkdir(exist_ok=True)
        self.backup_dir.mkdir(exist_ok=True)
        web = self.web_server(layout)
        if web and not web.is_running():
            self.progress(f"starting the slow web-download server on {layout.web_url}")
            web.start()
        waits: list[Callable[[], None]] = []
        if layout.node_kind == "kolla":
            for release in layout.path:
                self.images().ensure(release, layout.envs[release])
        for n in layout.nodes:  # each node's Glance connects from the node's own address, as on a real cloud
            node = self._write_node(layout, n, glance.db_url(user=DB_USER, password=password, host="127.0.0.1", port=layout.db_port,
                                                             schema=DB_SCHEMA, bind_address=n.host), authtoken)
            if layout.node_kind == "kolla":
                box = self._up_container(layout, n)
                waits.append(lambda box=box, url=f"{n.api_url}/versions": box.wait_serving(url))
                continue
            if not nodens.is_running(node.dir):
                node.pidfile.unlink(missing_ok=True)  # a service of a machine that is gone: its pid means nothing now
                nodens.start(node.dir)
            if nodectl.running_pid(node) is None:
                self.progress(f"starting glance-api {n.name} ({node.release}) on {n.api_url}")
                pid = nodectl.start(node, wait=False)
                waits.append(lambda node=node, pid=pid: nodectl.wait_listening(node, pid))
        for wait in waits:
            wait()
        sshds = [self.sshd(n) for n in layout.nodes]
        for s in sshds:
            if not s.is_running():
                s.start()
        write_known_hosts(self.known_hosts, sshds)
        for lb in self.haproxies(layout):
            if not lb.is_running():
                self.progress(f"starting HAProxy on {', '.join(lb.frontend_urls.values())} (stats {lb.stats_url})")
                lb.start()
        ks = self.keystone(layout)
        if ks:
            ks.register_glance({"internal": layout.balancers[0].urls[BACKEND], "admin": layout.balancers[0].urls[BACKEND],
                                "public": list(layout.balancers[0].urls.values())[-1]})
        self.write_config(layout)
        for url in layout.frontend_urls:
            self._wait_ready(f"{url}/versions")
        self.progress(f"lab up in {time.monotonic() - started:.1f}s: glance-tui -c {self.config_path}")
        return layout

    def _check_ports(self, layout: Layout) -> None:
        """Every port a stopped service needs must be free before anything starts (no half-started lab)."""
        needed = []
        if not self.mariadb(layout).is_running():
            needed.append(("127.0.0.1", layout.db_port, "MariaDB"))
        ks = self.keystone(layout)
        if ks and not ks.is_running():
            needed.append((ks.host, ks.port, "Keystone"))
        for b, lb in zip(layout.balancers, self.haproxies(layout)):
            if not lb.is_running():
                needed += [(b.host, port, f"HAProxy {b.name}'s frontend of {backend}") for backend, port in
                           [(BACKEND, b.frontend_port), (EXTERNAL_BACKEND, b.external_port)] if port]
                needed += [(b.host, b.stats_port, f"HAProxy {b.name}'s stats page"),
                           (b.host, b.runtime_tcp_port, f"HAProxy {b.name}'s runtime API")]
        web = self.web_server(layout)
        if web and not web.is_running():
            needed.append((web.host, web.port, "the slow web-download server"))
        for n in layout.nodes:
            if not self.sshd(n).is_running():
                needed.append((n.host, n.ssh_port, f"sshd of {n.name}"))
            if not self._glance_running(layout, n):
                needed.append((n.host, n.api_port, f"glance-api on {n.name}"))
        for host, port, what in needed:
            procs.require_free_port(host, port, what)

    def _password(self) -> str:
        return self._secret(self.password_file)

    def _secret(self, path: Path) -> str:
        """A lab password from its file (made on first use, mode 600), registered for redaction."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(18) + "\n")
        path.chmod(0o600)
        password = path.read_text().strip()
        register(password)
        return password

    def _up_keystone(self, layout: Layout) -> str | None:
        """Keystone's database, bootstrap and server; the ``[keystone_authtoken]`` for the nodes (None without)."""
        ks = self.keystone(layout)
        if ks is None:
            return None
        self.mariadb(layout).create_database(KEYSTONE_SCHEMA, KEYSTONE_DB_USER, self._password())
        if not ks.marker.exists():
            self.progress(f"bootstrapping Keystone {lab_envs.KEYSTONE_VERSION} (fernet tokens, admin)")
        ks.bootstrap()
        if not ks.is_running():
            self.progress(f"starting Keystone (gunicorn) on {ks.url}")
            ks.start()
        return authtoken_section(auth_url=ks.url, password=ks.glance_password)

    def _up_database(self, layout: Layout, password: str, database: str) -> None:
        db = self.mariadb(layout)
        if not db.is_running():
            self.progress(f"starting MariaDB on 127.0.0.1:{layout.db_port}")
            db.start()
        marker = db.workdir / ".glance-synced"
        if not marker.exists():
            db.create_database(DB_SCHEMA, DB_USER, password)
            conf = self.dir / "glance-manage.conf"
            glance.write_manage_conf(conf, database)
            self.progress(f"creating the Glance schema with glance-manage db sync ({layout.base})")
            glance.db_sync(Path(layout.envs[layout.base]), conf)
            marker.write_text("synced by glance-tui lab\n")
        # The Glance account for the tool (127.0.0.1, with PROCESS to see every client) and each node.
        db.create_database(DB_SCHEMA, DB_USER, password, hosts=("127.0.0.1", "localhost", *(n.host for n in layout.nodes)))
        db.grant_process(DB_USER, "127.0.0.1")

    def _write_node(self, layout: Layout, n: NodeLayout, database: str, authtoken: str | None = None) -> nodectl.Node:
        d = self.node_dir(n.name)
        d.mkdir(parents=True, exist_ok=True)
        envs = {k: v for k, v in layout.envs.items() if k in layout.path}
        try:
            release = self.node(n).release  # keep a node's upgrade across `lab up`
            installed = self.node(n).data.get("installed_at")
        except GlanceTuiError:
            release, installed = layout.base, None
        if release not in envs:  # not a release of this path
            release, installed = layout.base, None
        node = nodectl.Node(d, {"name": n.name, "host": n.host, "port": n.api_port, "release": release, "envs": envs,
                                "base": layout.base, "target": layout.target, "workers": layout.workers, "kind": layout.node_kind,
                                "autostart": layout.autostart,
                                **({"installed_at": installed} if installed else {})})
        node.save()
        nodectl.install_package(node)
        web_source = (layout.web_host, layout.web_port) if layout.web_host and layout.web_port else None
        if layout.node_kind == "kolla":  # the container's paths: its Glance volume, its image's paste ini
            box = self.container(n)
            box.setup(list(envs.values()))
            glance.write_api_conf(box.conf, host=n.host, port=n.api_port, database=database,
                                  store_dir=Path(containers.DATA_DIR) / "images", node_dir=Path(containers.DATA_DIR),
                                  workers=layout.workers, authtoken=authtoken, paste_file=Path(containers.PASTE_FILE),
                                  web_source=web_source)
            write_uwsgi_ini(box.config_dir, host=n.host, port=n.api_port, workers=layout.workers)
            return node
        glance.write_api_conf(node.conf, host=n.host, port=n.api_port, database=database, store_dir=self.store_dir,
                              node_dir=d, workers=layout.workers, authtoken=authtoken,
                              web_source=web_source)
        return node

    def _up_container(self, layout: Layout, n: NodeLayout) -> containers.ContainerNode:
        """Kolla's deploy on one node: the base release's image pulled, glance_api created and started
        (an existing container is kept, whatever image it runs: an upgrade is the tool's job)."""
        box = self.container(n)
        state = box.state()
        if state is None:
            box.pull(layout.base)
            box.create(layout.base, store_dir=self.store_dir)
            state = box.state()
        if state and state["status"] != "running":
            self.progress(f"starting container {containers.CONTAINER} on {n.name} ({state.get('image_name') or state['image'][:12]}) on {n.api_url}")
            box.start()
        return box

    def _wait_ready(self, url: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    if resp.status == 200:
                        return
            except OSError as exc:
                last = str(exc)
            time.sleep(0.25)
        raise GlanceTuiError(f"Glance does not answer through HAProxy ({last})", where=url, fix=f"see the logs under {self.dir}")

    # ------------------------------------------------------------------ config for glance-tui
    def write_config(self, layout: Layout) -> Path:
        """The ready glance-tui.toml for this lab (loads with ``glance_tui.config.load_config``)."""
        q = json.dumps  # TOML basic strings are JSON-compatible for these values
        lines = [
            "# Written by `glance-tui lab up`: the staging lab on loopback. Regenerated on every `lab up`.",
            "[database]", f"host = {q('127.0.0.1')}", f"port = {layout.db_port}", f"user = {q(DB_USER)}",
            f"schema = {q(DB_SCHEMA)}", f"password_file = {q(str(self.password_file))}", "",
            "[backup]", 'where = "local"', f"directory = {q(str(self.backup_dir))}",
            f"mysqldump = {q(procs.require_binary('mysqldump'))}", "",
        ]
        lbs = self.haproxies(layout)
        if len(lbs) == 1 and len(lbs[0].backends) == 1:  # the simulated cluster: the single-instance form
            lines += ["[load_balancer]", 'kind = "haproxy"', f"stats_url = {q(lbs[0].stats_url)}", f"backend = {q(BACKEND)}",
                      'admin = "http"', f"runtime_socket = {q('unix:' + str(lbs[0].runtime_socket))}",
                      f"hard_stop_after = {self.lb_hard_stop_after:g}", ""]
        else:
            for b, lb in zip(layout.balancers, lbs):
                lines += ["[[load_balancers]]", f"name = {q(b.name)}", 'kind = "haproxy"', f"stats_url = {q(lb.stats_url)}",
                          f"backends = [{', '.join(q(x) for x in lb.backends)}]", 'admin = "http"',
                          f"runtime_socket = {q('unix:' + str(lb.runtime_socket))}", f"hard_stop_after = {self.lb_hard_stop_after:g}", ""]
        lines += [
            "[ssh]", 'user = "root"', f"identity_file = {q(str(self.operator_key))}", f"known_hosts = {q(str(self.known_hosts))}", "",
            # The packaged node's defaults, unchanged: each lab node has systemctl, dpkg-query, apt-get,
            # glance-manage and glance-api of its own, and sees only its own processes and /etc/glance.
            # rollback has no default; this is the one a packaged operator writes: pin the old version.
            "[commands]",
            f"rollback = {q('apt-get install -y --allow-downgrades glance-api=' + nodectl.debian_version(lab_envs.GLANCE_VERSIONS[layout.base]))}", "",
        ]
        if layout.node_kind == "kolla":
            lines = lines[:lines.index("[commands]")] + self._kolla_commands(layout)
        for n in layout.nodes:
            lines += ["[[nodes]]", f"name = {q(n.name)}", f"ssh_host = {q(n.host)}", f"ssh_port = {n.ssh_port}",
                      f"lb_server = {q(n.name)}", f"api_url = {q(n.api_url)}", ""]
        lines += ["[policy]", f"target_release = {q(layout.target)}",
                  f"target_version = {q(lab_envs.GLANCE_VERSIONS[layout.target])}",
                  "drain_timeout = 120", "drain_quiet_period = 1.5", "lb_poll_interval = 0.5", "node_poll_interval = 2", "min_in_rotation = 1", "up_timeout = 60"]
        self.config_path.write_text("\n".join(lines) + "\n")
        return self.config_path

    @staticmethod
    def _kolla_commands(layout: Layout) -> list[str]:
        """The kolla kind's own commands, nothing lab-only: the engine, the container, the image, the
        target tag. The node's `podman` and `ps` on its PATH keep to that node (containers.py)."""
        q = json.dumps
        return ["[commands]", 'kind = "kolla"', "",
                "[commands.kolla]", 'engine = "podman"', f"container = {q(containers.CONTAINER)}",
                f"image = {q(containers.IMAGE)}", f"target_tag = {q(layout.target)}", ""]

    # ------------------------------------------------------------------ down / status / reset
    def down(self, *, keep_database: bool = False) -> list[str]:
        """Stop everything this lab started (by pid files); returns what was stopped."""
        layout = self.load_layout()
        if layout is None:
            return []
        stopped = []
        for b, lb in zip(layout.balancers, self.haproxies(layout)):
            if lb.stop():
                stopped.append("haproxy" if len(layout.balancers) == 1 else f"haproxy {b.name}")
        for n in layout.nodes:
            if self.sshd(n).stop():
                stopped.append(f"sshd {n.name}")
            if layout.node_kind == "kolla":
                if (self.node_dir(n.name) / "podman").exists() and self.container(n).stop():
                    stopped.append(f"container {containers.CONTAINER} {n.name}")
            elif (self.node_dir(n.name) / "node.json").exists():
                node = self.node(n)
                was = nodectl.running_pid(node)
                if not nodectl.stop(node):
                    raise GlanceTuiError(f"glance-api on {n.name} does not stop", where=str(node.pidfile), fix=f"kill it by hand (pid {was})")
                if was:
                    stopped.append(f"glance-api {n.name}")
            nodens.stop(self.node_dir(n.name))
        if procs.stop_pid(self.dir / "keystone" / "keystone.pid"):
            stopped.append("keystone")
        web = self.web_server(layout)
        if web and web.stop():
            stopped.append("web server")
        if not keep_database and self.mariadb(layout).stop():
            stopped.append("mariadb")
        return stopped

    def status(self) -> dict:
        """What runs, where, and each node's release (cheap: reads pid files and node metadata)."""
        layout = self.load_layout()
        if layout is None:
            return {"dir": str(self.dir), "created": False}
        db, lbs = self.mariadb(layout), self.haproxies(layout)
        nodes = []
        for n in layout.nodes:
            try:
                node = self.node(n)
                release, pid, version = node.release, nodectl.running_pid(node), nodectl.version(node)
            except GlanceTuiError:
                release, pid, version = None, None, None
            row = {"name": n.name, "api_url": n.api_url, "ssh": f"{n.host}:{n.ssh_port}", "release": release,
                   "version": version, "runtime": runtime_of(release).name if release else None,
                   "running": pid is not None, "pid": pid, "sshd_running": self.sshd(n).is_running()}
            if layout.node_kind == "kolla":
                row.update(self._container_status(n))
            nodes.append(row)
        return {
            "dir": str(self.dir), "created": True, "config": str(self.config_path),
            "path": {"from": layout.base, "to": layout.target,
                     "versions": [lab_envs.GLANCE_VERSIONS.get(r) for r in layout.path],
                     "runtimes": [runtime_of(r).name for r in layout.path]},
            "mariadb": {"address": f"127.0.0.1:{layout.db_port}", "running": db.is_running()},
            # instance A (what `lab load` uses by default), then every instance
            "haproxy": self._lb_status(layout.balancers[0], lbs[0]),
            "haproxies": [self._lb_status(b, lb) for b, lb in zip(layout.balancers, lbs)],
            "keystone": {"url": layout.keystone_url, "running": procs.is_running(self.dir / "keystone" / "keystone.pid")}
            if layout.keystone_host else None,
            "autostart": layout.autostart,
            "web": {"url": layout.web_url, "running": self.web_server(layout).is_running()} if layout.web_url else None,
            "node_kind": layout.node_kind,
            "nodes": nodes,
        }

    def _container_status(self, n: NodeLayout) -> dict:
        """A container node's truth: the image its glance_api was created from (so its release), not node.json."""
        releases = {image: release for release, image in self.images().recorded().items()}
        try:
            state = self.container(n).state()
        except GlanceTuiError as exc:
            return {"running": False, "pid": None, "container": f"unreadable ({exc.message})", "image": None}
        if state is None:
            return {"running": False, "pid": None, "container": "absent", "image": None, "release": None, "version": None}
        release = releases.get(state["image"])
        return {"running": state["status"] == "running", "pid": state["pid"], "container": state["status"],
                "image": state["image"][:12], "image_name": state.get("image_name"), "release": release,
                "version": lab_envs.GLANCE_VERSIONS.get(release or ""), "runtime": runtime_of(release).name if release else None}

    @staticmethod
    def _lb_status(b: BalancerLayout, lb: HAProxyLab) -> dict:
        return {"name": b.name, "frontend": lb.frontend_url, "frontends": lb.frontend_urls, "stats_url": lb.stats_url,
                "runtime_socket": str(lb.runtime_socket), "runtime_tcp": f"{b.host}:{b.runtime_tcp_port}", "running": lb.is_running()}

    def reset(self, *, up: bool = True) -> Layout | None:
        """Back to a fresh lab: all nodes on the path's starting release, a new Glance database, an
        empty file store (keys and Keystone's database kept: bootstrapping Keystone again would
        cost half a minute). Asked for another path (``path=`` of the Lab), the lab moves to it."""
        layout = self.load_layout()
        path = self.path(layout)
        self.down(keep_database=True)
        db = self.mariadb(layout) if layout else None
        if db is not None and db.is_running():
            db.drop_database(DB_SCHEMA)
            (db.workdir / ".glance-synced").unlink(missing_ok=True)
        else:
            shutil.rmtree(self.dir / "mariadb", ignore_errors=True)
            shutil.rmtree(self.dir / "keystone", ignore_errors=True)  # its database went with MariaDB's
        for d in (self.store_dir, self.backup_dir):
            shutil.rmtree(d, ignore_errors=True)
        if layout:
            for n in layout.nodes:
                if layout.node_kind == "kolla" and (self.node_dir(n.name) / "podman").exists():
                    box = self.container(n)  # `up` creates it again from the path's first image
                    box.remove()
                    box.remove_images(keep=path[0])
                try:
                    node = self.node(n)
                except GlanceTuiError:
                    continue
                if path[0] in node.data.get("envs", {}):
                    nodectl.set_release(node, path[0])
                else:  # a new path: `up` writes the node's environments and package file
                    node.data.update(release=path[0], base=path[0], target=path[1], installed_at=time.time())
                    node.save()
            kind = self.requested_kind or layout.node_kind
            if layout.path != path or layout.node_kind != kind:
                layout.path, layout.node_kind = path, kind
                self.layout_file.write_text(json.dumps(layout.to_json(), indent=2) + "\n")
        return self.up() if up else None
