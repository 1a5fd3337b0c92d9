"""What the run's record needs journaled while the run happens (the report reads nothing else).

- :class:`DrainSampler`: the in-flight history of a drain wait, at most one ``drain.sample``
  record per second (plus the final reading), so the report can draw it.
- :func:`journal_versions`: each node's version and the database revisions at a moment of the
  run ("before" after preflight, "rollback", "end"), so the report shows before and after.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from glance_tui.context import Context
    from glance_tui.journal import Journal


class DrainSampler:
    """Journal ``drain.sample`` (node, in_flight, t = seconds into the wait) at most once a second."""

    def __init__(self, journal: "Journal", node: str, every: float = 1.0) -> None:
        self.journal, self.node, self.every = journal, node, every
        self._last: float | None = None

    def __call__(self, in_flight: int | None, elapsed: float) -> None:
        if self._last is not None and elapsed - self._last < self.every and in_flight != 0:
            return
        self._last = elapsed
        self.journal.write("drain.sample", node=self.node, in_flight=in_flight, t=round(elapsed, 2))


async def journal_versions(ctx: "Context", when: str, *, fresh: bool = True) -> dict[str, Any]:
    """Journal every node's version and the database heads (probed again unless ``fresh=False``:
    right after preflight the gates' probes are current). A failed probe is recorded as an error
    (the record says "not recorded"); it never stops the run."""
    fields: dict[str, Any] = {"when": when}
    try:
        if fresh:
            ctx.invalidate("nodes", "db")
        facts = await ctx.node_facts()
        fields["nodes"] = {name: (f.version if not f.error else None) for name, f in facts.items()}
        db = await ctx.db_state()
        fields["heads"] = list(db.facts.alembic_heads) if db.facts else None
        if db.error:
            fields["db_error"] = db.error
    except Exception as exc:  # a probe failure must not end the run; the record shows it
        fields["error"] = f"{exc.__class__.__name__}: {exc}"
    return ctx.journal.write("versions", **fields)
