"""Commands on Glance nodes over SSH (asyncssh): one verified, reused connection per node.

Host keys are always checked against the configured known_hosts file; an unknown or changed
key is refused with the fingerprint the server presented and the command that fixes it.
Every command runs under coreutils ``timeout`` on the node, so a timeout also ends the remote
process instead of leaving it running behind a closed channel.
"""

from __future__ import annotations

import asyncio
import ipaddress
import shlex
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import asyncssh

from glance_tui.adapters.known_hosts import KnownHostsCache
from glance_tui.adapters.local import KILL_GRACE, CommandResult, OnLine, format_seconds, pump_lines
from glance_tui.config import Config, NodeConfig, SSHConfig
from glance_tui.errors import AdapterError, HostKeyError
from glance_tui.files import MIB, FileProblem, read_bytes
from glance_tui.secrets import redact

__all__ = ["CommandResult", "HostKeyStatus", "NodeSSH", "SSHPool", "new_tag", "tag_pattern"]

CLIENT_GRACE = 5.0  # extra seconds the client waits for the node's own timeout before closing the channel
TIMEOUT_EXITS = (124, 137)  # coreutils timeout: TERM sent / KILL sent after --kill-after
KeyState = Literal["verified", "unknown", "changed", "unreachable"]
IDENTITY_LIMIT = 1 * MIB
# A connect that just timed out is not tried again for this long: the probes of one round (gates
# evaluated together) share its answer instead of each waiting out connect_timeout in turn.
# (A quick failure, e.g. "refused", is simply tried again: an operator may have just started sshd.)
RETRY_AFTER = 2.0


@dataclass(frozen=True)
class HostKeyStatus:
    """The preflight view of one node's host key."""

    ok: bool
    state: KeyState
    fingerprint: str  # SHA256:… of the key the server presented ("" when unreachable)
    detail: str


def new_tag(kind: str = "") -> str:
    """A fresh tag for one remote command (its shell's ``$0``, so ``ps`` on the node shows it);
    ``kind`` (e.g. ``"change-"``) tells changing commands from probes on any node, any journal."""
    return f"glance-tui-{kind}{uuid.uuid4().hex[:16]}"


def tag_pattern(tag: str) -> str:
    """A ``pgrep -f``/``pkill -f`` pattern for ``tag`` that does not match the searching shell's own command line."""
    return "[" + tag[0] + "]" + tag[1:]


def build_remote_command(command: str, timeout: float, sudo: bool, tag: str = "") -> str:
    """The exact text sent to the node: ``timeout`` ends the whole process group, ``sudo -n`` never prompts.

    ``tag`` becomes the shell's ``$0``: it names the run in ``ps`` so an abandoned run can be ended.
    """
    wrapped = f"timeout --kill-after={format_seconds(KILL_GRACE)} {format_seconds(timeout)} sh -c {shlex.quote(command)}"
    if tag:
        wrapped += f" {shlex.quote(tag)}"
    return f"sudo -n sh -c {shlex.quote(wrapped)}" if sudo else wrapped


class _ConnectTimeout(AdapterError):
    """The node did not complete the SSH connect within connect_timeout."""


def _retrieve(future: asyncio.Future) -> None:
    """Mark a shared attempt's failure as seen, even when every caller was cancelled meanwhile."""
    if not future.cancelled():
        future.exception()


class IdentityProblem(Exception):
    """An identity file that cannot be used: (what, fix)."""

    def __init__(self, what: str, fix: str) -> None:
        super().__init__(what)
        self.what, self.fix = what, fix


def load_identity(path: Path, key: str = "identity_file") -> asyncssh.SSHKey:
    """The private key in ``path``, or :class:`IdentityProblem` naming exactly what is wrong with the file (and ``key``,
    the setting that named it, in the fix). Blocking: run it in a thread."""
    fix = f"correct {key}, or remove it to use ssh-agent and ~/.ssh keys"
    try:
        data = read_bytes(path, IDENTITY_LIMIT, "identity file")
    except FileProblem as exc:
        raise IdentityProblem(str(exc), fix) from None
    try:
        return asyncssh.import_private_key(data)
    except (asyncssh.KeyImportError, ValueError) as exc:
        if "passphrase" in str(exc).lower():
            raise IdentityProblem(f"identity file {path} is encrypted and glance-tui never asks for a passphrase",
                                  f"load it into ssh-agent (ssh-add {shlex.quote(str(path))}) and remove {key}, or use an unencrypted key") from None
        raise IdentityProblem(f"identity file {path} is not a private key glance-tui can read ({exc})",
                              f"point {key} at the private key (not the .pub file), or remove it to use ssh-agent") from None


