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
    assert "database: the environment variable named by database.password_env is not set" in msg and "fix: export" in msg


@pytest.mark.parametrize("value", ["hunter2hunter2", "hunter2 hunter2", "7-correct-horse"])
def test_a_password_typed_into_password_env_is_never_echoed(tmp_path, value):
    """Valid as a name or not, the value of password_env is never printed: it may be the password itself."""
    msg = error_of(write(tmp_path, EXAMPLE.replace('password_env = "GLANCE_DB_PASSWORD"', f'password_env = "{value}"')))
    assert value not in msg and "database" in msg and "fix:" in msg
    assert "must name an environment variable" in msg or "named by database.password_env is not set" in msg


@pytest.mark.parametrize(("value", "needle"), [("", "set but empty"), ("Q7x!", "shorter than 8 characters"), ("1234567", "shorter than 8")])
def test_empty_or_short_secret_is_refused_without_the_value(tmp_path, monkeypatch, value, needle):
    """A secret under 8 characters could not be redacted without revealing it (``glance-3`` → ``glance-********``)."""
    monkeypatch.setenv("GLANCE_DB_PASSWORD", value)
    msg = error_of(write(tmp_path, EXAMPLE))
    assert needle in msg and "database.password_env" in msg and "GLANCE_DB_PASSWORD" not in msg
    assert (value not in msg) if value else "fix:" in msg
    secret = tmp_path / "pw"
    secret.write_text(value + "\n")
    msg = error_of(write(tmp_path, EXAMPLE.replace('password_env = "GLANCE_DB_PASSWORD"', f'password_file = "{secret}"')))
    assert ("is empty" if not value else needle) in msg and str(secret) in msg and "fix:" in msg


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


# ---------------------------------------------------------------- secrets, templates, files


def test_redact_scrubs_url_userinfo_and_secrets_wherever_they_occur():
    from glance_tui.secrets import REDACTED, register, redact_value

    assert redact("GET http://admin:hunter2@lb:8404/stats;csv failed") == f"GET http://{REDACTED}@lb:8404/stats;csv failed"
    assert redact("mysql+pymysql://glance:p@ss@db:3306/glance") == f"mysql+pymysql://{REDACTED}@db:3306/glance"
    assert redact("https://token@host/x and mail a@b") == f"https://{REDACTED}@host/x and mail a@b"
    register("Zq9-long-pw")  # every secret in use has at least 8 characters: redacted as a substring too
    assert redact("password=Zq9-long-pw user@Zq9-long-pw xZq9-long-pwx") == f"password={REDACTED} user@{REDACTED} x{REDACTED}x"
    assert redact_value({"a": ["Zq9-long-pw", 1, ("b Zq9-long-pw",)]}) == {"a": [REDACTED, 1, [f"b {REDACTED}"]]}


def test_a_secret_inside_another_config_value_is_refused(tmp_path, monkeypatch):
    """Redacting it there would show readers which value the password is (user = password, a path holding it)."""
    monkeypatch.setenv("GLANCE_DB_PASSWORD", "glance-backups")
    msg = error_of(write(tmp_path, EXAMPLE.replace('directory = "/var/backups/glance"', 'directory = "/srv/glance-backups"')))
    assert "backup.directory: contains the database password" in msg and "glance-backups" not in msg


def test_error_messages_are_redacted_and_one_line():
    from glance_tui.errors import AdapterError

    err = AdapterError("GET http://u:leak-me@h/ said\nsomething", where="lb", fix="x")
    assert "leak-me" not in err.message and "\n" not in err.message and "\\n" in err.message


def test_crash_log_is_redacted(tmp_path, monkeypatch, capsys):
    """An unexpected exception (a bug) prints one line; the traceback goes to crash.log without any secret."""
    import glance_tui.cli as cli

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))

    def boom(args):
        raise RuntimeError("connect to mysql://glance:s3cret-example-pw@db/glance with s3cret-example-pw")

    monkeypatch.setattr(cli, "_dispatch", boom)
    assert main(["check", "-c", "x"]) == 70
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error" in err and "Traceback" not in err
    crash = (tmp_path / "glance-tui" / "crash.log").read_text()
    assert "RuntimeError" in crash and "s3cret-example-pw" not in crash and "glance:" not in crash


