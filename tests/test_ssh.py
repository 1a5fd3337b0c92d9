"""NodeSSH against real OpenSSH sshd on loopback (plus an in-process asyncssh server for a dropped
connection and an unresponsive node), and LocalShell on this machine."""

from __future__ import annotations

import asyncio
import shlex
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import asyncssh
import pytest

from glance_tui.adapters import ssh as ssh_mod
from glance_tui.adapters.local import LocalShell
from glance_tui.adapters.ssh import NodeSSH, SSHPool, build_remote_command
from glance_tui.config import Config
from glance_tui.errors import AdapterError, HostKeyError
from glance_tui.lab.procs import free_port
from glance_tui.lab.sshd import generate_keypair, public_key_path, write_known_hosts
from glance_tui.secrets import REDACTED, register

services = pytest.mark.services


def node(config: Config, name: str = "node-1") -> NodeSSH:
    return NodeSSH(config.node(name), config.ssh)


def fingerprint(pub_file: Path) -> str:
    """SHA256:… as OpenSSH's own ssh-keygen prints it."""
    out = subprocess.run(["ssh-keygen", "-lf", str(pub_file)], capture_output=True, text=True, check=True).stdout
    return out.split()[1]


async def poll(predicate, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


# ---------------------------------------------------------------- running commands


@services
async def test_exit_status_stdout_stderr(ssh_config_factory) -> None:
    async with node(ssh_config_factory()) as n:
        ok = await n.run("echo out; echo err >&2")
        failed = await n.run("echo partial; exit 7")
    assert (ok.exit_status, ok.ok, ok.stdout, ok.stderr, ok.timed_out) == (0, True, "out\n", "err\n", False)
    assert (failed.exit_status, failed.ok, failed.stdout) == (7, False, "partial\n")
    assert failed.command == "echo partial; exit 7" and failed.duration > 0
    assert ok.tail() == ["out", "err"]


@services
async def test_sessions_get_the_sshd_environment_and_one_connection_is_reused(ssh_config_factory, sshd_nodes) -> None:
    async with node(ssh_config_factory(), "node-2") as n:
        first = await n.run('echo "$GLANCE_LAB_NODE_DIR"; echo "$SSH_CONNECTION"')
        second = await n.run('echo "$SSH_CONNECTION"')
    node_dir, connection = first.stdout.splitlines()
    assert Path(node_dir) == sshd_nodes[1].workdir / "node"
    assert connection.split()[2:] == [sshd_nodes[1].host, str(sshd_nodes[1].port)]
    assert second.stdout.strip() == connection  # same client port: the same connection


@services
async def test_lines_stream_before_the_command_ends(ssh_config_factory, tmp_path: Path) -> None:
    flag = tmp_path / "go"
    seen: list[tuple[str, str]] = []
    first = asyncio.Event()

    def on_line(stream: str, line: str) -> None:
        seen.append((stream, line))
        if line == "first":
            first.set()

    command = f"echo first; echo warn >&2; while [ ! -e {shlex.quote(str(flag))} ]; do sleep 0.05; done; printf 'second\\nlast-without-newline'"
    async with node(ssh_config_factory()) as n:
        task = asyncio.create_task(n.run(command, timeout=30, on_line=on_line))
        await asyncio.wait_for(first.wait(), 10)
        assert not task.done(), "on_line must be called while the command still runs"
        assert ("stdout", "second") not in seen
        flag.touch()
        result = await task
    assert result.ok
    assert [l for s, l in seen if s == "stdout"] == ["first", "second", "last-without-newline"]
    assert ("stderr", "warn") in seen


@services
async def test_input_goes_to_stdin_then_eof(ssh_config_factory) -> None:
    defaults = "[client]\npassword=s3cret 'with' \"quotes\"\n"
    async with node(ssh_config_factory()) as n:
        result = await n.run("cat; echo END", input=defaults)
        no_input = await n.run("cat; echo END")  # stdin gets EOF: cat does not hang
    assert result.stdout == defaults + "END\n"
    assert no_input.stdout == "END\n"


@services
async def test_quoted_arguments_arrive_literally(ssh_config_factory) -> None:
    nasty = "a b 'single' \"double\" $(touch /tmp/pwned-glance-tui) `id` ; exit 3 | & \\ $HOME *"
    async with node(ssh_config_factory()) as n:
        result = await n.run(f"printf '%s\\n' {shlex.quote(nasty)}")
    assert result.ok and result.stdout == nasty + "\n"
    assert not Path("/tmp/pwned-glance-tui").exists()


@services
async def test_secrets_are_redacted_in_streamed_lines_and_tail(ssh_config_factory) -> None:
    secret = f"pw-{uuid.uuid4().hex}"
    register(secret)
    lines: list[str] = []
    async with node(ssh_config_factory()) as n:
        result = await n.run(f"echo password={secret}", on_line=lambda s, l: lines.append(l))
    assert lines == [f"password={REDACTED}"] and result.tail() == [f"password={REDACTED}"]
    assert secret in result.stdout  # the raw output stays available to the caller that parses it


@services
async def test_concurrent_runs_are_capped_by_max_channels(ssh_config_factory, tmp_path: Path) -> None:
    d = shlex.quote(str(tmp_path))
    running = lambda: sorted(p.name for p in tmp_path.glob("run.*"))  # noqa: E731

    def command(i: int) -> str:
        return f"touch {d}/run.{i}; ls {d} | grep -c '^run'; while [ ! -e {d}/go ]; do sleep 0.05; done; rm {d}/run.{i}"

    async def two_running() -> bool:
        return len(running()) == 2

    async with node(ssh_config_factory(ssh={"max_channels": 2})) as n:
        tasks = [asyncio.create_task(n.run(command(i), timeout=60)) for i in range(5)]
        await poll(two_running, what="two commands to start")
        await asyncio.sleep(0.5)  # proving a negative: nothing else may start meanwhile
        assert len(running()) == 2
        (tmp_path / "go").touch()
        results = await asyncio.gather(*tasks)
    assert all(r.ok for r in results)
    assert max(int(r.stdout) for r in results) == 2


@services
async def test_pool_runs_on_every_node_concurrently(ssh_config_factory, sshd_nodes) -> None:
    config = ssh_config_factory()
    async with SSHPool(config) as pool:
        results = await asyncio.gather(*(pool.get(n.name).run('echo "$GLANCE_LAB_NODE_DIR"') for n in config.nodes))
        assert pool.get("node-3") is pool.get("node-3")
        with pytest.raises(AdapterError, match="unknown node 'nope'"):
            pool.get("nope")
    assert [Path(r.stdout.strip()) for r in results] == [s.workdir / "node" for s in sshd_nodes]


# ---------------------------------------------------------------- timeouts and sudo


@services
async def test_timeout_ends_the_remote_process(ssh_config_factory) -> None:
    marker = f"300.{uuid.uuid4().int % 10**9}"
    pattern = shlex.quote(f"[s]leep {marker}")  # the bracket keeps pgrep's own shell from matching
    async with node(ssh_config_factory()) as n:
        task = asyncio.create_task(n.run(f"sleep {marker}; echo never", timeout=3))

        async def sleeping() -> bool:
            return (await n.run(f"pgrep -f {pattern}")).ok

        await poll(sleeping, what="the remote sleep to start")  # positive control
        result = await task
        after = await n.run(f"pgrep -af {pattern}")
    assert result.timed_out and not result.ok and result.exit_status == 124
    assert 3 <= result.duration < 3 + ssh_mod.KILL_GRACE
    assert "never" not in result.stdout
    assert after.exit_status == 1, f"remote process survived the timeout: {after.stdout}"


@services
async def test_cancelled_run_ends_the_remote_process(ssh_config_factory) -> None:
    marker = f"302.{uuid.uuid4().int % 10**9}"
    pattern = shlex.quote(f"[s]leep {marker}")
    async with node(ssh_config_factory()) as n:
        task = asyncio.create_task(n.run(f"sleep {marker}", timeout=600))

        async def sleeping() -> bool:
            return (await n.run(f"pgrep -f {pattern}")).ok

        async def gone() -> bool:
            return not await sleeping()

        await poll(sleeping, what="the remote sleep to start")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await poll(gone, what="the remote sleep to end after cancelling the run")


def test_remote_command_wrapping_quotes_everything() -> None:
    command = "echo 'it''s' \"$HOME\"; exit 3"
    plain = build_remote_command(command, 12.5, sudo=False)
    assert shlex.split(plain) == ["timeout", "--kill-after=5", "12.5", "sh", "-c", command]
    wrapped = build_remote_command(command, 900, sudo=True, tag="glance-tui-x y")
    argv = shlex.split(wrapped)
    assert argv[:4] == ["sudo", "-n", "sh", "-c"] and len(argv) == 5
    assert shlex.split(argv[4]) == ["timeout", "--kill-after=5", "900", "sh", "-c", command, "glance-tui-x y"]


@services
async def test_sudo_n_prefix_reaches_the_node(sshd_factory, ssh_operator_key, tmp_path: Path) -> None:
    """Through a recording ``sudo`` first on the session's PATH: the node receives ``sudo -n sh -c …``."""
    shim_dir = tmp_path / "bin"
    shim_dir.mkdir()
    log = tmp_path / "sudo-argv"
    shim = shim_dir / "sudo"
    shim.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {shlex.quote(str(log))}\n[ "$1" = -n ] || exit 99\nshift\nexec "$@"\n')
    shim.chmod(0o755)
    sshd = sshd_factory("127.0.0.25", set_env={"PATH": f"{shim_dir}:/usr/sbin:/usr/bin:/sbin:/bin"})
    kh = write_known_hosts(tmp_path / "known_hosts", [sshd])
    n = NodeSSH(_node_cfg(sshd, kh), _ssh_cfg(ssh_operator_key, sudo=True))
    command = 'echo "as $(id -un)"; exit 4'
    async with n:
        result = await n.run(command)
    assert (result.exit_status, result.stdout) == (4, "as root\n")
    flag, sh, c, wrapped = log.read_text().splitlines()
    assert (flag, sh, c) == ("-n", "sh", "-c")
    assert shlex.split(wrapped)[:-1] == ["timeout", "--kill-after=5", "900", "sh", "-c", command]


@services
@pytest.mark.skipif(shutil.which("sudo") is None, reason="sudo is not installed here (the wrapping is tested through a recording shim)")
async def test_real_sudo_n(ssh_config_factory) -> None:
    async with node(ssh_config_factory(ssh={"sudo": True})) as n:
        result = await n.run("id -u")
    assert result.ok and result.stdout == "0\n"


# ---------------------------------------------------------------- host keys and connection errors


def _node_cfg(sshd, known_hosts: Path, **extra):
    from glance_tui.config import NodeConfig

    return NodeConfig(name="solo", ssh_host=sshd.host, ssh_port=sshd.port, known_hosts=str(known_hosts), lb_server="solo", api_url=f"http://{sshd.host}:9292", **extra)


def _ssh_cfg(key: Path, **extra):
    from glance_tui.config import SSHConfig

    return SSHConfig(identity_file=str(key), connect_timeout=5, **extra)


@services
async def test_unknown_host_key_is_refused_with_its_fingerprint(ssh_config_factory, sshd_nodes, tmp_path: Path) -> None:
    others = write_known_hosts(tmp_path / "known_hosts", sshd_nodes[1:])  # trusts node-2 and node-3 only
    config = ssh_config_factory(nodes=[{"known_hosts": str(others)}])
    expected = fingerprint(public_key_path(sshd_nodes[0].host_key))
    n = node(config)
    status = await n.host_key_check()
    assert (status.ok, status.state, status.fingerprint) == (False, "unknown", expected)
    with pytest.raises(HostKeyError) as err:
        await n.run("echo must-not-run")
    message = str(err.value)
    host = sshd_nodes[0].host
    port = sshd_nodes[0].port
    assert f"{host}:{port}" in message and expected in message and "unknown" in message
    assert f"ssh-keyscan -p {port} {host} >> {others}" in message
    assert others.read_text() == "".join(s.known_hosts_line() + "\n" for s in sshd_nodes[1:])  # nothing learnt


@services
async def test_missing_known_hosts_file_is_refused(ssh_config_factory, tmp_path: Path) -> None:
    n = node(ssh_config_factory(ssh={"known_hosts": str(tmp_path / "absent")}))
    with pytest.raises(HostKeyError, match="does not exist"):
        await n.connect()
    assert not (tmp_path / "absent").exists()


@services
async def test_changed_host_key_is_refused_never_accepted(sshd_factory, ssh_operator_key, tmp_path: Path) -> None:
    sshd = sshd_factory("127.0.0.24")
    kh = write_known_hosts(tmp_path / "known_hosts", [sshd])
    old = fingerprint(public_key_path(sshd.host_key))
    n = NodeSSH(_node_cfg(sshd, kh), _ssh_cfg(ssh_operator_key))
    assert (await n.run("true")).ok
    assert (await n.host_key_check()).state == "verified"

    sshd.stop()
    sshd.regenerate_host_key()
    sshd.start()
    new = fingerprint(public_key_path(sshd.host_key))
    assert new != old

    status = await n.host_key_check()
    assert (status.ok, status.state, status.fingerprint) == (False, "changed", new)
    with pytest.raises(HostKeyError) as err:  # the old connection is gone; reconnecting must refuse
        await n.run("echo must-not-run")
    message = str(err.value)
    assert "CHANGED" in message and new in message and f"{sshd.host}:{sshd.port}" in message
    assert f"ssh-keygen -R '[{sshd.host}]:{sshd.port}' -f {kh}" in message
    with pytest.raises(HostKeyError):  # and again: nothing was cached or learnt
        await NodeSSH(_node_cfg(sshd, kh), _ssh_cfg(ssh_operator_key)).connect()
    await n.close()


@services
async def test_dropped_connection_is_reestablished_on_next_run(sshd_factory, ssh_operator_key, tmp_path: Path) -> None:
    sshd = sshd_factory("127.0.0.26")
    kh = write_known_hosts(tmp_path / "known_hosts", [sshd])
    async with NodeSSH(_node_cfg(sshd, kh), _ssh_cfg(ssh_operator_key)) as n:
        before = await n.run('echo "$SSH_CONNECTION"')
        sshd.stop()  # ends the sessions too: our connection drops
        with pytest.raises(AdapterError, match="refused"):
            await n.run("true")
        sshd.start()
        after = await n.run('echo "$SSH_CONNECTION"')
    assert after.ok and after.stdout != before.stdout


@services
async def test_connection_refused_is_an_adapter_error(ssh_config_factory) -> None:
    port = free_port("127.0.0.21")
    n = node(ssh_config_factory(nodes=[{"ssh_port": port}]))
    with pytest.raises(AdapterError) as err:
        await n.run("true")
    assert not isinstance(err.value, HostKeyError)
    assert f"127.0.0.21:{port} refused" in str(err.value) and "fix:" in str(err.value) and "node node-1" in str(err.value)
    assert (await n.host_key_check()).state == "unreachable"


@services
async def test_unauthorised_key_is_an_auth_error(ssh_config_factory, tmp_path: Path) -> None:
    stranger = generate_keypair(tmp_path / "stranger")
    n = node(ssh_config_factory(ssh={"identity_file": str(stranger)}))
    with pytest.raises(AdapterError, match="authentication failed for root") as err:
        await n.run("true")
    assert "authorized_keys" in str(err.value)
    with pytest.raises(AdapterError, match="does not exist"):
        await node(ssh_config_factory(ssh={"identity_file": str(tmp_path / "nokey")})).connect()


# ---------------------------------------------------------------- in-process server: edge cases


class _EdgeServer(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True


async def _edge_handler(process: asyncssh.SSHServerProcess) -> None:
    command = process.command or ""
    if "drop" in command:
        process.stdout.write("partial\n")
        await process.stdout.drain()
        await asyncio.sleep(0.2)
        process.channel.get_connection().abort()  # the network goes away mid-command
        return
    if "hang" in command:
        await asyncio.Event().wait()  # a node whose `timeout` never fires
    process.stdout.write("fine\n")
    process.exit(0)


@pytest.fixture
async def edge_server(tmp_path: Path, ssh_operator_key: Path):
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    server = await asyncssh.create_server(
        _EdgeServer, "127.0.0.1", 0, server_host_keys=[host_key],
        authorized_client_keys=str(public_key_path(ssh_operator_key)), process_factory=_edge_handler,
    )
    port = server.sockets[0].getsockname()[1]
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[127.0.0.1]:{port} {host_key.export_public_key().decode()}")
    from glance_tui.config import NodeConfig

    cfg = NodeConfig(name="edge", ssh_host="127.0.0.1", ssh_port=port, known_hosts=str(kh), lb_server="edge", api_url="http://127.0.0.1:9292")
    yield NodeSSH(cfg, _ssh_cfg(ssh_operator_key))
    server.close()
    await server.wait_closed()


async def test_connection_dropped_mid_command(edge_server: NodeSSH) -> None:
    lines: list[str] = []
    with pytest.raises(AdapterError, match="connection lost while running `drop now`") as err:
        await edge_server.run("drop now", on_line=lambda s, l: lines.append(l))
    assert "next command reconnects" in str(err.value)
    assert lines == ["partial"]
    again = await edge_server.run("ok")  # re-established
    assert again.ok and again.stdout == "fine\n"
    await edge_server.close()


async def test_client_gives_up_when_the_node_never_ends_the_command(edge_server: NodeSSH, monkeypatch) -> None:
    monkeypatch.setattr(ssh_mod, "KILL_GRACE", 0.2)
    monkeypatch.setattr(ssh_mod, "CLIENT_GRACE", 0.2)
    result = await edge_server.run("hang", timeout=0.5)
    assert result.timed_out and result.exit_status is None and 0.9 <= result.duration < 3
    assert (await edge_server.run("ok")).ok  # the connection is still usable
    await edge_server.close()


# ---------------------------------------------------------------- LocalShell


async def test_local_run_exit_status_streams_and_input(tmp_path: Path) -> None:
    shell = LocalShell()
    flag = tmp_path / "go"
    seen: list[tuple[str, str]] = []
    first = asyncio.Event()

    def on_line(stream: str, line: str) -> None:
        seen.append((stream, line))
        first.set()

    task = asyncio.create_task(shell.run(f"echo first; echo oops >&2; while [ ! -e {shlex.quote(str(flag))} ]; do sleep 0.05; done; echo second; exit 5", on_line=on_line))
    await asyncio.wait_for(first.wait(), 10)
    assert not task.done()
    flag.touch()
    result = await task
    assert (result.exit_status, result.ok, result.stdout, result.stderr) == (5, False, "first\nsecond\n", "oops\n")
    assert ("stdout", "first") in seen and ("stderr", "oops") in seen
    piped = await shell.run("tr a-z A-Z", input="[client]\npassword=x\n")
    assert piped.ok and piped.stdout == "[CLIENT]\nPASSWORD=X\n"


async def test_local_timeout_kills_the_process_group() -> None:
    marker = f"301.{uuid.uuid4().int % 10**9}"
    result = await LocalShell().run(f"sleep {marker} & sleep {marker}; echo never", timeout=0.5)
    assert result.timed_out and result.exit_status is None and not result.ok
    assert result.duration < 0.5 + 5
    left = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, text=True)
    assert left.returncode == 1, f"left behind: {left.stdout}"


# ---------------------------------------------------------------- host names and connect deadlines


def _named_node_cfg(sshd, host: str, known_hosts: Path):
    from glance_tui.config import NodeConfig

    return NodeConfig(name="named", ssh_host=host, ssh_port=sshd.port, known_hosts=str(known_hosts), lb_server="named", api_url=f"http://{host}:9292")


def _known_by_name(sshd, name: str, path: Path, *, hashed: bool) -> Path:
    """known_hosts holding the server's key under ``[name]:port`` only (hashed as `ssh-keygen -H` does, if asked)."""
    path.write_text(f"[{name}]:{sshd.port} {sshd.host_key_pub}\n")
    if hashed:
        subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(path)], check=True, capture_output=True)
        assert name not in path.read_text() and path.read_text().startswith("|1|")
    return path


