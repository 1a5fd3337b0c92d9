"""Errors an operator sees as one line: what went wrong, where, and how to fix it."""

from __future__ import annotations

import re

from glance_tui.secrets import redact

QUOTE_LIMIT = 200  # characters of server-supplied text put in a message
WORD_LIMIT = 160  # a path, URL or token longer than this keeps its start and end
MESSAGE_LIMIT = 2000  # a whole message: one line an operator can read
_LONG_WORD = re.compile(r"\S{%d,}" % (WORD_LIMIT + 1))


class GlanceTuiError(Exception):
    """Base class: ``str(err)`` is a complete, traceback-free message for the operator.

    The message is redacted (known secrets, ``user:password@`` in URLs) and kept on one line,
    whatever a remote system or a config value put into it.
    """

    exit_code = 1

    def __init__(self, what: str, *, where: str = "", fix: str = "") -> None:
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        if self.fix:
            text += f" — fix: {self.fix}"
        return bounded(one_line(redact(text)))


def one_line(text: str) -> str:
    """Control characters (newlines above all) shown escaped, so a message stays one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def bounded(text: str) -> str:
    """A message an operator can read: overlong words (a 5,000-character path) keep start and end; the whole is capped."""
    text = _LONG_WORD.sub(lambda m: f"{m[0][:WORD_LIMIT - 60]}…{m[0][-50:]}", text)
    return text if len(text) <= MESSAGE_LIMIT else f"{text[:MESSAGE_LIMIT]}… ({len(text) - MESSAGE_LIMIT} more characters)"


def clipped(text: object, limit: int = QUOTE_LIMIT) -> str:
    """Like :func:`quoted`, without the quotes: for names a server supplied (backends, servers)."""
    raw = str(text)
    return one_line(raw if len(raw) <= limit else raw[:limit] + "…")


def quoted(text: object, limit: int = QUOTE_LIMIT) -> str:
    """Text a server (or any remote answer) supplied, for a message: repr-quoted, control characters
    escaped, at most ``limit`` characters of it (a redirect ``Location`` of 80 KB is not a message)."""
    raw = str(text)
    return repr(raw if len(raw) <= limit else raw[:limit] + "…")


class InvalidValue(ValueError):
    """A config value a model validator refuses: ``what`` is wrong, ``fix`` says how to write it."""

    def __init__(self, what: str, fix: str, *, key: str = "") -> None:
        super().__init__(what)
        self.what = what
        self.fix = fix
        self.key = key  # set by a whole-model check: the config key it is about


class ConfigError(GlanceTuiError):
    """The configuration file is missing, unreadable or invalid (exit code 2)."""

    exit_code = 2


class UsageError(GlanceTuiError):
    """The command line is wrong (exit code 2)."""

    exit_code = 2


class AdapterError(GlanceTuiError):
    """A remote system (LB, SSH, database) refused or failed a request."""


class HostKeyError(AdapterError):
    """An SSH host key is unknown or changed: never accepted silently."""


class CommandTimeout(AdapterError):
    """A remote command exceeded its timeout and was ended."""
