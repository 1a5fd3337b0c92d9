"""Command templates are quoted; the journal is append-only, fsync'd, redacted and resumable."""

from __future__ import annotations

import json
import os
import shlex


from glance_tui.commands import NodeCommands, quote_args, render
from glance_tui.config import parse_config
from glance_tui.journal import Journal, journal_dir, read_records, unfinished_journal
from glance_tui.secrets import Secret


def config(**commands):
    os.environ["CMD_TEST_PW"] = "pw-for-commands"
    return parse_config({
        "database": {"password_env": "CMD_TEST_PW"},
        "load_balancer": {"stats_url": "http://lb/stats", "backend": "b"},
        "commands": commands,
        "nodes": [{"name": "n1", "ssh_host": "h", "lb_server": "s1", "api_url": "http://h:9292"},
                  {"name": "n2", "ssh_host": "h2", "lb_server": "s2", "api_url": "http://h2:9292"}],
        "policy": {"target_release": "2024.1", "target_version": "28.2.0"},
    })


def test_placeholders_are_shell_quoted():
    hostile = "x'; rm -rf / #"
    assert shlex.split(render("echo {node}", node=hostile)) == ["echo", hostile]
    assert render("install glance={target_version}", target_version="28.2.0") == "install glance=28.2.0"


def test_glance_manage_arguments_quoted():
    cmds = NodeCommands(config(glance_manage="/opt/glance venv/bin/glance-manage"), "n1")
    assert cmds.db_expand().command == "/opt/glance venv/bin/glance-manage db expand"
    assert cmds.db_expand().changes and not cmds.db_check().changes
    assert quote_args("a b", "$(x)") == "'a b' '$(x)'"


def test_rollback_only_when_configured():
    assert NodeCommands(config(), "n1").rollback() is None
    cmd = NodeCommands(config(rollback="downgrade --node {node}"), "n1").rollback()
    assert cmd is not None and cmd.command == "downgrade --node n1"


def test_journal_append_redact_and_resume(tmp_path):
    Secret("journal-secret-value", "test")
    directory = journal_dir(tmp_path / "cfg.toml", tmp_path / "state")
    j = Journal.create(directory, config_path=tmp_path / "cfg.toml", target_release="2024.1")
    j.write("command", command="mysql -pjournal-secret-value", exit=0)
    assert unfinished_journal(directory).path == j.path
    text = j.path.read_text()
    assert "journal-secret-value" not in text and "********" in text
    assert oct(j.path.stat().st_mode & 0o777) == "0o600"
    # a torn last line (crash mid-write) is skipped
    with open(j.path, "a") as fh:
        fh.write('{"event": "act')
    events = [r["event"] for r in read_records(j.path)]
    assert events == ["run.start", "command"]
    j.write("run.end", ok=True)
    assert unfinished_journal(directory) is None
    assert json.loads(j.path.read_text().splitlines()[0])["target_release"] == "2024.1"


def test_journals_are_per_config(tmp_path):
    a = journal_dir(tmp_path / "a.toml", tmp_path)
    b = journal_dir(tmp_path / "b.toml", tmp_path)
    assert a != b
