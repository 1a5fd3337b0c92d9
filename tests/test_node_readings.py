"""The node's raw readings parsed strictly, and each runtime's patterns and dating rule, on the
exact text real nodes print (``ps``, ``ss -Htlnp``; the real-process truth table is in
tests/test_node_recognition.py)."""

from __future__ import annotations

import pytest

from glance_tui.node import CODE_INSTALLED, CODE_MIXED, CODE_OLD
from glance_tui.node.probe import on_api
from glance_tui.node.readings import Connection, Listener, Proc, parse_connections, parse_listeners, parse_processes
from glance_tui.node.runtimes import code_runners, compile_patterns, default_patterns
from glance_tui.node.verdict import Health, Readings, judge, served_tree

PATTERNS = compile_patterns(default_patterns(["glance-api"]))


def test_processes_give_clock_pid_ppid_start_comm_args():
    now, procs = parse_processes("1700000100\n  812     1   100 uwsgi /v/bin/python3 /v/bin/uwsgi --ini /etc/glance/glance-api-uwsgi.ini\n"
                                 "  813   812    40 uwsgi /v/bin/python3 /v/bin/uwsgi --ini /etc/glance/glance-api-uwsgi.ini\n 9 1 5 kthreadd\n")
    assert now == 1700000100.0
    assert procs[0] == Proc(812, 1, 1700000000.0, "uwsgi", "/v/bin/python3 /v/bin/uwsgi --ini /etc/glance/glance-api-uwsgi.ini")
    assert procs[1].ppid == 812 and procs[1].started_at == 1700000060.0
    assert procs[2].args == "kthreadd"  # no args: the COMM stands for them


@pytest.mark.parametrize("text", ["", "not-a-clock\n1 1 1 x", "1700000000\n812 100 uwsgi", "1700000000\n812 1 abc uwsgi x"])
def test_processes_that_are_not_the_format_are_an_error_never_nothing_runs(text):
    with pytest.raises(ValueError):
        parse_processes(text)


def test_listeners_name_every_holder_and_wildcards():
    out = ('LISTEN 0 100 127.0.0.11:9292 0.0.0.0:* users:(("uwsgi",pid=813,fd=3),("uwsgi",pid=812,fd=3))\n'
           "LISTEN 0 128 [::]:9292 [::]:* users:((\"apache2\",pid=70,fd=4))\n"
           "LISTEN 0 128 0.0.0.0:9292 0.0.0.0:*\n"
           "LISTEN 0 128 127.0.0.12%lo:9292 0.0.0.0:*\n")
    listeners = parse_listeners(out)
    assert listeners[0] == Listener("127.0.0.11", 9292, ((813, "uwsgi"), (812, "uwsgi")))
    assert listeners[1].address == "::" and listeners[1].holders == ((70, "apache2"),) and listeners[1].where == "[::]:9292"
    assert listeners[2].holders == ()  # ss could not name them (another namespace, no privilege)
    assert [x.address for x in on_api(listeners, "127.0.0.11", 9292)] == ["127.0.0.11", "::", "0.0.0.0"]
    assert len(on_api(listeners, "glance-1.example", 9292)) == 4  # a name: every address counts
    assert on_api(listeners, "127.0.0.11", 9293) == []
    assert parse_listeners("") == [] and parse_listeners("\n") == []


@pytest.mark.parametrize("text", ["State Recv-Q Send-Q Local\n", "LISTEN 0 128 nonsense 0.0.0.0:*",
                                  "LISTEN 0 128 127.0.0.1:9292 0.0.0.0:* users:(garbled)", "ESTAB 0 0 1.2.3.4:5 6.7.8.9:10"])
def test_listener_lines_that_are_not_ss_are_an_error(text):
    with pytest.raises(ValueError):
        parse_listeners(text)


@pytest.mark.parametrize(("args", "glance"), [
    ("/usr/bin/python3 /usr/bin/glance-api --config-file /etc/glance/glance-api.conf", True),
    ("glance-api", True),
    ("/bin/sh /opt/bin/glance-api", True),
    ("/v/bin/python3 /v/bin/uwsgi --http-socket 127.0.0.61:9292 --master --lazy-apps --module glance.wsgi.api:application", True),
    ("/usr/bin/uwsgi_python3 --ini /etc/glance/glance-api-uwsgi.ini", True),
    ("uwsgi --ini=/etc/glance/glance-api-uwsgi.ini", True),
    ("(wsgi:glance-api)     -k start", True),
    ("/usr/sbin/apache2 -k start", False),
    ("dpkg-query -W glance-api", False),
    ("systemctl stop glance-api", False),
    ("tail -f /var/log/glance/glance-api.log", False),
    ("uwsgi --ini /etc/nova/nova-api-uwsgi.ini", False),
    ("vim /etc/glance/glance-api.conf", False),
])
def test_default_patterns_know_each_runtime_not_a_mention(args, glance):
    assert any(p.search(args) for p in PATTERNS) is glance


