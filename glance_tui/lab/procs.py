"""Process plumbing shared by the staging lab and the test fixtures.

Real services (MariaDB, HAProxy, sshd, glance-api) are started as detached processes with a
pid file, so ``lab down`` stops exactly what the lab started and nothing else.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from glance_tui.errors import GlanceTuiError

# Debian package that provides each binary the lab and the tests need.
PACKAGES = {
    "mariadbd": "mariadb-server",
    "mysql_install_db": "mariadb-server",
    "mariadb-install-db": "mariadb-server",
    "mysqldump": "mariadb-client",
    "mariadb": "mariadb-client",
    "haproxy": "haproxy",
    "sshd": "openssh-server",
    "ssh-keygen": "openssh-client",
    "socat": "socat",
    "unshare": "util-linux",
    "nsenter": "util-linux",
}

SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")


def require_binary(name: str) -> str:
    """Path of ``name`` or a one-line error naming the Debian package to install."""
    path = shutil.which(name)
    if path is None:
        for d in SBIN_DIRS:
            candidate = Path(d) / name
            if candidate.exists():
                return str(candidate)
        package = PACKAGES.get(name, name)
        raise GlanceTuiError(
            f"{name} is not installed",
            fix=f"apt-get install -y {package}",
        )
    return path


_HANDED_OUT: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now, and never one this process handed out before.

    The kernel may give the same ephemeral port to two binds in a row once the first socket is
    closed: a lab picking its frontend, stats and runtime ports one after the other could get one
    port twice, and HAProxy (SO_REUSEPORT) would then serve two listeners on it, answering an HTTP
    request with its command line's "Unknown command"."""
    for _ in range(1000):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise GlanceTuiError(f"no free TCP port on {host} that was not handed out already", fix="free some ports, or restart the command")


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def require_free_port(host: str, port: int, what: str) -> None:
    if not port_is_free(host, port):
        raise GlanceTuiError(
            f"port {host}:{port} is already in use (needed for {what})",
            fix=f"stop whatever listens there (ss -ltnp 'sport = :{port}') or run `glance-tui lab down`",
        )


def wait_for_port(host: str, port: int, timeout: float = 30.0, *, pid: int | None = None, what: str = "service", log: Path | None = None) -> None:
    """Block until ``host:port`` accepts connections; fail early if ``pid`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid is not None and not pid_alive(pid):
            tail = log_tail(log) if log else ""
            raise GlanceTuiError(f"{what} exited during start-up{': ' + tail if tail else ''}", fix=f"see {log}" if log else "")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise GlanceTuiError(f"{what} did not listen on {host}:{port} within {timeout:.0f}s", fix=f"see {log}" if log else "")


def log_tail(path: Path | None, lines: int = 3) -> str:
    """The last lines of a service's log, joined on one line (for a one-line error)."""
    if not path or not path.exists():
        return ""
    text = path.read_text(errors="replace").strip().splitlines()
    return " | ".join(text[-lines:])


def start_detached(argv: list[str], *, log: Path, pidfile: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
    """Start ``argv`` in its own session (it survives our exit), record its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    pidfile.write_text(f"{proc.pid}\n")
    return proc.pid


def read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as dead.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return True


def is_running(pidfile: Path) -> bool:
    """Does the process recorded in ``pidfile`` still run?"""
    pid = read_pid(pidfile)
    return pid is not None and pid_alive(pid)


def boot_time() -> float:
    """Boot time in epoch seconds, to ~10 ms: now minus ``/proc/uptime`` (``btime`` in
    ``/proc/stat`` is truncated to the second, which can put a process's start up to 1 s early)."""
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return time.time() - uptime


def start_time(stat: str, boot: float) -> float:
    """A process's start in epoch seconds, from its ``/proc/<pid>/stat`` text and :func:`boot_time`."""
    return boot + int(stat.rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")


def processes(*, parent: int | None = None, group: int | None = None) -> list[int]:
    """Live (non-zombie) pids whose parent is ``parent`` or whose process group is ``group``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        state, ppid, pgrp = fields[0], int(fields[1]), int(fields[2])
        if state != "Z" and (ppid == parent or pgrp == group):
            found.append(int(stat.parent.name))
    return found


def stop_pid(pidfile: Path, *, timeout: float = 15.0, sig: int = signal.SIGTERM) -> bool:
    """Stop the process (group) recorded in ``pidfile``; True if something was stopped."""
    pid = read_pid(pidfile)
    if pid is None:
        return False
    stopped = False
    _reap(pid)  # an already-exited child of ours is a zombie until reaped
    if pid_alive(pid):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while pid_alive(pid) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.05)
        if pid_alive(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            _reap(pid)
        _reap(pid)
        stopped = True
    pidfile.unlink(missing_ok=True)
    return stopped


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
