"""screens/ talks to the engine only through glance_tui.api; the engine never needs Textual."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", sorted((ROOT / "screens").glob("*.py")), ids=lambda p: p.name)
def test_screens_import_only_the_public_api(path):
    bad = [n for n in _imports(path) if (n == "glance_tui" or n.startswith("glance_tui.")) and n != "glance_tui.api"]
    assert not bad, f"{path.name} imports {bad}; use glance_tui.api"


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
