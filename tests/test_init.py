"""``glance-tui init`` against real HAProxy and real sshd on loopback, with node answers the test controls
(tests/init_nodes.py): the config it writes loads and reads back as written, asks what the answers do
not decide, never copies the database password, never overwrites without --force; bad input is one line."""

from __future__ import annotations

import re
import socket
import threading
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from glance_tui.cli import main
from glance_tui.config import load_config
from glance_tui.lab.procs import free_port
from glance_tui.lab.sshd import write_known_hosts
from tests.init_nodes import GLANCE_VERSIONS, NOVA_VERSIONS, SECRET, NodeAnswers, start_cluster

pytestmark = pytest.mark.services


def eventlet(version: str = "2:28.2.0-0ubuntu1", candidate: str | None = "2:29.0.0-0ubuntu1", host: str = "10.0.0.5") -> NodeAnswers:
    return NodeAnswers(processes=["/usr/bin/python3 /usr/bin/glance-api --config-file={conf}"], units={"glance-api": "active"},
                       dpkg_version=version, candidate=candidate,
                       connection=f"mysql+pymysql://glance:{SECRET}@{host}:3306/glance?charset=utf8", versions=GLANCE_VERSIONS)


@pytest.fixture(scope="module")
def packaged(tmp_path_factory, ssh_operator_key):
    work = tmp_path_factory.mktemp("init-packaged")
    cluster = start_cluster(work, ssh_operator_key, {f"glance-{i}": eventlet() for i in (1, 2, 3)},
                            hosts=["127.0.0.41", "127.0.0.42", "127.0.0.43"], backends={"glance_api": ["glance-1", "glance-2", "glance-3"],
                                                                                           "glance_api_external": []})
    known = write_known_hosts(work / "known_hosts", [n.sshd for n in cluster.nodes])
    yield cluster, known
    cluster.stop()


def flat(text: str) -> str:
    """The config with its wrapped comments joined (assertions read sentences, not line breaks)."""
    return " ".join(line.removeprefix("# ") for line in text.splitlines())


def questions(text: str) -> list[str]:
    """Each question of the config, its wrapped lines joined."""
    return [line.removeprefix("# QUESTION: ") for line in text.splitlines() if line.startswith("# QUESTION: ")]


def data_of(text: str) -> dict:
    return tomllib.loads(text)


def answered(text: str, release: str, path: Path):
    """The config once its target-release question is answered (the one line init leaves commented out)."""
    assert text.count('# target_release = "<release>"') == 1, text
    path.write_text(text.replace('# target_release = "<release>"', f'target_release = "{release}"'))
    return load_config(path)


