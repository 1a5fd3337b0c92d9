"""Nothing reaches the operator's terminal raw: what others wrote is shown escaped, pastes are checked.

Text from outside the tool — a node's command output, journal records, a gate's reason, what the
operator pastes — can hold terminal escape sequences (``\\x1b]0;title\\x07``, ``\\x1b[2J``), C1
controls or bidirectional overrides that would retitle, clear or reorder the operator's screen.
Three layers, one rule:

- sources that show outside text escape it (``api.one_line``: ``\\x1b`` is shown as ``\\x1b``);
- a paste holding control characters, several lines or more than ``PASTE_LIMIT`` characters is
  refused with one visible line (:func:`paste_problem`), for every input (dialogs and palette);
- :class:`TerminalSafeFilter` drops what is left from every line before it is written (these
  characters are zero cells wide, so the layout is unchanged).
"""

from __future__ import annotations

import re

from rich.segment import Segment
from textual.color import Color
from textual.filter import LineFilter

from glance_tui.api import one_line

# C0 and C1 controls, DEL, and the bidirectional embeddings, overrides and isolates
TERMINAL_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
PASTE_LIMIT = 1000  # characters: a reason or a typed word is one short line


class TerminalSafeFilter(LineFilter):
    """Every line's text without terminal controls: the last guard before the terminal."""

    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        if not any(TERMINAL_CONTROLS.search(s.text) for s in segments if not s.control):
            return segments
        return [s if s.control else Segment(TERMINAL_CONTROLS.sub("", s.text), s.style) for s in segments]


def escaped_lines(text: str) -> str:
    """Outside text shown as written, line by line: each line's control characters escaped."""
    return "\n".join(one_line(line) for line in text.splitlines())


def paste_problem(text: str) -> str | None:
    """Why a paste is refused (one line: what, and how to paste it), or None to take it."""
    body = text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith(("\n", "\r")) else text  # one copied line
    lines = len(body.splitlines())
    if lines > 1:
        return f"paste refused: it has {lines} lines — an input here takes one line; paste a single line"
    if len(body) > PASTE_LIMIT:
        return f"paste refused: {len(body):,} characters — an input here takes at most {PASTE_LIMIT:,}; paste a shorter line"
    found = TERMINAL_CONTROLS.search(body)
    if found:
        shown = one_line(body[max(0, found.start() - 10):found.start() + 20])
        return f"paste refused: it holds control characters or escape sequences ({shown!s}) — type it, or paste plain text"
    return None
