"""screens/ talks to the engine only through glance_tui.api (an import-linter contract in
pyproject.toml, run by tests/test_architecture.py); the engine never needs Textual."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_engine_imports_without_textual():
    code = "import sys, glance_tui.api, glance_tui.engine; assert not [m for m in sys.modules if m.split('.')[0] in ('textual', 'screens')]"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_run_tui_reports_a_bad_config_in_one_line(tmp_path, capsys):
    from screens.app import run_tui

    bad = tmp_path / "bad.toml"
    bad.write_text("[database]\nhost = 1\n")
    assert run_tui(str(bad), dry_run=False, resume=None) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err and "fix:" in err