@services
@pytest.mark.parametrize("hashed", [False, True], ids=["plain", "hashed"])
async def test_host_name_is_looked_up_in_known_hosts_like_openssh(sshd_factory, ssh_operator_key, tmp_path: Path, hashed: bool) -> None:
    """``ssh_host = "localhost"`` (a name the resolver maps to 127.0.0.1), known by name only: verified, connects."""
    sshd = sshd_factory("127.0.0.1")
    kh = _known_by_name(sshd, "localhost", tmp_path / "known_hosts", hashed=hashed)
    n = NodeSSH(_named_node_cfg(sshd, "localhost", kh), _ssh_cfg(ssh_operator_key))
    status = await n.host_key_check()
    assert (status.ok, status.state) == (True, "verified"), status.detail
    async with n:
        result = await n.run('echo "$SSH_CONNECTION"')
    assert result.ok and result.stdout.split()[2:] == ["127.0.0.1", str(sshd.port)]


@services
async def test_host_name_from_etc_hosts(sshd_factory, ssh_operator_key, tmp_path: Path) -> None:
    """A name added to /etc/hosts for this test only, as an operator's ``glance-1.example`` would be."""
    hosts = Path("/etc/hosts")
    name = f"glance-tui-{uuid.uuid4().hex[:8]}.example"
    line = f"127.0.0.27 {name}\n"
    try:
        with hosts.open("a") as fh:
            fh.write(line)
    except OSError as exc:
        pytest.skip(f"/etc/hosts is not writable here ({exc}); the name path is covered by `localhost`")
    try:
        sshd = sshd_factory("127.0.0.27")
        kh = _known_by_name(sshd, name, tmp_path / "known_hosts", hashed=True)
        n = NodeSSH(_named_node_cfg(sshd, name, kh), _ssh_cfg(ssh_operator_key))
        assert (await n.host_key_check()).state == "verified"
        async with n:
            assert (await n.run("true")).ok
        wrong = tmp_path / "other"
        wrong.write_text(f"[{name}]:{sshd.port + 1} {sshd.host_key_pub}\n[other.example]:{sshd.port} {sshd.host_key_pub}\n")
        stranger = NodeSSH(_named_node_cfg(sshd, name, wrong), _ssh_cfg(ssh_operator_key))
        status = await stranger.host_key_check()
        assert status.state == "unknown" and f"[{name}]:{sshd.port}" in status.detail
        with pytest.raises(HostKeyError, match="unknown"):
            await stranger.connect()
        await stranger.close()
    finally:
        kept = [l for l in hosts.read_text().splitlines(keepends=True) if l != line]
        hosts.write_text("".join(kept))