def test_templates_render_only_plain_placeholders():
    from glance_tui.templates import TemplateError, check_template, render

    values = {"node": "g'1", "target_release": "2024.1", "target_version": "", "services": ["glance-api", "glance scrubber"]}
    assert render("systemctl stop {services} # {{x}} {node}", values) == "systemctl stop glance-api 'glance scrubber' # {x} 'g'\"'\"'1'"
    assert render("v={target_version}", values) == "v=''"
    for bad in ("{node.upper}", "{node[0]}", "{node:>10}", "{node!s}", "{}", "{1}", "{nodes}", "a { b", "a } b", "{{node}"):
        with pytest.raises(TemplateError):
            check_template(bad)
    check_template("awk '{{print $1}}' {node}")


def test_rollback_template_is_checked_at_load(tmp_path):
    msg = error_of(write(tmp_path, EXAMPLE.replace('rollback = ""', 'rollback = "apt-get install glance={node.__class__}"')))
    assert "commands.rollback: placeholder {node.__class__} uses format syntax" in msg and "write plain {node}" in msg


def test_strict_types_and_bounds(tmp_path):
    assert "database.port: input should be a valid integer (got '3306')" in error_of(write(tmp_path, EXAMPLE.replace("port = 3306 ", 'port = "3306" ')))
    assert "ssh.connect_timeout" in error_of(write(tmp_path, EXAMPLE.replace("connect_timeout = 10 ", 'connect_timeout = "10" ')))
    assert "ssh.sudo" in error_of(write(tmp_path, EXAMPLE.replace("sudo = false ", 'sudo = "yes" ')))
    msg = error_of(write(tmp_path, EXAMPLE.replace("drain_timeout = 600 ", "drain_timeout = inf ")))
    assert "policy.drain_timeout" in msg and "finite" in msg
    msg = error_of(write(tmp_path, EXAMPLE.replace("min_in_rotation = 1 ", "min_in_rotation = 3 ")))
    assert "policy.min_in_rotation: 3 is not below the number of nodes (3)" in msg and "use at most 2" in msg


def test_names_that_reach_a_command_line_or_haproxy(tmp_path):
    msg = error_of(write(tmp_path, EXAMPLE.replace('schema = "glance" ', 'schema = "../etc" ')))
    assert "database.schema: '../etc' is not a valid schema name" in msg
    msg = error_of(write(tmp_path, EXAMPLE.replace('lb_server = "glance-2"', 'lb_server = "glance-2;disable server x"')))
    assert "nodes[1].lb_server" in msg and "HAProxy name" in msg


def test_stats_url_credentials_and_invalid_urls(tmp_path):
    url = 'stats_url = "http://10.0.0.2:8404/stats"'
    msg = error_of(write(tmp_path, EXAMPLE.replace(url, 'stats_url = "http://admin:s3cret-example-pw@10.0.0.2:8404/stats"')))
    assert "load_balancers[0].stats_url: credentials in the URL are refused" in msg and "password_env or password_file" in msg
    assert "s3cret-example-pw" not in msg
    assert "1 to 65535" in error_of(write(tmp_path, EXAMPLE.replace(url, 'stats_url = "http://10.0.0.2:99999/stats"')))
    assert "not a valid URL" in error_of(write(tmp_path, EXAMPLE.replace(url, 'stats_url = "http://[::1"')))


def test_bom_and_bounded_reads(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + EXAMPLE.encode())
    msg = error_of(path)
    assert "starts with a UTF-8 byte-order mark; save it without BOM" in msg
    assert "not a regular file" in error_of(Path("/dev/zero"))
    msg = error_of(write(tmp_path, EXAMPLE.replace('password_env = "GLANCE_DB_PASSWORD"', 'password_file = "/dev/urandom"')))
    assert "database" in msg and "/dev/urandom is not a regular file" in msg


