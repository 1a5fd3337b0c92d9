"""The container lab (``lab up --node-kind kolla``): each node's Glance in a podman container, Kolla's way.

Images are built here, no registry: a tiny root filesystem that names its release (label, ``PATH``
and command of that release's environment, the release's own paste ini in ``/etc/glance``) is
``podman import``-ed once per release and saved as a docker-archive under the lab's
``container-images/``. The host's ``/usr`` and the cached Glance environments are bind-mounted
read-only at their own paths (a venv's shebangs are absolute), so the image alone decides which
code runs: a container restarted on its old image runs the old code, one re-created on the new
image runs the new code.

Every lab node shares this machine, yet Kolla names the container ``glance_api`` on each host: each
node has its own podman world (storage, state, file locks under ``<node>/podman``) behind a
``podman`` wrapper on the node's ``PATH`` (its sshd's environment). A ``pull`` of the lab's image
through that wrapper loads the release's archive into the node's storage — the registry's part —
so the engine's own ``podman pull`` works unchanged. The container is created as
Kolla-Ansible's glance role creates it: host network, ``/etc/kolla/glance-api`` (here
``<node>/kolla/glance-api``) on ``/var/lib/kolla/config_files`` read-only, the Glance data
volume on ``/var/lib/glance``. Stdlib only: the witness reads containers from here.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shlex
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from glance_tui.errors import GlanceTuiError
from glance_tui.lab import envs, procs, runtime

IMAGE = "localhost/kolla/glance-api"  # the repository; the tag is the release
CONTAINER = "glance_api"  # Kolla-Ansible's container name, on every host
CONFIG_DIR = runtime.CONTAINER_CONFIG_DIR  # Kolla's container_config_directory
DATA_DIR = "/var/lib/glance"  # Kolla's glance volume: staging, tasks, locks; the file store below it
PASTE_FILE = "/etc/glance/glance-api-paste.ini"  # in the image: its release's own
RELEASE_LABEL = "org.openstack.glance.release"
VERSION_LABEL = "org.openstack.glance.version"
BINARIES = ("podman", "runc")
# What runs podman here (see shared NOTES): runc (crun refuses hybrid cgroups), cgroupfs, no
# default ulimits; file locks, so each node's world locks in its own directory.
CONTAINERS_CONF = """\
# Written by glance-tui's lab: one node's podman settings.
[containers]
default_ulimits = []
pids_limit = 0
# The host's code, read-only at its own paths, in every container of this node (a one-off one too):
# the lab's images are a few KB and name the environment they run.
volumes = {volumes}

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
events_logger = "none"
lock_type = "file"
"""
ROOT_PASSWD = "root:x:0:0:root:/root:/bin/sh\n"
ROOT_GROUP = "root:x:0:\n"


def require_podman() -> str:
    """podman and runc from Debian's packages, or one line with the fix."""
    missing = []
    for name in BINARIES:
        try:
            procs.require_binary(name)
        except GlanceTuiError:
            missing.append(name)
    if missing:
        pkgs = " ".join(missing)
        raise GlanceTuiError(f"the container lab needs {pkgs}", fix=f"apt-get update && apt-get install -y {pkgs}")
    return procs.require_binary("podman")


def image_ref(release: str) -> str:
    return f"{IMAGE}:{release}"


# podman refuses a runroot longer than 50 characters: a world's state and temp live under here.
SHORT_ROOT = Path("/run/glance-tui")
DRIVER = "vfs"  # podman's storage driver in every world


