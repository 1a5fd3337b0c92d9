"""The lab's releases, upgrade paths and Python environments (Glance per release, Keystone 2023.1), installed from committed lock files.

Old OpenStack code breaks on new libraries, so each environment is installed from the exact
pins in ``locks/<name>.txt`` (a ``pip freeze`` resolved under the OpenStack upper-constraints
of its release). Environments are cached under ``$XDG_CACHE_HOME`` and reused while their
stamp (hash of the lock + Python version) matches. Stdlib only: nodectl uses it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from glance_tui.errors import GlanceTuiError, UsageError



@dataclass(frozen=True)
class LabRelease:
    """One release the lab can run: the Glance its environment installs and how a node serves it."""

    glance: str  # the Glance version of its lock file
    runtime: str  # "eventlet" (the standalone glance-api) or "uwsgi" (glance.wsgi.api under pyuwsgi): see runtime.py
    constraints: str  # the upper-constraints file its lock was resolved under (shared/lab/constraints/)


# The one table of what runs where: every other lab module asks it (runtime_of, GLANCE_VERSIONS).
RELEASES: dict[str, LabRelease] = {
    "2023.1": LabRelease("26.1.0", "eventlet", "upper-constraints-2023.1.txt"),
    "2024.1": LabRelease("28.2.0", "eventlet", "upper-constraints-2024.1.txt"),
    "2025.1": LabRelease("30.2.0", "eventlet", "upper-constraints-2025.1.txt"),
    # 2026.1 deprecates the eventlet server; Kolla-Ansible 2026.1 runs it under uWSGI, as Glance's reference ini.
    "2026.1": LabRelease("32.0.0", "uwsgi", "upper-constraints-2026.1.txt"),
    # 2026.2 has no standalone server any more (`glance-api` exits with an error).
    "2026.2": LabRelease("33.0.0", "uwsgi", "upper-constraints-master-2026-08-22.txt"),
}
GLANCE_VERSIONS: dict[str, str] = {name: r.glance for name, r in RELEASES.items()}
# Upgrade paths the lab builds (from, to): the last one with a real schema change (the default),
# today's SLURP path, and today's N -> N+1.
PATHS: tuple[tuple[str, str], ...] = (("2023.1", "2024.1"), ("2025.1", "2026.1"), ("2026.1", "2026.2"))
DEFAULT_PATH = PATHS[0]
BASE_RELEASE, TARGET_RELEASE = DEFAULT_PATH
# How a lab node runs Glance: "packages" (a service from the release's environment, as a packaged
# node), "kolla" (a podman container of the release's image, as Kolla-Ansible: containers.py).
NODE_KINDS = ("packages", "kolla")
# The lab's identity service: Keystone of the base release, from the same upper-constraints.
KEYSTONE = "keystone-2023.1"
KEYSTONE_VERSION = "23.0.0"
LOCK_DIR = Path(__file__).with_name("locks")
STAMP = ".glance-tui-stamp"

Progress = Callable[[str], None]


def _release(release: str) -> str:
    if release not in GLANCE_VERSIONS:
        raise GlanceTuiError(f"no lab environment for release {release!r}", fix=f"use one of {', '.join(GLANCE_VERSIONS)}")
    return release


def check_path(start: str | None, target: str | None) -> tuple[str, str]:
    """The lab path ``start -> target`` (either may be None: the one path that fits, else the default)."""
    if start is None and target is None:
        return DEFAULT_PATH
    fits = [p for p in PATHS if start in (None, p[0]) and target in (None, p[1])]
    if len(fits) != 1:
        asked = f"{start or '?'} -> {target or '?'}"
        raise UsageError(f"the lab has no upgrade path {asked}",
                             fix="use one of " + ", ".join(f"--from {a} --to {b}" for a, b in PATHS))
    return fits[0]


def _name(release: str) -> str:
    """The environment's name: ``glance-<release>``, or :data:`KEYSTONE` itself."""
    return release if release == KEYSTONE else f"glance-{_release(release)}"


def _markers(release: str) -> tuple[str, ...]:
    """Binaries every usable environment of this kind has (a Glance one: glance-manage and what its runtime runs)."""
    if release == KEYSTONE:
        return ("keystone-manage",)
    from glance_tui.lab.runtime import runtime_of

    return ("glance-manage", runtime_of(release).binary)


