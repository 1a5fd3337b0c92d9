"""``systemctl``, ``apt-get`` and ``apt-cache`` of a lab node: what a packaged Debian/Ubuntu node has on its PATH.

The lab's config uses the tool's defaults unchanged (``systemctl stop glance-api``, ``apt-get
install -y glance-api``, …); on a lab node these act on that node only, through
:mod:`glance_tui.lab.nodectl`, with the real tools' exit codes and messages (systemd 252 and
apt 2.6 as Debian 12 has them) for the cases the tool and an operator meet. The repository
holds the lab path's releases; its candidate (``apt-cache policy glance-api``, what ``glance-tui
init`` decides the target release from) is the node's target. Installing switches the
node's environment like a package upgrade and, with ``autostart``, restarts the service as a
Debian postinst does (``deb-systemd-invoke restart``); otherwise the running service keeps the
old code. Stdlib only.

    python -m glance_tui.lab.pkgshims [--node-dir DIR] systemctl|apt-get|apt-cache ARGS…
"""

from __future__ import annotations

import sys

from glance_tui.errors import GlanceTuiError
from glance_tui.lab import nodectl
from glance_tui.lab.nodectl import Node
from glance_tui.releases import parse_version

PACKAGE = "glance-api"
UNIT_DESCRIPTION = "OpenStack Image Service API"


def _err(text: str) -> None:
    print(text, file=sys.stderr)


# ---------------------------------------------------------------- systemctl

def _unit(name: str) -> tuple[str, str]:
    """(service name, unit name): ``glance-api`` and ``glance-api.service`` are the same unit."""
    base = name[: -len(".service")] if name.endswith(".service") else name
    return base, f"{base}.service"


def _job_failed(verb: str, unit: str, why: str) -> int:
    _err(f"Job for {unit} failed because the control process exited with error code.\n"
         f"See \"systemctl status {unit}\" and \"journalctl -xeu {unit}\" for details.")
    _err(f"({why})")
    return 1


def systemctl(node: Node, args: list[str]) -> int:
    """start|stop|restart|is-active|status UNIT… (options -q/--quiet, --no-pager, --no-block accepted)."""
    quiet = any(a in ("-q", "--quiet") for a in args)
    words = [a for a in args if not a.startswith("-")]
    if not words:
        _err("Too few arguments.")
        return 1
    verb, units = words[0], [_unit(u) for u in words[1:]]
    if verb not in ("start", "stop", "restart", "is-active", "status"):
        _err(f"Unknown command verb {verb}.")
        return 1
    if not units:
        _err("Too few arguments.")
        return 1
    known = set(node.data.get("services", [PACKAGE]))
    if verb == "is-active":
        states = ["active" if base in known and nodectl.running_pid(node) else "inactive" for base, _ in units]
        if not quiet:
            print("\n".join(states))
        return 0 if all(s == "active" for s in states) else 3
    if verb == "status":
        return _status(node, units, known)
    for base, unit in units:
        if base not in known:
            _err(f"Failed to {verb} {unit}: Unit {unit} {'not loaded' if verb == 'stop' else 'not found'}.")
            return 5
    try:
        if verb in ("stop", "restart") and not nodectl.stop(node):
            return _job_failed(verb, units[0][1], "the service does not stop after SIGKILL")
        if verb in ("start", "restart"):
            nodectl.start(node)
    except GlanceTuiError as exc:
        return _job_failed(verb, units[0][1], exc.message)
    return 0


def _status(node: Node, units: list[tuple[str, str]], known: set[str]) -> int:
    """``systemctl status``: 0 running, 3 not running, 4 no such unit (as systemd answers)."""
    rc = 0
    for base, unit in units:
        if base not in known:
            _err(f"Unit {unit} could not be found.")
            rc = max(rc, 4)
            continue
        pid = nodectl.running_pid(node)
        print(f"● {unit} - {UNIT_DESCRIPTION}\n     Loaded: loaded (/lib/systemd/system/{unit}; enabled; preset: enabled)\n"
              + (f"     Active: active (running)\n   Main PID: {pid}" if pid else "     Active: inactive (dead)"))
        rc = max(rc, 0 if pid else 3)
    return rc


# ---------------------------------------------------------------- apt-get

def _available(node: Node) -> dict[str, str]:
    """Debian version -> release, for every release the node's repository (the lab path) holds."""
    found = {}
    for release in node.data.get("envs", {}):
        try:
            found[nodectl.debian_version(nodectl.version(Node(node.dir, {**node.data, "release": release})))] = release
        except (GlanceTuiError, OSError):
            continue
    return found


def _candidate(available: dict[str, str], node: Node, current: str) -> str:
    """What ``apt-get install glance-api`` installs and ``apt-cache policy`` calls the candidate: the lab path's target."""
    return next((v for v, rel in available.items() if rel == node.target), current)