@dataclass
class World:
    """One podman world: its own storage (``root``), state (``run``), temp and locks."""

    dir: Path

    def __post_init__(self) -> None:
        self.dir = Path(self.dir).absolute()

    conf = property(lambda self: self.dir / "containers.conf")

    @property
    def state_dir(self) -> Path:
        """Short (see SHORT_ROOT) and volatile, as podman's runroot is meant to be; one per world."""
        return SHORT_ROOT / hashlib.sha256(str(self.dir).encode()).hexdigest()[:12]

    def base_argv(self) -> list[str]:
        # vfs: the lab's layers are a few KB, and overlay would leave its storage bind-mounted on itself
        # (a lab or test directory that cannot be removed)
        return [require_podman(), "--root", str(self.dir / "root"), "--runroot", str(self.state_dir / "run"),
                "--tmpdir", str(self.state_dir / "tmp"), "--storage-driver", DRIVER]

    def setup(self, env_bins: list[str]) -> None:
        (self.dir / "root").mkdir(parents=True, exist_ok=True)
        for sub in ("run", "tmp"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        (self.state_dir / "world").write_text(f"{self.dir}\n")  # whose it is
        self.conf.write_text(CONTAINERS_CONF.format(volumes=json.dumps(host_code_volumes(env_bins))))

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        argv = [*self.base_argv(), *args]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                                  env={**os.environ, "CONTAINERS_CONF": str(self.conf)})
        except subprocess.TimeoutExpired:
            raise GlanceTuiError(f"`podman {' '.join(args[:2])}` did not finish within {timeout:.0f}s", where=str(self.dir),
                                 fix="check `podman ps` in that world; `glance-tui lab down` and up again") from None
        if check and proc.returncode != 0:
            tail = " | ".join(proc.stderr.strip().splitlines()[-2:])
            raise GlanceTuiError(f"`podman {' '.join(args[:2])}` exited {proc.returncode}: {tail}", where=str(self.dir),
                                 fix="see the message")
        return proc

    def image_id(self, ref: str) -> str | None:
        proc = self.run("image", "inspect", "-f", "{{.Id}}", ref, check=False)
        return proc.stdout.strip() or None if proc.returncode == 0 else None

    def load(self, archive: Path) -> None:
        self.run("load", "-q", "-i", str(archive))

    def inspect(self, name: str = CONTAINER) -> dict | None:
        """The container's id, image id, state and main pid (None: no such container)."""
        proc = self.run("container", "inspect", name, check=False)
        if proc.returncode != 0:
            if "no such container" in proc.stderr.lower():
                return None
            raise GlanceTuiError(f"cannot inspect container {name}: {proc.stderr.strip()}", where=str(self.dir), fix="see the message")
        try:
            found = json.loads(proc.stdout)[0]
            return {"id": found["Id"], "image": found["Image"], "image_name": found.get("ImageName", ""),
                    "status": found["State"]["Status"], "pid": found["State"].get("Pid") or None}
        except (ValueError, LookupError, TypeError) as exc:
            raise GlanceTuiError(f"cannot read container {name}'s inspect output ({exc})", where=str(self.dir), fix="see `podman inspect`") from None


def container_volumes(*, config_dir: Path, data_dir: Path, store_dir: Path) -> list[str]:
    """``-v`` values of a node's glance_api, as Kolla-Ansible's glance role has them: the config dir
    read-only, the Glance volume (here with the lab's shared file store on its images/)."""
    vols = [f"{config_dir}/:{CONFIG_DIR}/:ro", f"{data_dir}/:{DATA_DIR}/", f"{store_dir}/:{DATA_DIR}/images/"]
    if Path("/etc/localtime").exists():
        vols.append("/etc/localtime:/etc/localtime:ro")
    return vols


def host_code_volumes(env_bins: list[str]) -> list[str]:
    """The host's code read-only at its own paths — ``/usr``, the cached environments (every
    release's: the image picks one), the Python they were made from."""
    vols = ["/usr:/usr:ro"]
    roots: list[str] = []
    for bin_dir in env_bins:
        venv = Path(bin_dir).resolve().parent
        roots.append(str(venv.parent))  # every release's environment: the image picks one
        home = _venv_home(venv)
        if home and not home.startswith("/usr/"):
            roots.append(str(Path(home).parent))  # the Python the venv was made from (e.g. pyenv's)
    for root in dict.fromkeys(roots):
        if not any(root != other and root.startswith(other + "/") for other in roots):
            vols.append(f"{root}:{root}:ro")
    return vols


def _venv_home(venv: Path) -> str | None:
    try:
        for line in (venv / "pyvenv.cfg").read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home":
                return str(Path(value.strip()).resolve())
    except OSError:
        pass
    return None