@pytest.fixture
async def silent_port():
    """A TCP service that accepts and never says a word (a hung sshd, a black-holing middlebox)."""
    peers: list[asyncio.StreamWriter] = []
    server = await asyncio.start_server(lambda r, w: peers.append(w), "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1], peers
    server.close()
    for w in peers:
        w.close()


async def test_connect_has_one_total_deadline_shared_by_concurrent_callers(silent_port, ssh_operator_key, tmp_path: Path) -> None:
    from glance_tui.config import NodeConfig, SSHConfig

    port, peers = silent_port
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[127.0.0.1]:{port} {asyncssh.generate_private_key('ssh-ed25519').export_public_key().decode()}")
    cfg = NodeConfig(name="mute", ssh_host="127.0.0.1", ssh_port=port, known_hosts=str(kh), lb_server="mute", api_url="http://127.0.0.1:9292")
    deadline = 2  # long beside the work around it, so that the bounds below leave a loaded machine room
    n = NodeSSH(cfg, SSHConfig(identity_file=str(ssh_operator_key), connect_timeout=deadline))
    started = time.monotonic()
    results = await asyncio.gather(*(n.run("true") for _ in range(4)), n.host_key_check(), return_exceptions=True)
    elapsed = time.monotonic() - started
    assert 0.95 * deadline <= elapsed < 1.9 * deadline, elapsed  # one deadline, not one per caller or per step
    assert all(isinstance(r, AdapterError) and "no SSH answer" in str(r) and f"within {deadline}s" in str(r) for r in results[:4])
    assert results[4].state == "unreachable" and f"no answer within {deadline}s" in results[4].detail
    again = time.monotonic()
    with pytest.raises(AdapterError, match="no SSH answer"):  # the same round: the failure is the answer at once
        await n.run("true")
    assert time.monotonic() - again < 0.9 * deadline  # not another deadline
    await n.close()
    assert len(peers) == 2  # one shared connect attempt + one host key check


async def test_close_during_a_connect_leaves_nothing_running(silent_port, ssh_operator_key, tmp_path: Path) -> None:
    from glance_tui.config import NodeConfig, SSHConfig

    port, _ = silent_port
    kh = tmp_path / "known_hosts"
    kh.write_text("")
    cfg = NodeConfig(name="mute", ssh_host="127.0.0.1", ssh_port=port, known_hosts=str(kh), lb_server="mute", api_url="http://127.0.0.1:9292")
    n = NodeSSH(cfg, SSHConfig(identity_file=str(ssh_operator_key), connect_timeout=30))
    task = asyncio.create_task(n.run("true"))
    await asyncio.sleep(0.2)
    task.cancel()
    await n.close()
    with pytest.raises(asyncio.CancelledError):
        await task
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    assert others == [], others


async def test_known_hosts_that_is_not_a_regular_file_is_refused_clearly(ssh_operator_key, tmp_path: Path) -> None:
    from glance_tui.config import NodeConfig, SSHConfig

    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    for path, needle in (("/dev/zero", "not a regular file"), (str(loop), "symbolic link loop")):
        cfg = NodeConfig(name="dev", ssh_host="127.0.0.1", known_hosts=path, lb_server="dev", api_url="http://127.0.0.1:9292")
        n = NodeSSH(cfg, SSHConfig(identity_file=str(ssh_operator_key)))
        with pytest.raises(AdapterError, match=needle):
            await n._known_keys()
        with pytest.raises(AdapterError, match=needle) as err:
            await n.connect()
        assert "network" not in err.value.message


# ---------------------------------------------------------------- local files: their own problems, outside the deadline


def _identity_cases(tmp_path: Path, operator_key: Path) -> dict[str, tuple[Path, str]]:
    encrypted = tmp_path / "encrypted"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "a passphrase", "-f", str(encrypted)], check=True, capture_output=True)
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    garbage = tmp_path / "garbage"
    garbage.write_text("not a key at all\n")
    return {
        "directory": (tmp_path, "is not a regular file (it is a directory)"),
        "public key": (public_key_path(operator_key), "is not a private key"),
        "garbage": (garbage, "is not a private key"),
        "encrypted": (encrypted, "is encrypted and glance-tui never asks for a passphrase"),
        "missing": (tmp_path / "nowhere", "does not exist"),
        "link loop": (loop, "symbolic link loop"),
        "device": (Path("/dev/zero"), "not a regular file"),
    }


