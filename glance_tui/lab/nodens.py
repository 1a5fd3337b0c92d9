"""A lab node's own machine: a PID and a mount namespace on the lab host.

Every lab node shares one host, yet a packaged node's default commands read the whole
machine: ``ps -e`` lists every process, ``cat /etc/glance/glance-api.conf`` reads one file. So
each node runs in its own PID namespace (its ``ps`` and ``ss -p`` see only its own init, sshd,
sessions and Glance) and mount namespace (its node dir is its ``/etc/glance``); the network
stays shared (each node binds its own 127.0.0.x). A tiny init holds the namespaces (PID 1:
it reaps orphans as a machine's init does), so the node's sshd and its Glance can each be
stopped and started on their own. Host-side code (the lab, its witness) works with host pids:
:func:`host_pid` translates a pid the node wrote (its pid file) into the host's view.
Stdlib only: nodectl uses it.

    python -m glance_tui.lab.nodens NODE_DIR   (the init, run by ``unshare`` from :func:`start`)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from glance_tui.errors import GlanceTuiError
from glance_tui.lab import procs

MACHINE_PID = "machine.pid"  # host pid of the `unshare` holding the namespaces
PIDNS = "pidns"  # the PID namespace's id ("pid:[4026532183]"), written by its init
ETC_GLANCE = Path("/etc/glance")  # where a packaged node keeps glance-api.conf: the node dir, inside
UNSHARE = ("--pid", "--fork", "--mount-proc", "--mount", "--propagation", "private")


def namespace(node_dir: Path) -> str | None:
    """The node's PID namespace id, or None for a node dir without a machine (tests' bare dirs)."""
    try:
        return (Path(node_dir) / PIDNS).read_text().strip() or None
    except OSError:
        return None


def _ns_of(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def inside(node_dir: Path) -> bool:
    """Does this process see the node's pids as they are written (inside it, or no namespace)?"""
    ns = namespace(node_dir)
    return ns is None or _ns_of("self") == ns


def _local_pid(pid: int) -> int | None:
    """The innermost pid of a host process (``NSpid``'s last column)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    except (OSError, ValueError, IndexError):
        return None
    return None


_CACHE: dict[tuple[str, int], int] = {}


def host_pid(node_dir: Path, local: int | None) -> int | None:
    """``local`` (a pid as the node sees it) in this process's view; None when no such process lives."""
    if local is None or inside(node_dir):
        return local
    ns = namespace(node_dir)
    assert ns is not None
    known = _CACHE.get((ns, local))
    if known is not None and _ns_of(known) == ns and _local_pid(known) == local:
        return known
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _ns_of(entry.name) == ns and _local_pid(int(entry.name)) == local:
            _CACHE[(ns, local)] = int(entry.name)
            return int(entry.name)
    return None


def init_pid(node_dir: Path) -> int | None:
    """The host pid of the node's init (None: the machine is not running)."""
    holder = procs.read_pid(Path(node_dir) / MACHINE_PID)
    if holder is None or not procs.pid_alive(holder):
        return None
    ns = namespace(node_dir)
    for child in procs.processes(parent=holder):
        if ns is not None and _ns_of(child) == ns:
            return child
    return None


def is_running(node_dir: Path) -> bool:
    return init_pid(node_dir) is not None


def enter(node_dir: Path) -> list[str]:
    """The argv prefix that runs a command inside the node (its PID and mount namespaces)."""
    pid = init_pid(node_dir)
    if pid is None:
        raise GlanceTuiError("the lab node's machine (its namespaces) is not running", where=str(node_dir),
                             fix="run `glance-tui lab up`")
    return [procs.require_binary("nsenter"), "-t", str(pid), "-p", "-m", "--"]


def start(node_dir: Path, timeout: float = 10.0) -> int:
    """Start the node's machine (no-op if it runs); returns its init's host pid."""
    node_dir = Path(node_dir).absolute()
    pid = init_pid(node_dir)
    if pid is not None:
        return pid
    (node_dir / PIDNS).unlink(missing_ok=True)
    # The mount point must exist in the shared file system; inside, it is the node dir.
    ETC_GLANCE.mkdir(parents=True, exist_ok=True)
    argv = [procs.require_binary("unshare"), *UNSHARE, "--", sys.executable, "-m", "glance_tui.lab.nodens", str(node_dir)]
    log = node_dir / "machine.log"
    holder = procs.start_detached(argv, log=log, pidfile=node_dir / MACHINE_PID)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = init_pid(node_dir)
        if pid is not None:
            return pid
        if not procs.pid_alive(holder):
            break
        time.sleep(0.05)
    procs.stop_pid(node_dir / MACHINE_PID)
    raise GlanceTuiError(f"the lab node's namespaces do not start: {procs.log_tail(log)}", where=str(node_dir),
                         fix="the lab needs root (unshare --pid --mount); see " + str(log))


def stop(node_dir: Path) -> bool:
    """Stop the machine: its init exits and the kernel ends everything left inside."""
    return procs.stop_pid(Path(node_dir) / MACHINE_PID)


def _init(node_dir: Path) -> int:
    """PID 1 of the node: mount its /etc/glance, say which namespace it is, reap until told to stop."""
    subprocess.run(["mount", "--bind", str(node_dir), str(ETC_GLANCE)], check=True)
    tmp = node_dir / (PIDNS + ".tmp")
    tmp.write_text(os.readlink("/proc/self/ns/pid") + "\n")
    tmp.replace(node_dir / PIDNS)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    while True:
        try:
            os.wait()
        except ChildProcessError:
            time.sleep(1)


if __name__ == "__main__":
    raise SystemExit(_init(Path(sys.argv[1])))