class Images:
    """The lab's Glance images, one docker-archive per release (built once, loaded into each node's world)."""

    def __init__(self, dir: Path, progress=print) -> None:
        self.dir = Path(dir).absolute()
        self.builder = World(self.dir / "podman")  # imports and saves only: runs no container
        self.progress = progress

    def archive(self, release: str) -> Path:
        return self.dir / f"glance-api-{release}.tar"

    def _meta(self, release: str) -> Path:
        return self.dir / f"glance-api-{release}.json"

    def ensure(self, release: str, bin_dir: str) -> str:
        """The image id of ``release``'s image, building its archive when missing or made from other inputs."""
        stamp = self._stamp(release, bin_dir)
        try:
            meta = json.loads(self._meta(release).read_text())
            if meta.get("stamp") == stamp and self.archive(release).exists():
                return meta["id"]
        except (OSError, ValueError, KeyError):
            pass
        return self.build(release, bin_dir, stamp)

    def recorded(self) -> dict[str, str]:
        """release -> image id of every image built here."""
        found = {}
        for meta in self.dir.glob("glance-api-*.json"):
            try:
                data = json.loads(meta.read_text())
                found[data["release"]] = data["id"]
            except (OSError, ValueError, KeyError):
                continue
        return found

    def _spec(self, release: str, bin_dir: str) -> tuple[list[str], dict[str, str]]:
        server = runtime.runtime_of(release)
        argv, env = server.container_command(Path(bin_dir))
        path = f"{bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        return argv, {"PATH": path, **env}

    def _stamp(self, release: str, bin_dir: str) -> str:
        argv, env = self._spec(release, bin_dir)
        version = envs.glance_version(Path(bin_dir)) or "?"
        text = json.dumps([release, bin_dir, version, argv, env, CONTAINERS_CONF, _rootfs_files(bin_dir)], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def build(self, release: str, bin_dir: str, stamp: str) -> str:
        started = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.builder.setup([bin_dir])
        argv, env = self._spec(release, bin_dir)
        version = envs.glance_version(Path(bin_dir)) or "?"
        rootfs = self.dir / f"rootfs-{release}.tar"
        rootfs.write_bytes(_rootfs_tar(bin_dir))
        ref = image_ref(release)
        changes = [f"LABEL {RELEASE_LABEL}={release}", f"LABEL {VERSION_LABEL}={version}",
                   *(f"ENV {k}={v}" for k, v in env.items()), "CMD " + json.dumps(argv)]
        self.builder.run("rmi", "-f", ref, check=False)
        self.builder.run("import", *(x for c in changes for x in ("--change", c)), str(rootfs), ref)
        tmp = self.archive(release).with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        self.builder.run("save", "--format", "docker-archive", "-o", str(tmp), ref)
        tmp.replace(self.archive(release))
        image = self.builder.image_id(ref)
        if not image:
            raise GlanceTuiError(f"the image {ref} was built but cannot be found", where=str(self.builder.dir), fix="run `glance-tui lab up` again")
        seconds = time.monotonic() - started
        self._meta(release).write_text(json.dumps({"release": release, "id": image, "stamp": stamp, "glance": version,
                                                   "build_seconds": round(seconds, 2)}, indent=2) + "\n")
        self.progress(f"built image {ref} (Glance {version}, {runtime.runtime_of(release).name}) in {seconds:.1f}s: {image[:12]}")
        return image


def _rootfs_files(bin_dir: str) -> dict[str, str]:
    """The image's own files (path -> text): root's account and its release's paste ini."""
    files = {"etc/passwd": ROOT_PASSWD, "etc/group": ROOT_GROUP}
    paste = Path(bin_dir).resolve().parent / "etc" / "glance" / "glance-api-paste.ini"
    if paste.exists():
        files[PASTE_FILE.lstrip("/")] = paste.read_text()
    return files


def _rootfs_tar(bin_dir: str) -> bytes:
    """A root filesystem of a few KB: merged-/usr links (``/usr`` comes from the host), mount points, its files."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        def add(name: str, *, kind: bytes = tarfile.DIRTYPE, mode: int = 0o755, target: str = "", data: bytes = b"") -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.linkname, info.mtime = kind, mode, target, 0
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if data else None)

        for d in ("usr", "etc", "etc/glance", "root", "run", "proc", "sys", "dev", "var", "var/lib", "var/lib/kolla",
                  CONFIG_DIR.lstrip("/"), DATA_DIR.lstrip("/"), "var/log", "var/log/kolla"):
            add(d, mode=0o700 if d == "root" else 0o755)
        add("tmp", mode=0o1777)
        for link in ("bin", "lib", "lib64", "sbin"):
            add(link, kind=tarfile.SYMTYPE, target=f"usr/{link}", mode=0o777)
        for name, text in _rootfs_files(bin_dir).items():
            add(name, kind=tarfile.REGTYPE, mode=0o644, data=text.encode())
    return buf.getvalue()


def wrapper_text(world: World, archives: Path, node: str) -> str:
    """The node's ``podman``: its own world; a ``pull`` of the lab's image loads the release's archive."""
    base = " ".join(shlex.quote(a) for a in world.base_argv())
    q = shlex.quote
    return f"""#!/bin/sh
# Written by glance-tui's lab: {node}'s podman. Every lab node shares this machine, so each has its
# own storage, state and locks. The lab has no registry: a pull of {IMAGE}:TAG loads the image
# that `glance-tui lab up` built for release TAG ({archives}/glance-api-TAG.tar).
export CONTAINERS_CONF={q(str(world.conf))}
if [ "$1" = pull ]; then shift
elif [ "$1" = image ] && [ "$2" = pull ]; then shift 2
else exec {base} "$@"
fi
for ref; do :; done
case "$ref" in
  {IMAGE}:*/*) ;;
  {IMAGE}:*)
    archive={q(str(archives))}/glance-api-"${{ref#{IMAGE}:}}".tar
    if [ ! -f "$archive" ]; then
      echo "Error: $ref: the lab has no such image ($archive is missing)" >&2
      exit 125
    fi
    {base} load -q -i "$archive" >/dev/null || exit 125
    exec {base} image inspect -f '{{{{.Id}}}}' "$ref" ;;
esac
exec {base} pull "$@"
"""


# The node's ``ps``: every lab node shares this machine, and a node's processes are those of its own
# containers (in their cgroups), as a Kolla host's Glance runs only in its container. Lines whose
# first field is not a pid (headers) are kept; ps's own failure is the shim's.
PS_SHIM = """#!/bin/sh
# Written by glance-tui's lab: {node}'s ps (the processes of this node's containers only).
here=$(dirname "$0")
ids=$("$here/podman" ps -q --no-trunc) || exit 1
pids=" "
for id in $ids; do
  pids="$pids$(grep -l "$id" /proc/[0-9]*/cgroup 2>/dev/null | cut -d/ -f3 | tr '\\n' ' ')"
done
out=$(/usr/bin/ps "$@") || exit $?
printf '%s\\n' "$out" | awk -v ok="$pids" '$1 !~ /^[0-9]+$/ || index(ok, " " $1 " ")'
"""


@dataclass
class ContainerNode:
    """One lab node's Glance container: its world, wrapper, Kolla config dir and data volume."""

    node_dir: Path
    name: str
    images: Images

    def __post_init__(self) -> None:
        self.node_dir = Path(self.node_dir).absolute()
        self.world = World(self.node_dir / "podman")

    bin_dir = property(lambda self: self.node_dir / "bin")  # first on the node's PATH
    config_dir = property(lambda self: self.node_dir / "kolla" / "glance-api")  # Kolla's /etc/kolla/glance-api
    data_dir = property(lambda self: self.node_dir / "glance")  # the glance volume
    conf = property(lambda self: self.config_dir / "glance-api.conf")

    def setup(self, env_bins: list[str]) -> None:
        self.world.setup(env_bins)
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        self.config_dir.mkdir(parents=True, exist_ok=True)
        for sub in ("staging", "tasks", "locks"):
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True)
        for name, text in (("podman", wrapper_text(self.world, self.images.dir, self.name)), ("ps", PS_SHIM.format(node=self.name))):
            tool = self.bin_dir / name
            tool.write_text(text)
            tool.chmod(0o755)

    def pull(self, release: str) -> str:
        """What ``podman pull IMAGE:release`` does on the node: the release's image in its storage."""
        self.world.load(self.images.archive(release))
        image = self.world.image_id(image_ref(release))
        if not image:
            raise GlanceTuiError(f"{image_ref(release)} is not in {self.name}'s storage after loading it", where=str(self.world.dir),
                                 fix="run `glance-tui lab reset`")
        return image

    def state(self) -> dict | None:
        return self.world.inspect()

    def create(self, release: str, *, store_dir: Path) -> None:
        """Kolla's deploy: the container from ``release``'s image with the node's configuration (not started)."""
        vols = container_volumes(config_dir=self.config_dir, data_dir=self.data_dir, store_dir=store_dir)
        self.world.run("create", "--name", CONTAINER, "--network", "host", "--pull", "never", "--stop-timeout", "30",
                       *(x for v in vols for x in ("-v", v)), image_ref(release))

    def start(self, *, wait_url: str | None = None, timeout: float = 120) -> None:
        self.world.run("start", CONTAINER)
        if wait_url:
            self.wait_serving(wait_url, timeout)

    def wait_serving(self, url: str, timeout: float = 120) -> None:
        import urllib.error
        import urllib.request

        deadline, last = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    if resp.status < 500:
                        return
            except urllib.error.HTTPError as exc:
                if exc.code < 500:
                    return
                last = f"HTTP {exc.code}"
            except OSError as exc:
                last = str(exc)
            state = self.state()
            if not state or state["status"] not in ("running", "created", "configured"):
                raise GlanceTuiError(f"container {CONTAINER} on {self.name} is {state['status'] if state else 'gone'} during start-up",
                                     fix=f"see `{self.bin_dir / 'podman'} logs {CONTAINER}`")
            time.sleep(0.25)
        raise GlanceTuiError(f"container {CONTAINER} on {self.name} does not serve {url} within {timeout:.0f}s ({last})",
                             fix=f"see `{self.bin_dir / 'podman'} logs {CONTAINER}`")

    def stop(self) -> bool:
        """Stop the container if it runs; True if it was running."""
        state = self.state()
        if not state or state["status"] != "running":
            return False
        self.world.run("stop", CONTAINER, timeout=90)
        return True

    def remove(self) -> None:
        self.world.run("rm", "-f", "--ignore", CONTAINER, timeout=90)

    def remove_images(self, keep: str) -> None:
        """Every Glance image of the node's storage but ``keep``'s tag (a reset: nothing pulled remains)."""
        out = self.world.run("images", "--format", "{{.Repository}}:{{.Tag}}", check=False).stdout.split()
        for ref in out:
            if ref.startswith(IMAGE + ":") and ref != image_ref(keep):
                self.world.run("rmi", "-f", ref, check=False)
        self.world.run("image", "prune", "-f", check=False)


def running_container(world_dir: Path, name: str = CONTAINER) -> tuple[int, str] | None:
    """(main pid, image id) of the running container ``name`` in a world, read from its storage and
    state files (no podman started: the witness samples every half second)."""
    world = World(world_dir)
    try:
        entries = json.loads((world.dir / "root" / f"{DRIVER}-containers" / "containers.json").read_text())
    except (OSError, ValueError):
        return None
    for entry in entries:
        if name in entry.get("names", []):
            try:
                pid = int((world.state_dir / "run" / f"{DRIVER}-containers" / entry["id"] / "userdata" / "pidfile").read_text().strip())
                cgroup = Path(f"/proc/{pid}/cgroup").read_text()
            except (OSError, ValueError):
                return None
            # a stale pid file's pid may be reused by another process: it must be in the container's cgroup
            return (pid, entry.get("image", "")) if entry["id"] in cgroup else None
    return None
