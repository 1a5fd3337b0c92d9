"""The app in a real terminal: tmux runs it, keys are sent, the pane is read back as text.

It runs the real engine against a config whose services are all unreachable, so what it shows
(LB stale, nodes unreachable, preflight blocked) is what an operator sees on a broken link.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

CONFIG = """
[database]
host = "127.0.0.1"
port = 9
password_file = "{secret}"
connect_timeout = 1

[load_balancer]
stats_url = "http://127.0.0.1:9/stats"
backend = "glance_api"
timeout = 1

[ssh]
known_hosts = "{known_hosts}"
connect_timeout = 1

[[nodes]]
name = "glance-1"
ssh_host = "127.0.0.1"
ssh_port = 9
lb_server = "glance-1"
api_url = "http://127.0.0.1:9"

[[nodes]]
name = "glance-2"
ssh_host = "127.0.0.2"
ssh_port = 9
lb_server = "glance-2"
api_url = "http://127.0.0.2:9"

[policy]
target_release = "2024.1"
"""


class Tmux:
    def __init__(self, tmp: Path) -> None:
        self.socket = f"glance-tui-test-{os.getpid()}"
        self.session = "app"

    def run(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True, capture_output=True, text=True).stdout

    def capture(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.session)

    def wait_for(self, text: str, timeout: float = 60.0) -> str:  # generous: the app starts slowly on a loaded machine
        deadline = time.monotonic() + timeout
        while True:
            screen = self.capture()
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never appeared; the pane shows:\n{screen}")
            time.sleep(0.2)

    def alive(self) -> bool:
        return subprocess.run(["tmux", "-L", self.socket, "has-session", "-t", self.session], capture_output=True).returncode == 0


def test_app_starts_renders_and_quits_in_a_real_terminal(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("pw-tmux-never-shown\n")
    (tmp_path / "known_hosts").write_text("")
    cfg = tmp_path / "glance-tui.toml"
    cfg.write_text(CONFIG.format(secret=secret, known_hosts=tmp_path / "known_hosts"))
    # exactly what an operator types: `glance-tui -c FILE`
    env = f"cd {ROOT} && XDG_STATE_HOME={tmp_path / 'state'} TERM=xterm-256color {sys.executable} -m glance_tui -c {cfg}; echo EXITED $?; sleep 600"  # the pane stays until kill-server: 'EXITED' is read however late
    tmux = Tmux(tmp_path)
    tmux.run("-f", "/dev/null", "new-session", "-d", "-s", tmux.session, "-x", "120", "-y", "40", env)
    tmux.run("resize-window", "-t", tmux.session, "-x", "120", "-y", "40")
    try:
        screen = tmux.wait_for("Checklist")
        assert "glance-tui · 2 nodes → 2024.1" in screen and "Preflight checks" in screen
        screen = tmux.wait_for("LB stale — last seen never")
        screen = tmux.wait_for("unreachable")
        assert "pw-tmux-never-shown" not in screen
        tmux.wait_for("blocked")
        tmux.run("send-keys", "-t", tmux.session, "c")
        tmux.wait_for("Continue is blocked")
        tmux.run("send-keys", "-t", tmux.session, "l")
        tmux.wait_for("run.start")
        tmux.run("send-keys", "-t", tmux.session, "Escape")
        tmux.wait_for("Checklist")
        # bracketed pastes into the palette's input: control characters are refused with a line, and so is a
        # terminal escape (it would retitle the pane; Textual's own parser used to turn it into keys and then
        # take every later key as part of the paste: escape stopped working)
        tmux.run("send-keys", "-t", tmux.session, "C-p")
        tmux.wait_for("Search for commands")
        tmux.run("set-buffer", "reason\twith a bell\x07")
        tmux.run("paste-buffer", "-p", "-t", tmux.session)
        tmux.wait_for("paste refused")
        tmux.run("set-buffer", "\x1b]2;owned\x07title")
        tmux.run("paste-buffer", "-p", "-t", tmux.session)
        tmux.wait_for("␛]2;owned")
        assert "owned" not in tmux.run("display-message", "-p", "-t", tmux.session, "#{pane_title}")
        tmux.run("send-keys", "-t", tmux.session, "Escape")
        tmux.wait_for("Checklist")
        tmux.run("send-keys", "-t", tmux.session, "q")
        tmux.wait_for("EXITED 0")
    finally:
        if tmux.alive():
            tmux.run("kill-server")
