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


def test_the_real_engine_and_the_scripted_one_are_both_what_the_screens_use(tmp_path):
    """``glance_tui.api.EngineView`` types the engine the screens get; the scripted engine of the UI
    tests builds the real plan (its step ids, action ids and gate ids are the real ones)."""
    from glance_tui.api import Engine, EngineView, RunState
    from glance_tui.context import Context
    from glance_tui.gates import PREFLIGHT
    from glance_tui.journal import NullJournal
    from glance_tui.plan import build_plan
    from tests.ui_scripted import ScriptedEngine, scripted_config

    config = scripted_config(tmp_path)
    scripted = ScriptedEngine(config, tmp_path / "journal", state=RunState(new_node="glance-1"))
    real = Engine(config, journal=NullJournal(), state=RunState(new_node="glance-1"), dry_run=True)
    assert isinstance(scripted, EngineView) and isinstance(real, EngineView)
    want = build_plan(Context(config, None, NullJournal(), RunState(new_node="glance-1"), lambda e: None))  # type: ignore[arg-type]
    shape = lambda plan: [(s.id, [g.id for g in s.gates], [(a.id, [g.id for g in a.gates]) for a in s.actions]) for s in plan.steps]  # noqa: E731
    assert shape(scripted.plan) == shape(want) == shape(real.plan)
    assert [g.id for g in scripted.plan.step("preflight").gates] == [g.id for g in PREFLIGHT]
    assert "api-v2-only" in scripted.gates
