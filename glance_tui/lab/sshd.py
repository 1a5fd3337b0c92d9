"""A real OpenSSH sshd on a loopback address, one per simulated node (tests and staging lab).

Each instance has its own work directory holding its config, ed25519 host key, authorized
keys, log and pid file, so ``stop()`` works from any process that knows the directory.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

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

PRIVSEP_DIR = Path("/run/sshd")  # sshd refuses to start without its privilege separation dir
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def generate_keypair(path: Path, comment: str = "glance-tui") -> Path:
    """Create an ed25519 key without passphrase at ``path`` (replacing any old one).

    Returns ``path`` (the private key); the public key is ``path`` + ``.pub`` (ssh-keygen's
    convention, e.g. ``id_ed25519`` -> ``id_ed25519.pub``), see :func:`public_key_path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for old in (path, public_key_path(path)):
        old.unlink(missing_ok=True)
    argv = [require_binary("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)]
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise GlanceTuiError(f"ssh-keygen failed: {proc.stderr.strip()}", where=str(path), fix="check the directory is writable")
    return path


def public_key_path(private: Path) -> Path:
    return Path(f"{private}.pub")


def _public_key_text(pub_file: Path) -> str:
    """``"<type> <base64>"`` without the comment."""
    return " ".join(pub_file.read_text().split()[:2])


def _setenv_value(name: str, value: str) -> str:
    if not _ENV_NAME.match(name) or any(c in value for c in '"\n\r\\'):
        raise GlanceTuiError(f"cannot export {name}={value!r} through sshd_config SetEnv", fix="use a plain name and a value without quotes, backslashes or newlines")
    return f'{name}="{value}"'


@dataclass
class SSHD:
    """One sshd listening on ``host:port``, accepting root logins with ``authorized_keys``."""

    workdir: Path
    host: str
    port: int = 0  # 0: a free port is picked at start()
    authorized_keys: list[Path] = field(default_factory=list)  # public key files
    set_env: dict[str, str] = field(default_factory=dict)  # exported to every session
    # The argv prefix sshd runs under (a lab node's machine: ``nsenter …``), asked at each start.
    # The pid file then names sshd itself (the prefix's child), so stop() reaches its sessions.
    wrap: Callable[[], list[str]] | None = None

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir).absolute()

    @property
    def config_file(self) -> Path:
        return self.workdir / "sshd_config"

    @property
    def host_key(self) -> Path:
        return self.workdir / "ssh_host_ed25519_key"

    @property
    def pidfile(self) -> Path:
        return self.workdir / "sshd.pid"

    @property
    def log(self) -> Path:
        return self.workdir / "sshd.log"

    @property
    def host_key_pub(self) -> str:
        """The host's public key as ``"ssh-ed25519 AAAA…"``."""
        return _public_key_text(public_key_path(self.host_key))

    def known_hosts_line(self) -> str:
        """The known_hosts entry for this server, e.g. ``[127.0.0.21]:40123 ssh-ed25519 AAAA…``."""
        name = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
        return f"{name} {self.host_key_pub}"

    def regenerate_host_key(self) -> None:
        """Replace the host key (a "changed host key" for clients); takes effect at the next start."""
        generate_keypair(self.host_key, comment=f"sshd@{self.host}")

    def _write_config(self) -> None:
        keys = "".join(_public_key_text(Path(p)) + "\n" for p in self.authorized_keys)
        (self.workdir / "authorized_keys").write_text(keys)
        lines = [
            f"ListenAddress {self.host}:{self.port}",
            f"HostKey {self.host_key}",
            f"PidFile {self.workdir / 'sshd-own.pid'}",
            f"AuthorizedKeysFile {self.workdir / 'authorized_keys'}",
            "UsePAM no",
            "StrictModes no",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PrintMotd no",
            "MaxSessions 32",
            "MaxStartups 64:30:128",
            "LogLevel VERBOSE",
        ]
        if self.set_env:
            lines.append("SetEnv " + " ".join(_setenv_value(k, v) for k, v in self.set_env.items()))
        self.config_file.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 10) -> None:
        """Write the config (and a host key on first start), start sshd, wait until it listens."""
        if self.is_running():
            return
        sshd = require_binary("sshd")  # absolute path: sshd re-executes itself
        self.workdir.mkdir(parents=True, exist_ok=True)
        PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
        if not self.host_key.exists():
            self.regenerate_host_key()
        if self.port == 0:
            self.port = free_port(self.host)
        else:
            require_free_port(self.host, self.port, f"sshd for {self.host}")
        self._write_config()
        check = subprocess.run([sshd, "-t", "-f", str(self.config_file)], capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise GlanceTuiError(f"sshd rejects its config: {check.stderr.strip()}", where=str(self.config_file), fix="see the message")
        prefix = self.wrap() if self.wrap else []
        pid = start_detached([*prefix, sshd, "-f", str(self.config_file), "-D", "-e"], log=self.log, pidfile=self.pidfile)
        if prefix:
            pid = self._wrapped(pid, timeout)
        wait_for_port(self.host, self.port, timeout, pid=pid, what=f"sshd on {self.host}", log=self.log)

    def _wrapped(self, prefix_pid: int, timeout: float) -> int:
        """sshd's own pid under the prefix process, recorded in the pid file."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for child in processes(parent=prefix_pid):
                if Path(f"/proc/{child}/exe").resolve().name == "sshd":
                    self.pidfile.write_text(f"{child}\n")
                    return child
            if not pid_alive(prefix_pid):
                break
            time.sleep(0.02)
        raise GlanceTuiError(f"sshd on {self.host} did not start under {self.wrap}", fix=f"see {self.log}")

    def stop(self) -> bool:
        """Stop sshd and its open sessions; True if something was running."""
        pid = read_pid(self.pidfile)
        if pid is not None and pid_alive(pid):
            for child in processes(parent=pid):  # sessions live in their own process groups
                try:
                    os.kill(child, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        return stop_pid(self.pidfile)

    def is_running(self) -> bool:
        return is_running(self.pidfile)


def write_known_hosts(path: Path, sshds: Iterable[SSHD]) -> Path:
    """Write a known_hosts file trusting exactly ``sshds`` (each must have been started)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(s.known_hosts_line() + "\n" for s in sshds))
    return path