@pytest.mark.parametrize("case", ["directory", "public key", "garbage", "encrypted", "missing", "link loop", "device"])
async def test_an_unusable_identity_file_says_exactly_that(ssh_operator_key, tmp_path: Path, case: str) -> None:
    """Never "check the address, the network and sshd": nothing is sent before the key is read."""
    from glance_tui.config import NodeConfig, SSHConfig

    path, needle = _identity_cases(tmp_path, ssh_operator_key)[case]
    kh = tmp_path / "known_hosts"
    kh.write_text("")
    cfg = NodeConfig(name="dev", ssh_host="127.0.0.1", ssh_port=free_port(), known_hosts=str(kh), lb_server="dev", api_url="http://127.0.0.1:9292")
    n = NodeSSH(cfg, SSHConfig(identity_file=str(path), connect_timeout=2))
    with pytest.raises(AdapterError) as err:
        await n.connect()
    text = err.value.message
    assert needle in text and "identity" in text and "network" not in text and "refused" not in text, text
    await n.close()


def test_an_unreadable_file_is_named_as_such() -> None:
    """EACCES (root reads anything, so the mapping is checked directly): "permission denied", not "not found"."""
    import errno

    from glance_tui.files import _problem

    message = str(_problem(PermissionError(errno.EACCES, "Permission denied"), Path("/k"), "identity file"))
    assert message == "identity file /k is not readable (permission denied)"


