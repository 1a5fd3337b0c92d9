"""The command a lab node runs over SSH: acts on that node only (its service, its release).

Each node's sshd sets ``GLANCE_LAB_NODE_DIR``; the node dir holds ``node.json``
(name, host, port, release, envs, target), ``glance-api.conf``, the pid file and the log.
"Upgrading" a node switches it to the path's target environment, like a package upgrade would; with
``autostart`` in node.json it then (re)starts the service, as a Debian/Ubuntu postinst does
(``deb-systemd-invoke restart``), else the running service keeps the old code. The service
runs as its release's runtime (:mod:`glance_tui.lab.runtime`): the eventlet ``glance-api``
or uWSGI (master and workers); ``downgrade`` goes back to the lab path's starting release.
The node's package files (:func:`install_package`) put on its PATH what a packaged
Debian/Ubuntu node has — ``glance-api``, ``glance-manage``, ``dpkg-query``, ``systemctl``,
``apt-get``, ``apt-cache`` (:mod:`glance_tui.lab.pkgshims`) — so the lab's config uses the tool's defaults.
A node with a machine (:mod:`glance_tui.lab.nodens`) runs its service inside it; host-side callers
get host pids. Stdlib only and quick to start.

    python -m glance_tui.lab.nodectl start [--no-wait]|stop|is-running|processes|installed-at|upgrade [REL]|downgrade|version|manage ARGS…|read-config
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from glance_tui.errors import GlanceTuiError
from glance_tui.lab import envs, nodens, procs, runtime

NODE_DIR_ENV = "GLANCE_LAB_NODE_DIR"


@dataclass
class Node:
    dir: Path
    data: dict

    @classmethod
    def load(cls, node_dir: str | Path | None = None) -> "Node":
        node_dir = node_dir or os.environ.get(NODE_DIR_ENV)
        if not node_dir:
            raise GlanceTuiError(f"{NODE_DIR_ENV} is not set", fix="run this through the lab node's sshd, or pass --node-dir DIR")
        path = Path(node_dir) / "node.json"
        try:
            return cls(Path(node_dir), json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            raise GlanceTuiError(f"cannot read node.json ({exc})", where=str(path), fix="run `glance-tui lab up`") from None

    def save(self) -> None:
        tmp = self.dir / "node.json.tmp"
        tmp.write_text(json.dumps(self.data, indent=2) + "\n")
        tmp.replace(self.dir / "node.json")

    name = property(lambda self: self.data["name"])
    host = property(lambda self: self.data["host"])
    port = property(lambda self: int(self.data["port"]))
    release = property(lambda self: self.data["release"])
    base = property(lambda self: self.data.get("base", envs.BASE_RELEASE))  # the lab path's starting release
    target = property(lambda self: self.data.get("target", envs.TARGET_RELEASE))
    conf = property(lambda self: self.dir / "glance-api.conf")
    pidfile = property(lambda self: self.dir / "glance-api.pid")
    log = property(lambda self: self.dir / "glance-api.log")

    def bin(self, name: str, release: str | None = None) -> Path:
        release = release or self.release
        try:
            return Path(self.data["envs"][release]) / name
        except KeyError:
            raise GlanceTuiError(f"no environment for release {release!r} on node {self.name}",
                                 where=str(self.dir / "node.json"), fix="run `glance-tui lab up`") from None


def running_pid(node: Node) -> int | None:
    """The service's pid (in the caller's view) if its process group still has a live Glance server process (any runtime)."""
    pid = service_pid(node)
    if pid is None:
        return None
    for member in procs.processes(group=pid):
        try:
            if runtime.is_glance(Path(f"/proc/{member}/cmdline").read_bytes().decode(errors="replace").split("\0")):
                return pid
        except OSError:
            continue
    return None


def service_pid(node: Node) -> int | None:
    """The pid the pid file names, in the caller's view (the node writes it as its machine sees it)."""
    return nodens.host_pid(node.dir, procs.read_pid(node.pidfile))


# ps counts whole seconds: a service started within a second of its install would read as
# started before it. A real package's install and the first start are further apart.
INSTALL_SETTLE = 1.5


def start(node: Node, *, wait: bool = True, timeout: float = 120) -> int:
    """Start the service from the node's current environment, as its release's runtime (no-op if running)."""
    pid = running_pid(node)
    if pid is not None:
        return pid
    if not nodens.inside(node.dir):
        return _start_inside(node, wait=wait, timeout=timeout)
    server = runtime.runtime_of(node.release)
    api = node.bin(server.binary)
    if not api.exists():
        raise GlanceTuiError(f"{api} does not exist", where=node.name, fix="run `glance-tui lab up` (it installs the environments)")
    procs.require_free_port(node.host, node.port, f"glance-api on {node.name}")
    paste = api.resolve().parent.parent / "etc" / "glance" / "glance-api-paste.ini"
    if paste.exists():
        shutil.copyfile(paste, node.dir / "glance-api-paste.ini")
    for sub in ("staging", "tasks", "locks"):
        (node.dir / sub).mkdir(exist_ok=True)
    with open(node.log, "a") as log:
        log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {api} (release {node.release}, {server.name})\n")
    argv, env = server.command(api.parent, node.dir, node.conf, host=node.host, port=node.port,
                               workers=int(node.data.get("workers", 1)))
    pid = procs.start_detached(argv, log=node.log, pidfile=node.pidfile, cwd=node.dir, env=env)
    if wait:
        wait_listening(node, pid, timeout)
    return pid


