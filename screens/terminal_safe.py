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

In a real terminal a pasted ESC first meets Textual's input parser, which reads it as the start
of a key sequence: the paste's escape sequence became keys and the paste's end marker was never
seen, so escape and the arrows stopped working. :class:`PasteSafeParser` hands it every ESC
inside a bracketed paste as ``␛`` (the paste is then refused like any other with an escape).
"""

from __future__ import annotations

import re

from rich.segment import Segment
from textual.color import Color
from textual._xterm_parser import XTermParser
from textual.filter import LineFilter

from glance_tui.api import one_line

# C0 and C1 controls, DEL, and the bidirectional embeddings, overrides and isolates
TERMINAL_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
PASTE_LIMIT = 1000  # characters: a reason or a typed word is one short line
PASTE_START, PASTE_END = "\x1b[200~", "\x1b[201~"  # bracketed paste's markers
SHOWN_ESC = "\u241b"  # ␛: an ESC inside a paste, as the parser is handed it


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
    found = TERMINAL_CONTROLS.search(body) or re.search(SHOWN_ESC, body)
    if found:
        shown = one_line(body[max(0, found.start() - 10):found.start() + 20])
        return f"paste refused: it holds control characters or escape sequences ({shown!s}) — type it, or paste plain text"
    return None


def _partial_end(data: str, marker: str, start: int) -> int:
    """Where a trailing beginning of ``marker`` starts in ``data`` (its length when there is none)."""
    for n in range(min(len(marker) - 1, len(data) - start), 0, -1):
        if data.endswith(marker[:n]):
            return len(data) - n
    return len(data)


class PasteSafeParser(XTermParser):
    """Textual's input parser, handed every ESC inside a bracketed paste as ``␛`` (see the module's doc)."""

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self._in_paste = False
        self._held = ""  # the beginning of a paste's end marker, split across reads
        self._tail = ""  # the last characters read outside a paste (a start marker split across reads)

    def feed(self, data: str):  # type: ignore[override]
        if not data:  # the end of input, as the driver says it
            return super().feed(data)
        safe = self.defang(data)
        return super().feed(safe) if safe else ()  # all held back: "" would read as the end of input

    def defang(self, data: str) -> str:
        data, self._held = self._held + data, ""
        out: list[str] = []
        i = 0
        while i < len(data):
            if self._in_paste:
                j = data.find(PASTE_END, i)
                if j < 0:
                    k = _partial_end(data, PASTE_END, i)
                    out.append(data[i:k].replace("\x1b", SHOWN_ESC))
                    self._held = data[k:]  # inside a paste a split end marker waits for the rest
                    break
                out.append(data[i:j].replace("\x1b", SHOWN_ESC) + PASTE_END)
                i, self._in_paste = j + len(PASTE_END), False
            else:  # nothing is held back here (a lone ESC is the escape key): a split start marker is seen through the tail
                look = self._tail + data[i:]
                j = look.find(PASTE_START)
                if j < 0:
                    out.append(data[i:])
                    self._tail = look[-(len(PASTE_START) - 1):]
                    break
                end = i + j + len(PASTE_START) - len(self._tail)
                out.append(data[i:end])
                i, self._in_paste, self._tail = end, True, ""
        return "".join(out)


def install_paste_safe_parser() -> None:
    """The real terminal's input thread (Linux and macOS) parses with :class:`PasteSafeParser`."""
    try:
        from textual.drivers import linux_driver
    except ImportError:  # pragma: no cover - no termios: Windows
        return
    linux_driver.XTermParser = PasteSafeParser  # type: ignore[misc]