def init(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["init", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def ssh_args(cluster, known: Path, key: Path) -> list[str]:
    return ["--ssh-port", str(cluster.ssh_port), "--identity-file", str(key), "--known-hosts", str(known), "--timeout", "3"]


@pytest.fixture(autouse=True)
def _state(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("GLANCE_DB_PASSWORD", "operator-db-password")


def test_packaged_nodes_give_a_config_that_loads_as_written(packaged, ssh_operator_key, tmp_path, capsys):
    cluster, known = packaged
    out = tmp_path / "glance-tui.toml"
    code, stdout, stderr = init(capsys, "--stats-url", cluster.lbs[0].stats_url, *ssh_args(cluster, known, ssh_operator_key), "-o", str(out))
    assert code == 0, stderr
    text = out.read_text()
    assert SECRET not in text + stdout + stderr
    assert questions(text) == [], text
    assert stderr.startswith(f"written: {out} (3 nodes, no question)")
    config = load_config(out)
    assert [(n.name, n.ssh_host, n.lb_server, n.api_url) for n in config.nodes] == [
        (n.name, n.host, n.name, f"http://{n.host}:{n.api_port}") for n in cluster.nodes]
    db = config.database
    assert (db.host, db.port, db.user, db.schema_name, db.password_env) == ("10.0.0.5", 3306, "glance", "glance", "GLANCE_DB_PASSWORD")
    lb = config.lbs[0]
    assert lb.backends == ["glance_api", "glance_api_external"] and lb.admin == "http"
    assert (config.ssh.port, config.ssh.known_hosts) == (cluster.ssh_port, str(known))
    assert config.policy.target_release == "2024.2"  # the repository's candidate, a supported jump from 2024.1
    said = flat(text)
    assert "their package repository offers 2024.2" in said
    assert "backend glance_api is Glance: 3 of its 3 servers answer Glance's /versions" in said
    assert data_of(text)["commands"]["kind"] == "packages" and "systemd unit glance-api (active) running the eventlet glance-api" in said
    assert "read_config" not in data_of(text)["commands"]
    assert not (tmp_path / "state").exists()  # init journals nothing


def test_db_password_file_and_stdout(packaged, ssh_operator_key, tmp_path, capsys):
    cluster, known = packaged
    secret_file = tmp_path / "db-password"
    secret_file.write_text("operator-db-password\n")
    code, stdout, stderr = init(capsys, "--stats-url", cluster.lbs[0].stats_url, *ssh_args(cluster, known, ssh_operator_key),
                                "--db-password-file", str(secret_file), "--target-release", "2025.1", "-o", "-")
    assert code == 0, stderr
    data = tomllib.loads(stdout)
    assert data["database"]["password_file"] == str(secret_file) and "password_env" not in data["database"]
    assert data["policy"]["target_release"] == "2025.1"
    assert SECRET not in stdout + stderr


def test_never_overwrites_without_force(packaged, ssh_operator_key, tmp_path, capsys):
    cluster, known = packaged
    out = tmp_path / "mine.toml"
    out.write_text("# the operator's own config\n")
    args = ["--stats-url", cluster.lbs[0].stats_url, *ssh_args(cluster, known, ssh_operator_key), "-o", str(out)]
    code, _, stderr = init(capsys, *args)
    assert code == 2 and stderr.count("\n") == 1 and "already exists" in stderr and "--force" in stderr
    assert out.read_text() == "# the operator's own config\n"
    code, _, stderr = init(capsys, *args, "--force")
    assert code == 0, stderr
    load_config(out)


def test_unknown_host_key_is_one_line(packaged, ssh_operator_key, tmp_path, capsys):
    cluster, _ = packaged
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    out = tmp_path / "x.toml"
    code, _, stderr = init(capsys, "--stats-url", cluster.lbs[0].stats_url, *ssh_args(cluster, empty, ssh_operator_key), "-o", str(out))
    assert code == 2, stderr
    assert stderr.count("\n") == 1 and "host key" in stderr and "SHA256:" in stderr and "Traceback" not in stderr
    assert not out.exists()


class _Page(ThreadingHTTPServer):
    daemon_threads = True


def serve_bodies(bodies: dict[str, tuple[int, bytes]]) -> tuple[_Page, int]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            status, body = bodies.get(self.path.split(";")[0], (404, b"no"))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802
            self.send_response(303)
            self.send_header("Location", "/x;st=NONE")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = _Page(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


HEADER = b"# pxname,svname,qcur,scur,status,weight,addr,\n"
BAD_PAGES = {
    "/empty": (200, b""),
    "/html": (200, b"<html><body>Statistics Report</body></html>"),
    "/binary": (200, bytes(range(256)) * 4),
    "/ragged": (200, HEADER + b"a,b,0\n"),
    "/nul": (200, HEADER + b"glance_api,g1,0,0,UP,1,127.0.0.1:1\x00,\n"),
    "/huge-name": (200, HEADER + b"glance_api," + b"x" * 5000 + b",0,0,UP,1,127.0.0.1:1,\n"),
    "/forbidden": (403, b"no"),
    "/login": (401, b"no"),
}


@pytest.mark.parametrize("path", sorted(BAD_PAGES))
def test_a_page_that_is_not_a_stats_page_is_one_line(path, tmp_path, capsys):
    server, port = serve_bodies(BAD_PAGES)
    try:
        code, stdout, stderr = init(capsys, "--stats-url", f"http://127.0.0.1:{port}{path}", "--timeout", "3", "-o", str(tmp_path / "c.toml"))
    finally:
        server.shutdown()
        server.server_close()
    assert code in (1, 2), stderr
    assert stderr.count("\n") == 1 and stderr.startswith("error: ") and "Traceback" not in stderr and not stdout
    assert not (tmp_path / "c.toml").exists()


NOT_GLANCE = HEADER + b"nova_api,FRONTEND,0,0,OPEN,,,\nnova_api,n1,0,0,UP,1,{addr},\nnova_api,BACKEND,0,0,UP,1,,\n"


def test_no_glance_backend_is_exit_1(tmp_path, capsys):
    nova_port = free_port("127.0.0.1")
    from tests.init_nodes import serve_versions

    nova = serve_versions("127.0.0.1", nova_port, NOVA_VERSIONS)
    server, port = serve_bodies({"/stats": (200, NOT_GLANCE.replace(b"{addr}", f"127.0.0.1:{nova_port}".encode()))})
    try:
        code, _, stderr = init(capsys, "--stats-url", f"http://127.0.0.1:{port}/stats", "--timeout", "3", "-o", str(tmp_path / "c.toml"))
    finally:
        for s in (server, nova):
            s.shutdown()
            s.server_close()
    assert code == 1 and stderr.count("\n") == 1 and "no Glance backend found" in stderr and "nova_api" in stderr


@pytest.mark.parametrize("argv", [
    ["--stats-url", "ftp://lb/stats"],
    ["--stats-url", "http://user:pw@lb/stats"],
    ["--stats-url", "http://127.0.0.1:1/stats"],
    ["--stats-url", "http://127.0.0.1:1/stats", "--ssh-port", "0"],
    ["--stats-url", "http://127.0.0.1:1/stats", "--target-release", "zed"],
    ["--stats-url", "http://127.0.0.1:1/stats", "--stats-user", "u"],
    ["--stats-url", "http://127.0.0.1:1/stats", "--identity-file", "/nonexistent/key"],
    ["--stats-url", "http://127.0.0.1:1/stats", "--runtime-socket", "tcp:127.0.0.1:1", "--runtime-socket", "tcp:127.0.0.1:2"],
    ["--stats-url", "http://127.0.0.1:1/stats", "--stats-url", "http://127.0.0.1:1/stats"],
    ["--stats-url", "http://127.0.0.1:1/stats", "--ssh-user", "-oProxyCommand=x"],
    ["--stats-url", "http://127.0.0.1:1/stats", "--known-hosts", "/tmp/kh\x1b[2K"],
    ["--stats-url", "http://127.0.0.1:1/stats", "--stats-user", "a:b", "--stats-password-env", "X"],
    ["--stats-url", "http://127.0.0.1:1/stats", "--stats-user-env", "1BAD", "--stats-password-env", "X"],
    ["--stats-url", "http://127.0.0.1:1/stats", "--runtime-socket", "relative/sock"],
    [],
])
def test_bad_flags_are_one_line_exit_2(argv, tmp_path, capsys):
    code, stdout, stderr = init(capsys, *argv, "-o", str(tmp_path / "c.toml"))
    assert code == 2 and stderr.count("\n") == 1 and stderr.startswith("error: ") and not stdout, stderr
    assert "pw" not in stderr.replace("pw@", "") or "user:pw" not in stderr


def test_what_the_answers_do_not_decide_is_asked_and_check_names_the_question(ssh_operator_key, tmp_path, capsys):
    """Nodes on different databases, a node without SSH, a backend only named like Glance, a release with two
    supported next releases: each is a question; a Nova backend is left out with its reason."""
    nova_port = free_port("127.0.0.49")
    from tests.init_nodes import serve_versions

    nova = serve_versions("127.0.0.49", nova_port, NOVA_VERSIONS)
    extra = (f"\nbackend glance_registry\n    server old-registry 127.0.0.48:1\n"
             f"\nbackend nova_api\n    server nova-1 127.0.0.49:{nova_port}\n")
    answers = {"glance-1": eventlet("2:26.1.0-0ubuntu1", None), "glance-2": eventlet("2:26.1.0-0ubuntu1", None, host="10.0.0.6"),
               "glance-3": eventlet("2:26.1.0-0ubuntu1", None)}
    cluster = start_cluster(tmp_path / "c", ssh_operator_key, answers, hosts=["127.0.0.44", "127.0.0.45", "127.0.0.46"],
                            backends={"glance_api": ["glance-1", "glance-2", "glance-3"]}, extra_config=extra)
    known = write_known_hosts(tmp_path / "known_hosts", [n.sshd for n in cluster.nodes])
    cluster.nodes[2].sshd.stop()
    out = tmp_path / "asked.toml"
    try:
        code, _, stderr = init(capsys, "--stats-url", cluster.lbs[0].stats_url, *ssh_args(cluster, known, ssh_operator_key), "-o", str(out))
    finally:
        cluster.stop()
        nova.shutdown()
        nova.server_close()
    assert code == 0, stderr
    text = out.read_text()
    asked = questions(text)
    assert len(asked) == 4 and "4 questions to answer before `check`" in stderr and "the file does not load" in stderr, asked
    assert any("the nodes name different databases" in q and "10.0.0.5" in q and "10.0.0.6" in q for q in asked), asked
    assert any("answers no SSH" in q and "refused" in q for q in asked), asked
    assert any("backend glance_registry" in q and "named like Glance" in q for q in asked), asked
    target_q = [q for q in asked if q.startswith("target_release: the nodes run 2023.1: which release is the target? 2023.2 | 2024.1")]
    assert len(target_q) == 1 and "glance-1: its repository offers no glance-api candidate" in target_q[0], asked
    assert "not Glance: nova_api (no server answers Glance's /versions)" in flat(text)
    assert SECRET not in text + stderr
    # The target is never guessed: it is commented out under its question, and check says so in one line.
    assert "target_release" not in data_of(text)["policy"] and "NOT DECIDED" not in text
    code = main(["-c", str(out), "check"])
    out_, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "policy.target_release" in err and "which release is the target? 2023.2 | 2024.1" in err, err
    assert "answer the QUESTION above policy.target_release, or pass --target-release to init" in err, err
    config = answered(text, "2024.1", tmp_path / "answered.toml")  # the other questions are comments: answered, the file loads
    assert [n.name for n in config.nodes] == ["glance-1", "glance-2", "glance-3"]
    assert config.lbs[0].backends == ["glance_api"]
    data = data_of(text)
    assert set(data["database"]) == {"password_env"}  # the disagreeing values are commented out, not guessed
    assert '# host = "10.0.0.5"' in text and '# host = "10.0.0.6"' in text
    assert config.policy.target_release == "2024.1"


def kolla(engine: str) -> NodeAnswers:
    return NodeAnswers(engine=engine, containers=["glance_api quay.io/openstack.kolla/glance-api:2024.1-ubuntu-jammy running",
                                                  "glance_tls_proxy quay.io/openstack.kolla/haproxy:2024.1 running"],
                       container_version="28.2.0", dpkg_version=None,
                       connection=f"mysql+pymysql://glance:{SECRET}@192.0.2.10:3306/glance", versions=GLANCE_VERSIONS,
                       processes=["/var/lib/kolla/venv/bin/python3 /var/lib/kolla/venv/bin/glance-api"])


def test_kolla_nodes_and_a_runtime_socket(ssh_operator_key, tmp_path, capsys):
    """Kolla nodes are told by their container (engine, name, image, the container's Glance version and
    config); a stats page without legends gives no addresses, the runtime API does."""
    cluster = start_cluster(tmp_path / "c", ssh_operator_key, {"ctl-1": kolla("docker"), "ctl-2": kolla("docker")},
                            hosts=["127.0.0.51", "127.0.0.52"], backends={"glance_api": ["ctl-1", "ctl-2"]}, show_legends=False)
    known = write_known_hosts(tmp_path / "known_hosts", [n.sshd for n in cluster.nodes])
    lb = cluster.lbs[0]
    args = ["--stats-url", lb.stats_url, *ssh_args(cluster, known, ssh_operator_key)]
    try:
        code, _, stderr = init(capsys, *args, "-o", str(tmp_path / "none.toml"))
        assert code == 1 and stderr.count("\n") == 1, stderr  # no address: nothing can be probed or written
        assert not (tmp_path / "none.toml").exists()
        out = tmp_path / "kolla.toml"
        with socket.create_connection(("127.0.0.1", lb.runtime_tcp_port), timeout=5) as runtime:  # ctl-2 drained while init reads
            runtime.sendall(b"set server glance_api/ctl-2 state drain\n")
            assert runtime.recv(1024).strip() == b"", "HAProxy refused the drain"
        code, _, stderr = init(capsys, *args, "--runtime-socket", f"tcp:127.0.0.1:{lb.runtime_tcp_port}", "-o", str(out))
    finally:
        cluster.stop()
    assert code == 0, stderr
    text = out.read_text()
    said = flat(text)
    # What the runtime API tells (the exact admin state, HAProxy's version) is said; hard-stop-after is in no answer.
    drained = [block for block in text.split("[[nodes]]") if "HAProxy has this server in DRAIN now" in flat(block)]
    assert len(drained) == 1 and 'name = "ctl-2"' in drained[0], text
    assert re.search(r"The runtime API answers as HAProxy 2\.\d+\.\d+\S* \(`show info`; up ", said), text
    assert "init cannot read it: neither the stats CSV nor the runtime API's `show info` has a field for it" in said
    assert "hard_stop_after" not in data_of(text)["load_balancers"][0]
    config = answered(text, "2025.1", tmp_path / "answered.toml")
    assert config.lbs[0].runtime_socket == f"tcp:127.0.0.1:{lb.runtime_tcp_port}"
    assert "runtime API `show servers state`" in said
    assert [n.ssh_host for n in config.nodes] == ["127.0.0.51", "127.0.0.52"]
    assert "docker container glance_api (running) of image quay.io/openstack.kolla/glance-api:2024.1-ubuntu-jammy" in said
    assert "release: 2024.1 (version 28.2.0)" in said
    assert (config.database.host, config.database.port) == ("192.0.2.10", 3306)
    assert config.commands.kind == "kolla" and all(config.kind_of(n.name) == "kolla" for n in config.nodes)
    settings = config.kolla_of("ctl-1")
    assert (settings.engine, settings.container, settings.image) == ("docker", "glance_api", "quay.io/openstack.kolla/glance-api")
    asked = questions(text)
    # Kolla nodes have no package repository to ask: the target is a question (2024.1 is a SLURP: 2024.2 or 2025.1),
    # and so is the tag that follows it — nothing is guessed.
    assert any("2024.2 | 2025.1" in q and "ctl-1: kolla node, no package repository to ask" in q for q in asked), asked
    assert any("the running tag 2024.1-ubuntu-jammy gives <target>-ubuntu-jammy" in q for q in asked), asked
    assert settings.target_tag == "unset-see-question"
    assert SECRET not in text + stderr


def test_hostile_server_names_and_one_host_twice_are_questions(tmp_path, capsys):
    """A stats page whose Glance servers have names the config refuses (an escape sequence, a space, 300
    characters) or share one host: each is asked about, commented out, and the file still loads. Nothing
    answers SSH here, so each written node is asked about too."""
    from tests.init_nodes import serve_versions

    glance = [serve_versions(f"127.0.0.{h}", free_port(f"127.0.0.{h}"), GLANCE_VERSIONS) for h in (61, 62, 63, 63, 64, 65)]
    names = ["good-1", "evil\x1b[2K", "good-2", "good-3", "sp ace", "x" * 300]
    rows = b"".join(f'glance_api,"{n}",0,0,UP,1,{s.server_address[0]}:{s.server_address[1]},\n'.encode() for n, s in zip(names, glance))
    page = HEADER + b"glance_api,FRONTEND,0,0,OPEN,,,\n" + rows + b"glance_api,BACKEND,0,0,UP,1,,\n"
    server, port = serve_bodies({"/stats": (200, page)})
    out = tmp_path / "hostile.toml"
    try:
        code, _, stderr = init(capsys, "--stats-url", f"http://127.0.0.1:{port}/stats", "--timeout", "2", "--ssh-port", str(free_port()),
                               "--known-hosts", str(tmp_path / "none"), "-o", str(out))
    finally:
        for s in [server, *glance]:
            s.shutdown()
            s.server_close()
    assert code == 0, stderr
    text = out.read_text()
    config = answered(text, "2024.1", tmp_path / "answered.toml")  # nothing answers SSH: the target is asked too
    assert [n.lb_server for n in config.nodes] == ["good-1", "good-2"]
    asked = questions(text)
    assert any("server good-3 is on the host of server good-2" in q for q in asked), asked
    assert any("\\x1b" in q for q in asked) and "\x1b" not in text  # shown escaped, never raw
    assert any("sp ace" in q for q in asked) and any("x" * 300 in q for q in asked), asked
    assert any("answers no SSH" in q for q in asked), asked


def test_osa_nodes_and_a_packaged_one(ssh_operator_key, tmp_path, capsys):
    """OpenStack-Ansible nodes (Glance's uWSGI from /openstack/venvs/glance-…, reached inside their LXC container)
    beside one packaged node: [commands] kind is the most common, the other node has its own kind; what no
    node shows (the target venv's tag, how OSA installs it) is asked, written so that it fails safe."""
    osa = NodeAnswers(processes=["/openstack/venvs/glance-31.1.0/bin/uwsgi --autoload --ini /etc/uwsgi/glance-api.ini"] * 2,
                      units={"glance-api": "active"}, connection=f"mysql+pymysql://glance:{SECRET}@172.29.236.100:3306/glance",
                      versions=GLANCE_VERSIONS)
    cluster = start_cluster(tmp_path / "c", ssh_operator_key, {"infra1-glance": osa, "infra2-glance": osa,
                                                               "metal-glance": eventlet(host="172.29.236.100")},
                            hosts=["127.0.0.55", "127.0.0.56", "127.0.0.57"],
                            backends={"glance_api": ["infra1-glance", "infra2-glance", "metal-glance"]})
    known = write_known_hosts(tmp_path / "known_hosts", [n.sshd for n in cluster.nodes])
    out = tmp_path / "osa.toml"
    try:
        code, _, stderr = init(capsys, "--stats-url", cluster.lbs[0].stats_url, *ssh_args(cluster, known, ssh_operator_key), "-o", str(out))
    finally:
        cluster.stop()
    assert code == 0, stderr
    text = out.read_text()
    asked = questions(text)
    assert any(q.startswith("target_release:") and "infra1-glance: osa node, no package repository to ask" in q for q in asked), asked
    config = answered(text, "2025.2", tmp_path / "answered.toml")
    assert config.commands.kind == "osa" and [config.kind_of(n.name) for n in config.nodes] == ["osa", "osa", "packages"]
    settings = config.osa_of("infra1-glance")
    assert (settings.container, settings.venv_root) == ("", "/openstack/venvs")
    assert "Glance runs from the OpenStack-Ansible venv /openstack/venvs/glance-31.1.0" in flat(text)
    assert any("which venv is the target?" in q for q in asked) and any("how is the target venv installed?" in q for q in asked), asked
    assert "exit 1" in config.commands.upgrade  # until answered, the upgrade fails and changes nothing
    assert SECRET not in text + stderr


def test_target_release_glance_does_not_support_is_one_line_exit_2(packaged, ssh_operator_key, tmp_path, capsys):
    cluster, known = packaged
    out = tmp_path / "x.toml"
    code, _, stderr = init(capsys, "--stats-url", cluster.lbs[0].stats_url, *ssh_args(cluster, known, ssh_operator_key),
                           "--target-release", "2026.1", "-o", str(out))
    assert code == 2 and stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
    assert "--target-release 2026.1 is not an upgrade Glance supports from 2024.1" in stderr and "2024.2 | 2025.1" in stderr, stderr
    assert not out.exists()


def packaged_node(name: str, version: str | None, candidate: str | None, kind: str | None = "packages"):
    from glance_tui.init.discover import NodePlan
    from glance_tui.init.lbread import Address
    from glance_tui.init.nodeprobe import NodeFindings

    return NodePlan(name, name, Address("10.0.0.1", 9292), findings=NodeFindings(kind=kind, version=version, candidate=candidate))


@pytest.mark.parametrize(("nodes", "decided", "asked"), [
    # every packaged node's repository offers the same supported next release: decided
    ([("a", "28.2.0", "30.0.0"), ("b", "28.2.0", "30.0.0")], "2025.1", ""),
    # mid-upgrade: one node already runs what every repository offers
    ([("a", "28.2.0", "29.0.0"), ("b", "29.0.0", "29.0.0")], "2024.2", ""),
    # repositories disagree: the choices and what each node offers
    ([("a", "28.2.0", "29.0.0"), ("b", "28.2.0", "30.0.0")], None,
     "which release is the target? 2024.2 | 2025.1 (each a supported upgrade from 2024.1) — their package repositories offer different "
     "releases (a offers 2024.2; b offers 2025.1)"),
    # the candidate is not a jump Glance supports (2024.1 -> 2026.1 skips a SLURP)
    ([("a", "28.2.0", "32.0.0"), ("b", "28.2.0", "32.0.0")], None, "their package repository offers 2026.1, not an upgrade Glance supports from 2024.1"),
    # nothing newer offered
    ([("a", "28.2.0", "28.2.0")], None, "their package repository offers nothing newer (a offers 2024.1)"),
    # one repository gives no candidate (no apt-cache, an RDO node, no glance-api in its sources)
    ([("a", "28.2.0", "29.0.0"), ("b", "28.2.0", None)], None, "b: its repository offers no glance-api candidate"),
    # a Kolla node has no repository to ask
    ([("a", "28.2.0", "29.0.0"), ("k", "28.2.0", None, "kolla")], None, "k: kolla node, no package repository to ask"),
])
def test_the_target_is_what_every_repository_offers_or_a_question(nodes, decided, asked):
    from glance_tui.init.discover import _target

    found = _target([packaged_node(*n) for n in nodes], None)
    assert found.value == decided, found
    assert asked in found.question and (found.placeholder != "") == (decided is None)


def rdo(version: str = "28.2.0-1.el9s", offers: str | None = "29.0.0-1.el9s", cache: bool = True) -> NodeAnswers:
    """An RDO node: openstack-glance from rpm, the eventlet glance-api under systemd's openstack-glance-api, dnf's cache."""
    return NodeAnswers(processes=["/usr/bin/python3 /usr/bin/glance-api"], units={"openstack-glance-api": "active"},
                       rpm_version=version, has_dnf=True, dnf_offers=offers, dnf_cache=cache,
                       connection=f"mysql+pymysql://glance:{SECRET}@192.0.2.20:3306/glance", versions=GLANCE_VERSIONS)


async def _run_on(config, node: str, ssh_port: int, commands: list[str]) -> list:
    from glance_tui.adapters.ssh import NodeSSH

    spec = next(n for n in config.nodes if n.name == node)
    async with NodeSSH(spec, config.ssh) as conn:
        return [await conn.run(c, timeout=10) for c in commands]


def test_rdo_nodes_read_with_rpm_and_dnf_get_rdo_commands(ssh_operator_key, tmp_path, capsys):
    """RDO nodes: the version from rpm, the candidate from dnf's cache (the fake dnf refuses to run without
    --cacheonly), the target decided from it; [commands] carries RDO's upgrade/installed_version/installed_at,
    which run on the node and read back as the version and the install time. A node whose dnf has no cache,
    and an RDO node beside a Debian one, are questions."""
    import asyncio

    from glance_tui.commands import NodeCommands
    from glance_tui.node.readings import parse_epoch
    from glance_tui.releases import parse_version

    cluster = start_cluster(tmp_path / "c", ssh_operator_key, {"rdo-1": rdo(), "rdo-2": rdo()}, hosts=["127.0.0.71", "127.0.0.72"],
                            backends={"glance_api": ["rdo-1", "rdo-2"]})
    known = write_known_hosts(tmp_path / "known_hosts", [n.sshd for n in cluster.nodes])
    args = ["--stats-url", cluster.lbs[0].stats_url, *ssh_args(cluster, known, ssh_operator_key)]
    try:
        out = tmp_path / "rdo.toml"
        code, _, stderr = init(capsys, *args, "-o", str(out))
        assert code == 0, stderr
        text = out.read_text()
        assert questions(text) == [], text
        config = load_config(out)
        assert config.policy.target_release == "2024.2"
        assert "dnf --cacheonly repoquery openstack-glance on every node" in flat(text)
        assert "release: 2024.1 (version 28.2.0); the repository offers 29.0.0" in flat(text)
        c = config.commands
        assert c.kind == "packages" and c.services == ["openstack-glance-api"] and c.upgrade.startswith("dnf -y --refresh upgrade openstack-glance")
        cmds = NodeCommands(config, "rdo-1")
        version, at = asyncio.run(_run_on(config, "rdo-1", cluster.ssh_port, [cmds.installed_version().command, cmds.installed_at().command]))
        assert version.ok and parse_version(version.stdout) == "28.2.0", version
        assert at.ok and parse_epoch(at.stdout) == 1733400000, at

        cluster.nodes[1].set_answers(rdo(cache=False))
        code, _, stderr = init(capsys, *args, "-o", str(out), "--force")
        assert code == 0, stderr
        asked = questions(out.read_text())
        assert len(asked) == 1 and asked[0].startswith("target_release: the nodes run 2024.1"), asked
        assert "rdo-2: `dnf -q --cacheonly repoquery" in asked[0] and "exited 1 (Error: Cache-only enabled but no cache" in asked[0], asked
        assert "run `dnf makecache` on it, or give --target-release" in asked[0], asked

        cluster.nodes[1].set_answers(eventlet(host="192.0.2.20"))
        code, _, stderr = init(capsys, *args, "-o", str(out), "--force", "--target-release", "2024.2")
        assert code == 0, stderr
        text = out.read_text()
        asked = questions(text)
        assert len(asked) == 2 and "the nodes run Glance under different units (glance-api, openstack-glance-api)" in asked[0], asked
        assert asked[1].startswith("rdo-1 is an RDO node (rpm, dnf) beside other nodes (rdo-2: packages (deb))"), asked
        assert "installed_version" not in data_of(text)["commands"]  # not guessed: Debian's defaults stay, the question says RDO's
        assert load_config(out).policy.target_release == "2024.2"
    finally:
        cluster.stop()
    assert SECRET not in text + stderr


def test_rpm_and_dnf_answers_are_read_as_rdo_prints_them():
    """A node's survey sections as rpm and dnf print them: a version and a candidate; rpm's "not installed"; dnf's
    cache-only error (dnf 4: "Cache-only enabled but no cache for '<repo>'", dnf 5: '... for repository "<repo>"')."""
    from glance_tui.init.discover import _target
    from glance_tui.init.nodeprobe import classify

    rdo_node = packaged_node("rdo-1", None, None)
    assert rdo_node.findings is not None
    classify({"tools": "systemctl\nrpm\ndnf", "units": "openstack-glance-api active 0", "rpm": "28.2.0-1.el9s",
              # a warning line (made up) that names a version before the answer: only a line that is one version counts
              "dnf": "exit=0\nWarning: python3-libdnf 0.69.0 reports a locale problem\n30.0.0",
              "processes": "0\n", "end": ""}, rdo_node.findings)
    f = rdo_node.findings
    assert (f.kind, f.unit, f.packager, f.release, f.candidate_release) == ("packages", "openstack-glance-api", "rpm", "2024.1", "2025.1")
    found = _target([packaged_node("deb-1", "28.2.0", "30.0.0"), rdo_node], None)
    assert found.value == "2025.1", found
    for dnf, why in [("exit=1\nCache-only enabled but no cache for repository \"rdo\"", "no cache for repository"),
                     ("exit=0", "its repositories (dnf's cached metadata) offer no openstack-glance"), ("", "was not run")]:
        other = packaged_node("rdo-2", None, None)
        classify({"tools": "rpm\ndnf", "units": "openstack-glance-api active 0", "rpm": "28.2.0-1.el9s", "dnf": dnf, "processes": "0\n"},
                 other.findings)
        assert other.findings.candidate is None and why in other.findings.repository, (dnf, other.findings)
        assert why in _target([rdo_node, other], None).question
    none = packaged_node("x", None, None)
    classify({"tools": "rpm", "rpm": "package openstack-glance is not installed", "units": "openstack-glance-api active 0"}, none.findings)
    assert none.findings.version is None and none.findings.packager is None
    no_dnf = packaged_node("y", None, None)
    classify({"tools": "rpm", "rpm": "28.2.0-1.el9s", "units": "openstack-glance-api active 0"}, no_dnf.findings)
    assert no_dnf.findings.repository.startswith("no dnf on it")


def test_a_non_root_user_is_asked_about_sudo_and_sudo_never_prompts(ssh_operator_key, tmp_path, capsys):
    """A node as a non-root user sees it (RDO's config 0640 root:glance; ss hiding the port's holder): without
    --sudo each is a question naming --sudo; with --sudo the survey runs through `sudo -n` and the config says
    ssh.sudo = true; a sudo that wants a password is a question that says so, never "no SSH" or a guess."""
    node = rdo()
    node.uid, node.conf_denied, node.sudo = 1000, True, "nopasswd"
    cluster = start_cluster(tmp_path / "c", ssh_operator_key, {"rdo-1": node}, hosts=["127.0.0.73"], backends={"glance_api": ["rdo-1"]})
    known = write_known_hosts(tmp_path / "known_hosts", [n.sshd for n in cluster.nodes])
    args = ["--stats-url", cluster.lbs[0].stats_url, *ssh_args(cluster, known, ssh_operator_key), "--target-release", "2024.2"]
    out = tmp_path / "sudo.toml"
    try:
        code, _, stderr = init(capsys, *args, "-o", str(out))
        assert code == 0, stderr
        asked = questions(out.read_text())
        assert any("may not read Glance's config on this node (`cat /etc/glance/glance-api.conf` exited 1 "
                   "(cat: /etc/glance/glance-api.conf: Permission denied))" in q and "run init again with --sudo" in q for q in asked), asked
        assert any(f"shows root the listener on port {cluster.nodes[0].api_port} but not the process holding it" in q for q in asked), asked
        assert "sudo" not in data_of(out.read_text())["ssh"]

        code, _, stderr = init(capsys, *args, "--sudo", "-o", str(out), "--force")
        assert code == 0, stderr
        text = out.read_text()
        assert questions(text) == [], text
        config = load_config(out)
        assert config.ssh.sudo is True and config.database.host == "192.0.2.20"

        node.sudo = "password"
        cluster.nodes[0].set_answers(node)
        code, _, stderr = init(capsys, *args, "--sudo", "-o", str(out), "--force")
        assert code == 0, stderr
        text = out.read_text()
    finally:
        cluster.stop()
    asked = questions(text)
    assert any(q.startswith("sudo -n refused to run the survey as root (sudo: a password is required)") and "NOPASSWD" in q for q in asked), asked
    assert not any("answers no SSH" in q for q in asked), asked
    assert SECRET not in text + stderr


@pytest.mark.parametrize(("stderr", "said"), [
    ("sudo: a password is required\n", "sudo: a password is required"),  # sudo -n, a sudoers rule without NOPASSWD (sudo(8))
    ("ops is not in the sudoers file.  This incident will be reported.\n", "ops is not in the sudoers file.  This incident will be reported."),
    ("Sorry, user ops is not allowed to execute '/bin/sh -c x' as root on n1.\nsudo: ops is not allowed to run sudo\n", "sudo: ops is not allowed to run sudo"),
    ("sh: 1: sudo: not found\n", "sh: 1: sudo: not found"),  # dash
    ("bash: line 1: sudo: command not found\n", "bash: line 1: sudo: command not found"),  # bash
    ("cat: /etc/glance/glance-api.conf: Permission denied\n", ""),
])
def test_sudo_refusals_are_told_from_other_failures(stderr, said):
    from glance_tui.init.privilege import sudo_question, sudo_refusal

    assert sudo_refusal(stderr) == said
    if said:
        assert ("this node has no sudo" in sudo_question("ops", said)) == ("not found" in said)


def test_the_example_config_shows_the_rdo_commands_init_writes():
    """One owner: config.example.toml's commented RDO lines are rpmnode's commands."""
    from glance_tui.init import rpmnode

    example = (Path(__file__).parents[1] / "config.example.toml").read_text()
    for key, value in rpmnode.COMMANDS.items():
        line = next(ln for ln in example.splitlines() if ln.startswith(f"# {key} = ") and "openstack-glance" in ln)
        assert tomllib.loads(line[2:].split("   #")[0])[key] == value, line


@pytest.mark.parametrize(("uid", "ss", "denied", "asked"), [
    ("0", "LISTEN 0 128 10.0.0.1:9292 0.0.0.0:*", "", 0),  # root sees every holder
    ("1000", 'LISTEN 0 128 10.0.0.1:9292 0.0.0.0:* users:(("glance-api",pid=812,fd=4))', "", 0),  # ss names it: readable
    ("1000", "LISTEN 0 128 10.0.0.1:9292 0.0.0.0:*", "", 1),  # a listener without its process: hidden from this user
    ("1000", "", "", 0),  # nothing listens now: nothing to tell
    ("1000", "sh: 1: ss: not found", "", 0),  # no ss: not a hidden holder (the tool's own listeners probe says so)
    ("1000", "", "Permission denied", 1),
    ("", "LISTEN 0 128 10.0.0.1:9292 0.0.0.0:*", "Permission denied", 0),  # id did not answer: not assumed either way
])
def test_what_a_non_root_user_cannot_read_is_asked(uid, ss, denied, asked):
    from glance_tui.init.privilege import unprivileged_questions

    found = unprivileged_questions("ops", uid, ss, "9292", denied)
    assert len(found) == asked and all("--sudo" in q for q in found), found