def _short(command: str, limit: int = 80) -> str:
    command = redact(" ".join(command.split()))
    return command if len(command) <= limit else command[: limit - 1] + "…"


class NodeSSH:
    """One node: lazy, reused connection; at most ``ssh.max_channels`` commands at once."""

    def __init__(self, node: NodeConfig, ssh: SSHConfig, known_hosts: KnownHostsCache | None = None) -> None:
        self.name = node.name
        self.host = node.ssh_host
        self.port = node.ssh_port or ssh.port
        self.user = node.ssh_user or ssh.user
        identity = node.identity_file or ssh.identity_file
        self.identity_file = Path(identity).expanduser() if identity else None
        self.known_hosts = Path(node.known_hosts or ssh.known_hosts).expanduser()
        self._known_hosts_files = known_hosts or KnownHostsCache()  # shared by the pool: each file read once per run
        self._matched: tuple[object, asyncssh.SSHKnownHosts] | None = None  # (the index it came from, this host's entries)
        self._identity: asyncssh.SSHKey | None = None
        self.sudo = ssh.sudo
        self.connect_timeout = ssh.connect_timeout
        self.command_timeout = ssh.command_timeout
        self._channels = asyncio.Semaphore(ssh.max_channels)
        self._conn: asyncssh.SSHClientConnection | None = None
        self._connecting: asyncio.Future[asyncssh.SSHClientConnection] | None = None  # the one attempt in flight
        self._failed: tuple[float, AdapterError] | None = None  # (when, why) the last attempt failed
        self._ending: set[asyncio.Future] = set()  # pending clean-ups of cancelled runs

    @property
    def where(self) -> str:
        return f"node {self.name} ({self.user}@{self.host}:{self.port})"

    @property
    def known_hosts_name(self) -> str:
        """How this host is written in known_hosts: ``host`` on port 22, else ``[host]:port``."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    # ------------------------------------------------------------------ host keys
    async def _host_keys(self) -> asyncssh.SSHKnownHosts | None:
        """This host's entries of known_hosts, parsed off the event loop (None when the file does not exist).

        The file is read and indexed once per run (see known_hosts.py), never inside a connect deadline.
        """
        try:
            index = await self._known_hosts_files.index(self.known_hosts)
            if index is None:
                return None
            if self._matched is None or self._matched[0] is not index:
                self._matched = (index, await asyncio.to_thread(index.known_hosts, self.host, self.port))
            return self._matched[1]
        except FileProblem as exc:
            raise AdapterError(str(exc), where=self.where, fix="point known_hosts at the regular file that holds the nodes' host keys") from None
        except (ValueError, asyncssh.Error) as exc:
            raise AdapterError(f"cannot read known_hosts {self.known_hosts}: {exc}", where=self.where, fix="fix or recreate the file") from None

    async def _client_keys(self) -> dict:
        """``client_keys`` for asyncssh: the identity file's key, loaded (once) off the loop; {} for ssh-agent and ~/.ssh."""
        if self.identity_file is None:
            return {}
        if self._identity is None:
            try:
                self._identity = await asyncio.to_thread(load_identity, self.identity_file)
            except IdentityProblem as exc:
                raise AdapterError(exc.what, where=self.where, fix=exc.fix) from None
        return {"client_keys": [self._identity]}

    def _address(self) -> str:
        """The host as an IP address if it is one; "" for a name (known_hosts is then searched by name, as OpenSSH does)."""
        try:
            return str(ipaddress.ip_address(self.host))
        except ValueError:
            return ""

    async def _known_keys(self) -> tuple[list[asyncssh.SSHKey], list[asyncssh.SSHKey], bool]:
        """(trusted keys, revoked keys, has @cert-authority entries) for this host."""
        known = await self._host_keys()
        if known is None:
            return [], [], False
        matched = known.match(self.host, self._address(), self.port)
        trusted, cas, revoked = matched[0], matched[1], matched[2]
        return list(trusted), list(revoked), bool(cas)

    async def _server_key(self, algs: list[str], timeout: float) -> asyncssh.SSHKey | None:
        return await asyncio.wait_for(
            asyncssh.get_server_host_key(self.host, self.port, server_host_key_algs=algs or (), config=None),
            timeout,
        )

    async def host_key_check(self, timeout: float | None = None) -> HostKeyStatus:
        """Fetch the server's host key without trusting it and compare it with known_hosts.

        ``timeout`` (default ``connect_timeout``) bounds the whole check, a second key exchange included.
        """
        trusted, revoked, has_ca = await self._known_keys()
        algs = list(dict.fromkeys(a.decode() for k in trusted for a in k.sig_algorithms))
        deadline = time.monotonic() + (self.connect_timeout if timeout is None else timeout)
        try:
            try:
                key = await self._server_key(algs, max(deadline - time.monotonic(), 0.01))
            except asyncssh.KeyExchangeFailed:
                if not algs:
                    raise
                key = await self._server_key([], max(deadline - time.monotonic(), 0.01))  # it no longer offers the key type we trust
        except (OSError, asyncio.TimeoutError, asyncssh.Error) as exc:
            if isinstance(exc, ConnectionRefusedError):
                reason = "connection refused"
            elif isinstance(exc, asyncio.TimeoutError):
                reason = f"no answer within {self.connect_timeout:g}s"
            else:
                reason = str(exc) or exc.__class__.__name__
            return HostKeyStatus(False, "unreachable", "", f"cannot reach {self.host}:{self.port}: {reason}")
        if key is None:
            return HostKeyStatus(False, "unreachable", "", f"{self.host}:{self.port} presented no host key")
        fingerprint = key.get_fingerprint("sha256")
        shown = f"{key.get_algorithm()} {fingerprint}"
        data = key.public_data
        if any(k.public_data == data for k in revoked):
            return HostKeyStatus(False, "changed", fingerprint, f"host key of {self.known_hosts_name} is marked @revoked in {self.known_hosts}; the server presented {shown}")
        if any(k.public_data == data for k in trusted):
            return HostKeyStatus(True, "verified", fingerprint, f"host key {shown} matches {self.known_hosts}")
        if trusted:
            return HostKeyStatus(False, "changed", fingerprint, f"host key of {self.known_hosts_name} CHANGED: {self.known_hosts} holds a different key, the server presented {shown} (node reinstalled, or a man-in-the-middle)")
        missing = "" if self.known_hosts.is_file() else f" ({self.known_hosts} does not exist)"
        ca_note = " (@cert-authority entries are not evaluated by this check)" if has_ca else ""
        return HostKeyStatus(False, "unknown", fingerprint, f"host key of {self.known_hosts_name} is unknown{missing}{ca_note}; the server presented {shown}")

    def host_key_error(self, status: HostKeyStatus) -> AdapterError:
        """The operator-facing error for a failed :meth:`host_key_check`."""
        kh = shlex.quote(str(self.known_hosts))
        scan = f"ssh-keyscan -p {self.port} {shlex.quote(self.host)} >> {kh}"
        if status.state == "unreachable":
            return AdapterError(status.detail, where=self.where, fix="start sshd on the node or correct ssh_host/ssh_port")
        if status.state == "changed":
            fix = f"verify {status.fingerprint} out of band (on the node: ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), then ssh-keygen -R {shlex.quote(self.known_hosts_name)} -f {kh} && {scan}"
        else:
            fix = f"verify {status.fingerprint} out of band (on the node: ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), then {scan}"
        return HostKeyError(status.detail, where=self.where, fix=fix)

    async def _refuse_host_key(self, fallback: str, deadline: float | None = None, *, reached: bool = False) -> AdapterError:
        """The error for a refused host key, with the fingerprint when the rest of the deadline allows a look."""
        timeout = None if deadline is None else max(deadline - time.monotonic(), 0.01)
        status = await self.host_key_check(timeout)
        # The key matches now, yet asyncssh refused it; or the server (reached a moment ago) gave no key in
        # the time left: report asyncssh's own reason.
        if status.ok or (reached and status.state == "unreachable"):
            return HostKeyError(f"host key not accepted: {fallback}", where=self.where, fix=f"check the entries for {self.known_hosts_name} in {self.known_hosts}")
        return self.host_key_error(status)

    # ------------------------------------------------------------------ connection
    async def connect(self) -> None:
        """Open the connection unless one is already open (also re-opens a dropped one).

        Concurrent callers share one attempt, bounded as a whole by ``connect_timeout``; a failure
        is the answer for every caller of the next :data:`RETRY_AFTER` seconds too.
        """
        if self._alive():
            return
        if self._failed is not None and time.monotonic() - self._failed[0] < RETRY_AFTER:
            raise self._failed[1]
        if self._connecting is None or self._connecting.done():
            self._conn = None
            self._connecting = asyncio.ensure_future(self._attempt())
            self._connecting.add_done_callback(_retrieve)
        await asyncio.shield(self._connecting)

    async def _attempt(self) -> asyncssh.SSHClientConnection:
        try:
            self._conn = await self._open()
        except _ConnectTimeout as exc:
            self._failed = (time.monotonic(), exc)
            raise
        self._failed = None
        return self._conn

    async def _open(self) -> asyncssh.SSHClientConnection:
        # Local files first (off the loop, outside the deadline): connect_timeout covers the network only.
        known = await self._host_keys()
        keys = await self._client_keys()
        deadline = time.monotonic() + self.connect_timeout
        if known is None:
            raise await self._refuse_host_key(f"{self.known_hosts} does not exist", deadline)
        try:
            return await asyncio.wait_for(
                asyncssh.connect(
                    self.host, self.port, username=self.user, known_hosts=known, config=None,
                    connect_timeout=self.connect_timeout, keepalive_interval=15, keepalive_count_max=4, **keys,
                ),
                self.connect_timeout,
            )
        except asyncssh.HostKeyNotVerifiable as exc:
            raise await self._refuse_host_key(exc.reason, deadline, reached=True) from None
        except asyncssh.KeyExchangeFailed as exc:  # e.g. the node no longer offers the trusted key type
            raise await self._refuse_host_key(exc.reason, deadline, reached=True) from None
        except asyncssh.PermissionDenied:
            using = f"key {self.identity_file}" if self.identity_file else "ssh-agent and ~/.ssh keys"
            raise AdapterError(f"SSH authentication failed for {self.user} ({using})", where=self.where, fix=f"add the operator's public key to ~{self.user}/.ssh/authorized_keys on the node, or set ssh_user / identity_file") from None
        except asyncssh.KeyImportError as exc:
            raise AdapterError(f"cannot load identity file {self.identity_file}: {exc}", where=self.where, fix="use an unencrypted key, or remove identity_file and load the key into ssh-agent") from None
        except ConnectionRefusedError:
            raise AdapterError(f"SSH connection to {self.host}:{self.port} refused", where=self.where, fix="start sshd on the node or correct ssh_host/ssh_port") from None
        except asyncio.TimeoutError:
            raise _ConnectTimeout(f"no SSH answer from {self.host}:{self.port} within {self.connect_timeout:g}s", where=self.where, fix="check the address, the network and firewalls, or raise ssh.connect_timeout") from None
        except (OSError, asyncssh.Error) as exc:
            raise AdapterError(f"cannot connect over SSH: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}", where=self.where, fix="check the address, the network and sshd on the node") from None

    async def close(self) -> None:
        """End pending clean-ups and any connect in flight, then the connection: nothing is left to the loop's shutdown."""
        if self._ending:
            await asyncio.gather(*self._ending, return_exceptions=True)
        connecting, self._connecting = self._connecting, None
        if connecting is not None:
            if not connecting.done():
                connecting.cancel()
            await asyncio.gather(connecting, return_exceptions=True)
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            await conn.wait_closed()

    async def __aenter__(self) -> "NodeSSH":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ commands
    def remote_command(self, command: str, timeout: float | None = None, tag: str = "") -> str:
        """What :meth:`run` sends for ``command`` (shown by dry runs and tests)."""
        return build_remote_command(command, timeout if timeout is not None else self.command_timeout, self.sudo, tag)

    async def _start(self, remote: str) -> asyncssh.SSHClientProcess:
        """Open a channel; if the reused connection turns out to be dead, reconnect once (nothing ran yet)."""
        for attempt in (1, 2):
            await self.connect()
            assert self._conn is not None
            try:
                return await self._conn.create_process(remote, encoding=None)
            except (asyncssh.Error, OSError):
                if attempt == 2 or self._alive():  # e.g. MaxSessions reached: keep the other channels
                    raise
        raise AssertionError("unreachable")

    def _alive(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def run(self, command: str, *, timeout: float | None = None, on_line: OnLine | None = None, input: str | None = None,
                  tag: str | None = None) -> CommandResult:
        """Run ``command`` through ``sh -c`` on the node; stream lines to ``on_line(stream, line)``.

        ``tag`` (default: a fresh :func:`new_tag`) names the command on the node; a caller that
        journals it before calling can find the command again after a crash.
        """
        limit = timeout if timeout is not None else self.command_timeout
        tag = tag or new_tag()
        remote = self.remote_command(command, limit, tag)
        async with self._channels:
            start = time.monotonic()
            try:
                proc = await self._start(remote)
            except (asyncssh.Error, OSError) as exc:
                raise AdapterError(f"cannot open an SSH channel: {exc}", where=self.where, fix="check sshd on the node (MaxSessions) and retry") from None
            out: list[str] = []
            err: list[str] = []
            timed_out = False
            try:
                await asyncio.wait_for(self._exchange(proc, input, out, err, on_line), limit + KILL_GRACE + CLIENT_GRACE)
            except asyncio.TimeoutError:
                timed_out = True  # the node's `timeout` should have fired long ago: give up on the channel
                await self._abandon(proc, tag)
            except (asyncssh.Error, OSError) as exc:
                proc.close()
                raise self._lost(command, exc) from None
            except BaseException:  # cancelled: do not leave the command running behind a forgotten channel
                ending = asyncio.ensure_future(self._abandon(proc, tag))
                self._ending.add(ending)
                ending.add_done_callback(self._ending.discard)
                raise
            duration = time.monotonic() - start
        if not timed_out and proc.exit_status is None and proc.exit_signal is None:
            raise self._lost(command, None)
        status = None if timed_out else proc.exit_status
        if status in TIMEOUT_EXITS and duration >= limit:
            timed_out = True
        return CommandResult(command, status, "".join(out), "".join(err), duration, timed_out, tag=tag)

    async def _exchange(self, proc: asyncssh.SSHClientProcess, data: str | None, out: list[str], err: list[str], on_line: OnLine | None) -> None:
        try:
            if data:
                proc.stdin.write(data.encode())
                await proc.stdin.drain()
            proc.stdin.write_eof()
        except BrokenPipeError:
            pass  # the command exited without reading its input; its exit status tells the story
        await asyncio.gather(pump_lines(proc.stdout, "stdout", out, on_line), pump_lines(proc.stderr, "stderr", err, on_line))
        await proc.wait_closed()

    async def _abandon(self, proc: asyncssh.SSHClientProcess, tag: str) -> None:
        """Close the channel and end the remote run: SIGTERM its `timeout`, found by tag.

        (OpenSSH ignores channel signals for root logins, so the tag is matched with pkill.)
        """
        proc.close()
        pkill = f"pkill -TERM -f {shlex.quote(tag_pattern(tag))}"  # the bracket spares pkill's own shell
        if self.sudo:
            pkill = f"sudo -n {pkill}"
        try:
            if self._alive():
                await asyncio.wait_for(self._conn.run(pkill, check=False), self.connect_timeout)
        except (asyncssh.Error, OSError, asyncio.TimeoutError):
            pass  # best effort: the node's own `timeout` still ends the run

    def _lost(self, command: str, exc: BaseException | None) -> AdapterError:
        """A dead connection is re-opened by the next :meth:`connect`; a live one is kept for other channels."""
        reason = f": {exc}" if exc is not None and str(exc) else ""
        what = "the SSH channel closed without an exit status" if self._alive() else "SSH connection lost"
        return AdapterError(
            f"{what} while running `{_short(command)}`{reason}",
            where=self.where,
            fix="check the node; the next command reconnects — verify what the command did before retrying it",
        )


class SSHPool:
    """One :class:`NodeSSH` per configured node, created up front, connected lazily."""

    def __init__(self, config: Config) -> None:
        known_hosts = KnownHostsCache()
        self._nodes = {node.name: NodeSSH(node, config.ssh, known_hosts) for node in config.nodes}

    def get(self, name: str) -> NodeSSH:
        try:
            return self._nodes[name]
        except KeyError:
            raise AdapterError(f"unknown node {name!r}", fix=f"use one of: {', '.join(self._nodes)}") from None

    def __iter__(self):
        return iter(self._nodes.values())

    async def close(self) -> None:
        await asyncio.gather(*(node.close() for node in self._nodes.values()), return_exceptions=True)

    async def __aenter__(self) -> "SSHPool":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
