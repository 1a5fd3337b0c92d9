"""nodectl verbs against a temp node dir: real processes, real ports, real signals.

The two "environments" here are minimal stand-ins with Glance's CLI shape (a ``glance-api``
that serves ``/versions`` on the conf's bind address, a ``glance-manage`` that echoes its
arguments) plus dist-info metadata, so process control is tested without a 250 MB venv.
The real Glance path is covered by tests/test_lab_real.py (``-m lab``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from glance_tui.node.readings import parse_processes

from glance_tui.lab import glance, nodectl, procs

API = f"""#!{sys.executable}
import configparser, http.server, os, signal, sys
conf = configparser.RawConfigParser()
conf.read(sys.argv[sys.argv.index("--config-file") + 1])
if os.environ.get("TEST_IGNORE_TERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{{"versions": []}}'
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer((conf["DEFAULT"]["bind_host"], int(conf["DEFAULT"]["bind_port"])), H).serve_forever()
"""

# A stand-in for pyuwsgi's ``uwsgi`` with Glance's reference ini: a master that forks
# ``processes`` workers on one listening socket (every one shows as COMM ``uwsgi``), each
# serving /versions only if OS_GLANCE_CONFIG_DIR holds glance-api.conf (as glance.wsgi.api needs);
# SIGTERM on the master ends the workers too (die-on-term).
UWSGI = f"""#!{sys.executable}
import configparser, http.server, os, signal, socket, sys
ini = configparser.RawConfigParser(strict=False)
ini.read(sys.argv[sys.argv.index("--ini") + 1])
u = ini["uwsgi"]
assert os.path.exists(os.path.join(os.environ["OS_GLANCE_CONFIG_DIR"], "glance-api.conf"))
host, port = u["http-socket"].rsplit(":", 1)
sock = socket.socket(); sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); sock.bind((host, int(port))); sock.listen(16)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{{"versions": []}}'
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
workers = []
for _ in range(int(u["processes"])):
    pid = os.fork()
    if pid == 0:
        server = http.server.HTTPServer((host, int(port)), H, bind_and_activate=False); server.socket = sock
        server.serve_forever()
    workers.append(pid)
def term(*_):
    for w in workers:
        os.kill(w, signal.SIGKILL)
    sys.exit(0)
signal.signal(signal.SIGTERM, term)
while True:
    signal.pause()