def apt_get(node: Node, args: list[str]) -> int:
    """install [-y] [--allow-downgrades] glance-api[=VERSION] (and a harmless ``update``)."""
    options = [a for a in args if a.startswith("-")]
    words = [a for a in args if not a.startswith("-")]
    if not words:
        _err("E: No command given (try apt-get install PACKAGE)")
        return 100
    if words[0] == "update":
        print("Reading package lists... Done")
        return 0
    if words[0] != "install":
        _err(f"E: Invalid operation {words[0]}")
        return 100
    print("Reading package lists...\nBuilding dependency tree...\nReading state information...")
    wanted = words[1:]
    for spec in wanted:
        if spec.split("=", 1)[0] != PACKAGE:
            _err(f"E: Unable to locate package {spec.split('=', 1)[0]}")
            return 100
    if not wanted:
        print("0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.")
        return 0
    available = _available(node)
    current = nodectl.debian_version(nodectl.version(node))
    spec = wanted[-1]
    if "=" in spec:
        new = spec.split("=", 1)[1]
        if new not in available:
            _err(f"E: Version '{new}' for '{PACKAGE}' was not found")
            return 100
    else:
        new = _candidate(available, node, current)
    if new == current:
        print(f"{PACKAGE} is already the newest version ({current}).\n0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.")
        return 0
    downgrade = available[new] < node.release  # release names sort in time order (2025.1 < 2026.1)
    yes = any(o in ("-y", "--yes", "--assume-yes") or (o.startswith("-") and not o.startswith("--") and "y" in o) for o in options)
    print(f"The following packages will be {'DOWNGRADED' if downgrade else 'upgraded'}:\n  {PACKAGE}")
    if downgrade and "--allow-downgrades" not in options:
        _err("E: Packages were downgraded and -y was used without --allow-downgrades.")
        return 100
    if not yes:
        print("Do you want to continue? [Y/n] Abort.")
        return 1
    print(f"Preparing to unpack .../{PACKAGE}_{new.split(':', 1)[-1]}_all.deb ...\nUnpacking {PACKAGE} ({new}) over ({current}) ...")
    was_running = nodectl.running_pid(node) is not None
    nodectl.set_release(node, available[new])
    print(f"Setting up {PACKAGE} ({new}) ...")
    if node.data.get("autostart"):  # the postinst: deb-systemd-invoke restart glance-api
        try:
            if not nodectl.stop(node):
                _err(f"{PACKAGE}: postinst: the old service does not stop")
                return 100
            nodectl.start(node)
        except GlanceTuiError as exc:
            _err(f"Job for {PACKAGE}.service failed ({exc.message})\n"
                 f"dpkg: error processing package {PACKAGE} (--configure):\n installed {PACKAGE} package post-installation script subprocess returned error exit status 1")
            return 100
    elif was_running:
        print(f"({PACKAGE}.service keeps running the old code until it is restarted)")
    return 0


# ---------------------------------------------------------------- apt-cache

REPOSITORY = "http://repository.lab.invalid/glance"  # where the lab's "archive" says it is (it is the node's envs)


def _newest_first(versions: list[str]) -> list[str]:
    return sorted(versions, key=lambda v: tuple(int(x) for x in (parse_version(v) or "0.0.0").split(".")), reverse=True)


def apt_cache(node: Node, args: list[str]) -> int:
    """policy [PKG…]: apt 2.6's format — Installed, Candidate, the version table (``***`` marks the installed one)."""
    words = [a for a in args if not a.startswith("-")]
    if not words:
        _err("E: No command given (try apt-cache policy PACKAGE)")
        return 100
    if words[0] != "policy":
        _err(f"E: Invalid operation {words[0]}")
        return 100
    available = _available(node)
    if len(words) == 1:
        print("Package files:\n 100 /var/lib/dpkg/status\n     release a=now")
        for release in sorted(set(available.values())):
            print(f" 500 {REPOSITORY} {release}/main amd64 Packages\n     release o=lab,a={release},n={release},c=main,b=amd64")
        print("Pinned packages:")
        return 0
    current = nodectl.debian_version(nodectl.version(node))
    for package in words[1:]:
        if package != PACKAGE:
            _err(f"N: Unable to locate package {package}")
            continue
        print(f"{PACKAGE}:\n  Installed: {current}\n  Candidate: {_candidate(available, node, current)}\n  Version table:")
        for version in _newest_first(list({*available, current})):
            print(f" {'***' if version == current else '   '} {version} {500 if version in available else 100}")
            if version in available:
                print(f"        500 {REPOSITORY} {available[version]}/main amd64 Packages")
            if version == current:
                print("        100 /var/lib/dpkg/status")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    node_dir = None
    if len(args) >= 2 and args[0] == "--node-dir":
        node_dir, args = args[1], args[2:]
    tools = {"systemctl": systemctl, "apt-get": apt_get, "apt-cache": apt_cache}
    if not args or args[0] not in tools:
        _err(__doc__.strip().splitlines()[-1].strip())
        return 2
    try:
        return tools[args[0]](Node.load(node_dir), args[1:])
    except (GlanceTuiError, OSError) as exc:
        _err(f"E: {exc}")
        return 100 if args[0].startswith("apt-") else 1


if __name__ == "__main__":
    raise SystemExit(main())
