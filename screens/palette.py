"""Command-palette entries for every action, so nothing needs a remembered key."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

COMMANDS = (
    ("Continue: run the next step", "continue", "Runs the next step, or explains which gate blocks it"),
    ("Recheck gates and probes now", "recheck", "Re-probes the cluster and re-evaluates the gates"),
    ("Select the next step", "select_next", "Moves the checklist cursor to the step that runs next"),
    ("Show the journal", "journal", "Every record of this run"),
    ("Show the drain view", "show_drain", "In-flight history of the node being drained"),
    ("Quit", "app.request_quit", "Asks first when a step is running"),
)


class GlanceCommands(Provider):
    """Every footer action, by name."""

    def _run(self, action: str) -> None:
        screen = self.app.screen
        target = getattr(self.app, "main", None)
        if action.startswith("app."):  # a failure reaches the operator as any worker's does, never ends the app
            self.app.run_worker(self.app.run_action(action), group="palette", description=f"the palette's {action}", exit_on_error=False)
        elif target is not None:
            self.app.run_worker(target.run_palette_action(action), group="palette", description=f"the palette's {action}", exit_on_error=False)
        else:
            screen.notify("the run is not open yet")

    async def discover(self) -> Hits:
        for title, action, help_text in COMMANDS:
            yield DiscoveryHit(title, partial(self._run, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, action, help_text in COMMANDS:
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(self._run, action), help=help_text)
