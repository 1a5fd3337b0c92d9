"""Bad configs each give one clear line (file, key, what, fix) and exit code 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from glance_tui.cli import main
from glance_tui.config import load_config
from glance_tui.errors import ConfigError
from glance_tui.secrets import redact

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = (ROOT / "config.example.toml").read_text()


@pytest.fixture(autouse=True)
def _password(monkeypatch):
    monkeypatch.setenv("GLANCE_DB_PASSWORD", "s3cret-example-pw")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "glance-tui.toml"
    path.write_text(text)
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.message


def test_example_config_is_valid():
    config = load_config(ROOT / "config.example.toml")
    assert [n.name for n in config.nodes] == ["glance-1", "glance-2", "glance-3"]
    assert config.database.password.reveal() == "s3cret-example-pw"
    assert "s3cret" not in repr(config.database.password)
    assert redact("pw is s3cret-example-pw") == "pw is ********"


def test_missing_key(tmp_path):
    msg = error_of(write(tmp_path, EXAMPLE.replace('stats_url = "http://10.0.0.2:8404/stats"', "")))
    assert msg.startswith(f"{tmp_path}/glance-tui.toml: load_balancers[0].stats_url: required key is missing")
    assert "fix:" in msg


def test_wrong_type(tmp_path):
    msg = error_of(write(tmp_path, EXAMPLE.replace("drain_timeout = 600", 'drain_timeout = "ten minutes"')))
    assert "policy.drain_timeout" in msg and "'ten minutes'" in msg and "write a number" in msg


def test_unknown_key(tmp_path):
    msg = error_of(write(tmp_path, EXAMPLE.replace("[ssh]\n", "[ssh]\nknown_host = '~/.ssh/kh'\n")))
    assert "ssh.known_host: unknown key" in msg and "spelling" in msg


def test_unknown_key_in_a_node(tmp_path):
    msg = error_of(write(tmp_path, EXAMPLE.replace('lb_server = "glance-2"', 'lb_server = "glance-2"\nport = 22')))
    assert "nodes[1].port: unknown key" in msg


def test_unreadable_password_file(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("x")
    secret.chmod(0)
    text = EXAMPLE.replace('password_env = "GLANCE_DB_PASSWORD"', f'password_file = "{secret}"')
    if os.geteuid() == 0:  # root reads anything: use a missing file instead
        secret = tmp_path / "missing-pw"
        text = EXAMPLE.replace('password_env = "GLANCE_DB_PASSWORD"', f'password_file = "{secret}"')
    msg = error_of(write(tmp_path, text))
    assert "database" in msg and str(secret) in msg and "fix:" in msg


def test_password_never_inline(tmp_path):
    msg = error_of(write(tmp_path, EXAMPLE.replace('password_env = "GLANCE_DB_PASSWORD"', 'password = "hunter2"')))
    assert "database.password: unknown key" in msg


def test_missing_env_var(tmp_path, monkeypatch):
    monkeypatch.delenv("GLANCE_DB_PASSWORD")
    msg = error_of(write(tmp_path, EXAMPLE))
    assert "GLANCE_DB_PASSWORD is not set" in msg


def test_bad_toml_and_bad_values(tmp_path):
    assert "invalid TOML" in error_of(write(tmp_path, EXAMPLE + "\n[[nodes]\n"))
    assert "unknown release '2099.1'" in error_of(write(tmp_path, EXAMPLE.replace('target_release = "2024.1"', 'target_release = "2099.1"')))
    dup = EXAMPLE.replace('name = "glance-2"', 'name = "glance-1"')
    assert "repeated: glance-1" in error_of(write(tmp_path, dup))
    bad_tpl = EXAMPLE.replace('stop = "systemctl stop {services}"', 'stop = "systemctl stop {service}"')
    assert "unknown placeholder {service}" in error_of(write(tmp_path, bad_tpl))
    runtime = EXAMPLE.replace('admin = "http" ', 'admin = "runtime" ')
    assert "needs runtime_socket" in error_of(write(tmp_path, runtime))


def test_cli_exit_code_2_and_one_line(tmp_path, capsys):
    path = write(tmp_path, EXAMPLE.replace("port = 3306 ", 'port = "x" '))
    assert main(["check", "-c", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: ") and "database.port" in err
    assert main(["status", "-c", str(tmp_path / "nope.toml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_cli_subprocess_has_no_traceback(tmp_path):
    path = write(tmp_path, "nonsense = 1\n")
    proc = subprocess.run([sys.executable, "-m", "glance_tui", "check", "-c", str(path)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("error: ")


def test_usage_error_exit_2(capsys):
    assert main(["check", "--bogus"]) == 2
    assert "error:" in capsys.readouterr().err
