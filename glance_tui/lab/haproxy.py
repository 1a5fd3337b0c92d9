"""A real HAProxy (Debian's haproxy 2.6) in front of Glance nodes, for the lab and the tests.

It runs in the foreground in master-worker mode (``-W -db``) as a detached process with a pid
file, so :func:`stop_pid` ends exactly this HAProxy. The config mirrors what a production
Glance LB needs during a rolling upgrade: health checks on ``/versions``, redispatch and
retries, long upload timeouts, a stats page and runtime sockets for drain/ready.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from glance_tui.errors import GlanceTuiError
from glance_tui.lab.procs import (
    free_port,
    is_running,
    pid_alive,
    processes,
    read_pid,
    require_binary,
    require_free_port,
    start_detached,
    stop_pid,
    wait_for_port,
)

# sun_path is 108 bytes on Linux, including the terminating NUL.
_MAX_UNIX_PATH = 107


@dataclass
class HAProxyServer:
    name: str
    host: str
    port: int
    backup: bool = False  # HAProxy's `backup`: takes traffic only when no active server is up


@dataclass
class HAProxyLab:
    workdir: Path
    backend: str
    servers: list[HAProxyServer] = field(default_factory=list)
    frontend_host: str = "127.0.0.1"
    frontend_port: int = 0  # 0 = pick a free port when the config is written
    stats_host: str = "127.0.0.1"
    stats_port: int = 0
    runtime_tcp_port: int | None = None  # also expose the runtime API on ipv4@stats_host:PORT (0 = free)
    runtime_level: Literal["admin", "operator", "user"] = "admin"
    stats_auth: tuple[str, str] | None = None
    stats_admin: bool = True
    health_path: str = "/versions"
    check_inter_ms: int = 500
    check_timeout_s: float = 2.0  # how long a health check may wait for its answer
    # More frontend/backend pairs over the same servers, as Kolla-Ansible and OpenStack-Ansible
    # give Glance an internal and an external one: [backend name, frontend port (0 = free)].
    extra_backends: list[list] = field(default_factory=list)
    # A response header naming the server that answered (``%s``), so a client knows which node served it.
    served_by_header: str | None = None
    # HAProxy's ``hard-stop-after`` (seconds): how long an old process may finish its transfers after a reload
    hard_stop_after: float | None = None
    # HAProxy's ``source``: the address it connects to the servers from. On loopback every
    # connection would otherwise come from 127.0.0.1, like any other client of a node, and the
    # tool could not tell HAProxy's own (already counted) from a node's other clients.
    source_host: str | None = None
    # ``stats show-legends``: the stats CSV's ``addr`` column shows each server's address:port
    # (HAProxy leaves it empty otherwise), which ``glance-tui init`` reads.
    show_legends: bool = True

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)

    # ------------------------------------------------------------------ paths
    @property
    def config_path(self) -> Path:
        return self.workdir / "haproxy.cfg"

    @property
    def pidfile(self) -> Path:
        return self.workdir / "haproxy.pid"

    @property
    def log_path(self) -> Path:
        return self.workdir / "haproxy.log"

    @property
    def runtime_socket(self) -> Path:
        return self.workdir / "admin.sock"

    @property
    def stats_url(self) -> str:
        return f"http://{self.stats_host}:{self.stats_port}/stats"

    @property
    def frontend_url(self) -> str:
        return f"http://{self.frontend_host}:{self.frontend_port}"

    # ------------------------------------------------------------------ config
    @property
    def backends(self) -> list[str]:
        return [self.backend] + [b for b, _ in self.extra_backends]

    @property
    def frontend_urls(self) -> dict[str, str]:
        """backend -> the frontend URL that routes to it."""
        urls = {self.backend: self.frontend_url}
        urls.update({b: f"http://{self.frontend_host}:{port}" for b, port in self.extra_backends})
        return urls

    def _pick_ports(self) -> None:
        for pair in self.extra_backends:
            if not pair[1]:
                pair[1] = free_port(self.frontend_host)
        if not self.frontend_port:
            self.frontend_port = free_port(self.frontend_host)
        if not self.stats_port:
            self.stats_port = free_port(self.stats_host)
        if self.runtime_tcp_port == 0:
            self.runtime_tcp_port = free_port(self.stats_host)

    def render_config(self) -> str:
        """The haproxy.cfg text (ports must already be chosen)."""
        sock = str(self.runtime_socket)
        if len(sock.encode()) > _MAX_UNIX_PATH:
            raise GlanceTuiError(
                f"runtime socket path is too long for a unix socket ({len(sock)} bytes)",
                where=sock,
                fix="use a shorter lab directory",
            )
        level = self.runtime_level
        lines = [
            "global",
            f"    stats socket {sock} mode 600 level {level}",
        ]
        if self.runtime_tcp_port:
            lines.append(f"    stats socket ipv4@{self.stats_host}:{self.runtime_tcp_port} level {level}")
        if self.hard_stop_after is not None:
            lines.append(f"    hard-stop-after {int(self.hard_stop_after * 1000)}ms")
        lines += [
            "    stats timeout 30s",
            "",
            "defaults",
            "    mode http",
            "    option httplog",
            "    option redispatch",
            "    retries 3",
            "    timeout connect 2s",
            "    timeout client 10m",
            "    timeout server 10m",
            "    timeout http-request 30s",
            "    timeout http-keep-alive 10s",
            "    timeout queue 1m",
            f"    timeout check {self.check_timeout_s:g}s",
        ]
        for i, (backend, port) in enumerate([(self.backend, self.frontend_port)] + [tuple(p) for p in self.extra_backends]):
            lines += [
                "",
                "frontend glance_api_front" if i == 0 else f"frontend {backend}_front",
                f"    bind {self.frontend_host}:{port}",
                f"    default_backend {backend}",
                "",
                f"backend {backend}",
                "    balance leastconn",
                f"    option httpchk GET {self.health_path}",
                "    http-check expect status 200",
                f"    default-server check inter {self.check_inter_ms} fall 2 rise 2",
            ]
            if self.source_host:
                lines.append(f"    source {self.source_host}")
            if self.served_by_header:
                lines.append(f"    http-response set-header {self.served_by_header} %s")
            lines += [f"    server {s.name} {s.host}:{s.port}{' backup' if s.backup else ''}" for s in self.servers]
        lines += [
            "",
            "frontend stats",
            f"    bind {self.stats_host}:{self.stats_port}",
            "    stats enable",
            "    stats uri /stats",
            "    stats refresh 10s",
        ]
        if self.show_legends:
            lines.append("    stats show-legends")
        if self.stats_admin:
            lines.append("    stats admin if TRUE")
        if self.stats_auth:
            user, password = self.stats_auth
            if any(c in user + password for c in "'\n") or ":" in user:
                raise GlanceTuiError(
                    "stats credentials may not contain a quote or newline (nor ':' in the user name)",
                    where=str(self.config_path),
                    fix="choose other lab credentials",
                )
            lines += ["    stats realm glance-tui", f"    stats auth '{user}:{password}'"]
        return "\n".join(lines) + "\n"

    def write_config(self) -> Path:
        """Write haproxy.cfg (mode 600: it may hold the stats password) and return its path."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._pick_ports()
        text = self.render_config()
        self.config_path.touch(mode=0o600, exist_ok=True)
        self.config_path.chmod(0o600)
        self.config_path.write_text(text)
        return self.config_path

    # ------------------------------------------------------------------ process
    def is_running(self) -> bool:
        return is_running(self.pidfile)

    def start(self, timeout: float = 15) -> None:
        """Validate the config with ``haproxy -c``, start it, wait for the stats page and socket."""
        if self.is_running():
            return
        binary = require_binary("haproxy")
        self._pick_ports()
        require_free_port(self.frontend_host, self.frontend_port, "the HAProxy frontend")
        for backend, port in self.extra_backends:
            require_free_port(self.frontend_host, port, f"the HAProxy frontend of {backend}")
        require_free_port(self.stats_host, self.stats_port, "the HAProxy stats page")
        if self.runtime_tcp_port:
            require_free_port(self.stats_host, self.runtime_tcp_port, "the HAProxy runtime API")
        cfg = self.write_config()
        check = subprocess.run([binary, "-c", "-q", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            detail = " | ".join((check.stdout + check.stderr).strip().splitlines()[-3:])
            raise GlanceTuiError(f"haproxy rejected its config: {detail}", where=str(cfg), fix="correct the lab's HAProxy settings")
        self.runtime_socket.unlink(missing_ok=True)
        pid = start_detached([binary, "-W", "-db", "-f", str(cfg)], log=self.log_path, pidfile=self.pidfile)
        deadline = time.monotonic() + timeout
        wait_for_port(self.stats_host, self.stats_port, timeout, pid=pid, what="haproxy", log=self.log_path)
        while not self.runtime_socket.exists():
            if not pid_alive(pid) or time.monotonic() > deadline:
                self.stop()
                raise GlanceTuiError("haproxy did not create its runtime socket", where=str(self.runtime_socket), fix=f"see {self.log_path}")
            time.sleep(0.05)

    def worker_pid(self, timeout: float = 5) -> int:
        """The pid of the worker serving now (``show info`` over the runtime socket)."""
        import socket

        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(timeout)
            sock.connect(str(self.runtime_socket))
            sock.sendall(b"show info\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        for line in data.decode(errors="replace").splitlines():
            if line.startswith("Pid:"):
                return int(line.split(":", 1)[1])
        raise GlanceTuiError("haproxy's `show info` has no Pid", where=str(self.runtime_socket), fix=f"see {self.log_path}")

    def reload(self, timeout: float = 15) -> int:
        """Reload as Kolla-Ansible and OpenStack-Ansible do on a configuration push (SIGUSR2 to the
        master: a new worker, every server READY again without a server-state-file; the old worker
        finishes its transfers). Returns the new worker's pid."""
        import os
        import signal

        old = self.worker_pid()
        master = int(self.pidfile.read_text().split()[0])
        os.kill(master, signal.SIGUSR2)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                pid = self.worker_pid()
            except (OSError, GlanceTuiError, ValueError):
                pid = old
            if pid != old:
                return pid
            time.sleep(0.05)
        raise GlanceTuiError("haproxy did not start a new worker after SIGUSR2", where=str(self.pidfile), fix=f"see {self.log_path}")

    def stop(self, timeout: float = 10) -> bool:
        """Stop this HAProxy; True if it was running. Every process of its group is gone when this
        returns: a worker a reload left finishing its transfers holds its listeners (SO_REUSEPORT)
        until it exits, and a lab started next on a port it picked as free would share them."""
        import signal

        group = read_pid(self.pidfile)
        stopped = stop_pid(self.pidfile)  # reaps our own child too
        deadline = time.monotonic() + timeout
        while group is not None and (left := processes(group=group)):
            if time.monotonic() > deadline:
                for pid in left:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                deadline = float("inf")
            time.sleep(0.05)
        self.runtime_socket.unlink(missing_ok=True)
        return stopped
