"""One entry point for every rendering of a record (``report``, ``plan --format``, the summary screen)."""

from __future__ import annotations

import json
from pathlib import Path

from glance_tui.errors import UsageError
from glance_tui.outfile import write_output
from glance_tui.record.model import RunRecord, read_run

FORMATS = ("md", "html", "json")
SUFFIX = {"md": ".md", "html": ".html", "json": ".json"}


def render(rec: RunRecord, fmt: str) -> str:
    if fmt == "md":
        from glance_tui.record.markdown import render_markdown

        return render_markdown(rec)
    if fmt == "html":
        from glance_tui.record.html import render_html

        return render_html(rec)
    if fmt == "json":
        return json.dumps(rec.as_dict(), indent=2, default=str) + "\n"
    raise UsageError(f"unknown format {fmt!r}", fix=f"use one of: {', '.join(FORMATS)}")


def write_report(journal: Path, fmt: str = "html", out: Path | None = None) -> Path:
    """Render the run in ``journal`` and write it next to the journal (or to ``out``); returns the path.

    Written as every document is (:mod:`glance_tui.outfile`): atomically, nothing clobbered.
    """
    text = render(read_run(journal), fmt)
    target = out or journal.with_suffix(SUFFIX[fmt])
    return write_output(target, text, where="report") or target