def _start_inside(node: Node, *, wait: bool, timeout: float) -> int:
    """From the lab host: start the service inside the node's machine (its processes live in its
    PID namespace, so the node's own `ps` sees them); returns the service's host pid."""
    settle = INSTALL_SETTLE - (time.time() - installed_at(node))
    if settle > 0:
        time.sleep(settle)
    argv = [*nodens.enter(node.dir), sys.executable, "-m", "glance_tui.lab.nodectl", "--node-dir", str(node.dir), "start", "--no-wait"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise GlanceTuiError(f"glance-api on {node.name} does not start: {(done.stderr or done.stdout).strip()[-300:]}", fix=f"see {node.log}")
    pid = service_pid(node)
    if pid is None:
        raise GlanceTuiError(f"glance-api on {node.name} exited at once", fix=f"see {node.log}")
    if wait:
        wait_listening(node, pid, timeout)
    return pid


def wait_listening(node: Node, pid: int, timeout: float = 120) -> None:
    """Until the node serves: its port accepts, then ``/versions`` answers without a server error
    (a uWSGI master listens before its lazy-app workers have loaded Glance, or failed to)."""
    deadline = time.monotonic() + timeout
    what = f"glance-api on {node.name}"
    procs.wait_for_port(node.host, node.port, timeout, pid=pid, what=what, log=node.log)
    url, last = f"http://{node.host}:{node.port}/versions", ""
    while time.monotonic() < deadline:
        if not procs.pid_alive(pid):
            raise GlanceTuiError(f"{what} exited during start-up", fix=f"see {node.log}")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                status = resp.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError as exc:
            status, last = 0, str(exc)
        if 0 < status < 500:
            return
        last = last if status == 0 else f"HTTP {status}"
        time.sleep(0.2)
    raise GlanceTuiError(f"{what} does not serve {url} within {timeout:.0f}s ({last})", fix=f"see {node.log}")


def stop(node: Node, *, timeout: float = 30) -> bool:
    """SIGTERM the service's process group, SIGKILL after ``timeout``; True once nothing is left."""
    pid = service_pid(node)
    if pid is None or not procs.processes(group=pid):
        node.pidfile.unlink(missing_ok=True)
        return True
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while procs.processes(group=pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not procs.processes(group=pid):
            break
    if procs.processes(group=pid):
        return False
    node.pidfile.unlink(missing_ok=True)
    return True


PACKAGE_STATUS = "dpkg-status"  # the node's package database: "glance-api<TAB>DEBIAN-VERSION"
PATH_DIR = "bin"  # first on the PATH of the node's SSH sessions


def debian_version(upstream: str) -> str:
    """A Glance version as Ubuntu's cloud archive spells it (epoch 2): ``2:28.2.0-0ubuntu1``."""
    return f"2:{upstream}-0ubuntu1"


def _write(path: Path, text: str, mode: int = 0o644, *, force: bool = False) -> None:
    """Write ``path`` by rename (a new inode: its ctime is now), unless it already says ``text``."""
    if not force and path.exists() and path.read_text() == text:
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    tmp.replace(path)


def install_package(node: Node, *, reinstall: bool = False) -> Path:
    """The node's package files, as a packaged node has them: ``bin/glance-api`` (its ctime is the
    install time: the default ``installed_at`` stats it), ``bin/glance-manage``, the package
    database ``dpkg-query`` reads, and the package tools (``systemctl``, ``apt-get``; ``apt-cache`` on a
    packaged node, not a container one: init asks it for the repository's candidate). Unchanged
    files are left alone (``lab up`` keeps a node's install time), unless ``reinstall``."""
    bin_dir = node.dir / PATH_DIR
    bin_dir.mkdir(exist_ok=True)
    py, d = shlex.quote(sys.executable), shlex.quote(str(node.dir))
    api = shlex.quote(str(node.bin("glance-api")))
    _write(bin_dir / "glance-api", f"#!/bin/sh\n# glance-api of Glance {node.release}, installed by the lab's apt-get\nexec {api} \"$@\"\n",
           0o755, force=reinstall)
    _write(node.dir / PACKAGE_STATUS, f"glance-api\t{debian_version(version(node))}\n", force=reinstall)
    _write(bin_dir / "glance-manage", f"#!/bin/sh\nexec {py} -m glance_tui.lab.nodectl --node-dir {d} manage \"$@\"\n", 0o755)
    tools = ("systemctl", "apt-get") + (("apt-cache",) if node.data.get("kind", "packages") == "packages" else ())  # a container node has no repository
    for tool in tools:
        _write(bin_dir / tool, f"#!/bin/sh\nexec {py} -m glance_tui.lab.pkgshims --node-dir {d} {tool} \"$@\"\n", 0o755)
    _write(bin_dir / "dpkg-query", DPKG_QUERY.replace("@STATUS@", shlex.quote(str(node.dir / PACKAGE_STATUS))), 0o755)
    return bin_dir


# dpkg-query -W [PACKAGE…]: no Python per probe (the engine asks every node on every probe).
DPKG_QUERY = """#!/bin/sh
# The lab's dpkg-query: -W/--show over the node's package database.
db=@STATUS@
case "$1" in
  -W|--show) shift ;;
  *) echo "dpkg-query: error: need an action option" >&2; exit 2 ;;
esac
[ $# -gt 0 ] || { cat "$db"; exit 0; }
rc=0
for p in "$@"; do
  line=$(awk -F '\t' -v p="$p" '$1 == p' "$db")
  if [ -n "$line" ]; then printf '%s\n' "$line"; else echo "dpkg-query: no packages found matching $p" >&2; rc=1; fi
done
exit $rc
"""


def set_release(node: Node, release: str) -> str:
    """Switch the node's installed release (the lab's package upgrade/downgrade); returns the old one."""
    node.bin("glance-manage", release)  # validates the release
    old = node.release
    node.data["release"] = release
    node.data["installed_at"] = time.time()
    node.save()
    install_package(node, reinstall=True)
    return old


def installed_at(node: Node) -> float:
    """When the node's current release was installed: its ``glance-api``'s ctime (what the default
    ``installed_at`` reads), else ``set_release``'s time, else when its environment was made."""
    try:
        return (node.dir / PATH_DIR / "glance-api").stat().st_ctime
    except OSError:
        pass
    at = node.data.get("installed_at")
    if at:
        return float(at)
    return node.bin("glance-manage").parent.stat().st_ctime


def processes_text(node: Node) -> str:
    """What ``date +%s && ps -eo pid=,ppid=,etimes=,comm=,args=`` prints on a real node, for this
    node's service only (every lab node shares one machine): the clock, then ``PID PPID ETIMES COMM ARGS``."""
    now = time.time()
    lines = [str(int(now))]
    pid = procs.read_pid(node.pidfile)
    if pid is not None:
        boot = procs.boot_time()
        for member in sorted(procs.processes(group=pid)):
            try:
                stat = Path(f"/proc/{member}/stat").read_text()
                comm = Path(f"/proc/{member}/comm").read_text().strip()
                args = Path(f"/proc/{member}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                continue  # it just ended
            start = procs.start_time(stat, boot)
            ppid = stat.rsplit(")", 1)[1].split()[1]
            lines.append(f"{member} {ppid} {max(0, int(now - start))} {comm} {args or comm}")
    return "\n".join(lines)


def version(node: Node) -> str:
    """Installed Glance version of the node's current environment (from metadata, or ``glance-manage --version``)."""
    found = envs.glance_version(node.bin("glance-manage").parent)
    if found:
        return found
    import subprocess

    out = subprocess.run([str(node.bin("glance-manage")), "--version"], capture_output=True, text=True, timeout=60)
    return (out.stdout + out.stderr).strip()


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    node_dir = None
    if len(args) >= 2 and args[0] == "--node-dir":
        node_dir, args = args[1], args[2:]
    if not args:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    verb, rest = args[0], args[1:]
    try:
        node = Node.load(node_dir)
        if verb == "start":
            was = running_pid(node)
            pid = start(node, wait="--no-wait" not in rest)
            print(f"{node.name}: glance-api {'already running' if was else 'started'} (pid {pid}, release {node.release}) on {node.host}:{node.port}")
        elif verb == "stop":
            if not stop(node):
                print(f"{node.name}: glance-api (pid file {node.pidfile}) is still running after SIGKILL", file=sys.stderr)
                return 1
            print(f"{node.name}: glance-api stopped")
        elif verb == "is-running":
            pid = running_pid(node)
            print(pid if pid else "not running")
            return 0 if pid else 1
        elif verb in ("upgrade", "downgrade"):
            release = (rest[0] if rest else node.target) if verb == "upgrade" else node.base
            old = set_release(node, release)
            print(f"{node.name}: Glance {old} -> {release} ({version(node)}) installed"
                  + (" (the running service keeps the old code until restarted)" if running_pid(node) and not node.data.get("autostart") else ""))
            if node.data.get("autostart"):
                if not stop(node):
                    print(f"{node.name}: postinst: the old glance-api does not stop", file=sys.stderr)
                    return 1
                pid = start(node)
                print(f"{node.name}: postinst: glance-api started (pid {pid}, release {node.release})")
        elif verb == "version":
            print(version(node))
        elif verb == "processes":
            print(processes_text(node))
        elif verb == "installed-at":
            print(int(installed_at(node)))
        elif verb == "manage":
            manage = node.bin("glance-manage")
            sys.stdout.flush()
            os.execv(manage, [str(manage), "--config-file", str(node.conf), *rest])
        elif verb == "read-config":
            sys.stdout.write(node.conf.read_text())
        else:
            print(f"unknown verb {verb!r}; {__doc__.strip().splitlines()[-1].strip()}", file=sys.stderr)
            return 2
    except GlanceTuiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
