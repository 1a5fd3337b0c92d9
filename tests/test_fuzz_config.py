"""Config fuzz: generated configs, hostile values at every key, hostile files.

For every case: the exit code (2 for a config problem, via the real CLI entry point), one line
on stderr naming the key with a fix, no traceback, no secret, and a bound on time. A config
that loads must also render every command template and print the plan (nothing fails later).
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest

from glance_tui.cli import main
from glance_tui.commands import NodeCommands
from glance_tui.config import load_config
from glance_tui.errors import ConfigError

SECRET = "Fz-9q!secret-pw"  # the database password: must never be printed
LB_SECRET = "lb-pw-8chars"  # exactly long enough (a shorter one is a config error, see test_short_secret_is_refused)
TIME_BOUND = 5.0  # seconds per case, on a loaded 2-core machine (a config error is milliseconds)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value == math.inf else "-inf" if value == -math.inf else repr(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def to_toml(data: dict[str, Any]) -> str:
    """A small TOML writer: top-level tables and arrays of tables, values inline."""
    lines: list[str] = []
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"[{key}]")
            lines += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()]
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                lines.append(f"[[{key}]]")
                lines += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in item.items()]
        else:
            lines.insert(0, f"{json.dumps(key)} = {toml_value(value)}")
    return "\n".join(lines) + "\n"


def base() -> dict[str, Any]:
    return {
        "database": {"host": "10.0.0.5", "port": 3306, "user": "glance", "schema": "glance", "password_env": "FUZZ_DB_PW",
                     "connect_timeout": 5, "query_timeout": 10},
        "backup": {"where": "local", "directory": "/var/backups/glance", "timeout": 3600},
        "load_balancers": [{"name": "lb1", "stats_url": "http://10.0.0.2:8404/stats", "backends": ["glance_api", "glance_api_external"],
                            "exclude_servers": ["legacy"], "username": "admin", "password_env": "FUZZ_LB_PW", "timeout": 5}],
        "ssh": {"user": "root", "port": 22, "known_hosts": "~/.ssh/known_hosts", "sudo": False, "connect_timeout": 10,
                "command_timeout": 900, "max_channels": 4},
        "commands": {"services": ["glance-api"], "stop": "systemctl stop {services}", "upgrade": "apt-get install -y glance-api={target_version}",
                     "rollback": "apt-get install -y --allow-downgrades glance-api # {node} {{literal}}"},
        "nodes": [{"name": f"glance-{i}", "ssh_host": f"10.0.0.1{i}", "lb_server": f"glance-{i}", "api_url": f"http://10.0.0.1{i}:9292"}
                  for i in (1, 2, 3)],
        "policy": {"target_release": "2024.1", "target_version": "28.2.0", "drain_timeout": 600, "min_in_rotation": 1},
    }


def base_kolla() -> dict[str, Any]:
    """The base config with Kolla nodes: shared [commands.kolla], one node overriding the container."""
    data = base()
    data["commands"] = {"kind": "kolla", "kolla": {"engine": "podman", "container": "glance_api",
                                                   "image": "quay.io/openstack.kolla/glance-api", "target_tag": "2024.1-ubuntu-jammy"}}
    data["nodes"][1]["kolla"] = {"container": "glance_api_2", "engine": "docker"}
    return data


def base_osa() -> dict[str, Any]:
    """The base config with OpenStack-Ansible nodes (one on metal)."""
    data = base()
    data["commands"] = {"kind": "osa", "upgrade": "ssh deploy openstack-ansible os-glance-install.yml --limit {node}",
                        "osa": {"container": "infra1_glance_container-1a2b3c4d", "venv_tag": "28.2.0"}}
    data["nodes"][2]["osa"] = {"container": ""}
    return data


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.setenv("FUZZ_DB_PW", SECRET)
    monkeypatch.setenv("FUZZ_LB_PW", LB_SECRET)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def set_key(data: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(data)
    *parents, last = key.split(".")
    target: Any = data
    for part in parents:
        name, _, index = part.partition("[")
        target = target[name]
        if index:
            target = target[int(index.rstrip("]"))]
    target[last] = value
    return data


def run_cli(capsys, path: Path, command: str = "check") -> tuple[int, str, str, float]:
    started = time.monotonic()
    code = main([command, "-c", str(path)])
    elapsed = time.monotonic() - started
    captured = capsys.readouterr()
    return code, captured.out, captured.err, elapsed


def assert_config_error(capsys, path: Path, key: str, command: str = "check") -> str:
    code, out, err, elapsed = run_cli(capsys, path, command)
    assert code == 2, (code, out, err)
    assert out == "" and err.count("\n") == 1 and err.startswith("error: "), err
    assert "Traceback" not in err and "fix:" in err, err
    assert f": {key}" in err or f"{key}:" in err or key in err, (key, err)
    for secret in (SECRET, LB_SECRET):
        assert secret not in err
    assert elapsed < TIME_BOUND
    state = path.parent / "state"
    if state.exists():
        for f in state.rglob("*"):
            if f.is_file():
                assert SECRET not in f.read_text(errors="replace")
    return err


# ---------------------------------------------------------------- hand-picked hostile values

CASES: list[tuple[str, Any, str]] = [
    # wrong types are errors, never coerced
    ("database.port", "3306", "whole number"),
    ("database.port", 3306.0, "whole number"),
    ("database.port", True, "whole number"),
    ("database.connect_timeout", "5", "number"),
    ("ssh.sudo", "yes", "true or false"),
    ("ssh.sudo", 1, "true or false"),
    ("ssh.port", "22", "whole number"),
    ("nodes[0].ssh_port", "2222", "whole number"),
    ("load_balancers[0].backends", "glance_api", "list"),
    # bounds: finite, positive, sane
    ("database.connect_timeout", math.inf, "finite"),
    ("database.query_timeout", math.nan, "finite"),
    ("policy.drain_timeout", math.inf, "finite"),
    ("policy.drain_timeout", 2 * 86400, "at most 86400"),
    ("ssh.command_timeout", -1, "larger than 0"),
    ("ssh.connect_timeout", 0, "larger than 0"),
    ("policy.lb_poll_interval", 1e9, "at most"),
    ("database.port", 0, "at least 1"),
    ("database.port", 70000, "at most 65535"),
    ("nodes[1].ssh_port", 99999, "at most 65535"),
    ("ssh.max_channels", 0, "at least 1"),
    ("policy.min_in_rotation", 3, "use at most 2"),
    ("policy.min_in_rotation", 0, "at least 1"),
    # names that reach HAProxy's runtime socket or a command line
    ("database.schema", "../etc", "schema name"),
    ("database.schema", "glance; DROP DATABASE x", "schema name"),
    ("database.user", "glance'--", "database user"),
    ("database.host", "-oProxyCommand=x", "host"),
    ("database.host", "a" * 64 + ".example", "a label of 64 characters"),  # loaded, then UnicodeError in status: exit 70
    ("database.host", "db..example", "an empty label"),
    ("nodes[0].ssh_host", "b" * 100, "a label of 100 characters"),
    ("load_balancers[0].source_addresses", ["lb..example"], "an empty label"),
    ("database.known_clients", ["." + "c" * 10], "an empty label"),
    ("load_balancers[0].backends", ["glance api"], "HAProxy name"),
    ("load_balancers[0].backends", ["glance;api"], "HAProxy name"),
    ("load_balancers[0].backends", ["glance/api"], "HAProxy name"),
    ("load_balancers[0].backends", ["glance\napi"], "HAProxy name"),
    ("load_balancers[0].exclude_servers", ["x\ty"], "HAProxy name"),
    ("load_balancers[0].exclude_servers", ["a;show stat"], "HAProxy name"),
    ("nodes[0].lb_server", "glance-1\nset server glance_api/x state maint", "HAProxy name"),
    ("nodes[0].lb_server", "glance 1", "HAProxy name"),
    ("nodes[0].lb_server", "g\x01", "HAProxy name"),
    ("nodes[0].name", "../x", "name"),
    ("nodes[0].ssh_host", "a b", "host"),
    ("nodes[0].ssh_host", "-oProxyCommand=touch /tmp/x", "host"),
    ("ssh.user", "-l", "SSH user"),
    ("commands.services", ["glance api"], "service name"),
    ("policy.target_version", "28.2.0; rm -rf /", "version"),
    ("policy.health_paths", ["/a\nb"], "health_paths"),
    ("policy.health_paths", ["/" + "a" * 70000], "health_paths"),  # httpx.InvalidURL at the health check: exit 70
    ("nodes[2].api_url", "http://10.0.0.13:9292/" + "a" * 70000, "more than 2048"),
    ("database.password_env", "A B", "environment variable"),
    ("backup.directory", "/var/backups\n/x", "control character"),
    # URLs: credentials refused with the fix, invalid ones are config errors
    ("load_balancers[0].stats_url", f"http://admin:{SECRET}@10.0.0.2:8404/stats", "username"),
    ("load_balancers[0].stats_url", "http://admin@10.0.0.2:8404/stats", "username"),
    ("load_balancers[0].stats_url", "http://10.0.0.2:99999/stats", "1 to 65535"),
    ("load_balancers[0].stats_url", "http://[::1", "not a valid URL"),
    ("load_balancers[0].stats_url", "http://10.0.0.2:0/stats", "1 to 65535"),
    ("load_balancers[0].stats_url", "http://10.0.0.2:port/stats", "not a valid URL"),
    ("load_balancers[0].stats_url", "ftp://10.0.0.2/stats", "http://"),
    ("load_balancers[0].stats_url", "http:///stats", "no host"),
    ("load_balancers[0].stats_url", "http://10.0.0.2:8404/st ats", "spaces"),
    ("load_balancers[0].stats_url", "http://xn--zz.example:8404/stats", "not a valid international domain name"),  # was exit 70 at check
    ("load_balancers[0].stats_url", "http://XN--.example/stats", "not a valid international domain name"),
    ("load_balancers[0].stats_url", "http://💥.example/stats", "not a valid international domain name"),
    ("nodes[2].api_url", "http://xn--zz.example:9292", "not a valid international domain name"),
    ("load_balancers[0].stats_url", "http://10.0.0.2:8404/stats#top", "#fragment"),  # ";csv" would land in the fragment
    ("nodes[2].api_url", "http://10.0.0.13:9292/#", "#fragment"),
    ("nodes[2].api_url", f"http://u:{SECRET}@10.0.0.13:9292", "api_url"),
    ("nodes[2].api_url", "http://10.0.0.13:123456", "1 to 65535"),
    # templates: rendered, not formatted
    ("commands.stop", "systemctl stop {node.upper}", "format syntax"),
    ("commands.stop", "systemctl stop {node[x]}", "format syntax"),
    ("commands.stop", "systemctl stop {node:.3}", "format syntax"),
    ("commands.stop", "systemctl stop {node!r}", "format syntax"),
    ("commands.stop", "systemctl stop {}", "empty placeholder"),
    ("commands.stop", "systemctl stop {0}", "positional placeholder"),
    ("commands.stop", "systemctl stop {service}", "unknown placeholder {service}"),
    ("commands.start", "echo {", "unmatched"),
    ("commands.start", "echo }", "unmatched"),
    ("commands.rollback", "apt-get install {node.__class__}", "format syntax"),
    ("commands.is_running", "pgrep {target_release.__init__.__globals__}", "format syntax"),
    ("commands.glance_manage", "{glance_manage}", "unknown placeholder"),
    ("commands.manage_timeout", math.inf, "finite"),
    # the runtime API's address: the whole grammar, at load (never an OverflowError at a gate)
    ("load_balancers[0].runtime_socket", "tcp:127.0.0.54", "tcp:HOST:PORT"),
    ("load_balancers[0].runtime_socket", "tcp:", "tcp:HOST:PORT"),
    ("load_balancers[0].runtime_socket", "tcp:h:", "not a number"),
    ("load_balancers[0].runtime_socket", "tcp::9999", "tcp:HOST:PORT"),
    ("load_balancers[0].runtime_socket", "tcp:h:0", "port 0 is not from 1 to 65535"),
    ("load_balancers[0].runtime_socket", "tcp:h:99999", "port 99999 is not from 1 to 65535"),
    ("load_balancers[0].runtime_socket", "tcp:h:" + "9" * 5000, "not a number"),
    ("load_balancers[0].runtime_socket", "tcp:h:abc", "not a number"),
    ("load_balancers[0].runtime_socket", "tcp:h:٣٣", "not a number"),  # Unicode digits are not a port
    ("load_balancers[0].runtime_socket", "tcp:a b:80", "not a host name"),
    ("load_balancers[0].runtime_socket", "tcp:-oX:80", "not a host name"),
    ("load_balancers[0].runtime_socket", "tcp:fe80::zz:80", "neither a host name nor an IP address"),
    ("load_balancers[0].runtime_socket", "unix:", "needs the socket's path"),
    ("load_balancers[0].runtime_socket", "tcp:x..y:80", "an empty label"),  # "encoding with 'idna' codec failed" at a gate
    ("load_balancers[0].runtime_socket", "unix:run/haproxy.sock", "must be absolute"),
    ("load_balancers[0].runtime_socket", "haproxy.sock", "not a socket address"),
    # two nodes that are one machine or one API: one node's stop or health check would act on the other
    ("nodes[1].ssh_host", "10.0.0.11", "same SSH address"),
    ("nodes[2].api_url", "http://10.0.0.11:9292", "same api_url"),
    ("nodes[2].api_url", "HTTP://10.0.0.11:9292/", "same api_url"),
    ("nodes[1].lb_server", "glance-1", "same lb_server as glance-1"),
    ("nodes[1].ssh_host", "10.0.0.11.", "same SSH address"),
    ("nodes[1].api_url", "http://10.0.0.11:9292/?", "same api_url"),
    ("load_balancers[0].exclude_servers", ["legacy", "glance-2"], "names a configured node's lb_server: glance-2"),
    # control characters anywhere: what the operator approves must be what runs
    ("commands.stop", "rm -rf /var/lib/glance \u001b[2K\r systemctl stop glance-api", "U+001B (ESC) at character 24"),
    ("commands.start", "systemctl start glance-api\rrm -rf /", "U+000D (CR) at character 27"),
    ("commands.upgrade", "apt-get install -y glance-api\nrm -rf /", "LF, a newline"),
    ("commands.rollback", "echo \u202egnp.exe", "RIGHT-TO-LEFT OVERRIDE"),
    ("commands.glance_manage", "glance-manage\u2066", "LEFT-TO-RIGHT ISOLATE"),
    ("commands.read_config", "cat /etc/glance/x\u009b2K", "U+009B at character 18"),
    ("commands.is_running", "pgrep\tglance", "TAB"),
    ("commands.installed_at", "stat\u200b-c %Z x", "ZERO WIDTH SPACE"),
    ("load_balancers[0].username", "adm\u001b[8min", "ESC"),
    ("ssh.known_hosts", "~/.ssh/known_hosts\u001b[2K", "ESC"),
    ("database.password_env", "hunter2 hunter2", "must name an environment variable"),
]


@pytest.mark.parametrize(("key", "value", "needle"), CASES, ids=[f"{k}={v!r}"[:60] for k, v, _ in CASES])
def test_hostile_value_is_a_one_line_config_error(tmp_path, capsys, key, value, needle):
    path = tmp_path / "glance-tui.toml"
    path.write_text(to_toml(set_key(base(), key, value)))
    err = assert_config_error(capsys, path, key)
    assert needle in err, err


KOLLA_CASES = [
    ("commands.kind", "docker", "'packages', 'kolla' or 'osa'"),
    ("nodes[0].kind", "lxc", "'packages', 'kolla' or 'osa'"),
    ("commands.kolla.engine", "podman; rm -rf /", "'docker' or 'podman'"),
    ("commands.kolla.container", "glance_api; reboot", "container name"),
    ("commands.kolla.container", "-v/:/host", "container name"),
    ("commands.kolla.image", "quay.io/openstack.kolla/glance-api:2024.1", "has a tag"),
    ("commands.kolla.image", "quay.io/x@sha256:00", "has a tag"),
    ("commands.kolla.image", "$(reboot)", "image repository"),
    ("commands.kolla.target_tag", "2024.1 --privileged", "image tag"),
    ("commands.kolla.target_tag", "-rm", "image tag"),
    ("commands.kolla.manage_config", "relative/glance-api.conf", "absolute path"),
    ("commands.kolla.manage_config", "/etc/glance/a\u001b[2K", "ESC"),
    ("commands.kolla.bogus", "x", "unknown key"),
    ("nodes[1].kolla.container", "a b", "container name"),
    ("nodes[0].osa", {"container": "x"}, "is of kind 'kolla'"),
    ("commands.installed_at", "stat -c %Z /x", "container image tells the running code"),
    ("commands.osa", {"container": ""}, "no node is of kind 'osa'"),
]


@pytest.mark.parametrize(("key", "value", "needle"), KOLLA_CASES, ids=[f"{k}={v!r}"[:60] for k, v, _ in KOLLA_CASES])
def test_hostile_kind_value_is_a_one_line_config_error(tmp_path, capsys, key, value, needle):
    path = tmp_path / "glance-tui.toml"
    path.write_text(to_toml(set_key(base_kolla(), key, value)))
    err = assert_config_error(capsys, path, key.rsplit(".", 1)[0] if key.endswith(".bogus") else key)
    assert needle in err, err


@pytest.mark.parametrize("missing", ["engine", "container", "image", "target_tag"])
def test_a_kolla_key_missing_for_a_node_is_named(tmp_path, capsys, missing):
    data = base_kolla()
    del data["commands"]["kolla"][missing]
    path = tmp_path / "glance-tui.toml"
    path.write_text(to_toml(data))
    err = assert_config_error(capsys, path, f"commands.kolla.{missing}")
    assert f"{missing} is required for kind 'kolla' (node glance-1)" in err, err


@pytest.mark.parametrize("command", ["check", "status", "plan", "run"])
def test_every_command_refuses_at_load(tmp_path, capsys, command):
    """``schema = "../etc"`` used to be found halfway through printing the plan (exit 1)."""
    path = tmp_path / "glance-tui.toml"
    path.write_text(to_toml(set_key(base(), "database.schema", "../etc")))
    assert_config_error(capsys, path, "database.schema", command)


def test_the_base_config_loads_and_renders(tmp_path, capsys):
    path = tmp_path / "glance-tui.toml"
    path.write_text(to_toml(base()))
    config = load_config(path)
    rollback = NodeCommands(config, "glance-1").rollback()
    assert rollback is not None and rollback.command.endswith("# glance-1 {literal}")
    assert main(["plan", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert "glance-api=28.2.0" in out and SECRET not in out


# ---------------------------------------------------------------- hostile files


def test_config_that_is_a_device_is_refused_at_once(capsys):
    started = time.monotonic()
    code = main(["check", "-c", "/dev/zero"])
    err = capsys.readouterr().err
    assert code == 2 and "not a regular file" in err and err.count("\n") == 1
    assert time.monotonic() - started < TIME_BOUND


def test_config_fifo_and_directory_and_huge_file(tmp_path, capsys):
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)  # opening it for reading must not block
    assert_config_error(capsys, fifo, "not a regular file")
    assert_config_error(capsys, tmp_path, "not a regular file")
    huge = tmp_path / "huge.toml"
    huge.write_text("# " + "x" * (2 * 1024 * 1024) + "\n")
    assert_config_error(capsys, huge, "larger than 1 MiB")


def test_bom_is_named(tmp_path, capsys):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + to_toml(base()).encode())
    err = assert_config_error(capsys, path, "byte-order mark")
    assert "save it without BOM" in err


def test_not_utf8_and_garbage_and_deep_nesting(tmp_path, capsys):
    path = tmp_path / "latin1.toml"
    path.write_bytes(to_toml(base()).replace("glance-1", "glänce-1").encode("latin-1"))
    assert_config_error(capsys, path, "not UTF-8")
    path.write_bytes(bytes(random.Random(7).randrange(256) for _ in range(4096)))
    assert_config_error(capsys, path, str(path))
    path.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    assert_config_error(capsys, path, "invalid TOML")


@pytest.mark.parametrize("source", ["/dev/urandom", "/dev/zero", "fifo", "huge", "bom", "dir"])
def test_password_file_is_bounded(tmp_path, capsys, source):
    special = {"fifo": tmp_path / "pw-fifo", "huge": tmp_path / "pw-huge", "bom": tmp_path / "pw-bom", "dir": tmp_path}
    file = special.get(source, Path(source))
    if source == "fifo":
        os.mkfifo(file)
    elif source == "huge":
        file.write_text("x" * (100 * 1024))
    elif source == "bom":
        file.write_bytes(b"\xef\xbb\xbf" + SECRET.encode())
    data = base()
    del data["database"]["password_env"]
    data["database"]["password_file"] = str(file)
    path = tmp_path / "glance-tui.toml"
    path.write_text(to_toml(data))
    expected = {"huge": "larger than 64 KiB", "bom": "byte-order mark"}.get(source, "not a regular file")
    err = assert_config_error(capsys, path, "database")
    assert expected in err


# ---------------------------------------------------------------- generated configs

HOSTILE: list[Any] = [
    "", " ", "x" * 5000, "\n", "a\x00b", "\x1b[31mred", "{node.upper}", "{}", "../../etc/passwd", "-rf", "a;b", "ünïcødé", "💥",
    f"http://u:{SECRET}@h/", 0, -1, 1, 2**63, -(2**63), 1.5, -0.0, 1e308, math.inf, -math.inf, math.nan, True, False,
    [], [""], ["a", "a"], [1, 2], {}, {"x": 1}, [{"name": "x"}],
]


def _keys(data: Any, prefix: str = "") -> list[str]:
    keys: list[str] = []
    if isinstance(data, dict):
        for k, v in data.items():
            keys.append(f"{prefix}{k}")
            keys += _keys(v, f"{prefix}{k}.")
    elif isinstance(data, list) and data and all(isinstance(v, dict) for v in data):
        for i, v in enumerate(data):
            keys += _keys(v, f"{prefix[:-1]}[{i}].")
    return keys


@pytest.mark.parametrize("start", [base, base_kolla, base_osa], ids=["packages", "kolla", "osa"])
def test_generated_configs_never_crash_leak_or_fail_later(tmp_path, capsys, start):
    """Seeded random mutations (one to three keys each): a ConfigError line, or a config that fully works."""
    rng = random.Random(20261125)
    keys = _keys(start())
    loaded = refused = 0
    for case in range(300):
        data = start()
        for _ in range(rng.randint(1, 3)):
            key = rng.choice(keys)
            if rng.random() < 0.1:  # an unknown key next to a real one
                key = key.rsplit(".", 1)[0] + ".bogus" if "." in key else "bogus"
            try:
                data = set_key(data, key, rng.choice(HOSTILE))
            except (TypeError, KeyError, IndexError):
                pass  # an earlier mutation replaced the table this key lived in
        path = tmp_path / f"case{case}.toml"
        path.write_text(to_toml(data))
        started = time.monotonic()
        try:
            config = load_config(path)
        except ConfigError as exc:
            refused += 1
            message = exc.message
            assert "\n" not in message and "Traceback" not in message and "fix:" in message, message
            assert SECRET not in message and LB_SECRET not in message, message
        else:
            loaded += 1
            for node in config.nodes:  # every template of a loaded config renders
                cmds = NodeCommands(config, node.name)
                for name in ("stop", "start", "processes", "listeners", "upgrade", "installed_version", "installed_at", "read_config", "db_check", "db_contract"):
                    getattr(cmds, name)()
                cmds.rollback()
                cmds.is_running()
            assert main(["plan", "-c", str(path)]) == 0, capsys.readouterr().err
            out = capsys.readouterr().out
            assert SECRET not in out
        assert time.monotonic() - started < TIME_BOUND
    assert refused > 200 and loaded > 0, (refused, loaded)  # both paths were exercised


# ---------------------------------------------------------------- secrets from the environment with odd bytes


@pytest.mark.parametrize("variable", ["FUZZ_DB_PW", "FUZZ_LB_PW"])
@pytest.mark.parametrize("value", [b"p\xff\xfeassword1", b"\xe9t\xe9-password", b"password1\xc3"], ids=["ff-fe", "latin-1", "cut-utf8"])
def test_a_secret_that_is_not_utf8_is_a_config_error(tmp_path, capsys, monkeypatch, variable, value):
    """A non-UTF-8 byte in the variable (a latin-1 terminal) reached the database driver as a surrogate: exit 70."""
    monkeypatch.setitem(os.environb, variable.encode(), value)
    path = tmp_path / "glance-tui.toml"
    path.write_text(to_toml(base()))
    for command in ("check", "status", "run"):
        err = assert_config_error(capsys, path, "password_env", command)
        assert "is not UTF-8 text" in err and value.decode("utf-8", "replace") not in err, err


@pytest.mark.parametrize("value", ["pass\nword123", "password1\x1b[2J", "pässwörd-ünï", " spaced password "])
def test_an_odd_but_valid_secret_loads_and_is_never_printed(tmp_path, capsys, monkeypatch, value):
    monkeypatch.setenv("FUZZ_DB_PW", value)
    path = tmp_path / "glance-tui.toml"
    path.write_text(to_toml(base()))
    load_config(path)
    assert main(["plan", "-c", str(path)]) == 0
    out, err = capsys.readouterr()
    assert value not in out + err and value.strip() not in out + err


# ---------------------------------------------------------------- flags that name something the config must have

FLAG_CASES = [
    (["run", "--yes", "--new-node", "nope"], "--new-node 'nope' is not a configured node"),
    (["run", "--yes", "--dry-run", "--new-node", ""], "--new-node '' is not a configured node"),
    (["plan", "--new-node", ""], "--new-node '' is not a configured node"),
    (["plan", "--format", "md", "-o", ""], "an empty path"),
    (["run", "--new-node", "glance-1"], "--new-node applies only to an unattended run"),
    (["run", "--quiet"], "--quiet applies only to an unattended run"),
    (["--dry-run", "check"], "--dry-run applies to the assistant and to run, not to check"),  # was silently ignored
    (["--dry-run", "status"], "--dry-run applies to the assistant and to run, not to status"),
]


@pytest.mark.parametrize(("argv", "needle"), FLAG_CASES, ids=[" ".join(a) for a, _ in FLAG_CASES])
def test_a_bad_flag_is_one_line_before_anything_runs(tmp_path, capsys, argv, needle):
    """``run --yes --new-node nope`` used to run the preflight against the cluster first (exit 1); an empty
    ``--new-node`` or ``-o`` meant "the default" (the first node, standard output)."""
    path = tmp_path / "glance-tui.toml"
    path.write_text(to_toml(base()))
    code = main([*argv, "-c", str(path)])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1 and needle in err and "fix:" in err, (code, out, err)
    assert not (tmp_path / "state").exists()  # nothing journaled


@pytest.mark.parametrize(("run", "needle"), [("", "an empty run id"), (" ", "an empty run id"), ("/dev/zero", "not a regular file"),
                                            ("{tmp}", "is a directory"), ("/nonexistent/x.jsonl", "no journal file at")])
def test_report_of_an_odd_run_is_one_line(tmp_path, capsys, run, needle):
    """``report ''`` said the id was ambiguous (an empty prefix matches every run); a directory was "no journal file"."""
    code = main(["report", run.replace("{tmp}", str(tmp_path))])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1 and needle in err and "fix:" in err, (code, err)


def test_an_empty_config_path_is_not_the_default_file(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "glance-tui.toml").write_text(to_toml(base()))  # the default file exists: -c '' must still not mean it
    for command in ("check", "status", "plan", "run"):
        code = main([command, "-c", ""])
        out, err = capsys.readouterr()
        assert code == 2 and out == "" and "an empty config path" in err and err.count("\n") == 1, (command, err)


# ---------------------------------------------------------------- the newest sections, every key × every hostile value

NEWEST_KEYS = {
    "kolla": ["commands.kind", "commands.kolla", "commands.kolla.engine", "commands.kolla.container", "commands.kolla.image",
              "commands.kolla.target_tag", "commands.kolla.manage_config", "nodes[1].kolla", "nodes[1].kolla.container",
              "nodes[1].kolla.engine", "nodes[0].kind", "nodes[0].kolla", "nodes[2].kolla.image", "nodes[2].kolla.target_tag",
              "nodes[2].kolla.manage_config"],
    "osa": ["commands.kind", "commands.osa", "commands.osa.container", "commands.osa.venv_root", "commands.osa.venv_tag",
            "commands.osa.service", "nodes[2].osa", "nodes[2].osa.container", "nodes[1].osa.venv_tag", "nodes[0].osa.service",
            "nodes[1].kind", "commands.upgrade"],
    "packages": ["load_balancers[0].source_addresses", "commands.connections", "commands.kind", "nodes[0].kind", "nodes[0].db_client_host",
                 "load_balancers[0].hard_stop_after", "load_balancers[0].runtime_socket", "load_balancers[0].admin"],
}
KIND_VALUES: list[Any] = ["kolla", "osa", "packages", "docker", "podman", "glance_api", "/abs/path", "rel/path", "a b", "-x", "x;y", "$(id)",
                          "{node}", "{port}", "{{port}}", "ss -Htn {port} {node}", ["127.0.0.1"], ["::1"], ["fe80::1%eth0"], ["-x"],
                          ["10.0.0.0/8"], ["*"], ["host.example"], ["a" * 300], {"container": "x"}, {"engine": "docker"}, {"bogus": 1}]


@pytest.mark.parametrize("kind", list(NEWEST_KEYS))
def test_every_hostile_value_at_the_newest_keys(tmp_path, capsys, kind):
    """[commands] kind, [commands.kolla]/[commands.osa], [nodes.kolla]/[nodes.osa], source_addresses, connections:
    each value is a one-line ConfigError naming no secret, or a config whose every command renders and whose plan prints."""
    start = {"kolla": base_kolla, "osa": base_osa, "packages": base}[kind]
    loaded = refused = 0
    path = tmp_path / "c.toml"
    for key in NEWEST_KEYS[kind]:
        for value in HOSTILE + KIND_VALUES:
            try:
                data = set_key(start(), key, value)
            except (TypeError, KeyError, IndexError):
                continue  # the parent is not a table in this start
            path.write_text(to_toml(data))
            try:
                config = load_config(path)
            except ConfigError as exc:
                refused += 1
                assert "\n" not in exc.message and "fix:" in exc.message and len(exc.message) < 1200, (key, value, exc.message)
                assert SECRET not in exc.message and LB_SECRET not in exc.message
                continue
            loaded += 1
            for node in config.nodes:
                cmds = NodeCommands(config, node.name)
                for name in ("stop", "start", "processes", "listeners", "connections", "upgrade", "installed_version", "installed_at",
                             "read_config", "db_check", "db_contract"):
                    getattr(cmds, name)()
                cmds.rollback()
                cmds.is_running()
            assert main(["plan", "-c", str(path)]) == 0, (key, value, capsys.readouterr().err)
            assert SECRET not in capsys.readouterr().out
    assert refused > 50 and loaded > 5, (refused, loaded)


def test_a_document_never_replaces_what_the_command_reads(tmp_path, capsys):
    """``plan --format md -o`` the config itself, ``report -o`` the run's journal or a file among the journals:
    each was replaced by the document (the config, or the run's only record, lost)."""
    path = tmp_path / "glance-tui.toml"
    path.write_text(to_toml(base()))
    config_text = path.read_text()
    assert main(["plan", "-c", str(path), "--format", "md", "-o", str(path)]) == 2
    assert "is the config (-c)" in capsys.readouterr().err and path.read_text() == config_text
    runs = tmp_path / "state" / "glance-tui" / "runs" / "k"
    runs.mkdir(parents=True)
    journal = runs / "20261207T000000Z-abcdef.jsonl"
    journal.write_text(json.dumps({"ts": 1.0, "run": "20261207T000000Z-abcdef", "event": "run.start", "config": str(path),
                                   "target_release": "2024.1", "pid": 1, "user": "op", "host": "h"}) + "\n")
    before = journal.read_bytes()
    for target, needle in ((journal, "is the run's journal"), (runs / "report.md", "is inside the journal directory")):
        assert main(["report", "--latest", "-o", str(target)]) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, err
    assert journal.read_bytes() == before and not (runs / "report.md").exists()
    assert main(["report", "--latest", "-o", str(tmp_path / "report.md")]) == 0 and (tmp_path / "report.md").is_file()
