"""The staging lab: a real Glance cluster on loopback (MariaDB, N glance-api nodes, HAProxy, sshd per node).

Everything runs as detached processes with pid files under one lab directory, so ``down()``
stops exactly what the lab started, and ``up()`` is idempotent (it starts only what is not
running). The resolved layout (addresses, ports) is kept in ``lab.json`` so later calls
(``down``, ``status``) need no arguments. Parameterised so test fixtures can reuse it with
simulated Glance binaries and free ports (0). Synchronous: run it in a thread from async code.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import glance_tui
from glance_tui.errors import GlanceTuiError
from glance_tui.lab import envs as lab_envs
from glance_tui.lab import glance, nodectl, procs
from glance_tui.lab.haproxy import HAProxyLab, HAProxyServer
from glance_tui.lab.mariadb import MariaDB
from glance_tui.lab.sshd import SSHD, generate_keypair, public_key_path, write_known_hosts
from glance_tui.secrets import register

BACKEND = "glance_api"
DB_SCHEMA = "glance"
DB_USER = "glance"
# Debian packages the lab needs, checked up front so a fresh machine gets one line with the fix.
BINARIES = ("mariadbd", "mysql_install_db", "mariadb", "mysqldump", "haproxy", "sshd", "ssh-keygen")


def default_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "glance-tui" / "lab"


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
class Layout:
    """Every address and port of one lab (resolved: no 0 left), persisted as lab.json."""

    nodes: list[NodeLayout]
    lb_host: str
    frontend_port: int
    stats_port: int
    runtime_tcp_port: int
    db_port: int
    workers: int = 1
    envs: dict[str, str] = field(default_factory=dict)  # release -> bin dir

    def to_json(self) -> dict:
        data = dict(self.__dict__)
        data["nodes"] = [n.__dict__ for n in self.nodes]
        return data

    @classmethod
    def from_json(cls, data: dict) -> "Layout":
        return cls(**{**data, "nodes": [NodeLayout(**n) for n in data["nodes"]]})


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
        api_port: int = 9292,
        frontend_port: int = 9292,
        stats_port: int = 8404,
        runtime_tcp_port: int = 9999,
        ssh_port: int = 2222,
        db_port: int = 13306,
        workers: int = 1,
        progress: Callable[[str], None] = print,
    ) -> None:
        if nodes is not None and (nodes < 1 or first_ip + nodes > 255):
            raise GlanceTuiError(f"cannot build a lab with {nodes} nodes", fix="use between 1 and 20 nodes")
        self.dir = Path(workdir or default_dir()).absolute()
        self.n_nodes = nodes
        self.envs = {k: str(Path(v).absolute()) for k, v in envs.items()} if envs else None
        self.ip_base, self.first_ip, self.lb_ip = ip_base, first_ip, lb_ip
        self.ports = dict(api=api_port, frontend=frontend_port, stats=stats_port, runtime=runtime_tcp_port, ssh=ssh_port, db=db_port)
        self.workers = workers
        self.progress = progress

    # ------------------------------------------------------------------ paths
    layout_file = property(lambda self: self.dir / "lab.json")
    config_path = property(lambda self: self.dir / "glance-tui.toml")
    password_file = property(lambda self: self.dir / "db-password")
    operator_key = property(lambda self: self.dir / "keys" / "operator")
    known_hosts = property(lambda self: self.dir / "keys" / "known_hosts")
    store_dir = property(lambda self: self.dir / "images")
    backup_dir = property(lambda self: self.dir / "backups")

    def node_dir(self, name: str) -> Path:
        return self.dir / "nodes" / name

    # ------------------------------------------------------------------ layout
    def load_layout(self) -> Layout | None:
        try:
            return Layout.from_json(json.loads(self.layout_file.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError, KeyError) as exc:
            raise GlanceTuiError(f"cannot read the lab layout ({exc})", where=str(self.layout_file),
                                 fix="run `glance-tui lab down`, remove the file and run `glance-tui lab up`") from None

    def _resolve_layout(self, env_bins: dict[str, str]) -> Layout:
        old = self.load_layout()
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

        lb_host = f"{self.ip_base}{self.lb_ip}"
        prev_nodes = {n.name: n for n in old.nodes} if old else {}
        nodes = []
        for i in range(self.n_nodes):
            name, host = f"glance-{i + 1}", f"{self.ip_base}{self.first_ip + i}"
            prev = prev_nodes.get(name)
            nodes.append(NodeLayout(name, host, pick("api", host, prev and prev.api_port), pick("ssh", host, prev and prev.ssh_port)))
        return Layout(
            nodes=nodes,
            lb_host=lb_host,
            frontend_port=pick("frontend", lb_host, old and old.frontend_port),
            stats_port=pick("stats", lb_host, old and old.stats_port),
            runtime_tcp_port=pick("runtime", lb_host, old and old.runtime_tcp_port),
            db_port=pick("db", "127.0.0.1", old and old.db_port),
            workers=self.workers,
            envs=env_bins,
        )

    # ------------------------------------------------------------------ services
    def mariadb(self, layout: Layout) -> MariaDB:
        return MariaDB(self.dir / "mariadb", host="127.0.0.1", port=layout.db_port)

    def haproxy(self, layout: Layout) -> HAProxyLab:
        return HAProxyLab(
            self.dir / "haproxy", backend=BACKEND,
            servers=[HAProxyServer(n.name, n.host, n.api_port) for n in layout.nodes],
            frontend_host=layout.lb_host, frontend_port=layout.frontend_port,
            stats_host=layout.lb_host, stats_port=layout.stats_port, runtime_tcp_port=layout.runtime_tcp_port,
            stats_admin=True, health_path="/versions", check_inter_ms=500,
        )

    def sshd(self, node: NodeLayout) -> SSHD:
        package_root = str(Path(glance_tui.__file__).resolve().parent.parent)
        return SSHD(self.node_dir(node.name) / "sshd", node.host, node.ssh_port,
                    authorized_keys=[public_key_path(self.operator_key)],
                    set_env={nodectl.NODE_DIR_ENV: str(self.node_dir(node.name)), "PYTHONPATH": package_root})

    def node(self, node: NodeLayout) -> nodectl.Node:
        return nodectl.Node.load(self.node_dir(node.name))

    def _anything_running(self, layout: Layout) -> bool:
        if self.mariadb(layout).is_running() or self.haproxy(layout).is_running():
            return True
        for n in layout.nodes:
            if self.sshd(n).is_running() or (self.node_dir(n.name) / "node.json").exists() and nodectl.running_pid(self.node(n)):
                return True
        return False

    # ------------------------------------------------------------------ up
    def up(self) -> Layout:
        """Start whatever is not running; create database, configs and keys on first use."""
        started = time.monotonic()
        require_packages()
        env_bins = self.envs or {rel: str(lab_envs.ensure_env(rel, progress=self.progress)) for rel in lab_envs.GLANCE_VERSIONS}
        self.dir.mkdir(parents=True, exist_ok=True)
        layout = self._resolve_layout(env_bins)
        self._check_ports(layout)
        self.layout_file.write_text(json.dumps(layout.to_json(), indent=2) + "\n")
        password = self._password()
        if not self.operator_key.exists():
            generate_keypair(self.operator_key, comment="glance-tui-lab-operator")
        database = glance.db_url(user=DB_USER, password=password, host="127.0.0.1", port=layout.db_port, schema=DB_SCHEMA)

        self._up_database(layout, password, database)
        self.store_dir.mkdir(exist_ok=True)
        self.backup_dir.mkdir(exist_ok=True)
        pending = []
        for n in layout.nodes:
            node = self._write_node(layout, n, database)
            if nodectl.running_pid(node) is None:
                self.progress(f"starting glance-api {n.name} ({node.release}) on {n.api_url}")
                pending.append((node, nodectl.start(node, wait=False)))
        for node, pid in pending:
            nodectl.wait_listening(node, pid)
        sshds = [self.sshd(n) for n in layout.nodes]
        for s in sshds:
            if not s.is_running():
                s.start()
        write_known_hosts(self.known_hosts, sshds)
        lb = self.haproxy(layout)
        if not lb.is_running():
            self.progress(f"starting HAProxy on {lb.frontend_url} (stats {lb.stats_url})")
            lb.start()
        self.write_config(layout)
        self._wait_ready(f"http://{layout.lb_host}:{layout.frontend_port}/versions")
        self.progress(f"lab up in {time.monotonic() - started:.1f}s: glance-tui -c {self.config_path}")
        return layout

    def _check_ports(self, layout: Layout) -> None:
        """Every port a stopped service needs must be free before anything starts (no half-started lab)."""
        needed = []
        if not self.mariadb(layout).is_running():
            needed.append(("127.0.0.1", layout.db_port, "MariaDB"))
        if not self.haproxy(layout).is_running():
            needed += [(layout.lb_host, layout.frontend_port, "the HAProxy frontend"),
                       (layout.lb_host, layout.stats_port, "the HAProxy stats page"),
                       (layout.lb_host, layout.runtime_tcp_port, "the HAProxy runtime API")]
        for n in layout.nodes:
            if not self.sshd(n).is_running():
                needed.append((n.host, n.ssh_port, f"sshd of {n.name}"))
            try:
                running = nodectl.running_pid(self.node(n)) is not None
            except GlanceTuiError:
                running = False
            if not running:
                needed.append((n.host, n.api_port, f"glance-api on {n.name}"))
        for host, port, what in needed:
            procs.require_free_port(host, port, what)

    def _password(self) -> str:
        if not self.password_file.exists():
            self.password_file.touch(mode=0o600)
            self.password_file.write_text(secrets.token_urlsafe(18) + "\n")
        self.password_file.chmod(0o600)
        password = self.password_file.read_text().strip()
        register(password)
        return password

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
            self.progress(f"creating the Glance schema with glance-manage db sync ({lab_envs.BASE_RELEASE})")
            glance.db_sync(Path(layout.envs[lab_envs.BASE_RELEASE]), conf)
            marker.write_text("synced by glance-tui lab\n")

    def _write_node(self, layout: Layout, n: NodeLayout, database: str) -> nodectl.Node:
        d = self.node_dir(n.name)
        d.mkdir(parents=True, exist_ok=True)
        try:
            release = self.node(n).release  # keep a node's upgrade across `lab up`
        except GlanceTuiError:
            release = lab_envs.BASE_RELEASE
        node = nodectl.Node(d, {"name": n.name, "host": n.host, "port": n.api_port, "release": release,
                                "envs": layout.envs, "target": lab_envs.TARGET_RELEASE})
        node.save()
        glance.write_api_conf(node.conf, host=n.host, port=n.api_port, database=database, store_dir=self.store_dir,
                              node_dir=d, workers=layout.workers)
        return node

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
        lb = self.haproxy(layout)
        nodectl_cmd = f"{shlex.quote(sys.executable)} -m glance_tui.lab.nodectl"
        q = json.dumps  # TOML basic strings are JSON-compatible for these values
        lines = [
            "# Written by `glance-tui lab up`: the staging lab on loopback. Regenerated on every `lab up`.",
            "[database]", f"host = {q('127.0.0.1')}", f"port = {layout.db_port}", f"user = {q(DB_USER)}",
            f"schema = {q(DB_SCHEMA)}", f"password_file = {q(str(self.password_file))}", "",
            "[backup]", 'where = "local"', f"directory = {q(str(self.backup_dir))}",
            f"mysqldump = {q(procs.require_binary('mysqldump'))}", "",
            "[load_balancer]", 'kind = "haproxy"', f"stats_url = {q(lb.stats_url)}", f"backend = {q(BACKEND)}",
            'admin = "http"', f"runtime_socket = {q('unix:' + str(lb.runtime_socket))}", "",
            "[ssh]", 'user = "root"', f"identity_file = {q(str(self.operator_key))}", f"known_hosts = {q(str(self.known_hosts))}", "",
            "[commands]",
            f"stop = {q(nodectl_cmd + ' stop')}",
            f"start = {q(nodectl_cmd + ' start')}",
            f"processes = {q(nodectl_cmd + ' processes')}",
            f"installed_at = {q(nodectl_cmd + ' installed-at')}",
            f"upgrade = {q(nodectl_cmd + ' upgrade {target_release}')}",
            f"installed_version = {q(nodectl_cmd + ' version')}",
            f"glance_manage = {q(nodectl_cmd + ' manage')}",
            f"read_config = {q(nodectl_cmd + ' read-config')}",
            f"rollback = {q(nodectl_cmd + ' downgrade')}", "",
        ]
        for n in layout.nodes:
            lines += ["[[nodes]]", f"name = {q(n.name)}", f"ssh_host = {q(n.host)}", f"ssh_port = {n.ssh_port}",
                      f"lb_server = {q(n.name)}", f"api_url = {q(n.api_url)}", ""]
        lines += ["[policy]", f"target_release = {q(lab_envs.TARGET_RELEASE)}",
                  f"target_version = {q(lab_envs.GLANCE_VERSIONS[lab_envs.TARGET_RELEASE])}",
                  "drain_timeout = 120", "drain_quiet_period = 1.5", "lb_poll_interval = 0.5", "node_poll_interval = 2", "min_in_rotation = 1", "up_timeout = 60"]
        self.config_path.write_text("\n".join(lines) + "\n")
        return self.config_path

    # ------------------------------------------------------------------ down / status / reset
    def down(self) -> list[str]:
        """Stop everything this lab started (by pid files); returns what was stopped."""
        layout = self.load_layout()
        if layout is None:
            return []
        stopped = []
        if self.haproxy(layout).stop():
            stopped.append("haproxy")
        for n in layout.nodes:
            if self.sshd(n).stop():
                stopped.append(f"sshd {n.name}")
            if (self.node_dir(n.name) / "node.json").exists():
                node = self.node(n)
                was = nodectl.running_pid(node)
                if not nodectl.stop(node):
                    raise GlanceTuiError(f"glance-api on {n.name} does not stop", where=str(node.pidfile), fix=f"kill it by hand (pid {was})")
                if was:
                    stopped.append(f"glance-api {n.name}")
        if self.mariadb(layout).stop():
            stopped.append("mariadb")
        return stopped

    def status(self) -> dict:
        """What runs, where, and each node's release (cheap: reads pid files and node metadata)."""
        layout = self.load_layout()
        if layout is None:
            return {"dir": str(self.dir), "created": False}
        db, lb = self.mariadb(layout), self.haproxy(layout)
        nodes = []
        for n in layout.nodes:
            try:
                node = self.node(n)
                release, pid, version = node.release, nodectl.running_pid(node), nodectl.version(node)
            except GlanceTuiError:
                release, pid, version = None, None, None
            nodes.append({"name": n.name, "api_url": n.api_url, "ssh": f"{n.host}:{n.ssh_port}", "release": release,
                          "version": version, "running": pid is not None, "pid": pid, "sshd_running": self.sshd(n).is_running()})
        return {
            "dir": str(self.dir), "created": True, "config": str(self.config_path),
            "mariadb": {"address": f"127.0.0.1:{layout.db_port}", "running": db.is_running()},
            "haproxy": {"frontend": lb.frontend_url, "stats_url": lb.stats_url, "runtime_socket": str(lb.runtime_socket),
                        "runtime_tcp": f"{layout.lb_host}:{layout.runtime_tcp_port}", "running": lb.is_running()},
            "nodes": nodes,
        }

    def reset(self, *, up: bool = True) -> Layout | None:
        """Back to a fresh lab: all nodes on 2023.1, a new database, an empty file store (keys kept)."""
        layout = self.load_layout()
        self.down()
        for d in (self.dir / "mariadb", self.store_dir, self.backup_dir):
            shutil.rmtree(d, ignore_errors=True)
        if layout:
            for n in layout.nodes:
                try:
                    node = self.node(n)
                except GlanceTuiError:
                    continue
                nodectl.set_release(node, lab_envs.BASE_RELEASE)
        return self.up() if up else None
