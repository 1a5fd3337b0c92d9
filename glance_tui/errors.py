"""Errors an operator sees as one line: what went wrong, where, and how to fix it."""

from __future__ import annotations

from glance_tui.secrets import redact


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
        return one_line(redact(text))


def one_line(text: str) -> str:
    """Control characters (newlines above all) shown escaped, so a message stays one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


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
