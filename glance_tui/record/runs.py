"""Finding past runs (``glance-tui runs``) and the one a ``report`` is about."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from glance_tui.errors import UsageError, one_line
from glance_tui.journal_read import JournalProblem, scan
from glance_tui.statedir import state_home
from glance_tui.record.layout import when
from glance_tui.record.model import RunRecord, read_run


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    started: float | None
    outcome: str
    target: str | None
    new_node: str | None
    config: str | None
    journal: str

    @classmethod
    def of(cls, rec: RunRecord) -> "RunSummary":
        return cls(rec.run_id, rec.started, rec.outcome, rec.target_release, rec.new_node, rec.config, rec.journal)

    def as_dict(self) -> dict[str, Any]:
        return {"run": self.run_id, "started": self.started, "started_utc": when(self.started) if self.started else None,
                "outcome": self.outcome, "target_release": self.target, "new_node": self.new_node, "config": self.config,
                "journal": self.journal}


def runs_dir(base: Path | None = None) -> Path:
    return (base or state_home()) / "runs"


def journal_paths(base: Path | None = None) -> list[Path]:
    """Every run's journal, oldest first (run ids start with their UTC start time)."""
    root = runs_dir(base)
    if not root.is_dir():
        return []
    return sorted(root.glob("*/*.jsonl"), key=lambda p: p.name)


Warn = Callable[[str], None]


def list_runs(base: Path | None = None, warn: Warn | None = None) -> list[RunSummary]:
    """Every readable run; a file that is not a usable journal is named through ``warn`` and left out."""
    runs = []
    for path in journal_paths(base):
        try:
            runs.append(RunSummary.of(read_run(path, warn)))
        except JournalProblem as exc:
            if warn is not None:
                warn(f"{exc.what} (skipped)")
    return runs


def _newest_usable(paths: list[Path], warn: Warn | None) -> Path:
    """The newest journal that is one (``report --latest``): the files that are not are named and passed over."""
    for path in reversed(paths):
        try:
            if not (why := scan(path).not_a_journal):
                return path
            problem = f"{path} is not a glance-tui journal: {why}"
        except JournalProblem as exc:
            problem = exc.what
        if warn is not None:
            warn(f"{problem} (skipped)")
    raise UsageError(f"no readable journal under {paths[0].parent.parent}", where="report", fix="pass a journal file path")


def find_journal(run: str | None, base: Path | None = None, warn: Warn | None = None) -> Path:
    """A journal file path as given, a run id (or its unique prefix), or the newest run when ``run`` is None."""
    if run is not None and not run.strip():  # never "every run" (a prefix of all of them)
        raise UsageError("an empty run id", where="report", fix="see `glance-tui runs` for the ids, or give --latest")
    if run and (run.endswith(".jsonl") or "/" in run):
        path = Path(run)
        if not path.is_file():
            what = "a directory" if path.is_dir() else "not a regular file" if path.exists() else None
            raise UsageError(f"{run} is {what}, not a journal file" if what else f"no journal file at {run}", where="report",
                             fix="pass a run id from `glance-tui runs` or a journal file path")
        return path
    paths = journal_paths(base)
    if not paths:
        raise UsageError(f"no run recorded under {runs_dir(base)}", where="report",
                         fix="pass a journal file path, or set XDG_STATE_HOME to where the runs were recorded")
    if run is None:
        return _newest_usable(paths, warn)
    matches = [p for p in paths if p.stem == run] or [p for p in paths if p.stem.startswith(run)]
    if len(matches) != 1:
        what = f"no run {run!r}" if not matches else f"run id {run!r} is ambiguous ({len(matches)} runs)"
        raise UsageError(what, where="report", fix="see `glance-tui runs` for the ids")
    return matches[0]


def runs_text(runs: list[RunSummary]) -> str:
    from glance_tui.report import table

    if not runs:
        return one_line(f"no run recorded under {runs_dir()}")  # XDG_STATE_HOME is the operator's text: escapes shown, not sent
    rows = [[r.run_id, when(r.started), r.outcome, r.target or "?", r.new_node or "-", r.config or "?"] for r in reversed(runs)]
    return table(rows, ["RUN", "STARTED", "OUTCOME", "TARGET", "NEW NODE", "CONFIG"])


def runs_json(runs: list[RunSummary]) -> str:
    return json.dumps({"runs": [r.as_dict() for r in reversed(runs)]}, indent=2)