"""

MANAGE = f"""#!{sys.executable}
import os, sys
print("manage", *sys.argv[1:])
sys.exit(int(os.environ.get("TEST_MANAGE_RC", "0")))
"""


def make_env(root: Path, version: str, server: tuple[str, str] = ("glance-api", API)) -> Path:
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    for name, text in (server, ("glance-manage", MANAGE)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    (root / "lib" / "python3.11" / "site-packages" / f"glance-{version}.dist-info").mkdir(parents=True)
    (root / "etc" / "glance").mkdir(parents=True)
    (root / "etc" / "glance" / "glance-api-paste.ini").write_text(f"# paste for {version}\n")
    return bin_dir


@pytest.fixture
def node_dir(tmp_path: Path) -> Path:
    envs = {"2023.1": str(make_env(tmp_path / "env-2023.1", "26.1.0")), "2024.1": str(make_env(tmp_path / "env-2024.1", "28.2.0"))}
    d = tmp_path / "node"
    d.mkdir()
    port = procs.free_port("127.0.0.21")
    node = nodectl.Node(d, {"name": "n1", "host": "127.0.0.21", "port": port, "release": "2023.1", "envs": envs, "target": "2024.1"})
    node.save()
    glance.write_api_conf(node.conf, host="127.0.0.21", port=port, database="mysql+pymysql://u:p@127.0.0.1:1/g",
                          store_dir=tmp_path / "images", node_dir=d)
    yield d
    nodectl.stop(nodectl.Node.load(d), timeout=2)


def ctl(node_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "glance_tui.lab.nodectl", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, nodectl.NODE_DIR_ENV: str(node_dir), **env}, cwd=Path(__file__).parent.parent)


def test_start_is_running_stop(node_dir: Path) -> None:
    node = nodectl.Node.load(node_dir)
    assert ctl(node_dir, "is-running").returncode == 1
    started = ctl(node_dir, "start")
    assert started.returncode == 0, started.stderr
    assert "started" in started.stdout
    with urllib.request.urlopen(f"http://{node.host}:{node.port}/versions", timeout=5) as resp:
        assert resp.status == 200
    running = ctl(node_dir, "is-running")
    assert running.returncode == 0 and int(running.stdout) == procs.read_pid(node.pidfile)
    assert "already running" in ctl(node_dir, "start").stdout
    assert (node_dir / "glance-api-paste.ini").read_text() == "# paste for 26.1.0\n"
    stopped = ctl(node_dir, "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert ctl(node_dir, "is-running").returncode == 1
    assert procs.port_is_free(node.host, node.port)
    assert ctl(node_dir, "stop").returncode == 0  # stopping a stopped node is fine


def test_upgrade_switches_binary_version_and_paste(node_dir: Path) -> None:
    assert ctl(node_dir, "version").stdout.strip() == "26.1.0"
    up = ctl(node_dir, "upgrade", "2024.1")
    assert up.returncode == 0 and "2023.1 -> 2024.1 (28.2.0)" in up.stdout
    assert ctl(node_dir, "version").stdout.strip() == "28.2.0"
    assert ctl(node_dir, "start").returncode == 0
    assert (node_dir / "glance-api-paste.ini").read_text() == "# paste for 28.2.0\n"
    node = nodectl.Node.load(node_dir)
    cmdline = Path(f"/proc/{nodectl.running_pid(node)}/cmdline").read_bytes()
    assert b"env-2024.1/bin/glance-api" in cmdline
    assert ctl(node_dir, "stop").returncode == 0
    assert ctl(node_dir, "downgrade").returncode == 0
    assert nodectl.Node.load(node_dir).release == "2023.1"
    bad = ctl(node_dir, "upgrade", "2099.1")
    assert bad.returncode == 1 and "no environment for release '2099.1'" in bad.stderr


def test_manage_passes_arguments_output_and_exit_code(node_dir: Path) -> None:
    res = ctl(node_dir, "manage", "db", "check", TEST_MANAGE_RC="3")
    assert res.returncode == 3
    assert res.stdout.strip() == f"manage --config-file {node_dir / 'glance-api.conf'} db check"
    assert ctl(node_dir, "upgrade").returncode == 0  # no argument: node.json's target
    assert ctl(node_dir, "manage", "db", "expand").returncode == 0


def test_read_config_and_conf_is_private(node_dir: Path) -> None:
    res = ctl(node_dir, "read-config")
    assert res.returncode == 0
    assert "flavor =\n" in res.stdout and f"config_file = {node_dir / 'glance-api-paste.ini'}" in res.stdout
    assert "enabled_backends = fs:file" in res.stdout and "enable_v1_api" not in res.stdout
    assert (node_dir / "glance-api.conf").stat().st_mode & 0o077 == 0


def test_stop_kills_a_process_that_ignores_sigterm(node_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_IGNORE_TERM", "1")
    node = nodectl.Node.load(node_dir)
    pid = nodectl.start(node)
    assert nodectl.stop(node, timeout=0.5)
    assert not procs.pid_alive(pid) and nodectl.running_pid(node) is None


def test_start_reports_a_busy_port(node_dir: Path) -> None:
    node = nodectl.Node.load(node_dir)
    import socket

    with socket.socket() as sock:
        sock.bind((node.host, node.port))
        sock.listen()
        res = ctl(node_dir, "start")
    assert res.returncode == 1 and "already in use" in res.stderr and "fix:" in res.stderr


def test_errors_without_node_dir_or_verb(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != nodectl.NODE_DIR_ENV}
    res = subprocess.run([sys.executable, "-m", "glance_tui.lab.nodectl", "version"], capture_output=True, text=True, env=env,
                         cwd=Path(__file__).parent.parent, timeout=30)
    assert res.returncode == 1 and "GLANCE_LAB_NODE_DIR is not set" in res.stderr
    res = ctl(tmp_path, "frobnicate")
    assert res.returncode == 1 and "cannot read node.json" in res.stderr


def test_autostart_upgrade_starts_the_service_like_a_postinst(node_dir: Path) -> None:
    """With ``autostart`` an upgrade (re)starts the service on the new code, as Debian's postinst does."""
    from glance_tui.lab.monitor import ProcessMonitor

    node = nodectl.Node.load(node_dir)
    node.data["autostart"] = True
    node.save()
    assert ctl(node_dir, "start").returncode == 0
    monitor = ProcessMonitor({"n1": node_dir})
    monitor.sample()
    old = nodectl.running_pid(node)
    up = ctl(node_dir, "upgrade", "2024.1")
    assert up.returncode == 0, up.stderr
    assert "postinst: glance-api started" in up.stdout and "keeps the old code" not in up.stdout
    new = nodectl.running_pid(node)
    assert new and new != old and not procs.pid_alive(old)
    assert b"env-2024.1/bin/glance-api" in Path(f"/proc/{new}/cmdline").read_bytes()
    monitor.sample()  # the witness tells both processes apart by the environment they run from
    assert {(s.pid, s.release) for s in monitor.spans.values()} == {(old, "2023.1"), (new, "2024.1")}
    old_span = next(s for s in monitor.spans.values() if s.pid == old)
    assert [s.pid for s in monitor.running_during(old_span.last_seen - 0.1, old_span.last_seen, not_release="2024.1")] == [old]
    # the postinst stopped the old process before starting the new one: never both at once
    new_span = next(s for s in monitor.spans.values() if s.pid == new)
    assert monitor.running_during(new_span.last_seen, new_span.last_seen + 1, not_release="2024.1") == []
    assert ctl(node_dir, "stop").returncode == 0
    up = ctl(node_dir, "downgrade")  # stopped before: a postinst starts an enabled service too
    assert up.returncode == 0 and "postinst: glance-api started" in up.stdout and nodectl.running_pid(node)


