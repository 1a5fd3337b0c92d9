"""The end of every run (finished, aborted or failed): outcome, what changed, what is left, the
cluster as probed now, the next safe action, and a key that writes the run's report."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from glance_tui.api import EngineView, RunEnd, run_end, write_report
from screens.failures import ReportsFailedWorkers

HEADLINE = {"finished": ("The upgrade is complete", "bold green"), "aborted": ("The run was aborted", "bold yellow"),
            "failed": ("The run failed", "bold red"), "blocked": ("The run stopped at a gate", "bold yellow")}


def _repeats(detail: str, headline: str) -> bool:
    """``detail`` says nothing the headline does not ("upgrade complete" under "The upgrade is complete")."""
    words = lambda s: set(re.findall(r"[a-z0-9]+", s.lower()))  # noqa: E731
    return not words(detail) - words(headline)


def summary_text(end: RunEnd) -> Text:
    """Plain words first (never colour alone), in the order an operator reads them; a heading
    only where something is under it."""
    words, style = HEADLINE.get(end.outcome, (f"The run ended: {end.outcome}", "bold"))
    text = Text()
    detail = end.detail.strip()
    if detail and not _repeats(detail, words):
        text.append(f"{words}. ", style=style)
        text.append(f"{detail}\n")
    else:
        text.append(f"{words}.\n", style=style)

    def section(title: str, lines: list[str], bullet: str = "• ") -> None:
        lines = [line for line in lines if line.strip()]
        if not lines:
            return
        text.append(f"\n{title}\n", style="bold")
        for line in lines:
            text.append(f"  {bullet}{line}\n")

    section("Now (probed)", [f"out of rotation: {', '.join(end.out_of_rotation) or 'none'}",
                             f"Glance stopped on: {', '.join(end.stopped) or 'none'}", *end.unknown])
    section("Next safe action", [end.next_action], bullet="")
    if end.outcome != "finished" and end.left:
        later = [line.split(":")[0].removeprefix("step ") for line in end.left[1:]]
        section(f"What is left ({len(end.left)} steps)", [f"next {end.left[0]}" + (f"; then {', '.join(later)}" if later else "")])
    section("What changed", end.changed or ["nothing"])
    return text


class SummaryScreen(ReportsFailedWorkers, Screen[None]):
    """Shown by the main screen when a run ends; ``w`` writes the HTML report, escape goes back."""

    DEFAULT_CSS = """
    SummaryScreen #summary-title { height: 1; padding: 0 1; text-style: bold; background: $boost; }
    SummaryScreen #summary-scroll { height: 1fr; padding: 0 1; }
    SummaryScreen #summary-report { height: auto; padding: 0 1; }
    """
    BINDINGS = [Binding("w", "write_report", "Write report"), Binding("escape,b", "app.pop_screen", "Back to checklist")]

    def __init__(self, engine: EngineView, config: Any, outcome: str, detail: str) -> None:
        super().__init__()
        self.engine, self.config, self.outcome, self.detail = engine, config, outcome, detail
        self.end: RunEnd | None = None
        self.report_path: Path | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text(f"Run summary · Glance → {self.config.policy.target_release}"), id="summary-title")
        with VerticalScroll(id="summary-scroll"):
            yield Static(Text("Probing the cluster for where it stands…"), id="summary-body")
        yield Static(Text("w writes the run's report (HTML, printable) next to its journal."), id="summary-report")
        yield Footer()

    def on_mount(self) -> None:
        self.run_worker(self._gather(), group="summary", description="the run's summary", exit_on_error=False)  # a failure: a message, never silence

    async def _gather(self) -> None:
        cluster = self.engine.cluster
        lb, nodes = await asyncio.gather(cluster.probe_lb(), self.engine.node_facts(), return_exceptions=True)  # the run's own view of the nodes
        journal = getattr(self.engine.journal, "path", None)
        self.end = await asyncio.to_thread(
            run_end, self.outcome, self.detail, config=self.config, plan_steps=list(self.engine.plan.steps), states=dict(self.engine.states),
            new_node=self.engine.state.new_node, journal=journal if journal and journal.is_file() else None,
            lb=None if isinstance(lb, BaseException) else lb, nodes=None if isinstance(nodes, BaseException) else nodes)
        self.query_one("#summary-body", Static).update(summary_text(self.end))

    async def action_write_report(self) -> None:
        journal = getattr(self.engine.journal, "path", None)
        if journal is None or not journal.is_file():
            self.notify("this run has no journal (dry run): there is nothing to report", severity="warning", markup=False)
            return
        try:
            self.report_path = await asyncio.to_thread(write_report, journal, "html")
        except Exception as exc:  # a full disk must not end the operator's session
            self.notify(f"cannot write the report: {exc}", severity="error", markup=False)
            return
        self.query_one("#summary-report", Static).update(Text(f"Report written: {self.report_path}", style="bold"))
        self.notify(f"report written: {self.report_path}", markup=False)