# ---------------------------------------------------------------- issue 18: refused at load, never later


def test_a_symlink_loop_is_named_as_such_not_not_found(tmp_path):
    """The config file, a password file: ELOOP says "symbolic link loop", never "not found"."""
    loop = tmp_path / "loop.toml"
    loop.symlink_to(loop)
    msg = error_of(loop)
    assert "symbolic link loop" in msg and "not found" not in msg
    pw = tmp_path / "pw"
    pw.symlink_to(tmp_path / "pw2")
    (tmp_path / "pw2").symlink_to(pw)
    msg = error_of(write(tmp_path, EXAMPLE.replace('password_env = "GLANCE_DB_PASSWORD"', f'password_file = "{pw}"')))
    assert "database" in msg and "symbolic link loop" in msg and "does not exist" not in msg
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    msg = error_of(write(tmp_path, EXAMPLE.replace('password_env = "GLANCE_DB_PASSWORD"', f'password_file = "{dangling}"')))
    assert "symbolic link to a file that does not exist" in msg


def _example_data() -> dict:
    import tomllib

    return tomllib.loads(EXAMPLE)


@pytest.mark.parametrize(("key", "char", "shown"), [
    ("stop", "\x7f", "U+007F (DEL)"), ("start", "\x9b", "U+009B"), ("upgrade", "\x85", "U+0085"),
    ("rollback", "\u2028", "LINE SEPARATOR"), ("read_config", "\u200f", "RIGHT-TO-LEFT MARK"), ("glance_manage", "\x00", "NUL"),
])
def test_control_characters_in_any_template_are_refused_with_their_position(key, char, shown):
    from glance_tui.config import parse_config

    data = _example_data()
    data["commands"][key] = "glance" + char + "x"
    with pytest.raises(ConfigError) as info:
        parse_config(data, "cfg")
    msg = info.value.message
    assert f"cfg: commands.{key}:" in msg and shown in msg and "character 7" in msg and msg.isprintable(), msg


def test_an_unknown_key_with_an_escape_is_not_echoed_raw(tmp_path):
    msg = error_of(write(tmp_path, EXAMPLE.replace("[ssh]\n", '[ssh]\n"x\\u001b[2K" = 1\n')))
    assert "unknown key" in msg and "\x1b" not in msg


def test_api_urls_are_compared_normalised():
    from glance_tui.config import url_key

    assert url_key("http://Glance-1:80/") == url_key("HTTP://glance-1") == url_key("http://glance-1.:80")
    assert url_key("https://[::1]:443/") == url_key("https://[0:0::1]")
    assert url_key("http://g:9292/a") != url_key("http://g:9292/b") and url_key("http://g") != url_key("https://g")


def test_connections_template_and_lb_source_addresses_are_checked_at_load():
    from glance_tui.config import parse_config

    data = _example_data()
    cfg = parse_config(data, "cfg")
    assert cfg.commands.connections.startswith("ss -Htn state established") and cfg.lbs[0].source_addresses == ["10.0.0.2"]
    data["commands"]["connections"] = "ss -Htn sport = :{port.real}"
    with pytest.raises(ConfigError) as info:
        parse_config(data, "cfg")
    assert "commands.connections" in info.value.message and "format syntax" in info.value.message
    data = _example_data()
    data["load_balancers"][0]["source_addresses"] = ["-oProxyCommand=x"]
    with pytest.raises(ConfigError) as info:
        parse_config(data, "cfg")
    assert "load_balancers[0].source_addresses" in info.value.message or "source_addresses" in info.value.message
    data = _example_data()
    data["load_balancers"][0]["source_addresses"] = "10.0.0.2"
    with pytest.raises(ConfigError):
        parse_config(data, "cfg")  # a list, never a string coerced
