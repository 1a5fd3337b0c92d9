"""Lab pieces that need no running service: the generated glance-tui.toml, env stamps, load report, CLI errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from glance_tui.cli import main
from glance_tui.commands import NodeCommands
from glance_tui.config import CommandsConfig, load_config
from glance_tui.errors import GlanceTuiError, UsageError
from glance_tui.lab import envs, glance
from glance_tui.lab.lab import BalancerLayout, Lab, Layout, NodeLayout
from glance_tui.lab.load import Failure, LoadReport, parse_size
from glance_tui.lab.runtime import EVENTLET, UWSGI, is_glance, runtime_of


def make_layout(bin_dir: str = "/opt/none/bin", *, two: bool = False) -> Layout:
    nodes = [NodeLayout(f"glance-{i}", f"127.0.0.{10 + i}", 9292, 2222) for i in (1, 2, 3)]
    balancers = [BalancerLayout("lb", "127.0.0.10", 9292, 8404, 9999)]
    if two:
        balancers = [BalancerLayout("lb-a", "127.0.0.10", 9292, 8404, 9999, external_port=9293),
                     BalancerLayout("lb-b", "127.0.0.9", 9292, 8404, 9999, external_port=9293)]
    return Layout(nodes=nodes, balancers=balancers, db_port=13306, envs={"2023.1": bin_dir, "2024.1": bin_dir})


def test_generated_config_loads_and_uses_the_packaged_defaults(tmp_path: Path) -> None:
    """The lab proves the defaults: no lab-only command in the config, and [commands] holds only
    the rollback a packaged operator writes (there is no default for it)."""
    lab = Lab(tmp_path / "lab", envs={"2023.1": "/opt/none/bin", "2024.1": "/opt/none/bin"})
    lab.dir.mkdir()
    lab._password()
    path = lab.write_config(make_layout())
    config = load_config(path)
    assert [n.name for n in config.nodes] == ["glance-1", "glance-2", "glance-3"]
    assert [n.lb_server for n in config.nodes] == ["glance-1", "glance-2", "glance-3"]
    assert config.nodes[1].ssh_host == "127.0.0.12" and config.nodes[1].ssh_port == 2222
    assert config.nodes[2].api_url == "http://127.0.0.13:9292"
    assert config.database.port == 13306 and config.database.password.reveal() == lab.password_file.read_text().strip()
    assert config.load_balancer.stats_url == "http://127.0.0.10:8404/stats" and config.load_balancer.backend == "glance_api"
    assert config.load_balancer.runtime_socket == f"unix:{lab.dir}/haproxy/admin.sock"
    assert config.ssh.identity_file == str(lab.operator_key) and config.ssh.known_hosts == str(lab.known_hosts)
    assert config.backup.where == "local" and config.backup.directory == str(lab.backup_dir)
    assert config.policy.target_release == "2024.1" and config.policy.target_version == "28.2.0"
    assert "nodectl" not in path.read_text() and "GLANCE_LAB" not in path.read_text()
    defaults = CommandsConfig()
    assert config.commands.model_dump(exclude={"rollback"}) == defaults.model_dump(exclude={"rollback"})
    assert config.commands.rollback == "apt-get install -y --allow-downgrades glance-api=2:26.1.0-0ubuntu1"
    cmds = NodeCommands(config, "glance-2")
    assert cmds.upgrade().command == "apt-get install -y glance-api"
    assert cmds.db_check().command == "glance-manage db check"
    assert lab.password_file.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("path", envs.PATHS)
def test_each_path_targets_its_release_and_each_release_has_a_lock_and_a_runtime(tmp_path: Path, path: tuple[str, str]) -> None:
    start, target = path
    lab = Lab(tmp_path / "lab", path=path)
    lab.dir.mkdir()
    lab._password()
    layout = make_layout()
    layout.path = path
    config = load_config(lab.write_config(layout))
    assert config.policy.target_release == target and config.policy.target_version == envs.GLANCE_VERSIONS[target]
    # the repository's candidate is the target (apt-get's own choice); rollback pins the start's package
    assert NodeCommands(config, "glance-1").upgrade().command == "apt-get install -y glance-api"
    assert config.commands.rollback.endswith(f"glance-api=2:{envs.GLANCE_VERSIONS[start]}-0ubuntu1")
    # a uWSGI node's health check may wait behind its busy workers: Kolla-Ansible's 10 s, else the lab's 2 s
    uwsgi = any(runtime_of(r) is UWSGI for r in path)
    assert lab.haproxy(layout).check_timeout_s == (10.0 if uwsgi else 2.0) and (uwsgi == (path != envs.DEFAULT_PATH))
    for release in path:
        pins = envs.read_lock(release)
        assert pins["glance"] == envs.GLANCE_VERSIONS[release] and "pymysql" in pins
        # a uWSGI release's environment has its server in the same venv
        assert ("pyuwsgi" in pins) == (runtime_of(release) is UWSGI)
        header = envs.lock_file(release).read_text().splitlines()[0]
        assert envs.RELEASES[release].constraints.removesuffix(".txt") in header


def test_paths_runtimes_and_path_errors() -> None:
    assert envs.PATHS[0] == envs.DEFAULT_PATH == ("2023.1", "2024.1")
    assert {"2025.1": EVENTLET, "2026.1": UWSGI, "2026.2": UWSGI, "2024.1": EVENTLET} == \
        {r: runtime_of(r) for r in ("2025.1", "2026.1", "2026.2", "2024.1")}
    assert envs.check_path(None, None) == ("2023.1", "2024.1")
    assert envs.check_path("2025.1", None) == envs.check_path(None, "2026.1") == ("2025.1", "2026.1")
    assert envs.check_path("2026.1", "2026.2") == ("2026.1", "2026.2")
    for bad in (("2023.1", "2026.1"), ("2026.2", None), ("2099.1", "2024.1")):
        with pytest.raises(UsageError, match="the lab has no upgrade path") as err:
            envs.check_path(*bad)
        assert "--from 2025.1 --to 2026.1" in err.value.fix


def test_uwsgi_runtime_is_glances_reference_ini(tmp_path: Path) -> None:
    argv, env = UWSGI.command(tmp_path / "bin", tmp_path, tmp_path / "glance-api.conf", host="127.0.0.11", port=9292, workers=1)
    assert argv == [str(tmp_path / "bin" / "uwsgi"), "--ini", str(tmp_path / "glance-api-uwsgi.ini")]
    assert env == {"OS_GLANCE_CONFIG_DIR": str(tmp_path)}  # glance.wsgi.api reads glance-api.conf from there
    ini = (tmp_path / "glance-api-uwsgi.ini").read_text()
    for line in ("http-socket = 127.0.0.11:9292", "module = glance.wsgi.api:application", "master = true", "processes = 4",
                 "lazy-apps = true", "enable-threads = true", "die-on-term = true", "need-app = true"):
        assert line + "\n" in ini
    # what `ps` shows of a uWSGI master or worker (pyuwsgi: a console script) and of the eventlet server
    venv = "/v/bin"
    assert UWSGI.serves([f"{venv}/python3", f"{venv}/uwsgi", "--ini", "/n/glance-api-uwsgi.ini"])
    assert EVENTLET.serves([f"{venv}/python3", f"{venv}/glance-api", "--config-file", "/n/glance-api.conf"])
    assert not EVENTLET.serves([f"{venv}/python3", f"{venv}/uwsgi", "--ini", "/n/glance-api-uwsgi.ini"])
    assert not is_glance(["/usr/sbin/sshd", "-D", "-f", "/n/glance-api/sshd_config"]) and not is_glance([])


def test_config_lists_both_instances_with_both_backends(tmp_path: Path) -> None:
    """The production-shaped lab: two HAProxy instances, internal and external backend on each."""
    lab = Lab(tmp_path / "lab")
    lab.dir.mkdir()
    lab._password()
    config = load_config(lab.write_config(make_layout(two=True)))
    assert config.load_balancer is None
    assert [(lb.name, lb.stats_url, lb.backends) for lb in config.lbs] == [
        ("lb-a", "http://127.0.0.10:8404/stats", ["glance_api", "glance_api_external"]),
        ("lb-b", "http://127.0.0.9:8404/stats", ["glance_api", "glance_api_external"])]
    assert [lb.runtime_socket for lb in config.lbs] == [f"unix:{lab.dir}/haproxy/admin.sock", f"unix:{lab.dir}/haproxy-lb-b/admin.sock"]
    assert all(lb.admin == "http" for lb in config.lbs)
    assert config.policy.health_paths == ["/healthcheck", "/versions"]  # the tool's default must pass on the lab


def test_layout_of_a_lab_made_before_two_instances_still_loads() -> None:
    old = {"nodes": [{"name": "glance-1", "host": "127.0.0.11", "api_port": 9292, "ssh_port": 2222}], "lb_host": "127.0.0.10",
           "frontend_port": 9292, "stats_port": 8404, "runtime_tcp_port": 9999, "db_port": 13306, "workers": 1, "envs": {}}
    layout = Layout.from_json(old)
    assert (layout.lb_host, layout.frontend_port, layout.stats_port) == ("127.0.0.10", 9292, 8404)
    assert layout.keystone_url is None and layout.frontend_urls == ["http://127.0.0.10:9292"]
    assert Layout.from_json(json.loads(json.dumps(make_layout(two=True).to_json()))).frontend_urls == [
        "http://127.0.0.10:9292", "http://127.0.0.10:9293", "http://127.0.0.9:9292", "http://127.0.0.9:9293"]


def test_api_conf_behind_keystone() -> None:
    from glance_tui.lab.keystone import authtoken_section

    section = authtoken_section(auth_url="http://127.0.0.5:5000", password="s3cret")
    text = glance.api_conf(host="127.0.0.11", port=9292, database="mysql+pymysql://g:p@h:1/glance", store_dir=Path("/s"),
                           node_dir=Path("/n1"), authtoken=section)
    assert "flavor = keystone\n" in text and "[keystone_authtoken]\n" in text
    for line in ("auth_url = http://127.0.0.5:5000", "username = glance", "project_name = service", "password = s3cret", "auth_type = password"):
        assert line + "\n" in text


def test_api_conf_follows_the_notes() -> None:
    text = glance.api_conf(host="127.0.0.11", port=9292, database="mysql+pymysql://g:p@127.0.0.1:3306/glance",
                           store_dir=Path("/srv/images"), node_dir=Path("/n1"), workers=2)
    for line in ("bind_host = 127.0.0.11", "bind_port = 9292", "workers = 2", "enabled_backends = fs:file",
                 "default_backend = fs", "filesystem_store_datadir = /srv/images", "flavor =",
                 "config_file = /n1/glance-api-paste.ini", "connection = mysql+pymysql://g:p@127.0.0.1:3306/glance"):
        assert line + "\n" in text
    assert "enable_v1_api" not in text and "registry_host" not in text
    assert glance.db_url(user="glance", password="p@ss:/w", host="h", port=1, schema="glance") == \
        "mysql+pymysql://glance:p%40ss%3A%2Fw@h:1/glance?charset=utf8"


def fake_prefix(root: Path, pins: dict[str, str], binaries: tuple[str, ...] = ("glance-api", "glance-manage")) -> Path:
    (root / "bin").mkdir(parents=True)
    for name in binaries:
        (root / "bin" / name).write_text("")
    site = root / "lib" / "python3.11" / "site-packages"
    for name, version in pins.items():
        (site / f"{name.replace('-', '_')}-{version}.dist-info").mkdir(parents=True)
    return root


def test_uwsgi_release_env_needs_its_server_and_legacy_installs_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 2026.1 environment is usable only with bin/uwsgi (its runtime's server); a package pip
    installed the legacy way (an ``.egg-info``, e.g. simplegeneric without ``wheel``) counts."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    pins = envs.read_lock("2026.1")
    assert pins["glance"] == "32.0.0" and "pyuwsgi" in pins and "simplegeneric" in pins
    legacy = {k: v for k, v in pins.items() if k != "simplegeneric"}
    without_server = fake_prefix(envs.env_dir("2026.1"), legacy, binaries=("glance-api", "glance-manage"))
    (without_server / "lib" / "python3.11" / "site-packages" / f"simplegeneric-{pins['simplegeneric']}-py3.11.egg-info").mkdir()
    assert not envs._usable(without_server, "2026.1")
    (without_server / "bin" / "uwsgi").write_text("")
    assert envs._usable(without_server, "2026.1")


def test_env_is_adopted_only_when_it_matches_the_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    pins = envs.read_lock("2023.1")
    assert pins["glance"] == "26.1.0" and "pymysql" in pins and len(pins) > 50
    good = fake_prefix(envs.env_dir("2023.1"), pins)
    assert envs._usable(good, "2023.1")
    assert (good / envs.STAMP).read_text().strip() == envs.stamp_for("2023.1")
    assert envs.ensure_env("2023.1", progress=lambda line: pytest.fail(f"must not install: {line}")) == good / "bin"
    (good / envs.STAMP).write_text("stale\n")  # the lock changed since the env was built
    assert not envs._usable(good, "2023.1")
    drifted = fake_prefix(tmp_path / "other", {**pins, "glance": "26.0.0"})
    assert not envs._usable(drifted, "2023.1")
    assert envs.glance_version(good / "bin") == "26.1.0"


def test_keystone_lock_pins_keystone_gunicorn_and_the_constraints() -> None:
    pins = envs.read_lock(envs.KEYSTONE)
    assert pins["keystone"] == envs.KEYSTONE_VERSION == "23.0.0"
    # from upper-constraints-2023.1, as shared/NOTES.md lists them
    assert pins["gunicorn"] == "20.1.0" and pins["keystonemiddleware"] == "10.2.0" and "pymysql" in pins
    assert envs.env_dir(envs.KEYSTONE).name == "keystone-2023.1"


def test_both_locks_pin_glance_and_pymysql() -> None:
    assert envs.read_lock("2024.1")["glance"] == "28.2.0"
    assert {"glance", "pymysql", "oslo-db", "sqlalchemy"} <= set(envs.read_lock("2024.1"))
    with pytest.raises(GlanceTuiError, match="no lab environment for release"):
        envs.lock_file("2099.1")


def test_failed_install_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    locks = tmp_path / "locks"
    locks.mkdir()
    (locks / "glance-2023.1.txt").write_text("this is === not a requirement\n")  # pip rejects it without the network
    monkeypatch.setattr(envs, "LOCK_DIR", locks)
    lines: list[str] = []
    with pytest.raises(GlanceTuiError) as err:
        envs.ensure_env("2023.1", progress=lines.append)
    assert "installing Glance 2023.1 (26.1.0) failed" in err.value.what
    assert "rerun `glance-tui lab up`" in err.value.fix and "install.log" in err.value.fix
    assert lines[0].startswith("installing Glance 2023.1 (26.1.0)")
    assert not (envs.env_dir("2023.1") / envs.STAMP).exists()


def test_parse_size_and_report() -> None:
    assert [parse_size(s) for s in ("512", "64K", "4M", "1.5M", "1G", "2MiB")] == [512, 65536, 4194304, 1572864, 1 << 30, 2097152]
    with pytest.raises(UsageError):
        parse_size("4X")
    report = LoadReport(url="http://lb", clients=2, requests={"list": 3, "upload": 2})
    assert report.ok and report.total == 5
    report.failures.append(Failure("upload", "ReadError: connection closed", 1.5, "img"))
    report.images_not_active["img"] = "saving"
    assert not report.ok
    assert report.failures_by_reason() == {"upload: ReadError: connection closed": 1}
    text = report.summary()
    assert "failed requests: 1" in text and "img: saving" in text
    assert json.loads(json.dumps(report.to_json()))["ok"] is False


def test_cli_lab_without_a_lab(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "status", "--dir", str(tmp_path)]) == 0
    assert "no lab in" in capsys.readouterr().out
    assert main(["lab", "down", "--dir", str(tmp_path)]) == 0
    assert main(["lab", "load", "--dir", str(tmp_path), "--duration", "1"]) == 1
    assert "the lab is not running" in capsys.readouterr().err
    assert main(["lab", "load", "--url", "http://127.0.0.1:1", "--size", "4X"]) == 2
    assert "bad size '4X'" in capsys.readouterr().err


def test_missing_package_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("glance_tui.lab.procs.SBIN_DIRS", ())
    assert main(["lab", "up", "--dir", str(tmp_path / "lab")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: missing Debian packages: mariadb-server mariadb-client haproxy openssh-server")
    assert "fix: apt-get update && apt-get install -y" in err and "\n" not in err


@pytest.mark.parametrize("module", ["glance_tui.lab.nodectl", "glance_tui.lab.pkgshims"])
def test_node_tools_start_quickly(module: str) -> None:
    """A lab node's systemctl, apt-get and glance-manage run these: they must not import heavy modules."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", module], capture_output=True, text=True,
                         cwd=Path(__file__).parent.parent, env={**os.environ}, timeout=30)
    imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if "|" in line}
    assert "glance_tui.lab.procs" in imported  # the tool itself was imported
    assert not imported & {"pydantic", "httpx", "asyncssh", "textual", "glance_tui.config"}