def test_an_invalid_pattern_is_named():
    with pytest.raises(ValueError, match="not a regular expression"):
        compile_patterns(["uwsgi (glance"])


def proc(pid: int, ppid: int, start: float, comm: str, args: str) -> Proc:
    return Proc(pid, ppid, start, comm, args)


APACHE = [
    proc(70, 1, 100.0, "apache2", "/usr/sbin/apache2 -k start"),
    proc(71, 70, 900.0, "apache2", "/usr/sbin/apache2 -k start"),
    proc(72, 70, 900.0, "apache2", "(wsgi:glance-api) -k start"),
    proc(73, 70, 900.0, "apache2", "(wsgi:glance-api) -k start"),
    proc(90, 1, 50.0, "sshd", "sshd: /usr/sbin/sshd -D"),
]


def test_apache_tree_is_dated_by_its_wsgi_daemons_only():
    tree = served_tree(APACHE, [72, 71])
    assert [p.pid for p in tree] == [70, 71, 72, 73]  # up to Apache's parent, down to every child
    assert [p.pid for p in code_runners(tree)] == [72, 73]
    # Apache's parent started before the install, a graceful reload restarted the daemons after it
    v = judge(Readings("glance-1", 9292, procs=APACHE, listeners=(Listener("0.0.0.0", 9292, ((70, "apache2"), (71, "apache2"))),),
                       installed_at=500.0), PATTERNS)
    assert v.running is True and v.code == CODE_INSTALLED and v.stale is False
    v = judge(Readings("glance-1", 9292, procs=APACHE, listeners=(), installed_at=950.0), PATTERNS)
    assert v.code == CODE_OLD and v.stale is True


UWSGI = [
    proc(812, 1, 100.0, "uwsgi", "/v/bin/python3 /v/bin/uwsgi --ini /etc/glance/glance-api-uwsgi.ini"),
    proc(813, 812, 100.0, "uwsgi", "/v/bin/python3 /v/bin/uwsgi --ini /etc/glance/glance-api-uwsgi.ini"),
    proc(814, 812, 900.0, "uwsgi", "/v/bin/python3 /v/bin/uwsgi --ini /etc/glance/glance-api-uwsgi.ini"),
]


def test_uwsgi_tree_is_mixed_when_a_worker_respawned_after_the_install():
    v = judge(Readings("glance-1", 9292, procs=UWSGI, installed_at=500.0), PATTERNS)
    assert v.running is True and v.code == CODE_MIXED and v.stale is True and v.started_at == 100.0


def test_readings_that_disagree_are_unknown_with_the_reason():
    holders = (Listener("127.0.0.11", 9292, ((812, "uwsgi"),)),)
    blind = compile_patterns(["^nothing"])
    v = judge(Readings("glance-1", 9292, procs=UWSGI, listeners=holders), blind)
    assert v.running is None and v.reason == "glance-1: nothing matches process_patterns, but 127.0.0.11:9292 is served by pid 812 (uwsgi)"
    v = judge(Readings("glance-1", 9292, procs=UWSGI, health=Health("http://x:9292/healthcheck", status=200)), blind)
    assert v.running is None and "answered 200" in v.reason
    v = judge(Readings("glance-1", 9292, procs=UWSGI, health=Health("http://x:9292/healthcheck", error="ReadTimeout")), blind)
    assert v.running is None and "not a refusal" in v.reason
    v = judge(Readings("glance-1", 9292, procs=UWSGI, listeners_error="exit 127"), PATTERNS)
    assert v.running is None  # a failing listener read is unknown, even with processes matching
    v = judge(Readings("glance-1", 9292, procs=UWSGI, health=Health("http://x:9292/healthcheck", refused=True)), blind)
    assert v.running is False
    v = judge(Readings("glance-1", 9292, procs=UWSGI, listeners=(Listener("0.0.0.0", 9292, ((999, "uwsgi"),)),), installed_at=50.0), PATTERNS)
    assert v.running is True and v.stale is None and "pid 999 holds :9292" in v.stale_error  # cannot date what it cannot see


def test_connections_to_another_address_on_the_api_port_are_another_services():
    """HAProxy's frontend on a VIP:9292 beside Glance on a Kolla controller (or another lab node on
    the same machine) shares the port, not the address: only connections to the node's own IP count."""
    from glance_tui.node.probe import to_api
    from glance_tui.node.readings import parse_connections

    found = parse_connections("0 0 10.0.0.11:9292 10.0.0.50:40000\n"
                              "0 0 10.0.0.100:9292 10.0.0.51:40001\n"
                              "0 0 [::ffff:10.0.0.11]:9292 [::ffff:10.0.0.52]:40002\n"
                              "0 0 10.0.0.11:8080 10.0.0.53:40003\n")
    assert [c.peer_ip for c in to_api(found, "10.0.0.11", 9292)] == ["10.0.0.50", "10.0.0.52"]
    # a host name: which IPs it means is not known here, so every address on the port counts
    assert [c.peer_ip for c in to_api(found, "glance-1.example", 9292)] == ["10.0.0.50", "10.0.0.51", "10.0.0.52"]