def lock_file(release: str) -> Path:
    return LOCK_DIR / f"{_name(release)}.txt"


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "glance-tui" / "lab-venvs"


def env_dir(release: str) -> Path:
    return cache_root() / _name(release)


def stamp_for(release: str) -> str:
    """What a usable environment must have been built from: the lock and the Python minor version."""
    digest = hashlib.sha256(lock_file(release).read_bytes())
    digest.update(f"python{sys.version_info[0]}.{sys.version_info[1]}".encode())
    return digest.hexdigest()


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(release: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in lock_file(release).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[normalise(name)] = version.strip()
    return pins


def installed(prefix: Path) -> dict[str, str]:
    """Distributions installed in the environment at ``prefix``, read from ``*.dist-info`` names (no
    imports), and ``*.egg-info`` ones: pip installs an sdist without a wheel build (no ``wheel``
    package, e.g. simplegeneric) the legacy way, as ``NAME-VERSION[-pyX.Y].egg-info``."""
    found: dict[str, str] = {}
    for suffix in (".egg-info", ".dist-info"):  # a dist-info wins over a stale egg-info
        for info in prefix.glob(f"lib/python3*/site-packages/*{suffix}"):
            name, _, rest = info.name[: -len(suffix)].partition("-")
            version = rest.split("-", 1)[0]
            if version:
                found[normalise(name)] = version
    return found


def glance_version(bin_dir: Path) -> str | None:
    """The Glance version installed beside ``bin_dir`` (cheap: from its dist-info, no import)."""
    return installed(Path(bin_dir).resolve().parent).get("glance")


def _matches_lock(path: Path, release: str) -> bool:
    have = installed(path)
    return all(have.get(name) == version for name, version in read_lock(release).items())


def _usable(path: Path, release: str) -> bool:
    stamp = path / STAMP
    if not all((path / "bin" / marker).exists() for marker in _markers(release)):
        return False
    if stamp.exists():
        return stamp.read_text().strip() == stamp_for(release)
    # Built before stamps existed (or by hand): adopt it only if it holds exactly the lock.
    if _matches_lock(path, release):
        stamp.write_text(stamp_for(release) + "\n")
        return True
    return False


def ensure_env(release: str, *, progress: Progress = print) -> Path:
    """The ``bin`` directory of the cached environment for ``release`` (a Glance release, or
    :data:`KEYSTONE`), installing it on first use."""
    path = env_dir(release)
    if _usable(path, release):
        return path / "bin"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f"{_name(release)}.lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # another `lab up` may be installing the same env
        if not _usable(path, release):
            _install(path, release, progress)
    return path / "bin"


def _title(release: str) -> str:
    if release == KEYSTONE:
        return f"Keystone {BASE_RELEASE} ({KEYSTONE_VERSION})"
    return f"Glance {release} ({GLANCE_VERSIONS[release]})"


def _install(path: Path, release: str, progress: Progress) -> None:
    title = _title(release)
    log = path.parent / f"{_name(release)}.install.log"
    progress(f"installing {title} into {path} (first run, ~1-4 min, ~250 MB)…")
    if path.exists():
        shutil.rmtree(path)
    started = time.monotonic()
    with open(log, "w") as out:
        _run([sys.executable, "-m", "venv", str(path)], out, progress, release, log)
        _run([str(path / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off",
              "-r", str(lock_file(release))], out, progress, release, log)
    if not _matches_lock(path, release):
        raise GlanceTuiError(f"{title} environment does not match its lock after installing", where=str(path),
                             fix=f"see {log}; remove {path} and rerun `glance-tui lab up`")
    (path / STAMP).write_text(stamp_for(release) + "\n")
    progress(f"{title} installed in {time.monotonic() - started:.0f}s")


def _run(argv: list[str], out, progress: Progress, release: str, log: Path) -> None:
    out.write("$ " + " ".join(argv) + "\n")
    out.flush()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        out.write(line)
        line = line.rstrip()
        if line.startswith(("Collecting", "Downloading", "Installing", "Successfully", "Building", "ERROR")):
            progress(f"  {line}")
        tail = (tail + [line])[-3:]
    if proc.wait() != 0:
        raise GlanceTuiError(
            f"installing {_title(release)} failed ({' | '.join(t for t in tail if t)})",
            where=argv[0],
            fix=f"check access to PyPI and free disk space (~250 MB per environment), then rerun `glance-tui lab up`; full log: {log}",
        )