def _hashed_line(name: str, key: str, rng) -> str:
    import base64
    import hashlib
    import hmac as hmac_mod

    salt = rng.randbytes(20)
    digest = hmac_mod.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()} {key}"


def big_known_hosts(path: Path, name: str, key: str, entries: int = 30_000) -> Path:
    """``entries`` hashed lines for other hosts (about 4 MB at 30,000, as a long-lived bastion's), the right one in the middle."""
    import random

    rng = random.Random(18)
    lines = [_hashed_line(f"[10.{i // 65536}.{i // 256 % 256}.{i % 256}]:22", key, rng) for i in range(entries)]
    lines.insert(entries // 2, _hashed_line(name, key, rng))
    path.write_text("\n".join(lines) + "\n")
    return path


@services
async def test_a_big_hashed_known_hosts_still_connects(sshd_factory, ssh_operator_key, tmp_path: Path) -> None:
    """30,000 hashed entries: read once, off the loop, outside the deadline; the node is reached within connect_timeout."""
    sshd = sshd_factory("127.0.0.1")
    kh = big_known_hosts(tmp_path / "known_hosts", f"[127.0.0.1]:{sshd.port}", sshd.host_key_pub)
    assert kh.stat().st_size > 3_000_000
    n = NodeSSH(_node_cfg(sshd, kh), _ssh_cfg(ssh_operator_key))  # connect_timeout = 5: the parse alone took 14.6 s before
    assert (await n.host_key_check()).state == "verified"
    async with n:
        assert (await n.run("true")).ok


@pytest.mark.benchmark
def test_benchmark_known_hosts_of_30000_hashed_entries(tmp_path: Path) -> None:
    """Prints: indexing 30,000 hashed entries (in a thread, once per run), one host's lookup, and asyncssh's own parse of the whole file."""
    from glance_tui.adapters.known_hosts import KnownHostsIndex

    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    kh = big_known_hosts(tmp_path / "known_hosts", "[127.0.0.1]:2222", key)
    started = time.perf_counter()
    index = KnownHostsIndex.read(kh)
    indexed = time.perf_counter() - started
    started = time.perf_counter()
    known = index.known_hosts("127.0.0.1", 2222)
    looked_up = time.perf_counter() - started
    assert [k.get_fingerprint() for k in known.match("127.0.0.1", "127.0.0.1", 2222)[0]] == [asyncssh.import_public_key(key).get_fingerprint()]
    started = time.perf_counter()
    asyncssh.import_known_hosts(kh.read_text()).match("127.0.0.1", "127.0.0.1", 2222)
    whole = time.perf_counter() - started
    print(f"\nknown_hosts {kh.stat().st_size / 1e6:.1f} MB, 30,000 hashed entries: index {indexed * 1000:.0f} ms (once per run, in a thread), "
          f"one host's lookup {looked_up * 1000:.0f} ms (in a thread); asyncssh parsing the whole file {whole * 1000:.0f} ms (was: on the loop, per connect)")
