"""Import contracts: the engine never needs Textual; the UI talks only to glance_tui.api."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_screens_use_only_the_public_api():
    offenders = []
    for path in (ROOT / "screens").rglob("*.py"):
        for name in _imports(path):
            if name.startswith("glance_tui") and name != "glance_tui.api":
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offenders, offenders
