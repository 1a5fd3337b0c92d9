"""Import contracts: the engine never needs Textual; the UI talks only to glance_tui.api; what
runs on a node (glance_tui.node) never imports the run (context, plan, gates, engine).

The boundaries themselves are import-linter contracts in pyproject.toml (``[tool.importlinter]``);
these tests run ``lint-imports`` on the tree, show that the contracts do catch a violation, and
import the whole engine with Textual blocked (what the contracts cannot see: imports at run time).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_import_contracts_are_kept():
    proc = lint_imports(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 kept, 0 broken" in proc.stdout, proc.stdout


@pytest.mark.parametrize(("path", "line", "contract"), [
    ("screens/nodes.py", "from glance_tui.engine import Engine\n", "screens/ talks to the engine only through glance_tui.api"),
    ("glance_tui/report.py", "import textual.widgets\n", "the engine never imports Textual or the UI"),
    ("glance_tui/journal.py", "from screens.table import InPlaceTable\n", "the engine never imports Textual or the UI"),
    ("glance_tui/node/verdict.py", "from glance_tui.gates import PREFLIGHT\n", "glance_tui.node never asks the run"),
    ("glance_tui/node/runtimes.py", "import glance_tui.context\n", "glance_tui.node never asks the run"),
])
def test_import_contracts_catch_a_violation(tmp_path, path, line, contract):
    for tree in ("glance_tui", "screens"):
        shutil.copytree(ROOT / tree, tmp_path / tree, ignore=shutil.ignore_patterns("__pycache__", "lab"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / path
    target.write_text(target.read_text() + line)
    proc = lint_imports(tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"{contract}" in proc.stdout and "BROKEN" in proc.stdout, proc.stdout


def test_engine_imports_without_textual():
    code = (
        "import sys, importlib, pkgutil\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'textual' or name.startswith('textual.') or name == 'screens' or name.startswith('screens.'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import glance_tui\n"
        "for m in pkgutil.walk_packages(glance_tui.__path__, 'glance_tui.'):\n"
        "    if m.name != 'glance_tui.__main__':\n"
        "        importlib.import_module(m.name)\n"
        "assert not any(k == 'textual' or k.startswith('textual.') for k in sys.modules)\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