def test_container_lab_config_is_the_kolla_kind_unchanged(tmp_path: Path) -> None:
    """--node-kind kolla: the generated config names the engine, container, image and target tag, and no lab command."""
    from glance_tui.lab import containers

    lab = Lab(tmp_path / "lab", envs={"2023.1": "/opt/none/bin", "2024.1": "/opt/none/bin"}, node_kind="kolla")
    lab.dir.mkdir()
    lab._password()
    layout = make_layout()
    layout.node_kind = "kolla"
    path = lab.write_config(layout)
    assert "nodectl" not in path.read_text() and "GLANCE_LAB" not in path.read_text()
    config = load_config(path)
    for node in ("glance-1", "glance-3"):
        assert config.kind_of(node) == "kolla"
        k = config.kolla_of(node)
        assert (k.engine, k.container, k.image, k.target_tag) == ("podman", containers.CONTAINER, containers.IMAGE, "2024.1")
    assert NodeCommands(config, "glance-2").upgrade().command == f"podman pull {containers.IMAGE}:2024.1"
    assert Layout.from_json(json.loads(json.dumps(layout.to_json()))).node_kind == "kolla"
    assert Layout.from_json({**make_layout().to_json()}).node_kind == "packages"  # lab.json of a lab before kinds


def test_node_kind_errors_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    from glance_tui.lab import containers
    from glance_tui.lab.rehearse import rehearse

    with pytest.raises(UsageError, match="unknown node kind 'docker'"):
        Lab(tmp_path / "lab", node_kind="docker")
    # a scenario of the other kind is refused before the lab is touched
    lab = Lab(tmp_path / "lab", envs={"2023.1": "/opt/none/bin", "2024.1": "/opt/none/bin"})
    with pytest.raises(UsageError, match="scenario stale-image needs kolla nodes, the lab's are packages"):
        asyncio.run(rehearse(lab, naive=False, scenario="stale-image", say=lambda line: None))
    kolla = Lab(tmp_path / "lab", envs={"2023.1": "/opt/none/bin", "2024.1": "/opt/none/bin"}, node_kind="kolla")
    with pytest.raises(UsageError, match="scenario prestaged needs packages nodes"):
        asyncio.run(rehearse(kolla, naive=False, scenario="prestaged", say=lambda line: None))
    with pytest.raises(UsageError, match="--naive restarts packaged services"):
        asyncio.run(rehearse(kolla, naive=True, say=lambda line: None))
    assert not lab.layout_file.exists()
    # an existing lab keeps its kind: another one only through `lab reset --node-kind`
    layout = make_layout()
    layout.node_kind = "kolla"
    lab.dir.mkdir()
    lab.layout_file.write_text(json.dumps(layout.to_json()))
    with pytest.raises(UsageError, match="the lab's nodes are of kind kolla, not packages") as refused:
        Lab(lab.dir, node_kind="packages")._resolve_layout({}, envs.DEFAULT_PATH)
    assert "lab reset --node-kind packages" in refused.value.fix
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("glance_tui.lab.procs.SBIN_DIRS", ())
    with pytest.raises(GlanceTuiError, match="the container lab needs podman runc") as err:
        containers.require_podman()
    assert err.value.fix == "apt-get update && apt-get install -y podman runc"
    assert main(["lab", "up", "--dir", str(tmp_path / "lab"), "--node-kind", "docker"]) == 2
    assert "invalid choice: 'docker'" in capsys.readouterr().err


def test_keystone_bootstrap_takes_a_password_that_begins_with_a_dash(tmp_path: Path) -> None:
    """token_urlsafe may begin a password with "-": as a separate argument argparse read it as an
    option ("--bootstrap-password: expected one argument") and that lab never bootstrapped (CI
    failed all six rehearsals on one such password). It is passed as ``--opt=value``."""
    import argparse

    from glance_tui.lab.keystone import KeystoneLab

    ks = KeystoneLab(tmp_path, tmp_path / "bin", "127.0.0.5", 5000, "mysql+pymysql://k@127.0.0.1/keystone", "-Xk_3-dash", "glancepw12")
    ks.write_config = lambda: None
    calls: list[tuple[str, ...]] = []
    ks._manage = lambda *args, **kw: calls.append(args)
    ks.bootstrap()
    args = next(c for c in calls if c[0] == "bootstrap")
    parser = argparse.ArgumentParser()  # keystone-manage's options are argparse's (oslo.config's CLI)
    for option in ("--bootstrap-password", "--bootstrap-admin-url", "--bootstrap-public-url", "--bootstrap-internal-url", "--bootstrap-region-id"):
        parser.add_argument(option)
    assert parser.parse_args(args[1:]).bootstrap_password == "-Xk_3-dash"