def test_without_autostart_the_old_process_keeps_running(node_dir: Path) -> None:
    node = nodectl.Node.load(node_dir)
    assert ctl(node_dir, "start").returncode == 0
    pid = nodectl.running_pid(node)
    up = ctl(node_dir, "upgrade", "2024.1")
    assert up.returncode == 0 and "keeps the old code until restarted" in up.stdout
    assert nodectl.running_pid(node) == pid and b"env-2023.1" in Path(f"/proc/{pid}/cmdline").read_bytes()


def test_a_uwsgi_release_runs_master_and_workers_and_the_witness_sees_them(tmp_path: Path) -> None:
    """On the 2025.1 -> 2026.1 path a node upgraded to 2026.1 runs uWSGI (its runtime in
    envs.RELEASES): the master and its workers are the node's service for start, is-running,
    processes (as ``ps`` shows them: COMM ``uwsgi``), the witness and stop; downgrade goes back to
    the path's start, the eventlet glance-api."""
    from glance_tui.lab.monitor import ProcessMonitor
    from glance_tui.lab.runtime import UWSGI_INI, UWSGI_PROCESSES

    envs = {"2025.1": str(make_env(tmp_path / "env-2025.1", "30.2.0")),
            "2026.1": str(make_env(tmp_path / "env-2026.1", "32.0.0", ("uwsgi", UWSGI)))}
    d = tmp_path / "node"
    d.mkdir()
    port = procs.free_port("127.0.0.21")
    nodectl.Node(d, {"name": "n1", "host": "127.0.0.21", "port": port, "release": "2025.1", "envs": envs,
                     "base": "2025.1", "target": "2026.1"}).save()
    glance.write_api_conf(d / "glance-api.conf", host="127.0.0.21", port=port, database="mysql+pymysql://u:p@127.0.0.1:1/g",
                          store_dir=tmp_path / "images", node_dir=d)
    try:
        assert ctl(d, "start").returncode == 0
        assert ctl(d, "upgrade").returncode == 0  # the node's target: 2026.1
        assert ctl(d, "stop").returncode == 0 and ctl(d, "is-running").returncode == 1
        started = ctl(d, "start")
        assert started.returncode == 0 and "release 2026.1" in started.stdout, started.stdout + started.stderr
        master = nodectl.running_pid(nodectl.Node.load(d))
        assert master and ctl(d, "is-running").stdout.strip() == str(master)
        assert (d / UWSGI_INI).exists()
        rows = parse_processes(ctl(d, "processes").stdout)[1]
        assert len(rows) == 1 + UWSGI_PROCESSES and {p.comm for p in rows} == {"uwsgi"}, rows
        assert sorted(p.ppid == master for p in rows) == [False] + [True] * UWSGI_PROCESSES, rows  # the workers are the master's
        assert all(p.args.endswith(f"env-2026.1/bin/uwsgi --ini {d / UWSGI_INI}") for p in rows)
        with urllib.request.urlopen(f"http://127.0.0.21:{port}/versions", timeout=5) as resp:
            assert resp.status == 200
        monitor = ProcessMonitor({"n1": d})
        monitor.sample()
        assert {(s.pid, s.release) for s in monitor.spans.values()} == {(p.pid, "2026.1") for p in rows}
        assert ctl(d, "stop").returncode == 0
        assert not any(procs.pid_alive(p.pid) for p in rows) and procs.port_is_free("127.0.0.21", port)
        assert ctl(d, "downgrade").returncode == 0 and nodectl.Node.load(d).release == "2025.1"
        assert ctl(d, "start").returncode == 0
        rows = parse_processes(ctl(d, "processes").stdout)[1]
        assert [p.comm for p in rows] == ["glance-api"]
    finally:
        nodectl.stop(nodectl.Node.load(d), timeout=2)
