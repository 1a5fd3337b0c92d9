"""One entry point for every rendering of a record (``report``, ``plan --format``, the summary screen)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from glance_tui.errors import UsageError
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


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` (0600: a record names hosts and paths), atomically."""
    tmp = path.with_name(path.name + ".partial")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise UsageError(f"cannot write {path} ({exc.strerror or exc})", where="report", fix="choose a writable path with -o") from None
    return path


def write_report(journal: Path, fmt: str = "html", out: Path | None = None) -> Path:
    """Render the run in ``journal`` and write it next to the journal (or to ``out``); returns the path."""
    text = render(read_run(journal), fmt)
    return write_text(out or journal.with_suffix(SUFFIX[fmt]), text)
